"""Pair rows from preference records (only the last reply supervised, prompts cut from the
left), the recipe checks `train dpo` makes before Ray starts, and the side log-probabilities
the stored and the in-process reference share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

from ops.trainrun import load_dpo_recipe
from pipeline.config import RecipeError
from tests.train.pair_corpus import pair_records, write_pair_output
from tests.train.sft_corpus import write_pipeline_output
from train.dpo_launch import prepare_dpo
from train.dpo_rows import ReferenceLogps, last_reply_only, pair_rows, side_logps
from train.sft_data import IGNORE
from train.sft_rows import load_tokenizer
from train.tiny import save_tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_pair_output(tmp_path_factory.mktemp("pairs") / "out", 24, 8)


@pytest.fixture(scope="module")
def tiny_llama(corpus, tmp_path_factory) -> str:
    return save_tiny_model(str(corpus), str(tmp_path_factory.mktemp("llama")), vocab_size=300)


def recipe_file(tmp_path: Path, corpus: Path, model: str, **preference) -> str:
    recipe = {
        "data": {"path": str(corpus)},
        "model": {"name_or_path": model},
        "prompt": {"max_length": 64},
        "preference": preference,
        "output": {"path": str(tmp_path / "dpo")},
    }
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def reply_tokens(row: dict, side: str) -> list[int]:
    pairs = zip(row[f"{side}_input_ids"], row[f"{side}_labels"], strict=True)
    return [token for token, label in pairs if label != IGNORE]


def test_only_the_last_supervised_run_is_kept():
    labels = [IGNORE, 5, 6, IGNORE, IGNORE, 7, 8, 9, IGNORE]
    assert last_reply_only(labels) == [IGNORE] * 5 + [7, 8, 9, IGNORE]
    assert last_reply_only([IGNORE, IGNORE]) == [IGNORE, IGNORE]


def test_pair_rows_supervise_the_final_reply_of_each_side(tiny_llama):
    tokenizer = load_tokenizer(tiny_llama)
    records = pair_records(3)  # the second is a two-turn conversation
    rows = pair_rows(records, tokenizer, "chat", 128, "causal", need_both=True).to_pylist()
    assert len(rows) == 3 and all(row["records"] == 1 for row in rows)
    two_turns = rows[1]
    chosen = reply_tokens(two_turns, "chosen")
    assert tokenizer.decode(chosen).strip().startswith("Another colour is")
    rejected = reply_tokens(two_turns, "rejected")
    assert "Sorry, I cannot help" in tokenizer.decode(rejected)
    # Both sides share the prompt's tokens up to the reply.
    prompt_length = two_turns["chosen_labels"].index(
        next(x for x in two_turns["chosen_labels"] if x != IGNORE)
    )
    assert (
        two_turns["chosen_input_ids"][:prompt_length]
        == two_turns["rejected_input_ids"][:prompt_length]
    )


def test_binary_feedback_fills_one_side_and_pair_losses_skip_it(tiny_llama):
    tokenizer = load_tokenizer(tiny_llama)
    records = pair_records(4, binary=True)
    assert pair_rows(records, tokenizer, "chat", 128, "causal", need_both=True).num_rows == 0
    rows = pair_rows(records, tokenizer, "chat", 128, "causal", need_both=False).to_pylist()
    assert [bool(r["chosen_input_ids"]) for r in rows] == [True, False, True, False]
    assert [bool(r["rejected_input_ids"]) for r in rows] == [False, True, False, True]


def test_a_long_prompt_is_cut_from_the_left_and_the_reply_survives(tiny_llama):
    tokenizer = load_tokenizer(tiny_llama)
    record = pair_records(1)[0]
    record["messages"][0]["content"] = "word " * 200 + record["messages"][0]["content"]
    row = pair_rows([record], tokenizer, "chat", 48, "causal", need_both=True).to_pylist()[0]
    assert len(row["chosen_input_ids"]) == 48 and row["truncated"] == 1
    kept = reply_tokens(row, "chosen")
    assert "The capital of France is Paris." in tokenizer.decode(kept)


def test_stored_reference_log_probs_equal_the_in_process_ones(tiny_llama):
    tokenizer = load_tokenizer(tiny_llama)
    table = pair_rows(pair_records(6), tokenizer, "chat", 64, "causal", need_both=True)
    stored = ReferenceLogps(tiny_llama, "causal", tokenizer.pad_token_id, batch_size=4)(table)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    rows = {name: table.column(name).to_pylist() for name in table.column_names}
    with torch.no_grad():  # one batch of 6, not the actor's 4 + 2: padding must not matter
        logps, tokens = side_logps(model, model, rows, tokenizer.pad_token_id, "causal", "cpu")
    assert stored.column("ref_chosen_logp").to_pylist() == pytest.approx(
        logps[0].tolist(), rel=1e-5
    )
    assert stored.column("ref_rejected_logp").to_pylist() == pytest.approx(
        logps[1].tolist(), rel=1e-5
    )
    assert (tokens > 0).all()


def test_sft_shards_are_refused_before_ray_with_the_reason(tmp_path, tiny_llama):
    sft_only = write_pipeline_output(tmp_path / "sft-data", 8, 4)
    recipe = load_dpo_recipe(recipe_file(tmp_path, sft_only, tiny_llama))
    with pytest.raises(RecipeError, match=r"data\.path.*none of the first 8 training records"):
        prepare_dpo(recipe, "dpo.yaml", resume=False, overwrite=False)


def test_binary_feedback_under_a_pair_loss_points_to_kto(tmp_path, tiny_llama):
    binary = write_pair_output(tmp_path / "binary", 8, 4, binary=True)
    recipe = load_dpo_recipe(recipe_file(tmp_path, binary, tiny_llama))
    with pytest.raises(RecipeError, match="preference.loss kto"):
        prepare_dpo(recipe, "dpo.yaml", resume=False, overwrite=False)
    kto = load_dpo_recipe(recipe_file(tmp_path, binary, tiny_llama, loss="kto"))
    assert prepare_dpo(kto, "dpo.yaml", resume=False, overwrite=False).packing is False


def test_recipe_problems_name_their_key(tmp_path, corpus, tiny_llama):
    with pytest.raises(RecipeError, match="preference.*reference none: loss sigmoid"):
        load_dpo_recipe(recipe_file(tmp_path, corpus, tiny_llama, reference="none"))
    with pytest.raises(RecipeError, match="preference.loss"):
        load_dpo_recipe(recipe_file(tmp_path, corpus, tiny_llama, loss="rlhf"))
    path = recipe_file(tmp_path, corpus, tiny_llama)
    with pytest.raises(RecipeError, match="prompt.packing|preference rows are not packed"):
        load_dpo_recipe(path, ["prompt.packing=true"])
    assert load_dpo_recipe(path, ["preference.loss=simpo"]).preference.reference_mode == "none"


def test_sft_never_imitates_a_reply_marked_undesirable(tmp_path, tiny_llama):
    import pyarrow as pa

    from pipeline.schema import rows_to_table
    from train.sft_launch import undesirable_records
    from train.sft_rows import TokenizeRows

    binary = write_pair_output(tmp_path / "binary", 8, 4, binary=True)
    assert undesirable_records(str(binary / "data" / "train")) == 4
    assert undesirable_records(str(write_pipeline_output(tmp_path / "sft", 4, 2) / "data")) == 0
    rows = TokenizeRows(tiny_llama, "chat", 64, "causal", packing=False)
    table = rows_to_table(pair_records(8, binary=True))
    tokenized = rows(table.append_column("path", pa.array(["a"] * 8)))
    assert tokenized.num_rows == 4 and sum(tokenized.column("records").to_pylist()) == 4


def test_shipped_dpo_recipes_validate():
    shipped = sorted((Path(__file__).parents[2] / "examples").glob("*/dpo*.yaml"))
    assert shipped
    for recipe in shipped:
        load_dpo_recipe(str(recipe))
