"""The constrain stage through a real data run on the session's local Ray: after a split,
training shards carry only seen constraint kinds and validation shards only held-out ones,
every record of both is constrained, and conservation holds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ops.datarun import run_data

pytestmark = pytest.mark.slow  # on Ray, end to end

HELD_OUT = ["startend:quotation", "detectable_format:title"]


def test_held_out_kinds_reach_only_the_validation_shards(ray_session, tmp_path):
    source = tmp_path / "alpaca.jsonl"
    with source.open("w") as file:
        for index in range(60):
            record = {
                "instruction": f"Describe animal number {index} and where it lives.",
                "input": "",
                "output": f"Animal {index} lives in the forest.",
            }
            file.write(json.dumps(record) + "\n")
    recipe = {
        "name": "constrained",
        "seed": 5,
        "inputs": [{"path": str(source)}],
        "stages": [
            {"split": {"fractions": {"train": 0.75, "validation": 0.25}}},
            {"constrain": {"held_out_kinds": HELD_OUT, "held_out_splits": ["validation"]}},
        ],
        "output": {"path": str(tmp_path / "out")},
        "run": {"progress_bars": False},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    outcome = run_data(str(path), progress_bars=False)
    output = Path(outcome.output_path)
    kinds = {}
    for split in ("train", "validation"):
        rows = pq.read_table(output / "data" / split).to_pylist()
        assert rows and all(row["constraints"] for row in rows), split
        kinds[split] = {c["kind"] for row in rows for c in row["constraints"]}
        for row in rows:  # the sentences are in the instruction the model will see
            assert len(row["messages"][0]["content"]) > len("Describe animal number 00 and")
    assert kinds["validation"] <= set(HELD_OUT)
    assert not kinds["train"] & set(HELD_OUT)
    conservation = outcome.stats["conservation"]
    assert conservation["input"] == 60 and conservation["output"] == 60
