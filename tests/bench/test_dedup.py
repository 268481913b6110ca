"""``instructflow bench dedup`` and ``bench dedup-memory`` at a tiny size: the result dicts
are complete and consistent. No DataTrove, no timing assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpora.dedup_passages import DEFAULT_CORPORA
from bench.dedup import (
    BenchSettings,
    MemorySampler,
    bench_dedup,
    bench_dedup_memory,
    memory_corpus,
    memory_recipe,
    parse_options,
    speed_ratios,
)
from ops.cli import build_parser
from pipeline.config import RecipeError

needs_corpora = pytest.mark.skipif(
    not DEFAULT_CORPORA.is_dir(),
    reason=f"the shared corpora are not at {DEFAULT_CORPORA} (a checkout without shared/)",
)


def tiny_settings(workdir: Path, **changes: object) -> BenchSettings:
    values = {
        "workdir": workdir,
        "records": 60,
        "thresholds": (0.8,),
        "languages": ("en",),
        "datatrove": False,
        "workers": 2,
        "seed": 0,
        "near_options": {},
        "signature_documents": 20,
        "signature_repeats": 1,
        "warm_up": False,
    }
    return BenchSettings(**{**values, **changes})


@pytest.mark.slow
@needs_corpora
def test_bench_dedup_tiny_run_is_complete_and_consistent(ray_session, tmp_path: Path) -> None:
    report = bench_dedup(tiny_settings(tmp_path), json_out=str(tmp_path / "result.json"))

    assert (tmp_path / "result.json").exists()
    assert report["signatures"]["docs"] == 20
    assert report["signatures"]["instructflow_docs_per_s"] > 0
    corpus = report["corpora"]["en"]
    assert corpus["records"] == corpus["cluster_records"] + corpus["uniques"]
    assert {row["system"] for row in report["quality"]} == {"instructflow", "datasketch"}
    for row in report["quality"]:
        assert (row["language"], row["threshold"]) == ("en", 0.8)
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0
        assert 0.0 <= row["f1"] <= 1.0
        assert row["expected"] == corpus["expected_removals"]
        assert 0 <= row["correct"] <= min(row["removed"], row["expected"])
        assert row["seconds"] > 0 and row["bands"] * row["rows"] <= 128
    (speed,) = report["speed"]
    assert set(speed) >= {"instructflow_seconds", "datasketch_seconds"}
    assert "datatrove_over_instructflow" not in speed


def test_bench_dedup_rejects_a_bad_near_option_before_running(tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path, near_options={"word_ngram": 0})
    with pytest.raises(RecipeError, match="word_ngram"):
        bench_dedup(settings)
    assert not any(tmp_path.iterdir())  # nothing was built


@pytest.mark.slow
def test_bench_dedup_memory_tiny_run(ray_session, tmp_path: Path) -> None:
    report = bench_dedup_memory([200], workers=2, workdir=str(tmp_path), seed=0)

    (run,) = report["runs"]
    assert run["records"] == 200
    assert run["output"] + run["rejects"] == 200
    assert run["dropped"].get("dedup.exact", 0) > 0  # the generator's 5% exact duplicates
    assert set(run["dropped"]) <= {"dedup.exact", "dedup.near"}  # the marker is not read
    assert run["samples"] >= 1 and run["workers_seen"] >= 1
    assert 0 < run["worker_private"] <= run["worker_rss"] <= run["worker_total_rss"]
    assert run["driver_rss"] > 0
    assert report["worker_rss_ratio_largest_over_smallest"] == 1.0


def test_bench_dedup_memory_passes_near_options_and_rejects_bad_ones(tmp_path: Path) -> None:
    recipe = memory_recipe(tmp_path, tmp_path / "out", 0, 2, 4, {"max_component_rows": 256})
    near = recipe.stages[1].config
    assert near.max_component_rows == 256
    assert recipe.run.shuffle_partition_bytes == 4 << 20
    with pytest.raises(RecipeError, match="max_component_rows"):
        bench_dedup_memory([200], 2, str(tmp_path), 0, near_options={"max_component_rows": "many"})
    assert not any(tmp_path.iterdir())  # no corpus generated, no Ray started


@pytest.mark.parametrize("kind", ["fixed-rate", "templates"])
def test_memory_corpus_writes_parts_and_reuses_them(tmp_path: Path, kind: str) -> None:
    seconds, size = memory_corpus(tmp_path / kind, 300, 0, kind)
    parts = sorted((tmp_path / kind).glob("part-*.jsonl"))
    assert size == sum(p.stat().st_size for p in parts) > 0
    assert sum(p.read_bytes().count(b"\n") for p in parts) == 300
    assert memory_corpus(tmp_path / kind, 300, 0, kind) == (0.0, size)  # reused
    with pytest.raises(ValueError, match="fixed-rate, templates"):
        memory_corpus(tmp_path / "other", 300, 0, "c4")


def test_memory_sampler_sees_this_sessions_workers(ray_session) -> None:
    @ray_session.remote
    def pid() -> int:
        import os

        return os.getpid()

    worker = ray_session.get(pid.remote())
    sampler = MemorySampler()
    sampler.sample()
    assert worker in sampler.seen
    assert sampler.peak.worker_rss > 0 and sampler.peak.driver_rss > 0


def test_memory_sampler_tells_what_a_task_adds_from_what_its_worker_held(ray_session) -> None:
    @ray_session.remote
    def hold_memory(megabytes: int) -> int:
        import time

        import numpy as np

        time.sleep(0.5)  # the sampler sees the worker before the task allocates
        block = np.ones(megabytes << 17)  # 8-byte floats, touched
        time.sleep(1.5)
        return int(block[-1])

    with MemorySampler(interval=0.1) as sampler:
        ray_session.get(hold_memory.remote(160))
    (kind,) = [kind for kind in sampler.peak.worker_growth_by_task if "hold_memory" in kind]
    added = sampler.peak.worker_growth_by_task[kind] >> 20
    assert 140 <= added <= 200
    assert sampler.peak.worker_private_by_task[kind] >> 20 >= added


def test_speed_ratios_divide_by_instructflow() -> None:
    rows = [
        {"language": "en", "threshold": 0.7, "system": "instructflow", "seconds": 2.0},
        {"language": "en", "threshold": 0.7, "system": "datasketch", "seconds": 5.0},
        {"language": "en", "threshold": 0.7, "system": "datatrove", "seconds": 1.0},
    ]
    (entry,) = speed_ratios(rows)
    assert entry["datasketch_over_instructflow"] == 2.5
    assert entry["datatrove_over_instructflow"] == 0.5


def test_parse_options_reads_yaml_values() -> None:
    assert parse_options(["word_ngram=3", "verify=true", "keep=longest_response"]) == {
        "word_ngram": 3,
        "verify": True,
        "keep": "longest_response",
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["word_ngram"])


def test_cli_wires_both_subcommands() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["bench", "dedup", "--records", "100", "--threshold", "0.7", "--no-datatrove"]
    )
    assert (args.records, args.threshold, args.datatrove) == (100, [0.7], False)
    assert args.languages == ["en", "zh"]
    args = parser.parse_args(["bench", "dedup-memory", "--sizes", "10", "20"])
    assert args.sizes == [10, 20] and args.near_option == []
    args = parser.parse_args(["bench", "dedup-memory", "--near-option", "max_component_rows=256"])
    assert args.near_option == ["max_component_rows=256"]
