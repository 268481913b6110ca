"""The ``label`` stage: task and domain from rules or a fastText model, difficulty buckets."""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from ops.quality import examples_from_files, train_classifier
from pipeline.labels import (
    DifficultyConfig,
    LabelConfig,
    LabelRecords,
    constraint_count,
    difficulty_bucket,
    difficulty_score,
    marker_count,
    word_count,
)
from pipeline.schema import make_record, message, rows_to_table
from pipeline.stage import Resources
from tests.classifier_data import TEST_SETTINGS, domain_records, write_domain_corpus

RULES = {
    "domain": [
        {"label": "code", "pattern": r"\b(?:python|javascript|function)\b|代码"},
        {"label": "cooking", "pattern": r"recipe|bake|菜", "fields": ["instruction", "response"]},
    ],
    "task": [
        {"label": "summarize", "pattern": r"^summari[sz]e|总结"},
        {"label": "qa", "pattern": r"\?$|？$"},
    ],
}


def row(instruction: str, response: str, **labels: str) -> dict:
    return make_record(
        messages=[message("user", instruction), message("assistant", response)],
        source_file="test.jsonl",
        source_format="alpaca",
        source_line=1,
        **labels,
    )


def labelled(stage: LabelRecords, rows: list[dict]) -> tuple[list[dict], Counter]:
    table, counts = stage.run(rows_to_table(rows))
    columns = ["task", "domain", "difficulty"]
    return table.select(columns).to_pylist(), counts.modified


def test_rules_label_task_and_domain_in_order():
    stage = LabelRecords(LabelConfig(rules=RULES))
    rows, modified = labelled(
        stage,
        [
            row("Write a Python function that adds two numbers.", "def add(a, b): return a + b"),
            row("Summarize this recipe for me.", "Mix, bake, eat."),
            row("What should I have for dinner?", "A lentil soup you bake slowly."),
            row("总结这段代码。", "它打印数字。"),
            row("Tell me a joke", "Why did the chicken cross the road?"),
        ],
    )
    assert [(r["task"], r["domain"]) for r in rows] == [
        ("", "code"),
        ("summarize", "cooking"),
        ("qa", "cooking"),  # "bake" in the response: that rule reads both fields
        ("summarize", "code"),
        ("", ""),
    ]
    assert {k: v for k, v in modified.items() if not k.startswith("difficulty.")} == {
        "domain.code": 2,
        "domain.cooking": 2,
        "task.summarize": 2,
        "task.qa": 1,
    }


def test_existing_labels_are_kept_unless_overwrite():
    source = [row("Summarize this recipe.", "Mix and bake.", task="rewrite", domain="food")]
    rows, modified = labelled(LabelRecords(LabelConfig(rules=RULES)), source)
    assert (rows[0]["task"], rows[0]["domain"]) == ("rewrite", "food")
    assert modified == {"difficulty.easy": 1}
    config = LabelConfig(rules=RULES, overwrite=True)
    rows, modified = labelled(LabelRecords(config), source)
    assert (rows[0]["task"], rows[0]["domain"]) == ("summarize", "cooking")
    assert modified == {"task.summarize": 1, "domain.cooking": 1, "difficulty.easy": 1}


HAND_MADE = [
    # (instruction, response, expected bucket)
    ("What is the capital of France?", "Paris is the capital of France.", "easy"),
    ("法国的首都是哪里？", "巴黎。", "easy"),
    (
        "Describe autumn in three sentences.",
        "Autumn brings cooler air and shorter days. Leaves turn red and gold before they fall. "
        "People bring out warm coats and drink hot tea in the evenings.",
        "medium",
    ),
    (
        "Write a plan for learning to cook. Use bullet points, keep it under 150 words, and do "
        "not recommend expensive equipment.\n1. Cover knife skills\n2. Include a weekly schedule",
        "First, learn to hold a knife safely. Then practise three simple recipes each week. "
        "Therefore you will build confidence step by step.",
        "hard",
    ),
    (
        "请用不超过200字分点说明如何学习编程，必须包含具体步骤。",
        "首先，选择一门语言，例如Python。然后，每天写一点代码，因为练习最重要。"
        "最后，做一个小项目，因此你会把知识串起来。",
        "hard",
    ),
]


@pytest.mark.parametrize("instruction, response, expected", HAND_MADE)
def test_difficulty_buckets_on_hand_made_examples(instruction, response, expected):
    stage = LabelRecords(LabelConfig())
    rows, modified = labelled(stage, [row(instruction, response)])
    assert rows[0]["difficulty"] == expected
    assert modified == {f"difficulty.{expected}": 1}


def test_the_score_is_the_documented_formula():
    config = DifficultyConfig()
    instruction = "Describe autumn in three sentences. Do not rhyme."
    response = " ".join(["word"] * 75)
    # I = 8 words / 40, R = 75 / 150, C = 2 ("in three sentences", "Do not"), M = 0
    assert constraint_count(instruction) == 2 and marker_count(instruction + response) == 0
    assert difficulty_score(instruction, response, config) == pytest.approx(
        8 / 40 + 75 / 150 + 2 * 1.0
    )
    capped = difficulty_score("x " * 400, "y " * 1000, config)
    assert capped == pytest.approx(2.0 + 2.0)  # each length term stops at max_length_points
    assert [difficulty_bucket(s, config) for s in (0.99, 1.0, 2.49, 2.5)] == [
        "easy",
        "medium",
        "medium",
        "hard",
    ]


def test_constraints_markers_and_words():
    assert constraint_count("Answer in 50 words, as a numbered list, in a formal tone.") == 3
    assert constraint_count("Write a 100-word story. You must not use the letter e.") == 2
    assert constraint_count("用三句话概括，不要超过50字，列出3条建议") == 4
    assert constraint_count("写一个故事") == 0
    assert marker_count("First do this, then that. Then again, therefore done.") == 3
    assert marker_count("首先洗菜，然后切菜，因此很快。") == 3
    assert word_count("Hello world 你好世界", 1.5) == pytest.approx(2 + 4 / 1.5)


def test_difficulty_can_be_switched_off_and_kept():
    off = LabelRecords(LabelConfig(difficulty=DifficultyConfig(enabled=False)))
    rows, modified = labelled(off, [row("Hi?", "Hello.")])
    assert rows[0]["difficulty"] == "" and not modified
    kept = {**row("Hi?", "Hello."), "difficulty": "hard"}
    rows, _ = labelled(LabelRecords(LabelConfig()), [kept])
    assert rows[0]["difficulty"] == "hard"


@pytest.fixture(scope="module")
def domain_model(tmp_path_factory):
    directory = tmp_path_factory.mktemp("domain_model")
    examples = []
    for domain, path in write_domain_corpus(directory, 120, seed=1).items():
        examples += list(examples_from_files([str(path)], domain, Counter()))
    train_classifier(examples, str(directory / "domain.bin"), TEST_SETTINGS)
    return str(directory / "domain.bin")


def test_a_domain_model_labels_rows_no_rule_labelled(domain_model):
    config = LabelConfig(
        rules={"domain": [{"label": "pets", "pattern": "dog"}]}, domain_model=domain_model
    )
    stage = LabelRecords(config)
    fresh = domain_records(3, seed=99)  # unseen records of each domain
    rows = [
        row(fresh["cooking"][0]["instruction"], fresh["cooking"][0]["output"]),
        row(fresh["finance"][1]["instruction"], fresh["finance"][1]["output"]),
        row(fresh["code"][2]["instruction"], fresh["code"][2]["output"]),
        row("How do I cook for my dog?", "Plain rice and chicken."),
        row(fresh["code"][0]["instruction"], fresh["code"][0]["output"], domain="given"),
    ]
    labels, modified = labelled(stage, rows)
    assert [r["domain"] for r in labels] == ["cooking", "finance", "code", "pets", "given"]
    assert modified["domain.pets"] == 1 and modified["domain.code"] == 1
    assert LabelRecords.resources(config) == Resources(concurrency=2)
    assert LabelRecords.resources(LabelConfig()) == Resources()


def test_a_domain_model_below_the_minimum_probability_labels_nothing(domain_model):
    stage = LabelRecords(LabelConfig(domain_model=domain_model, domain_min_probability=1.0))
    rows, _ = labelled(stage, [row("Tell me about the weather.", "It is sunny.")])
    assert rows[0]["domain"] == ""


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValidationError, match="not a regular expression"):
        LabelConfig(rules={"task": [{"label": "x", "pattern": "("}]})
    with pytest.raises(ValidationError, match="must not exceed"):
        LabelConfig(difficulty={"medium_from": 3.0, "hard_from": 2.0})
    with pytest.raises(ValidationError):
        LabelConfig(rules={"topic": []})
    with pytest.raises(ValidationError, match="not found"):
        LabelConfig(domain_model=str(tmp_path / "missing.bin"))
