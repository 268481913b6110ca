"""The SFT recipe is checked before Ray starts: every problem names its key, the value and
what is allowed. Also the pure parts of the loop: the learning-rate schedule, the seeded
global batches a resumed run continues exactly, and the rows Ray Data makes."""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import yaml

from ops.trainrun import load_sft_recipe
from pipeline.config import RecipeError
from tests.train.sft_corpus import write_pipeline_output
from train.sft import TrainPlan, global_batches, learning_rate_factor
from train.sft_launch import prepare
from train.sft_rows import TokenizeRows, collate, training_rows
from train.tiny import save_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_pipeline_output(tmp_path_factory.mktemp("pipeline") / "out", 40, 8)


@pytest.fixture(scope="module")
def tiny_llama(corpus, tmp_path_factory) -> str:
    return save_tiny_model(str(corpus), str(tmp_path_factory.mktemp("llama")), vocab_size=300)


def write(tmp_path: Path, corpus: Path, model: str, **changes) -> str:
    recipe = {
        "data": {"path": str(corpus)},
        "model": {"name_or_path": model},
        "prompt": {"max_length": 64},
        "output": {"path": str(tmp_path / "sft")},
    }
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        recipe.setdefault(section, {})[key] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def problems(path: str, overrides: list[str] | None = None, **flags) -> list[tuple[str, str]]:
    with pytest.raises(RecipeError) as caught:
        recipe = load_sft_recipe(path, overrides)
        prepare(recipe, path, resume=flags.get("resume", False), overwrite=False)
    return [(problem.path, problem.message) for problem in caught.value.problems]


def test_unknown_keys_and_bad_values_are_named(tmp_path, corpus, tiny_llama):
    path = write(tmp_path, corpus, tiny_llama, training__lerning_rate=1.0)
    found = problems(path, ["training.micro_batch_size=0", "prompt.format=vicuna"])
    paths = {where for where, _ in found}
    assert {"training.lerning_rate", "training.micro_batch_size", "prompt"} <= paths
    unknown = dict(found)["training.lerning_rate"]
    assert "learning_rate" in unknown  # the allowed keys are listed
    assert "instruction_output" in dict(found)["prompt"]


def test_fsdp_on_one_worker_is_refused(tmp_path, corpus, tiny_llama):
    path = write(tmp_path, corpus, tiny_llama, training__strategy="fsdp")
    assert "num_workers >= 2" in problems(path)[0][1]


def test_missing_split_model_and_template_are_found_before_ray(tmp_path, corpus, tiny_llama):
    path = write(tmp_path, corpus, tiny_llama, data__train_split="training")
    found = dict(problems(path, ["model.name_or_path=" + str(tmp_path / "nowhere")]))
    assert "add a `split` stage" in found["data.train_split"]
    assert "no model config" in found["model.name_or_path"]

    plain = tmp_path / "plain"
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    path = write(tmp_path, corpus, tiny_llama, model__tokenizer=str(plain))
    assert dict(problems(path))["prompt.format"].startswith("the tokenizer has no chat template")


def test_an_unfinished_data_run_is_refused_as_training_data(tmp_path, corpus, tiny_llama):
    import shutil

    from pipeline.checkpoint import RunDirectory

    killed = tmp_path / "killed"
    shutil.copytree(corpus, killed)
    (killed / "manifest.json").unlink()  # shards in place, but the run never committed
    RunDirectory(str(killed)).write_marker("abc", [])
    path = write(tmp_path, killed, tiny_llama)
    ((where, message),) = [found for found in problems(path) if found[0] == "data.path"]
    assert "unfinished instructflow data run" in message and "--resume" in message


def test_a_recipe_whose_loss_mask_is_empty_is_an_error(tmp_path, corpus, tiny_llama):
    # Four tokens hold the chat template's opening: no reply survives the cut.
    path = write(tmp_path, corpus, tiny_llama, prompt__max_length=4)
    ((where, message),) = problems(path)
    assert where == "prompt.max_length" and "no supervised token" in message


def test_packing_a_seq2seq_model_is_refused(tmp_path, corpus):
    t5 = save_tiny_model(str(corpus), str(tmp_path / "t5"), kind="seq2seq", vocab_size=300)
    path = write(tmp_path, corpus, t5, prompt__packing=True, prompt__format="instruction_output")
    assert dict(problems(path))["prompt.packing"] == "packing applies to causal models only"


def test_an_earlier_run_is_never_silently_reused(tmp_path, corpus, tiny_llama):
    path = write(tmp_path, corpus, tiny_llama)
    assert "--resume: no earlier run" in dict(problems(path, resume=True))["output.path"]
    (tmp_path / "sft" / "ray_train").mkdir(parents=True)
    assert "--overwrite" in dict(problems(path))["output.path"]


def test_shipped_sft_recipes_validate():
    shipped = sorted((Path(__file__).parents[2] / "examples").glob("*/sft*.yaml"))
    assert shipped
    for recipe in shipped:
        load_sft_recipe(str(recipe))


def test_learning_rate_warms_up_then_decays_to_the_floor():
    factors = [learning_rate_factor(step, 4, 20, 0.1) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))
    assert learning_rate_factor(20, 4, 20, 0.1) == pytest.approx(0.1)


class FakeShard:
    """A dataset shard: rows 0..n-1 in order, as Ray Data's iter_batches gives them."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def iter_batches(self, batch_size: int, **_):
        for start in range(0, self.rows, batch_size):
            ids = np.arange(start, min(start + batch_size, self.rows))
            yield {"tokens": ids, "supervised": ids}


def plan(rows: int, global_batch: int) -> TrainPlan:
    return TrainPlan(
        kind="causal",
        packing=True,
        pad_id=0,
        model_path="m",
        tokenizer_path="m",
        train_rows=rows,
        validation_rows=0,
        global_batch=global_batch,
        steps_per_epoch=rows // global_batch,
        total_steps=3 * (rows // global_batch),
        log_dir="",
    )


def test_global_batches_are_seeded_and_a_resumed_run_continues_exactly(tmp_path, corpus):
    recipe = load_sft_recipe(write(tmp_path, corpus, "m", data__shuffle_window_rows=24))
    run = plan(rows=100, global_batch=8)  # 12 steps per epoch, the last 4 rows dropped
    full = [
        (step, rows["tokens"].tolist())
        for step, rows in islice(global_batches(FakeShard(100), run, recipe, 0), run.total_steps)
    ]
    assert [step for step, _ in full] == list(range(run.total_steps))
    first_epoch = sorted(t for _, batch in full[:12] for t in batch)
    assert len(first_epoch) == len(set(first_epoch)) == 96  # each row at most once per epoch
    assert full[:12] != full[12:24]  # a new order each epoch
    resumed = [
        (step, rows["tokens"].tolist())
        for step, rows in islice(global_batches(FakeShard(100), run, recipe, 17), 19)
    ]
    assert resumed == full[17:]


def test_rows_keep_their_counts_and_collate_for_the_model(corpus, tiny_llama):
    import pyarrow.parquet as pq

    records = pq.read_table(corpus / "data" / "train").to_pylist()
    tokenizer = TokenizeRows(tiny_llama, "chat", 128, "causal", True).tokenizer
    packed = training_rows(records, tokenizer, "chat", 128, "causal", True)
    single = training_rows(records, tokenizer, "chat", 128, "causal", False)
    assert packed.num_rows < single.num_rows == len(records)
    for column in ("tokens", "supervised", "records"):
        assert sum(packed.column(column).to_pylist()) == sum(single.column(column).to_pylist())
    rows = {
        name: np.array(packed.column(name).to_pylist(), dtype=object)
        for name in packed.column_names
    }
    batch = collate({k: v[:3] for k, v in rows.items()}, tokenizer.pad_token_id, "causal")
    assert batch["input_ids"].shape == batch["position_ids"].shape == (3, 128)
    assert "attention_mask" not in batch  # packed: transformers masks per example
    rows = {
        name: np.array(single.column(name).to_pylist(), dtype=object)
        for name in single.column_names
    }
    batch = collate({k: v[:3] for k, v in rows.items()}, tokenizer.pad_token_id, "causal")
    assert batch["attention_mask"].sum() == sum(len(ids) for ids in rows["input_ids"][:3])
