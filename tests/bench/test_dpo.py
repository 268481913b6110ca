"""``instructflow bench dpo`` at a tiny size, plain loops and memory subprocesses only (Ray
Train's DPO run is covered by tests/train/test_dpo_integration.py): the report is complete,
its numbers are positive and finite, and the stored-reference and in-process loops trained
the same rows to the same losses. No timing assertions beyond "positive"."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import pytest

from bench.dpo import DPOBenchSettings, bench_dpo, check_settings, pair_bench_records

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = dict(
    records=48,
    size="tiny",
    vocab_size=512,
    max_length=256,
    min_words=5,
    max_words=60,
    micro_batch_size=2,
    steps=8,
    log_every_steps=2,
    warmup_steps=2,
    memory_steps=2,
    ray=False,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("bench-dpo")
    printed = io.StringIO()  # the module fixture runs before any test's capsys
    with contextlib.redirect_stdout(printed):
        result = bench_dpo(
            DPOBenchSettings(workdir=workdir, **TINY), json_out=str(workdir / "r.json")
        )
    assert json.loads((workdir / "r.json").read_text()) == result
    return result | {"printed": printed.getvalue()}


def positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


@pytest.mark.slow
def test_the_report_is_complete_and_its_numbers_real(report: dict) -> None:
    data = report["data"]
    assert data["rows"] == data["records"] == 48 and data["truncated"] == 0
    assert positive(data["plain_reference"]["seconds"]) and report["model"]["params"] > 0
    for variant in ("precomputed", "in_process"):
        row = report["plain"][variant]
        assert all(positive(row[key]) for key in ("tokens_per_s", "seconds", "wall_seconds"))
        assert (row["steps"], row["timed_steps"], len(row["windows"])) == (8, 6, 4)
        assert all(0 < w["tokens"] <= w["slots"] for w in row["windows"])
        held = report["memory"][variant]
        assert positive(held["peak_rss"]) and held["peak_rss"] >= held["peak_rss_loaded"]
    memory = report["memory"]
    # Only the in-process variant holds a second model, the policy's twin.
    assert memory["in_process"]["reference_bytes"] == memory["in_process"]["policy_bytes"]
    assert memory["precomputed"]["reference_bytes"] == 0
    assert positive(report["in_process_over_precomputed"])
    assert report["break_even"]["reference_pass_seconds"] == data["plain_reference"]["seconds"]
    assert report["gpu"] == {"skipped": "not asked for (--device cuda runs it)"}
    assert "ray" not in report
    printed = report["printed"]
    assert "Stored vs in-process reference" in printed and "Ray Train: not run" in printed


@pytest.mark.slow
def test_both_loops_trained_the_same_rows_to_the_same_losses(report: dict) -> None:
    """The stored log-probabilities are the in-process reference's (one function computes
    both), so the two loops see the same batches and log the same losses."""
    stored, in_process = report["plain"]["precomputed"], report["plain"]["in_process"]
    for key in ("tokens", "slots", "step"):
        assert [w[key] for w in stored["windows"]] == [w[key] for w in in_process["windows"]]
    assert report["plain_same_losses"] < 1e-4
    assert stored["windows"][0]["loss"] != stored["windows"][-1]["loss"]  # it trained


def test_pair_records_are_seeded_pairs_of_mixed_length(tmp_path: Path) -> None:
    settings = DPOBenchSettings(workdir=tmp_path, records=200, min_words=10, max_words=200)
    first = pair_bench_records(settings)
    assert [r["id"] for r in first] == [r["id"] for r in pair_bench_records(settings)]
    assert [r["id"] for r in pair_bench_records(replace(settings, seed=1))] != [
        r["id"] for r in first
    ]
    chosen = [len(r["messages"][-1]["content"].split()) for r in first]
    rejected = [len(r["rejected"][0]["content"].split()) for r in first]
    assert all(r["messages"][-1]["role"] == r["rejected"][0]["role"] == "assistant" for r in first)
    assert min(chosen + rejected) >= 10 and max(chosen + rejected) <= 200
    assert chosen != rejected and min(chosen) < 20 and max(chosen) > 100


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"loss": "simpo"}, "--loss must be one of sigmoid, ipo, kto"),
        ({"beta": 0}, "--beta must be positive"),
        ({"memory_steps": 0}, "--memory-steps must be at least 1"),
        ({"records": 5}, "--records must be at least 32"),
        ({"steps": 25}, "--steps must be a multiple of --log-every-steps"),
        ({"device": "tpu"}, "--device must be one of cpu, cuda"),
    ],
)
def test_settings_are_checked_before_anything_runs(
    tmp_path: Path, change: dict, message: str
) -> None:
    check_settings(DPOBenchSettings(workdir=tmp_path))  # the defaults pass
    with pytest.raises(ValueError, match=message):
        bench_dpo(replace(DPOBenchSettings(workdir=tmp_path / "never"), **change))
    assert not (tmp_path / "never").exists()
