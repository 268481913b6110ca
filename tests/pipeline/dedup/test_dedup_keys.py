"""Key texts, normalisation, row keys and keeper choice: pure, no Ray."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.dedup_exact import ExactDedupConfig, exact_keys
from pipeline.dedup_keys import (
    LINE_BITS,
    keeper_rank,
    key_texts,
    normalize_key,
    pick_keepers,
    row_uids,
)
from pipeline.schema import make_record, message, rows_to_table


def record(instruction: str, response: str, line: int, context: str = "", **extra):
    row = make_record(
        messages=[message("user", instruction), message("assistant", response)],
        context=context,
        source_file="/data/a.jsonl",
        source_format="alpaca",
        source_line=line,
    )
    row.update(extra)
    return row


def test_key_texts_per_key():
    batch = rows_to_table([record("Add 2 and 3.", "5", 1, context="Use integers.")])
    assert key_texts(batch, "instruction") == ["Add 2 and 3."]
    assert key_texts(batch, "instruction_input") == ["Add 2 and 3.\nUse integers."]
    assert key_texts(batch, "response") == ["5"]
    assert key_texts(batch, "conversation") == ["Add 2 and 3.\n5\nUse integers."]


def test_normalisation_folds_case_width_punctuation_and_space():
    assert normalize_key("  ＨＥＬＬＯ,   World!!\n") == "hello world"
    assert normalize_key("你好，世界。") == "你好 世界"
    assert normalize_key("Hello, World", strip_punctuation=False) == "hello, world"


def test_row_uids_are_file_index_and_line():
    batch = rows_to_table([record("a", "b", 7)])
    assert row_uids(batch, {"/data/a.jsonl": 3}).tolist() == [(3 << LINE_BITS) | 7]


def test_keeper_ranks_per_policy():
    rows = [record("q", "short", 1), record("q", "a much longer answer", 2)]
    rows[0]["quality_score"], rows[1]["quality_score"] = 0.9, None
    batch = rows_to_table(rows)
    assert keeper_rank(batch, "lowest_id").tolist() == [0.0, 0.0]
    assert keeper_rank(batch, "longest_response").tolist() == [-5.0, -20.0]
    assert keeper_rank(batch, "highest_quality").tolist() == [-0.9, float("inf")]


@pytest.mark.parametrize(("policy", "kept_line"), [("longest_response", 2), ("highest_quality", 3)])
def test_exact_keys_then_pick_keepers_chooses_by_policy(policy, kept_line):
    rows = [
        record("Name a colour.", "Red", 1),
        record("name a colour", "Red!", 2, quality_score=0.2),
        record("NAME A COLOUR!!", "red", 3, quality_score=0.8),
        record("Something else", "x", 4),
    ]
    rows[1]["messages"][1]["content"] = "Red, or blue"
    config = ExactDedupConfig(key="instruction", keep=policy)
    keys = exact_keys(rows_to_table(rows), config, {"/data/a.jsonl": 0}, seed=0)
    assert keys.num_rows == 4
    losers = pick_keepers("_key", keys)
    kept_uid = kept_line  # file index 0: uid == line
    assert sorted(losers["_uid"].to_pylist()) == sorted({1, 2, 3} - {kept_uid})
    assert set(losers["_keeper_uid"].to_pylist()) == {kept_uid}


def test_lowest_id_keeper_is_independent_of_row_order():
    rows = [record("Same", "Same", line) for line in (5, 1, 3)]
    keys = exact_keys(rows_to_table(rows), ExactDedupConfig(), {"/data/a.jsonl": 0}, seed=0)
    forward = pick_keepers("_key", keys)
    backward = pick_keepers("_key", keys.take(pa.array([2, 1, 0])))
    assert forward.sort_by("_uid").equals(backward.sort_by("_uid"))
    # Identical ids: the smallest uid (line 1) is kept.
    assert forward["_keeper_uid"].to_pylist() == [1, 1]


def test_empty_keys_and_dropped_rows_are_never_grouped():
    rows = [record("Only a prompt", "", 1), record("Only a prompt", "", 2)]
    rows.append(record("x", "y", 3, drop_reason="filter.too_short"))
    keys = exact_keys(
        rows_to_table(rows), ExactDedupConfig(key="response"), {"/data/a.jsonl": 0}, seed=0
    )
    assert keys.num_rows == 0
