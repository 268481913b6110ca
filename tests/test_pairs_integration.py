"""Preference data end to end on the session's local Ray: pairwise, kto, ultrafeedback and hh
files through clean, pii, filters, dedup, decontamination and a split."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ops.datarun import run_data
from pipeline.schema import prompt_key

pytestmark = pytest.mark.slow  # on Ray, end to end

STORM = "Describe how the old lighthouse on the northern cliff was rebuilt after the great storm"


def human(text: str) -> dict:
    return {"from": "human", "value": text}


def gpt(text: str) -> dict:
    return {"from": "gpt", "value": text}


def sharegpt_pair(prompt: str, chosen: str, rejected: str) -> dict:
    return {"conversations": [human(prompt)], "chosen": gpt(chosen), "rejected": gpt(rejected)}


PAIRWISE = [
    sharegpt_pair(STORM, "It was rebuilt in stone in 1891.", "It fell into the sea."),
    sharegpt_pair(STORM, "It was rebuilt in stone in 1891.", "Nobody knows."),  # same prompt
    sharegpt_pair(STORM, "It was rebuilt in stone in 1891.", "It fell into the sea."),  # again
    sharegpt_pair(STORM + " please", "In stone, in 1891.", "With sticks."),  # near-dup prompt
    sharegpt_pair("What is the capital of Canada?", "Ottawa.", " Ottawa. "),  # identical
    {
        "prompt": "Name a primary colour.",
        "chosen": "Red.",
        "rejected": "Mauve.",
        "score_chosen": 7,
        "score_rejected": 7,
    },  # tie
    sharegpt_pair("Write to me at bob@example.com about the meeting time.", "Sure, noon.", "No."),
]
KTO = [  # a JSON array, as LLaMA-Factory ships it
    {
        "messages": [
            {"role": "user", "content": "Recommend a book for a long flight."},
            {"role": "assistant", "content": "The Martian: funny and fast."},
        ],
        "kto_tag": True,
    },
    {
        "messages": [
            {"role": "user", "content": "Recommend a book for a long flight."},
            {"role": "assistant", "content": "I'm sorry, but I cannot help with that."},
        ],
        "kto_tag": False,
    },
    {
        "messages": [
            {"role": "user", "content": "How do I reverse a list in Python?"},
            {"role": "assistant", "content": "items[::-1] gives a reversed copy."},
        ],
        "kto_tag": True,
    },
]


def completion(text: str, score: float) -> dict:
    return {"response": text, "overall_score": score, "model": f"m{score}"}


ULTRAFEEDBACK = [
    {
        "instruction": "Explain what a leap year is in a sentence or two.",
        "completions": [
            completion("A year of 366 days, with 29 February, mostly every four years.", 9),
            completion("A year with one extra day.", 6),
            completion("A year when people jump.", 1),
        ],
    },
    {
        "instruction": "Suggest a healthy breakfast for a busy morning.",
        "completions": [
            completion("Oatmeal with berries.", 8),
            completion("Porridge with fruit.", 8),
        ],
    },
    {
        "instruction": "What is photosynthesis, in plain words?",
        "completions": [
            completion("Plants turning light, water and CO2 into sugar and oxygen.", 9),
            completion("How plants eat sunlight.", 7),
            completion("Plants sleeping.", 2),
        ],
    },
]
HH = [
    {
        "chosen": "\n\nHuman: Suggest a board game for four players.\n\nAssistant: Ticket to Ride.",
        "rejected": "\n\nHuman: Suggest a board game for four players.\n\nAssistant: Chess.",
    },
    {
        "chosen": "\n\nHuman: What is the tallest mountain?\n\nAssistant: Everest.",
        "rejected": "\n\nHuman: What is the tallest mountain?\n\nAssistant: Everest.",
    },
]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


@pytest.fixture(scope="module")
def run(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    kto = root / "kto.json"
    kto.write_text(json.dumps(KTO))
    evals = write_jsonl(root / "eval.jsonl", [{"prompt": "Suggest a board game for four players."}])
    recipe = {
        "name": "pairs",
        "seed": 3,
        "inputs": [
            {"path": write_jsonl(root / "pairwise.jsonl", PAIRWISE)},  # format: auto
            {"path": str(kto)},
            {
                "path": write_jsonl(root / "ultrafeedback.jsonl", ULTRAFEEDBACK),
                "preference": {"pairs": "all_pairs", "margin": 2},
            },
            {"path": write_jsonl(root / "hh.jsonl", HH), "format": "hh"},
        ],
        "stages": [
            {"clean": {}},
            {"pii": {}},
            {"length": {"min_instruction_chars": 8, "max_response_chars": 20}},
            {"refusal": {}},
            {"decontaminate": {"eval_sets": [evals], "threshold": 0.7}},
            {"exact_dedup": {}},
            {"near_dedup": {"threshold": 0.7}},
            {"split": {"fractions": {"train": 0.5, "validation": 0.5}}},
        ],
        "output": {"path": str(root / "out")},
        "run": {"batch_rows": 4, "progress_bars": False},
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    outcome = run_data(str(path), progress_bars=False)
    output = Path(outcome.output_path)
    return outcome.stats, pq.read_table(output / "data").to_pylist(), output


def test_pairs_are_conserved_and_ties_and_identical_sides_rejected(run):
    stats, rows, output = run
    conservation = stats["conservation"]
    # 7 + 3 + (3 pairs + 1 tie + 3 pairs) + 2 rows from 15 source records.
    assert conservation["input"] == 19 and conservation["balanced"]
    assert conservation["quarantine"] == 0
    reasons = stats["drop_reasons"]
    assert reasons == {
        "pair.identical": 2,
        "pair.tie": 2,
        "dedup.exact": 1,
        "dedup.near": 1,
        "dedup.contaminated": 1,
    }
    assert stats["stages"][0]["dropped"] == {"pair.identical": 2, "pair.tie": 2}
    assert stats["mix"]["kind"] == {"pair": 9, "binary": 3}
    rejects = pq.read_table(output / "rejects").to_pylist()
    tie = next(
        row
        for row in rejects
        if row["drop_reason"] == "pair.tie" and row["source_format"] == "ultrafeedback"
    )
    assert (tie["chosen_score"], tie["rejected_score"]) == (8.0, 8.0)


def test_replies_are_not_judged_but_cleaned(run):
    _, rows, _ = run
    replies = {row["messages"][-1]["content"] for row in rows}
    # Longer than max_response_chars, and a refusal marked undesirable: both kept.
    assert "A year of 366 days, with 29 February, mostly every four years." in replies
    assert "I'm sorry, but I cannot help with that." in replies
    text = json.dumps(rows)
    assert "bob@example.com" not in text


def test_no_prompt_group_straddles_train_and_validation(run):
    _, rows, _ = run
    splits = defaultdict(set)
    for row in rows:
        key = prompt_key(row["system"], row["messages"], row["context"], row["tools"])
        splits[key].add(row["split"])
    assert all(len(sides) == 1 for sides in splits.values())
    assert {side for sides in splits.values() for side in sides} == {"train", "validation"}
    # The storm prompt kept its two distinct pairs; its near-duplicate group is gone.
    storm = [row for row in rows if row["messages"][0]["content"] == STORM]
    assert sorted(row["rejected"][0]["content"] for row in storm) == [
        "It fell into the sea.",
        "Nobody knows.",
    ]
    assert all(row["cluster_id"] for row in storm)
    leap = [row for row in rows if row["messages"][0]["content"].startswith("Explain what")]
    assert len(leap) == 3 and len({row["id"] for row in leap}) == 3
