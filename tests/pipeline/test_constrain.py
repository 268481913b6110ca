"""The ``constrain`` stage and its phrasing module: every kind phrased with the contract's
argument keys, no conflicting kinds together, held-out kinds only on held-out splits, feedback
records left alone, ids, and the same bytes for the same input."""

from __future__ import annotations

import io
import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from pipeline.config import RecipeError, parse_recipe
from pipeline.constrain import DEFAULT_HELD_OUT_KINDS, Constrain, ConstrainConfig
from pipeline.constraints import (
    CONFLICTS,
    KINDS,
    RELATIONS,
    REPEAT_PROMPT,
    attach,
    choose_kinds,
    compatible,
    constrain_instruction,
    phrase,
)
from pipeline.schema import make_record, message, record_id, rows_to_table
from train.rewards import ifeval

# The contract (train.rewards.ifeval checks these): each kind's argument keys.
CONTRACT_ARGS = {
    "keywords:existence": {"keywords"},
    "keywords:frequency": {"keyword", "frequency", "relation"},
    "keywords:forbidden_words": {"forbidden_words"},
    "keywords:letter_frequency": {"letter", "let_frequency", "let_relation"},
    "language:response_language": {"language"},
    "length_constraints:number_sentences": {"num_sentences", "relation"},
    "length_constraints:number_paragraphs": {"num_paragraphs"},
    "length_constraints:number_words": {"num_words", "relation"},
    "length_constraints:nth_paragraph_first_word": {
        "num_paragraphs",
        "nth_paragraph",
        "first_word",
    },
    "detectable_content:number_placeholders": {"num_placeholders"},
    "detectable_content:postscript": {"postscript_marker"},
    "detectable_format:number_bullet_lists": {"num_bullets"},
    "detectable_format:constrained_response": set(),
    "detectable_format:number_highlighted_sections": {"num_highlights"},
    "detectable_format:multiple_sections": {"section_spliter", "num_sections"},
    "detectable_format:json_format": set(),
    "detectable_format:title": set(),
    "combination:two_responses": set(),
    "combination:repeat_prompt": {"prompt_to_repeat"},
    "startend:end_checker": {"end_phrase"},
    "startend:quotation": set(),
    "change_case:capital_word_frequency": {"capital_frequency", "capital_relation"},
    "change_case:english_capital": set(),
    "change_case:english_lowercase": set(),
    "punctuation:no_comma": set(),
}
INSTRUCTION = "Describe how the old lighthouse on the northern cliff was rebuilt after the storm."
# IFEval's table: pairs it never puts in one prompt.
IFEVAL_PAIRS = [
    ("change_case:english_capital", "change_case:english_lowercase"),
    ("change_case:capital_word_frequency", "change_case:english_capital"),
    ("change_case:capital_word_frequency", "change_case:english_lowercase"),
    ("detectable_format:json_format", "detectable_format:title"),
    ("combination:repeat_prompt", "startend:end_checker"),
    ("combination:two_responses", "startend:quotation"),
    ("language:response_language", "change_case:english_lowercase"),
    ("length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word"),
]


def sft(instruction: str, line: int = 1, split: str = "", context: str = "") -> dict:
    row = make_record(
        messages=[message("user", instruction), message("assistant", "An answer.")],
        source_file="a.jsonl",
        source_format="alpaca",
        source_line=line,
        context=context,
    )
    row["split"] = split
    return row


def corpus(count: int = 300) -> list[dict]:
    splits = ("train", "train", "train", "validation", "test", "")
    return [sft(f"{INSTRUCTION} Version {i}.", i, splits[i % 6]) for i in range(count)]


def constrained(rows: list[dict], **options) -> tuple[list[dict], dict]:
    table, counts = Constrain(ConstrainConfig(**options)).run(rows_to_table(rows))
    return sorted(table.to_pylist(), key=lambda r: r["source_line"]), counts.modified


def test_every_kind_is_phrased_with_the_contract_argument_keys():
    assert KINDS == tuple(CONTRACT_ARGS)
    for kind in KINDS:
        templates = set()
        for seed in range(40):
            sentence, args = phrase(kind, random.Random(seed), INSTRUCTION)
            assert set(args) == CONTRACT_ARGS[kind], kind
            assert sentence and sentence != INSTRUCTION
            templates.add(sentence.split(" ")[0])
            for key in ("relation", "let_relation", "capital_relation"):
                assert args.get(key, RELATIONS[0]) in RELATIONS
        assert len(templates) >= 2, f"{kind} has one phrasing"


def test_every_kind_phrases_into_arguments_its_checker_accepts():
    assert KINDS == ifeval.KINDS
    for kind in KINDS:
        for seed in range(10):
            _, args = phrase(kind, random.Random(seed), INSTRUCTION)
            assert set(ifeval.parse_args(kind, json.dumps(args))) == set(ifeval.ARG_KEYS[kind])


def test_arguments_are_in_range_and_say_what_the_sentence_asks():
    for seed in range(60):
        rng = random.Random(seed)
        sentence, args = phrase("length_constraints:number_words", rng, INSTRUCTION)
        assert 20 <= args["num_words"] <= 300 and f"{args['relation']} {args['num_words']}" in (
            sentence
        )
        sentence, args = phrase("keywords:letter_frequency", rng, INSTRUCTION)
        assert len(args["letter"]) == 1 and "a" <= args["letter"] <= "z"
        assert f'"{args["letter"]}"' in sentence
        sentence, args = phrase("keywords:existence", rng, INSTRUCTION)
        assert all(f'"{word}"' in sentence for word in args["keywords"])
        _, args = phrase("keywords:forbidden_words", rng, "Really, is it very simple?")
        assert not {"really", "very"} & set(args["forbidden_words"])
        sentence, args = phrase("startend:end_checker", rng, INSTRUCTION)
        assert args["end_phrase"] in sentence and "," not in args["end_phrase"]
        _, args = phrase("detectable_content:postscript", rng, INSTRUCTION)
        assert args["postscript_marker"] in ("P.S.", "P.P.S")
        _, args = phrase("length_constraints:nth_paragraph_first_word", rng, INSTRUCTION)
        assert 1 <= args["nth_paragraph"] <= args["num_paragraphs"]


def test_conflicts_are_symmetric_and_include_ifevals_table():
    for kind, others in CONFLICTS.items():
        assert kind in others
        assert all(kind in CONFLICTS[other] for other in others)
    for first, second in IFEVAL_PAIRS:
        assert not compatible([first, second])
    assert CONFLICTS["detectable_format:constrained_response"] == frozenset(KINDS)


def test_chosen_kinds_never_conflict_and_fill_the_count_when_they_can():
    for seed in range(400):
        rng = random.Random(seed)
        kinds = choose_kinds(rng, KINDS, 3)
        assert compatible(kinds) and len(kinds) == 3, kinds
        assert kinds == [kind for kind in KINDS if kind in kinds]  # contract order
    with pytest.raises(ValueError, match="conflicting"):
        constrain_instruction(random.Random(0), INSTRUCTION, list(IFEVAL_PAIRS[0]), "append")


@pytest.mark.parametrize("position", ["append", "prepend"])
def test_repeat_prompt_asks_for_the_rest_of_the_text(position):
    kinds = ["keywords:existence", REPEAT_PROMPT, "punctuation:no_comma"]
    text, phrased = constrain_instruction(random.Random(3), INSTRUCTION, kinds, position)
    args = dict(phrased)[REPEAT_PROMPT]
    request = args["prompt_to_repeat"]
    assert INSTRUCTION in request and "repeat" not in request.lower()
    assert (text.startswith if position == "append" else text.endswith)(request)
    assert [kind for kind, _ in phrased] == kinds
    alone, _ = constrain_instruction(random.Random(3), INSTRUCTION, [REPEAT_PROMPT], position)
    assert alone != INSTRUCTION and INSTRUCTION in alone
    assert attach(INSTRUCTION, [], position) == INSTRUCTION


def test_the_last_user_turn_gets_the_sentences_and_the_column_its_arguments():
    rows = [sft(INSTRUCTION)]
    rows[0]["messages"] = [
        message("user", "Hello."),
        message("assistant", "Hi."),
        message("user", INSTRUCTION),
        message("assistant", "It was rebuilt in stone."),
    ]
    (out,), modified = constrained(rows, per_record_min=2, per_record_max=2)
    turns = out["messages"]
    assert turns[0]["content"] == "Hello." and turns[3] == rows[0]["messages"][3]
    assert turns[2]["content"].startswith(INSTRUCTION + "\n\n")
    assert len(out["constraints"]) == 2 and modified["constrained.seen"] == 1
    for constraint in out["constraints"]:
        args = json.loads(constraint["args"])
        assert constraint["args"] == json.dumps(args, ensure_ascii=False, sort_keys=True)
        assert set(args) == CONTRACT_ARGS[constraint["kind"]]
        assert modified[f"kind.{constraint['kind']}"] == 1
    (before,), _ = constrained(rows, position="prepend", per_record_min=2, per_record_max=2)
    assert before["messages"][2]["content"].endswith("\n\n" + INSTRUCTION)


def test_held_out_kinds_only_on_held_out_splits():
    rows, modified = constrained(corpus())
    held_out = set(DEFAULT_HELD_OUT_KINDS)
    seen_on_train = set()
    for row in rows:
        kinds = {constraint["kind"] for constraint in row["constraints"]}
        flags = {constraint["held_out"] for constraint in row["constraints"]}
        assert 1 <= len(kinds) <= 2 and compatible(sorted(kinds))
        if row["split"] in ("validation", "test"):
            assert kinds <= held_out and flags == {True}
        else:  # train, and records no split assigned
            assert not kinds & held_out and flags == {False}
            seen_on_train |= kinds
    assert modified["constrained.held_out"] == 100 and modified["constrained.seen"] == 200
    assert len(seen_on_train) >= 15  # the seen kinds all get used


def test_without_held_out_kinds_every_split_draws_from_all_kinds():
    rows, _ = constrained(corpus(120), held_out_kinds=[])
    assert {c["held_out"] for row in rows for c in row["constraints"]} == {False}
    validation = {c["kind"] for r in rows if r["split"] == "validation" for c in r["constraints"]}
    assert validation - set(DEFAULT_HELD_OUT_KINDS)


def test_feedback_records_and_records_without_a_user_turn_are_left_alone():
    pair = make_record(
        messages=[message("user", INSTRUCTION), message("assistant", "In stone.")],
        rejected=[message("assistant", "It fell.")],
        source_file="a.jsonl",
        source_format="pairwise",
        source_line=2,
    )
    binary = {**sft(INSTRUCTION, 3), "feedback": True}
    binary["id"] = record_id("", binary["messages"], "", "", feedback=True)
    no_user = sft(INSTRUCTION, 4)
    no_user["messages"] = [message("assistant", "Unprompted.")]
    dropped = {**sft(INSTRUCTION, 5), "drop_reason": "filter.refusal"}
    rows = [pair, binary, no_user, dropped]
    out, modified = constrained(rows)
    assert out == sorted(rows, key=lambda r: r["source_line"])  # unchanged, none dropped
    assert modified == {"skipped.pair": 1, "skipped.binary": 1, "skipped.no_user_turn": 1}
    again, modified = constrained(constrained([sft(INSTRUCTION)])[0])
    assert modified == {"skipped.already_constrained": 1} and again[0]["constraints"]


def test_repeat_prompt_is_not_drawn_for_a_record_with_context():
    rows = [sft(f"Summarise the passage. {i}", i, context="The passage.") for i in range(40)]
    kinds = [REPEAT_PROMPT, "punctuation:no_comma"]
    out, modified = constrained(rows, kinds=kinds, held_out_kinds=[], per_record_max=1)
    assert modified["skipped.no_compatible_kind"] == 0
    assert {c["kind"] for row in out for c in row["constraints"]} == {"punctuation:no_comma"}
    out, modified = constrained(rows, kinds=[REPEAT_PROMPT], held_out_kinds=[])
    assert modified == {"skipped.no_compatible_kind": 40}
    assert all(row["constraints"] is None for row in out)


def test_ids_hash_the_edited_text_and_the_constraints():
    rows = corpus(20)
    out, _ = constrained(rows)
    for before, after in zip(rows, out, strict=True):
        assert after["id"] != before["id"]
        texts = (after["system"], after["messages"], after["context"], after["tools"])
        assert after["id"] == record_id(*texts, constraints=after["constraints"])
        assert after["id"] != record_id(*texts)


def test_unconstrained_record_ids_are_unchanged_by_the_constraints_column():
    # Pinned before the column existed: plain SFT, pair and binary ids must not move.
    turns = [message("user", "Write a haiku about rain."), message("assistant", "Drops.")]
    assert record_id("Be brief.", turns, "ctx", "") == "cfb75e664b4c6de209a95298689a72de"
    rejected = [message("assistant", "No.")]
    assert record_id("", turns, "", "", rejected=rejected) == "4b8d440952e8a9771cf2ceed15ed8470"
    assert record_id("", turns, "", "", feedback=True) == "17db1ee007623875aa1c06ad90540596"
    assert record_id("", turns, "", "", constraints=[]) != record_id("", turns, "", "")


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_same_input_gives_the_same_bytes_whatever_the_batching():
    rows = corpus(60)
    stage = Constrain(ConstrainConfig(per_record_max=3))
    whole, _ = stage.run(rows_to_table(rows))
    halves = [stage.run(rows_to_table(part))[0] for part in (rows[30:], rows[:30])]
    rebatched = pa.concat_tables(halves).sort_by("source_line")
    assert parquet_bytes(whole) == parquet_bytes(
        Constrain(stage.config).run(rows_to_table(rows))[0]
    )
    assert parquet_bytes(whole.sort_by("source_line")) == parquet_bytes(rebatched)
    other, _ = Constrain(ConstrainConfig(per_record_max=3, seed=1)).run(rows_to_table(rows))
    assert other.column("constraints") != whole.column("constraints")


def test_config_errors_name_the_bad_kind_and_what_is_allowed():
    with pytest.raises(ValidationError, match="keywords:nope.*allowed: keywords:existence"):
        ConstrainConfig(kinds=["keywords:nope"])
    with pytest.raises(ValidationError, match=r"held_out_kinds.*startend:quotation; allowed: p"):
        ConstrainConfig(kinds=["punctuation:no_comma"], held_out_kinds=["startend:quotation"])
    with pytest.raises(ValidationError, match="training records would get none"):
        ConstrainConfig(kinds=["startend:quotation"], held_out_kinds=["startend:quotation"])
    with pytest.raises(ValidationError, match="per_record_min"):
        ConstrainConfig(per_record_min=3, per_record_max=2)


def test_a_recipe_must_split_before_it_constrains():
    base = {"inputs": [{"path": "in.jsonl"}], "output": {"path": "out"}}
    with pytest.raises(RecipeError, match=r"stages\[1\]\.constrain: must run after split"):
        parse_recipe({**base, "stages": [{"clean": {}}, {"constrain": {}}, {"split": {}}]})
    recipe = parse_recipe({**base, "stages": [{"split": {}}, {"constrain": {}}]})
    assert [spec.name for spec in recipe.stages] == ["split", "constrain"]
    parse_recipe({**base, "stages": [{"constrain": {}}, {"split": {"enabled": False}}]})
