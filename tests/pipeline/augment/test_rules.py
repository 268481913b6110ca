"""Rule augmentation: template rewrites, EDA edits for a fixed seed, and the stage's output."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from pipeline.augment.protect import protect, restore
from pipeline.augment.rules import (
    RuleAugmentBatches,
    RuleAugmentConfig,
    eda_edit,
    template_paraphrase,
)
from pipeline.augment.selection import Selection
from pipeline.schema import make_record, message, rows_to_table


@pytest.mark.parametrize(
    ("instruction", "rule", "rewritten"),
    [
        ("Explain why the sky is blue.", "en.explain", "Can you explain why the sky is blue?"),
        ("Can you explain photosynthesis?", "en.can_you_explain", "Explain photosynthesis."),
        ("Write a haiku about autumn", "en.write", "Please write a haiku about autumn."),
        ("please write a limerick.", "en.please_write", "Write a limerick."),
        ("Describe the water cycle.", "en.describe", "Could you describe the water cycle?"),
        ("List three colours.", "en.list", "Give me a list of three colours."),
        ("What is the capital of France?", "en.what_is", "Tell me what the capital of France is."),
        ("Tell me what a prime is.", "en.tell_me_what", "What is a prime?"),
        ("请解释光合作用。", "zh.explain", "你能解释一下光合作用吗？"),
        ("你能解释一下量子力学吗？", "zh.can_you_explain", "请解释量子力学。"),
        ("写一首关于秋天的诗", "zh.write", "请写一首关于秋天的诗。"),
        ("什么是机器学习？", "zh.what_is", "请告诉我机器学习是什么。"),
        ("列出三种水果。", "zh.list", "请列举三种水果。"),
        (
            "Explain recursion.\nUse an example.",
            "en.explain",
            "Can you explain recursion?\nUse an example.",
        ),
    ],
)
def test_templates_rewrite_a_request_into_its_twin(instruction, rule, rewritten):
    assert template_paraphrase(instruction) == (rule, rewritten)


def test_text_no_template_knows_is_left_alone():
    assert template_paraphrase("Listen to this.") is None
    assert template_paraphrase("Summarise the text.") is None


@pytest.mark.parametrize(
    ("method", "edits", "expected"),
    [
        ("swap", 2, "each the explain 3, 1, 2 with `sorted()` and list Sort step briefly."),
        ("delete", 4, "Sort list 3, 1, 2 `sorted()` and explain step"),
        (
            "insert",
            2,
            "Sort explain the list 3 explain, 1, 2 with `sorted()` and explain each step briefly.",
        ),
    ],
)
def test_eda_edits_are_exact_for_a_seed_and_spare_protected_spans(method, edits, expected):
    masked = protect("Sort the list 3, 1, 2 with `sorted()` and explain each step briefly.")
    edited, made = eda_edit(masked.text, method, 0.2, random.Random(7))
    assert restore(edited, masked.spans) == (expected, 0)
    assert made == edits


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("swap", "三用释话解句的合作用光过程。"),
        ("delete", "用句解释合用程。"),
        ("insert", "用释三释释句话解释光合作用的过程。"),
    ],
)
def test_eda_edits_chinese_character_by_character(method, expected):
    edited, _ = eda_edit("用三句话解释光合作用的过程。", method, 0.2, random.Random(7))
    assert edited == expected


def test_deleting_keeps_line_breaks():
    edited, made = eda_edit("Write a poem\nabout the sea.", "delete", 0.2, random.Random(7))
    assert (edited, made) == ("Write poem\nthe sea.", 2)


def record(line: int, instruction: str):
    return make_record(
        messages=[message("user", instruction), message("assistant", "Rayleigh scattering.")],
        source_file="/data/a.jsonl",
        source_format="alpaca",
        source_line=line,
        task="qa",
        language="en",
    )


def test_each_variant_is_one_guarded_record_with_provenance():
    stage = RuleAugmentBatches(
        RuleAugmentConfig(variants=3, alpha=0.2), Selection(seed=0, stage="rule_augment")
    )
    parents = [record(1, "Explain why the sky is blue."), record(3, "Hi")]
    table, counts = stage.run(rows_to_table(parents))
    created = table.to_pylist()[2:]
    assert [(row["source_line"], row["messages"][0]["content"]) for row in created] == [
        (1, "Can you explain why the sky is blue?"),
        (1, "Explain why the sky is"),
        (1, "Explain blue. why the sky is blue."),
        (3, "Hi"),
        (3, "Hi"),
        (3, "Hi Hi"),
    ]
    provenance = [json.loads(row["augmentation"]) for row in created]
    assert provenance[0] == {
        "stage": "rule_augment",
        "method": "template",
        "rule": "en.explain",
        "edits": 1,
        "variant": 0,
        "fields": ["instruction"],
        "guard": {"instruction": {"chrf": 0.876, "length_ratio": 1.2857}},
    }
    assert [item["method"] for item in provenance] == [
        "template",
        "eda.delete",
        "eda.insert",
        "eda.swap",
        "eda.swap",
        "eda.insert",
    ]
    # One word cannot be swapped: a copy. Doubling it: too long to be a paraphrase.
    assert [row["drop_reason"] for row in created] == [None] * 3 + [
        "augment.copy",
        "augment.copy",
        "augment.length_ratio",
    ]
    assert counts.dropped == {"augment.copy": 2, "augment.length_ratio": 1}
    assert {row["parent_id"] for row in created} == {parent["id"] for parent in parents}


def test_the_same_record_gets_the_same_edits_on_any_batch():
    config = RuleAugmentConfig(methods=("swap",), alpha=0.3)
    selection = Selection(seed=5, stage="rule_augment")
    target = record(9, "Sort these numbers and then explain which sorting method you used.")
    alone = RuleAugmentBatches(config, selection).run(rows_to_table([target]))[0]
    crowd = [record(line, f"Write poem number {line} about rivers.") for line in range(20)]
    mixed = RuleAugmentBatches(config, selection).run(rows_to_table([*crowd, target]))[0]
    assert alone.to_pylist()[-1] == mixed.to_pylist()[-1]


def test_config_errors_name_what_is_allowed():
    with pytest.raises(ValidationError, match="variants > 1 needs an EDA method"):
        RuleAugmentConfig(methods=("template",), variants=2)
    with pytest.raises(ValidationError, match="fields: response needs an EDA method"):
        RuleAugmentConfig(methods=("template",), fields="response")
    with pytest.raises(ValidationError, match=r"budget key 'qa' needs 2 value\(s\) joined by '\|'"):
        RuleAugmentConfig(budget={"qa": 3})
