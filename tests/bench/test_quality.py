"""``instructflow bench quality`` at a tiny size: the report is complete, and the plain loops
choose exactly the rows the pipeline does. No timing assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from bench.quality import (
    QualityBenchSettings,
    bench_quality,
    check_settings,
    stratified_selection,
)
from ops.cli import build_parser
from pipeline.sample import SampleConfig
from pipeline.schema import make_record, message, rows_to_table


@pytest.mark.slow
def test_bench_quality_tiny_run_is_complete_and_agrees(ray_session, tmp_path: Path) -> None:
    settings = QualityBenchSettings(
        workdir=tmp_path, records=300, workers=2, train_records=300, warm_up=False
    )
    report = bench_quality(settings, json_out=str(tmp_path / "result.json"))

    assert json.loads((tmp_path / "result.json").read_text()) == report
    assert report["corpus"]["records"] == 300 and report["corpus"]["files"] == 8
    assert report["model"]["fasttext"]["thread"] == 1
    for name in ("quality", "sample"):
        row = report[name]
        assert row["same_ids"], name
        assert row["plain_kept"] == row["pipeline_kept"] > 0
        assert row["plain_records_per_s"] > 0 and row["pipeline_records_per_s"] > 0
        expected = row["plain_seconds"] / row["pipeline_seconds"]
        assert row["pipeline_over_plain"] == pytest.approx(expected, abs=1e-3)
        assert set(row["pipeline_phases"]) == {"process", "summarize", "write"}
    quality, sample = report["quality"], report["sample"]
    assert 0 < quality["plain_kept"] < 300  # the threshold drops some, not all
    assert sample["plain_kept"] == sample["total"] == 150
    taken = [quota["taken"] for quota in sample["allocation"].values()]
    assert sum(taken) == 150 and len(taken) > 2  # several task|language strata
    assert all(key.count("|") == 1 for key in sample["allocation"])


def test_the_plain_selection_takes_the_smallest_keys_per_stratum() -> None:
    rows = [
        make_record(
            messages=[message("user", f"Q{line}?"), message("assistant", f"A{line}.")],
            source_file="/a.jsonl",
            source_format="alpaca",
            source_line=line,
            task="qa" if line % 3 else "chat",
            language="en",
        )
        for line in range(30)
    ]
    table = rows_to_table(rows)
    config = SampleConfig(strata=("task",), mode="equal", total=8)
    chosen, quotas = stratified_selection(table, config, seed=1, file_index={"/a.jsonl": 0})
    assert {name: quota.taken for name, quota in quotas.items()} == {"chat": 4, "qa": 4}
    picked = table.take(pa.array(chosen, pa.int64())).column("task").to_pylist()
    assert sorted(picked) == ["chat"] * 4 + ["qa"] * 4
    again, _ = stratified_selection(table, config, seed=1, file_index={"/a.jsonl": 0})
    other, _ = stratified_selection(table, config, seed=2, file_index={"/a.jsonl": 0})
    assert list(again) == list(chosen) and list(other) != list(chosen)


def test_settings_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--records must be at least 100, got 5"):
        check_settings(QualityBenchSettings(workdir=tmp_path, records=5))
    with pytest.raises(ValueError, match="--workers"):
        check_settings(QualityBenchSettings(workdir=tmp_path, workers=0))


def test_cli_wires_bench_quality(capsys) -> None:
    parser = build_parser()
    args = parser.parse_args(["bench", "quality", "--records", "1000", "--json-out", "q.json"])
    assert (args.records, args.train_records, args.json_out) == (1000, 20_000, "q.json")
    args = parser.parse_args(["bench", "quality", "--records", "5"])
    assert args.handler(args) == 2
    assert "--records must be at least 100" in capsys.readouterr().err
