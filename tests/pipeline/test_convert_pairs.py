"""Feedback converters: pairwise, ultrafeedback, hh, kto; their detection and reasons."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.convert import ConversionError, detect_format
from pipeline.convert_pairs import PAIR_REASONS, PreferenceOptions, canonical_rows, pair_verdict
from pipeline.ingest import InputConfig, unit_rows
from pipeline.read import Unit
from pipeline.schema import is_quarantine_reason, make_record, message, record_id, rows_to_table
from pipeline.templates import TemplateRenderer

SHAREGPT_PAIR = {
    "conversations": [
        {"from": "human", "value": "Name a prime."},
        {"from": "gpt", "value": "Which range?"},
        {"from": "human", "value": "Under ten."},
    ],
    "system": "Be brief.",
    "chosen": {"from": "gpt", "value": "7"},
    "rejected": {"from": "gpt", "value": "9"},
    "weight": 2,
}
ULTRAFEEDBACK = {
    "source": "evol",
    "instruction": "Greet me.",
    "models": ["a", "b", "c", "d"],
    "completions": [
        {
            "model": "a",
            "response": "Hello!",
            "overall_score": 8,
            "fine-grained_score": 4.5,
            "annotations": {"helpfulness": {"Rating": "5"}, "honesty": {"Rating": "N/A"}},
        },
        {
            "model": "b",
            "response": "Hi.",
            "overall_score": 6,
            "fine-grained_score": 3.0,
            "annotations": {"helpfulness": {"Rating": "3"}},
        },
        {"model": "c", "response": "Go away.", "overall_score": 2, "fine-grained_score": 1.0},
        {"model": "d", "response": "Hey", "overall_score": None},
    ],
}
HH = {
    "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant: Why did...",
    "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: A joke?\n\nAssistant: No.",
}


def rows(value: Any, fmt: str, **options: Any) -> list[dict[str, Any]]:
    return canonical_rows(
        value, fmt, preference=PreferenceOptions(**options), source_file="f.json", source_line=4
    )


def turns(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(turn["role"], turn["content"]) for turn in row["messages"]]


def test_llama_factory_sharegpt_pair_keeps_the_prompt_and_chosen_as_last_turn():
    (row,) = rows(SHAREGPT_PAIR, "pairwise")
    assert row["system"] == "Be brief."
    assert turns(row) == [
        ("user", "Name a prime."),
        ("assistant", "Which range?"),
        ("user", "Under ten."),
        ("assistant", "7"),
    ]
    assert [(t["role"], t["content"]) for t in row["rejected"]] == [("assistant", "9")]
    assert row["feedback"] is None and row["chosen_score"] is None
    assert json.loads(row["meta"]) == {"weight": 2}
    assert row["drop_reason"] is None
    assert row["id"] == record_id("Be brief.", row["messages"], "", "", row["rejected"])


def test_pairwise_reads_messages_text_sides_alpaca_and_trl_shapes():
    openai = {
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}],
        "chosen": {"role": "assistant", "content": "good"},
        "rejected": "bad",
    }
    (row,) = rows(openai, "pairwise")
    assert row["system"] == "S" and turns(row) == [("user", "Q"), ("assistant", "good")]
    assert row["rejected"][0]["content"] == "bad"
    alpaca = {"instruction": "Add.", "input": "2 3", "chosen": "5", "rejected": "6"}
    (row,) = rows(alpaca, "pairwise")
    assert row["context"] == "2 3" and turns(row) == [("user", "Add."), ("assistant", "5")]
    # TRL / UltraFeedback-binarized: sides repeat the prompt; scores given.
    binarized = {
        "prompt": "2+2?",
        "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
        "score_chosen": 9,
        "score_rejected": 2.5,
    }
    (row,) = rows(binarized, "pairwise")
    assert turns(row) == [("user", "2+2?"), ("assistant", "4")]
    assert (row["chosen_score"], row["rejected_score"]) == (9.0, 2.5)
    # TRL's implicit prompt: no prompt key, the shared turns are the prompt.
    implicit = {"chosen": binarized["chosen"], "rejected": binarized["rejected"]}
    assert detect_format(implicit) == "pairwise"
    (row,) = rows(implicit, "pairwise")
    assert turns(row) == [("user", "2+2?"), ("assistant", "4")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({**SHAREGPT_PAIR, "rejected": {"from": "gpt", "value": " 7\n"}}, "pair.identical"),
        (
            {"prompt": "q", "chosen": "a", "rejected": "b", "score_chosen": 3, "score_rejected": 3},
            "pair.tie",
        ),
        (
            {"prompt": "q", "chosen": "a", "rejected": "b", "chosen_score": 1, "rejected_score": 3},
            "pair.below_margin",
        ),
    ],
)
def test_pairs_that_teach_nothing_are_rejects_with_a_reason(value, reason):
    (row,) = rows(value, "pairwise")
    assert row["drop_reason"] == reason
    assert not is_quarantine_reason(reason) and reason in PAIR_REASONS
    assert row["rejected"] is not None  # a whole record, for the rejects shard


def test_pair_verdict_details_and_margin():
    assert pair_verdict("a  b", "a b", None, None, 0.0) == ("pair.identical", {"chars": 4})
    assert pair_verdict("a", "b", 2.0, 2.0, 0.0) == (
        "pair.tie",
        {"chosen_score": 2.0, "rejected_score": 2.0},
    )
    assert pair_verdict("a", "b", 3.0, 2.5, 1.0) == (
        "pair.below_margin",
        {"chosen_score": 3.0, "rejected_score": 2.5, "margin": 1.0},
    )
    assert pair_verdict("a", "b", 3.0, 2.0, 1.0) is None
    assert pair_verdict("a", "b", None, 2.0, 1.0) is None


def test_ultrafeedback_best_vs_worst_is_one_pair_with_its_completions_in_meta():
    assert detect_format(ULTRAFEEDBACK) == "ultrafeedback"
    (row,) = rows(ULTRAFEEDBACK, "ultrafeedback")
    assert turns(row) == [("user", "Greet me."), ("assistant", "Hello!")]
    assert row["rejected"][0]["content"] == "Go away."
    assert (row["chosen_score"], row["rejected_score"]) == (8.0, 2.0)
    meta = json.loads(row["meta"])
    assert meta["_pair"]["chosen"]["index"] == 0 and meta["_pair"]["rejected"]["index"] == 2
    assert meta["_pair"]["rejected"]["model"] == "c"
    assert meta["source"] == "evol" and meta["models"] == ["a", "b", "c", "d"]


def test_ultrafeedback_all_pairs_above_a_margin_and_other_ratings():
    made = rows(ULTRAFEEDBACK, "ultrafeedback", pairs="all_pairs")
    sides = [(r["messages"][-1]["content"], r["rejected"][0]["content"]) for r in made]
    assert sides == [("Hello!", "Hi."), ("Hello!", "Go away."), ("Hi.", "Go away.")]
    assert len({r["id"] for r in made}) == 3
    margined = rows(ULTRAFEEDBACK, "ultrafeedback", pairs="all_pairs", margin=3)
    assert [(r["chosen_score"], r["rejected_score"]) for r in margined] == [(8, 2), (6, 2)]
    fine = rows(ULTRAFEEDBACK, "ultrafeedback", rating="fine-grained_score")
    assert (fine[0]["chosen_score"], fine[0]["rejected_score"]) == (4.5, 1.0)
    # annotations: the mean of numeric ratings ("N/A" left out); only two completions rated.
    (annotated,) = rows(ULTRAFEEDBACK, "ultrafeedback", rating="annotations")
    assert (annotated["chosen_score"], annotated["rejected_score"]) == (5.0, 3.0)


def test_ultrafeedback_record_without_a_pair_leaves_one_reject():
    tied = {
        "instruction": "q",
        "completions": [
            {"response": "a", "overall_score": 5},
            {"response": "b", "overall_score": 5},
        ],
    }
    (row,) = rows(tied, "ultrafeedback", pairs="all_pairs")
    assert row["drop_reason"] == "pair.tie"
    close = {
        **tied,
        "completions": [{**tied["completions"][0], "overall_score": 5.5}, tied["completions"][1]],
    }
    (row,) = rows(close, "ultrafeedback", pairs="all_pairs", margin=1)
    assert row["drop_reason"] == "pair.below_margin"
    assert json.loads(row["drop_detail"])["margin"] == 1


def test_hh_transcripts_split_at_their_shared_prefix():
    assert detect_format(HH) == "hh"
    (row,) = rows(HH, "hh")
    assert turns(row) == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "A joke?"),
        ("assistant", "Why did..."),
    ]
    assert row["rejected"][0]["content"] == "No."
    (same,) = rows({"chosen": HH["chosen"], "rejected": HH["chosen"]}, "hh")
    assert same["drop_reason"] == "pair.identical"


def test_kto_llama_factory_and_trl_shapes():
    demo = {
        "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        "label": False,
    }
    assert detect_format(demo) == "kto"
    assert detect_format({**demo, "label": "spam"}) == "messages"
    (row,) = rows(demo, "kto")
    assert row["feedback"] is False and row["rejected"] is None
    assert turns(row) == [("user", "Q"), ("assistant", "A")]
    plain = make_record(messages=row["messages"], source_file="", source_format="", source_line=0)
    assert row["id"] != plain["id"]  # the label is part of the id
    assert plain["id"] == record_id("", row["messages"], "", "")
    tagged = {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}
    assert detect_format({**tagged, "kto_tag": True}) == "kto"
    assert rows({**tagged, "kto_tag": True}, "kto")[0]["feedback"] is True
    trl = {"prompt": "Q", "completion": "A", "label": True}
    assert detect_format(trl) == "kto"
    assert detect_format({"prompt": "Q", "completion": "A"}) == "prompt_completion"
    (row,) = rows(trl, "kto")
    assert row["feedback"] is True and turns(row) == [("user", "Q"), ("assistant", "A")]


@pytest.mark.parametrize(
    ("value", "fmt", "reason"),
    [
        (
            {"messages": [{"role": "user", "content": "Q"}], "label": True},
            "kto",
            "convert.no_reply",
        ),
        ({"prompt": "Q", "completion": "A", "label": "yes"}, "kto", "convert.wrong_type"),
        (
            {"prompt": "Q", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"},
            "pairwise",
            "convert.mismatched_pair",
        ),
        ({"prompt": "Q", "chosen": "a"}, "pairwise", "convert.missing_field"),
        (
            {"chosen": "plain text", "rejected": "\n\nHuman: hi\n\nAssistant: x"},
            "hh",
            "convert.wrong_type",
        ),
        (
            {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},
            "hh",
            "convert.mismatched_pair",
        ),
        (
            {"instruction": "q", "completions": [{"response": "a", "overall_score": 1}]},
            "ultrafeedback",
            "convert.missing_field",
        ),
        (
            {"instruction": "q", "completions": [{"text": "a"}]},
            "ultrafeedback",
            "convert.missing_field",
        ),
    ],
)
def test_malformed_feedback_records_name_their_reason(value, fmt, reason):
    with pytest.raises(ConversionError) as caught:
        rows(value, fmt)
    assert caught.value.reason == reason


def test_ingest_gives_every_pair_of_a_unit_a_row_and_quarantines_the_malformed():
    config = InputConfig(path="f.json", preference={"pairs": "all_pairs"})
    renderer = TemplateRenderer((), seed=0)
    made = unit_rows(Unit(line=3, value=ULTRAFEEDBACK), "f.json", config, renderer)
    assert [row["source_line"] for row in made] == [3, 3, 3]
    assert all(row["source_format"] == "ultrafeedback" for row in made)
    rows_to_table(made)  # the FLOW schema takes them
    (bad,) = unit_rows(
        Unit(line=4, value={"instruction": "q", "completions": []}), "f.json", config, renderer
    )
    assert bad["drop_reason"] == "convert.missing_field" and bad["raw"]
    (sft,) = unit_rows(
        Unit(line=5, value={"instruction": "i", "output": "o"}), "f.json", config, renderer
    )
    assert sft["rejected"] is None and sft["feedback"] is None
    assert sft["messages"] == [message("user", "i"), message("assistant", "o")]


def test_recipe_preference_options_are_validated():
    with pytest.raises(ValueError, match="margin"):
        InputConfig(path="f", preference={"margin": -1})
    with pytest.raises(ValueError, match="best_vs_worst"):
        InputConfig(path="f", preference={"pairs": "some"})
