"""`instructflow train sft` end to end on the session's local Ray: a tiny Llama (and a tiny
T5) built from a config with a tokenizer trained on the test corpus, 2 CPU workers over
gloo. Loss falls, checkpoints are Hugging Face directories, a run killed mid-way and resumed
ends where an uninterrupted one does, FSDP trains as DDP does, and NaN stops the run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml

from ops.trainrun import run_sft
from tests.train.sft_corpus import write_pipeline_output
from train.launch import TrainError
from train.tiny import save_tiny_model

pytestmark = pytest.mark.slow  # on Ray, end to end

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STEPS = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_pipeline_output(tmp_path_factory.mktemp("pipeline") / "out")


@pytest.fixture(scope="module")
def tiny_llama(corpus, tmp_path_factory) -> str:
    return save_tiny_model(str(corpus), str(tmp_path_factory.mktemp("llama")), vocab_size=512)


def recipe_file(directory: Path, corpus: Path, model: str, **sections) -> str:
    recipe = {
        "name": "test-sft",
        "seed": 3,
        "data": {"path": str(corpus)},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 64},
        "training": {
            "max_steps": STEPS,
            "micro_batch_size": 4,
            "gradient_accumulation": 2,
            "learning_rate": 3e-3,
            "warmup_steps": 2,
            "log_every_steps": 2,
        },
        "eval": {"every_steps": 4, "samples": 1, "max_new_tokens": 8},
        "scaling": {"num_workers": 2},
        "output": {"path": str(directory / "sft")},
    }
    for section, values in sections.items():
        recipe[section] = {**recipe.get(section, {}), **values}
    path = directory / "sft.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def metrics(summary: dict) -> list[dict]:
    lines = (Path(summary["logs"]) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def uninterrupted(ray_session, corpus, tiny_llama, tmp_path_factory) -> dict:
    return run_sft(recipe_file(tmp_path_factory.mktemp("ddp"), corpus, tiny_llama))


def test_validation_loss_falls_and_checkpoints_are_hugging_face(uninterrupted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logged = metrics(uninterrupted)
    validation = [m["validation/loss"] for m in logged if "validation/loss" in m]
    assert validation[0] > validation[-1] + 1.0, validation  # from step 0 to the end
    assert logged[0]["step"] == 0 and math.isclose(validation[0], logged[0]["validation/loss"])
    train_lines = [m for m in logged if "train/loss" in m]
    assert {"train/learning_rate", "train/tokens_per_s", "train/grad_norm"} <= set(train_lines[0])
    # Warmup then cosine decay: the rate rises for 2 steps, then falls to 10% at the end.
    rates = [m["train/learning_rate"] for m in train_lines]
    assert rates[0] == pytest.approx(3e-3) and rates[-1] == pytest.approx(3e-4)

    best, last = uninterrupted["best"], uninterrupted["last"]
    assert last["step"] == STEPS and best["val_loss"] <= last["val_loss"] + 1e-9
    for checkpoint in {best["path"], last["path"]}:
        files = set(os.listdir(checkpoint))
        assert {"config.json", "model.safetensors", "tokenizer.json", "instructflow.json"} <= files
        assert "training_state.pt" in files
        AutoModelForCausalLM.from_pretrained(checkpoint)
        AutoTokenizer.from_pretrained(checkpoint)
    events = [name for name in os.listdir(uninterrupted["logs"]) if name.startswith("events")]
    assert events, "no TensorBoard event file"
    stats = uninterrupted["data"]["train"]
    assert stats["records_in"] == 160 and stats["records"] == 160 and stats["truncated"] == 0


def test_tensorboard_has_scalars_and_sample_generations(uninterrupted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(uninterrupted["logs"], size_guidance={"tensors": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/learning_rate", "train/tokens_per_s", "train/grad_norm"} <= set(
        tags["scalars"]
    )
    assert "validation/perplexity" in tags["scalars"]
    assert any(tag.startswith("samples") for tag in tags["tensors"])


def test_a_worker_killed_mid_run_restarts_from_its_checkpoint(
    ray_session, corpus, tiny_llama, uninterrupted, tmp_path
):
    recipe = recipe_file(tmp_path, corpus, tiny_llama, scaling={"max_failures": 1})
    summary = run_sft(recipe, fault={"crash_at_step": 6, "crash_rank": 1})
    lines = (Path(summary["logs"]) / "metrics.jsonl").read_text()
    assert lines.count('"step": 6,') == 2  # step 6 was logged, lost, and trained again
    assert summary["last"]["train_loss"] == pytest.approx(
        uninterrupted["last"]["train_loss"], rel=1e-4
    )
    assert summary["last"]["val_loss"] == pytest.approx(uninterrupted["last"]["val_loss"], rel=1e-4)


def test_a_killed_run_resumes_with_resume(ray_session, corpus, tiny_llama, uninterrupted, tmp_path):
    recipe = recipe_file(tmp_path, corpus, tiny_llama)
    with pytest.raises(TrainError, match="training failed: .*(died|Error)"):
        run_sft(recipe, fault={"crash_at_step": 9})
    with pytest.raises(Exception, match="--resume"):
        run_sft(recipe)  # the earlier run is neither silently continued nor overwritten
    summary = run_sft(recipe, resume=True)
    assert summary["last"]["step"] == STEPS
    assert summary["last"]["train_loss"] == pytest.approx(
        uninterrupted["last"]["train_loss"], rel=1e-4
    )
    assert summary["last"]["val_loss"] == pytest.approx(uninterrupted["last"]["val_loss"], rel=1e-4)


def test_one_worker_accumulating_trains_as_two_workers_do(
    ray_session, corpus, tiny_llama, uninterrupted, tmp_path
):
    # The same global batch of 16 rows: 2 workers x 2 micro-batches x 4 rows, or 1 x 4 x 4.
    recipe = recipe_file(
        tmp_path,
        corpus,
        tiny_llama,
        scaling={"num_workers": 1},
        training={"gradient_accumulation": 4},
    )
    summary = run_sft(recipe)
    assert summary["global_batch"] == uninterrupted["global_batch"] == 16
    assert summary["last"]["train_loss"] == pytest.approx(
        uninterrupted["last"]["train_loss"], rel=1e-4
    )
    assert summary["last"]["val_loss"] == pytest.approx(uninterrupted["last"]["val_loss"], rel=1e-4)


def test_fsdp_trains_as_ddp_does(ray_session, corpus, tiny_llama, uninterrupted, tmp_path):
    recipe = recipe_file(tmp_path, corpus, tiny_llama, training={"strategy": "fsdp"})
    summary = run_sft(recipe)
    assert summary["last"]["val_loss"] == pytest.approx(uninterrupted["last"]["val_loss"], rel=1e-3)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(summary["last"]["path"])


def test_a_nan_loss_stops_with_the_step_named(ray_session, corpus, tiny_llama, tmp_path):
    recipe = recipe_file(tmp_path, corpus, tiny_llama, scaling={"num_workers": 1})
    with pytest.raises(TrainError, match=r"step 3: the gradient norm is nan"):
        run_sft(recipe, fault={"nan_at_step": 2})


@pytest.mark.parametrize("arch", ["t5", "bart"])
def test_seq2seq_learns(ray_session, corpus, tmp_path, arch):
    model = save_tiny_model(
        str(corpus), str(tmp_path / arch), kind="seq2seq", vocab_size=512, arch=arch
    )
    recipe = recipe_file(
        tmp_path,
        corpus,
        model,
        prompt={"format": "instruction_output"},
        scaling={"num_workers": 1},
        training={"micro_batch_size": 8},
    )
    summary = run_sft(recipe)
    validation = [m["validation/loss"] for m in metrics(summary) if "validation/loss" in m]
    assert validation[0] > validation[-1] + 1.0, validation
    stats = summary["data"]["train"]
    assert stats["rows"] > stats["records"]  # one row per assistant turn: every turn counts


def test_lora_adapter_with_gradient_checkpointing_under_bf16_trains_and_generates(
    ray_session, corpus, tiny_llama, tmp_path
):
    # One run for three options that each only need to train (bf16 autocast on CPU too):
    # every training run costs ~20 s of Ray Train and worker start-up in this suite.
    pytest.importorskip("peft")
    from train.generate import generate_one

    recipe = recipe_file(
        tmp_path,
        corpus,
        tiny_llama,
        training={
            "lora": {"r": 8, "alpha": 16},
            "learning_rate": 1e-2,
            "gradient_checkpointing": True,
            "precision": "bf16",
        },
        scaling={"num_workers": 1},
    )
    summary = run_sft(recipe)
    files = set(os.listdir(summary["last"]["path"]))
    assert "adapter_config.json" in files and "model.safetensors" not in files
    validation = [m["validation/loss"] for m in metrics(summary) if "validation/loss" in m]
    assert math.isfinite(validation[-1]) and validation[-1] < validation[0]
    reply = generate_one(str(tmp_path / "sft"), "What is the capital of Peru?", max_new_tokens=6)
    assert isinstance(reply, str)


def test_generate_one_prompt_and_a_parquet_file(ray_session, uninterrupted, corpus, tmp_path):
    import pyarrow.parquet as pq

    from train.generate import generate_batch, generate_one

    output_dir = str(Path(uninterrupted["best"]["path"]).parent.parent)
    reply = generate_one(output_dir, "What is the capital of Peru?", max_new_tokens=12)
    assert reply.strip()  # greedy, so the same on every run
    assert reply == generate_one(
        uninterrupted["best"]["path"], "What is the capital of Peru?", max_new_tokens=12
    )
    rows = generate_batch(
        output_dir, str(corpus / "data" / "validation"), str(tmp_path / "replies"), max_new_tokens=8
    )
    table = pq.read_table(tmp_path / "replies")
    assert rows == table.num_rows == 24
    assert "response" in table.column_names and "messages" in table.column_names
