"""The constrain stage and its phrasing (``pipeline.constraints``): every kind phrases into
arguments the checker (``train.rewards.ifeval``) accepts, held-out kinds land only on
held-out splits, conflicting kinds never meet, pairs are left alone, and the output is
deterministic."""

from __future__ import annotations

import json
import random

import pytest

from pipeline.config import RecipeError, parse_recipe
from pipeline.constrain import Constrain, ConstrainConfig
from pipeline.constraints import KINDS, conflict, phrase
from pipeline.schema import make_record, message, record_id, rows_to_table
from train.rewards import ifeval

INSTRUCTIONS = [
    "Explain how photosynthesis turns sunlight into chemical energy.",
    "Write a short story about a lighthouse keeper and a storm.",
    "List the main causes of the French Revolution.",
    "Describe the water cycle for a ten year old.",
]


def records(count: int, split: str | None = None) -> list[dict]:
    rows = []
    for line in range(count):
        row = make_record(
            messages=[
                message("user", f"{INSTRUCTIONS[line % 4]} ({line})"),
                message("assistant", "A reply."),
            ],
            source_file="/data/a.jsonl",
            source_format="alpaca",
            source_line=line,
        )
        row["split"] = split
        rows.append(row)
    return rows


def run(config: ConstrainConfig, rows: list[dict]):
    return Constrain(config).run(rows_to_table(rows))


def test_every_kind_phrases_into_arguments_its_checker_accepts():
    assert KINDS == ifeval.KINDS
    for kind in KINDS:
        for seed in range(5):
            sentence, args = phrase(kind, random.Random(seed), INSTRUCTIONS[seed % 4])
            assert sentence.strip(), kind
            parsed = ifeval.parse_args(kind, json.dumps(args))
            assert set(parsed) == set(ifeval.ARG_KEYS[kind]) - {
                key for key, value in args.items() if value is None
            }, kind


def test_held_out_kinds_only_on_held_out_splits():
    config = ConstrainConfig(per_record_min=1, per_record_max=2)
    held = set(config.held_out_kinds)
    train, counts = run(config, records(60, "train"))
    validation, _ = run(config, records(60, "validation"))
    train_kinds = {c["kind"] for cs in train.column("constraints").to_pylist() for c in cs}
    validation_kinds = {
        c["kind"] for cs in validation.column("constraints").to_pylist() for c in cs
    }
    assert train_kinds and not train_kinds & held
    assert validation_kinds and validation_kinds <= held
    assert all(c["held_out"] for cs in validation.column("constraints").to_pylist() for c in cs)
    assert counts.modified["constrained.seen"] == 60 and counts.kept == 60


def test_the_instruction_carries_the_sentence_and_the_id_follows_the_text():
    config = ConstrainConfig(kinds=("punctuation:no_comma",), held_out_kinds=())
    out, _ = run(config, records(3))
    for row in out.to_pylist():
        user = row["messages"][0]["content"]
        assert user.startswith(INSTRUCTIONS[row["source_line"] % 4])
        assert "comma" in user[len(INSTRUCTIONS[0]) :].lower()
        assert row["constraints"] == [
            {"kind": "punctuation:no_comma", "args": "{}", "held_out": False}
        ]
        expected = record_id(
            row["system"],
            row["messages"],
            row["context"],
            row["tools"],
            constraints=row["constraints"],
        )
        assert row["id"] == expected
        assert row["messages"][1]["content"] == "A reply."  # replies are kept


def test_conflicting_kinds_never_meet_and_output_is_deterministic():
    config = ConstrainConfig(held_out_kinds=(), per_record_min=3, per_record_max=4)
    first, _ = run(config, records(80))
    again, _ = run(config, records(80))
    assert first.equals(again)
    for constraints in first.column("constraints").to_pylist():
        kinds = [c["kind"] for c in constraints]
        assert len(set(kinds)) == len(kinds)
        assert not any(conflict(a, b) for a in kinds for b in kinds if a != b), kinds
    other, _ = run(config.model_copy(update={"seed": 1}), records(80))
    assert not first.column("constraints").equals(other.column("constraints"))


def test_pairs_and_constrained_records_are_left_alone():
    pair = records(1)[0] | {"rejected": [message("user", "x"), message("assistant", "no")]}
    out, counts = run(ConstrainConfig(), [pair])
    assert out.column("constraints").to_pylist() == [None]
    assert counts.modified["skipped.pair"] == 1
    once, _ = run(ConstrainConfig(), records(1))
    twice, counts = run(ConstrainConfig(), once.to_pylist())
    assert twice.equals(once) and counts.modified["skipped.already_constrained"] == 1


def test_bad_configs_name_the_kind_and_the_order():
    with pytest.raises(ValueError, match="unknown constraint kind"):
        ConstrainConfig(kinds=("punctuation:no_semicolon",))
    with pytest.raises(ValueError, match="must be among kinds"):
        ConstrainConfig(kinds=("punctuation:no_comma",), held_out_kinds=("startend:quotation",))
    recipe = {
        "name": "r",
        "inputs": [{"path": "a.jsonl"}],
        "stages": [{"constrain": {}}, {"split": {"fractions": {"train": 0.9, "validation": 0.1}}}],
        "output": {"path": "out"},
    }
    with pytest.raises(RecipeError, match=r"stages\[0\]\.constrain: must run after split"):
        parse_recipe(recipe, "recipe.yaml")
