"""The constrain stage in a recipe on the session's local Ray: after a split, data/train asks
only for seen constraint kinds, data/validation only for held-out ones, and nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ops.datarun import run_data
from pipeline.constrain import DEFAULT_HELD_OUT_KINDS

pytestmark = pytest.mark.slow  # on Ray, end to end


def test_recipe_constrains_train_with_seen_and_validation_with_held_out_kinds(
    ray_session, tmp_path
):
    lines = [
        json.dumps({"instruction": f"Describe place number {i} in a few lines.", "output": "Ok."})
        for i in range(40)
    ]
    lines.append("{not json")  # quarantine counts too
    source = tmp_path / "alpaca.jsonl"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out"
    recipe = {
        "name": "constrain",
        "seed": 5,
        "inputs": [{"path": str(source)}],
        "stages": [
            {"length": {"min_response_chars": 1}},
            {"split": {"fractions": {"train": 0.7, "validation": 0.3}}},
            {"constrain": {"per_record_max": 2}},
        ],
        "output": {"path": str(output)},
        "run": {"batch_rows": 16, "progress_bars": False},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    stats = run_data(str(path)).stats

    conservation = stats["conservation"]
    assert conservation["balanced"]
    assert (conservation["input"], conservation["output"], conservation["quarantine"]) == (
        41,
        40,
        1,
    )
    held_out = set(DEFAULT_HELD_OUT_KINDS)
    rows = {}
    for split in ("train", "validation"):
        table = pq.read_table(sorted((output / "data" / split).glob("*.parquet")))
        rows[split] = table.to_pylist()
        assert "constraints" in table.schema.names
    assert len(rows["train"]) == 28 and len(rows["validation"]) == 12
    for split, records in rows.items():
        for record in records:
            kinds = {constraint["kind"] for constraint in record["constraints"]}
            assert kinds and (kinds <= held_out if split == "validation" else not kinds & held_out)
            assert all(c["held_out"] == (split == "validation") for c in record["constraints"])
            assert record["messages"][0]["content"].startswith("Describe place number")
    constrain = next(stage for stage in stats["stages"] if stage["stage"] == "constrain")
    assert constrain["in"] == constrain["out"] == 40
    assert constrain["modified"]["constrained.seen"] == 28
    assert constrain["modified"]["constrained.held_out"] == 12
    assert Path(output / "manifest.json").exists()
