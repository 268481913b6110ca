"""Augmentation end to end on the session's local Ray: created rows, budget, conservation.

One run: ``rule_augment`` (templates, a budget of 5 for ``qa|en`` only), ``back_translate``
with a tiny untrained MarianMT loaded by path (everything it writes is garbage, so the guard
rejects all of it), then ``exact_dedup`` on the response, which a template paraphrase shares
with its parent: exactly one of each pair survives, so created rows have row keys of their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from bench.augment import benchmark_sentences, build_tiny_translator
from ops.datarun import run_data

pytestmark = pytest.mark.slow  # on Ray, end to end

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ("volcanoes", "tides", "bread", "bridges", "vaccines", "compilers")
ASKS = (
    "Explain why {} matter.",
    "Write a short note about {}.",
    "Describe {} in 2 sentences.",
    "List three facts about {}.",
)


def write_inputs(directory: Path) -> None:
    with (directory / "qa.jsonl").open("w") as stream:
        for index, (ask, topic) in enumerate((a, t) for a in ASKS for t in TOPICS):
            answer = f"Answer {index}: {topic} are a broad subject with a long history."
            stream.write(json.dumps({"instruction": ask.format(topic), "output": answer}) + "\n")
    with (directory / "chat.jsonl").open("w") as stream:
        for index, topic in enumerate(TOPICS):
            record = {"instruction": f"Explain {topic} to a child.", "output": f"Chat {index}."}
            stream.write(json.dumps(record) + "\n")


@pytest.fixture(scope="module")
def augmented(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("augment")
    (root / "in").mkdir()
    write_inputs(root / "in")
    tiny = build_tiny_translator(root / "tiny", benchmark_sentences(100), seed=0)
    recipe = {
        "seed": 11,
        "inputs": [
            {
                "path": str(root / "in" / "qa.jsonl"),
                "format": "alpaca",
                "task": "qa",
                "language": "en",
            },
            {
                "path": str(root / "in" / "chat.jsonl"),
                "format": "alpaca",
                "task": "chat",
                "language": "en",
            },
        ],
        "stages": [
            {"rule_augment": {"methods": ["template"], "budget": {"qa|en": 5}}},
            {
                "back_translate": {
                    "models": {"en-de": tiny, "de-en": tiny},
                    "rate": 0.5,
                    "num_beams": 1,
                    "max_length": 16,
                    "batch_size": 16,
                }
            },
            {"exact_dedup": {"key": "response"}},
        ],
        "output": {"path": str(root / "out")},
        "run": {"progress_bars": False, "batch_rows": 8},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    outcome = run_data(str(root / "recipe.yaml"))
    output = pq.read_table(root / "out" / "data").to_pylist()
    rejects = pq.read_table(root / "out" / "rejects").to_pylist()
    return outcome, output, rejects


def by_stage(rows: list[dict], stage: str) -> list[dict]:
    return [
        r for r in rows if r["augmentation"] and json.loads(r["augmentation"])["stage"] == stage
    ]


def test_conservation_counts_the_created_rows(augmented):
    outcome, output, rejects = augmented
    conservation = outcome.stats["conservation"]
    created = len(by_stage(output + rejects, "rule_augment")) + len(
        by_stage(output + rejects, "back_translate")
    )
    assert conservation == {
        "input": 30,
        "created": created,
        "output": len(output),
        "rejects": len(rejects),
        "quarantine": 0,
        "balanced": True,
    }
    assert conservation["input"] + created == len(output) + len(rejects)
    funnel = {stage["stage"]: stage for stage in outcome.stats["stages"]}
    assert funnel["rule_augment"]["created"] == 5
    assert funnel["back_translate"]["created"] == created - 5 > 0
    for before, after in zip(outcome.stats["stages"], outcome.stats["stages"][1:], strict=False):
        assert after["in"] == before["out"]


def test_the_budget_caps_created_records_per_stratum(augmented):
    outcome, output, rejects = augmented
    made = by_stage(output + rejects, "rule_augment")
    assert len(made) == 5 and {row["task"] for row in made} == {"qa"}
    strata = {stage["stage"]: stage.get("strata", {}) for stage in outcome.stats["stages"]}
    assert strata["rule_augment"] == {"qa|en": {"available": 24, "budget": 5, "selected": 5}}


def test_created_rows_point_at_their_parents(augmented):
    _, output, rejects = augmented
    originals = {
        (r["source_file"], r["source_line"]): r for r in output + rejects if not r["parent_id"]
    }
    created = [r for r in output + rejects if r["parent_id"]]
    assert created and all(r["augmentation"] for r in created)
    for row in created:
        parent = originals[(row["source_file"], row["source_line"])]
        assert row["parent_id"] == parent["id"] != row["id"]
        assert (row["task"], row["language"]) == (parent["task"], parent["language"])


def test_the_guard_rejects_every_untrained_translation(augmented):
    outcome, output, rejects = augmented
    assert by_stage(output, "back_translate") == []
    reasons = {row["drop_reason"] for row in by_stage(rejects, "back_translate")}
    assert reasons and reasons <= {
        "augment.length_ratio",
        "augment.low_similarity",
        "augment.lost_protected_span",
    }
    funnel = {stage["stage"]: stage for stage in outcome.stats["stages"]}
    assert sum(funnel["back_translate"]["dropped"].values()) == funnel["back_translate"]["created"]


def test_dedup_after_augmentation_keeps_one_of_parent_and_paraphrase(augmented):
    _, output, rejects = augmented
    kept = {row["id"] for row in output}
    for child in by_stage(output + rejects, "rule_augment"):
        pair = [r for r in output + rejects if r["id"] in (child["id"], child["parent_id"])]
        assert len(pair) == 2
        survivors = [r for r in pair if r["id"] in kept]
        (loser,) = [r for r in pair if r["id"] not in kept]
        assert len(survivors) == 1 and loser["drop_reason"] == "dedup.exact"
        assert json.loads(loser["drop_detail"])["duplicate_of"] == survivors[0]["id"]


def test_inspect_shows_created(augmented):
    outcome, _, _ = augmented
    completed = subprocess.run(
        [sys.executable, "-m", "ops.cli", "data", "inspect", outcome.output_path],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    created = outcome.stats["conservation"]["created"]
    assert f"+ created {created} ->" in completed.stdout and "(balanced)" in completed.stdout
    report = (Path(outcome.output_path) / "report.html").read_text()
    assert f"{created} created by augmentation" in report
