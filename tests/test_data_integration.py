"""The data engine end to end on one session-scoped local Ray."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from ops.datarun import PipelineError, run_data

pytestmark = pytest.mark.slow  # on Ray, end to end

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart" / "recipe.yaml"


@pytest.fixture(scope="module")
def quickstart(ray_session, tmp_path_factory):
    """The quickstart recipe, run once for this module into a temporary output directory."""
    output = tmp_path_factory.mktemp("quickstart") / "out"
    cwd = os.getcwd()
    os.chdir(ROOT)  # the recipe's paths are relative to the repo root, as in `make demo`
    try:
        outcome = run_data(str(QUICKSTART), [f"output.path={output}"], progress_bars=False)
    finally:
        os.chdir(cwd)
    return outcome


def test_quickstart_conserves_every_record(quickstart):
    stats = json.loads((Path(quickstart.output_path) / "stats.json").read_text())
    conservation = stats["conservation"]
    assert conservation["balanced"]
    assert (
        conservation["input"]
        == conservation["output"] + conservation["rejects"] + conservation["quarantine"]
    )
    assert conservation["output"] > 100 and conservation["rejects"] > 10
    funnel = stats["stages"]
    assert [s["stage"] for s in funnel][:3] == ["ingest", "clean", "pii"]
    for before, after in zip(funnel, funnel[1:], strict=False):
        assert after["in"] == before["out"]
    assert funnel[-1]["out"] == conservation["output"]


def test_the_steps_wall_seconds_add_up_to_the_run(quickstart):
    """Each step (the read and the map stages, then each global stage with the map stages
    after it) has its wall seconds, and they add up to "process"."""
    stats = quickstart.stats
    steps = stats["steps"]
    enabled = [s["stage"] for s in stats["stages"][1:] if s.get("enabled", True)]
    assert steps[0]["stages"][0] == "read"
    assert [name for step in steps for name in step["stages"] if name != "read"] == enabled
    assert all(step["seconds"] > 0 for step in steps)
    total = sum(step["seconds"] for step in steps)
    assert total == pytest.approx(stats["seconds"]["process"], abs=0.01 * len(steps))


def test_quickstart_every_stage_visibly_acts(quickstart):
    stats = quickstart.stats
    reasons = stats["drop_reasons"]
    for expected in (
        "read.invalid_json",
        "read.invalid_utf8",
        "convert.missing_field",
        "filter.language_not_allowed",
        "filter.empty_response",
        "filter.refusal",
        "filter.repeated_ngrams",
        "filter.blocklisted_term",
        "dedup.exact",
        "dedup.contaminated",
    ):
        assert reasons.get(expected, 0) > 0, (expected, reasons)
    edits = {stage["stage"]: stage["modified"] for stage in stats["stages"]}
    assert edits["clean"].get("clean.mojibake", 0) > 0
    assert edits["clean"].get("clean.html", 0) > 0
    assert edits["pii"].get("pii.email", 0) > 0 and edits["pii"].get("pii.phone", 0) > 0
    assert set(stats["mix"]["language"]) == {"en", "zh"}
    assert {"alpaca", "sharegpt", "messages", "qa", "text"} <= set(stats["mix"]["source_format"])


def test_quickstart_output_is_clean_and_loadable(quickstart):
    import datasets
    import ray

    data_dir = Path(quickstart.output_path) / "data"
    # The split stage's directories are what Hugging Face datasets reads as splits.
    loaded = datasets.load_dataset("parquet", data_dir=str(data_dir))
    assert set(loaded) == {"train", "validation"}
    assert (
        sum(len(split) for split in loaded.values()) == quickstart.stats["conservation"]["output"]
    )
    assert (
        ray.data.read_parquet(str(data_dir)).count() == quickstart.stats["conservation"]["output"]
    )
    text = json.dumps([loaded[name][:] for name in loaded], ensure_ascii=False)
    for leaked in ("13812345678", "@example.com", "<|endoftext|>", "Ã©", "<p>"):
        assert leaked not in text, leaked


def test_manifest_checksums_and_rows_match_the_files(quickstart):
    root = Path(quickstart.output_path)
    manifest = json.loads((root / "manifest.json").read_text())
    for shard in manifest["shards"]:
        payload = (root / shard["path"]).read_bytes()
        assert hashlib.sha256(payload).hexdigest() == shard["sha256"]
        assert pq.ParquetFile(root / shard["path"]).metadata.num_rows == shard["rows"]
    assert len([s for s in manifest["shards"] if s["fate"] == "output"]) > 1  # target size shards
    assert manifest["recipe_sha256"] == quickstart.recipe.fingerprint()
    assert manifest["packages"]["ray"] == "2.60.0"


def test_quarantine_keeps_file_and_line(quickstart):
    quarantine = pq.read_table(Path(quickstart.output_path) / "quarantine").to_pylist()
    broken = [row for row in quarantine if row["source_file"].endswith("broken.jsonl")]
    assert broken and all(row["source_line"] > 0 and row["raw"] is not None for row in broken)


def test_report_and_inspect(quickstart):
    report = (Path(quickstart.output_path) / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 3
    for section in (
        "Stage funnel",
        "Wall time",
        "Drop reasons",
        "Lengths",
        "Mix of kept records",
        "Samples",
    ):
        assert section in report
    assert "<td>read, clean, pii" in report  # the first step's stages, and its seconds
    completed = subprocess.run(
        [sys.executable, "-m", "ops.cli", "data", "inspect", quickstart.output_path],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "balanced" in completed.stdout and "filter.refusal" in completed.stdout


def test_same_input_and_recipe_give_byte_identical_shards(ray_session, quickstart, tmp_path):
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        again = run_data(
            str(QUICKSTART),
            [f"output.path={tmp_path / 'again'}", "run.batch_rows=37"],
            progress_bars=False,
        )
    finally:
        os.chdir(cwd)
    first = json.loads((Path(quickstart.output_path) / "manifest.json").read_text())["shards"]
    second = json.loads((Path(again.output_path) / "manifest.json").read_text())["shards"]
    assert [(s["path"], s["sha256"]) for s in first] == [(s["path"], s["sha256"]) for s in second]


def bad_inputs(directory: Path) -> None:
    good = json.dumps(
        {"instruction": "Name a primary colour.", "input": "", "output": "Red is one."}
    )
    (directory / "truncated.jsonl").write_text(
        good + "\n" + '{"instruction": "Name a pri\n' + good + "\n"
    )
    (directory / "bad_utf8.jsonl").write_bytes(
        good.encode() + b"\n" + b'{"instruction": "caf\xe9"}\n'
    )
    (directory / "missing.jsonl").write_text(
        json.dumps({"instruction": "Only an instruction"}) + "\n"
    )
    huge = json.dumps({"instruction": "Summarise.", "input": "x" * 10_000_000, "output": "Long."})
    (directory / "huge.jsonl").write_text(huge + "\n" + good + "\n")
    (directory / "empty.jsonl").write_bytes(b"")
    (directory / "binary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
    with gzip.open(directory / "ok.jsonl.gz", "wt") as stream:
        stream.write(good + "\n")


def test_bad_input_ends_in_quarantine_never_a_crash(ray_session, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    bad_inputs(inputs)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "inputs": [{"path": str(inputs), "format": "alpaca"}],
                "stages": [{"clean": {}}, {"length": {}}],
                "output": {"path": str(tmp_path / "out")},
                "run": {"progress_bars": False},
            }
        )
    )
    outcome = run_data(str(recipe))
    reasons = outcome.stats["drop_reasons"]
    assert reasons == {
        "read.invalid_json": 1,
        "read.invalid_utf8": 1,
        "convert.missing_field": 1,
        "read.record_too_large": 1,
        "read.empty_file": 1,
        "read.binary_file": 1,
    }
    assert outcome.stats["conservation"] == {
        "input": 11,
        "created": 0,
        "output": 5,
        "rejects": 0,
        "quarantine": 6,
        "balanced": True,
    }
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    where = {(Path(r["source_file"]).name, r["drop_reason"]): r["source_line"] for r in quarantine}
    assert where[("truncated.jsonl", "read.invalid_json")] == 2
    assert where[("bad_utf8.jsonl", "read.invalid_utf8")] == 2
    assert where[("huge.jsonl", "read.record_too_large")] == 1


def test_a_stage_failing_on_a_worker_gives_a_clear_error(ray_session, tmp_path, monkeypatch):
    (tmp_path / "in.jsonl").write_text(
        json.dumps({"instruction": "Hi there", "output": "Hello!"}) + "\n"
    )
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("forbidden\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "inputs": [{"path": str(tmp_path / "in.jsonl")}],
                "stages": [{"blocklist": {"path": str(blocklist)}}],
                "output": {"path": str(tmp_path / "out")},
                "run": {"progress_bars": False},
            }
        )
    )
    from ops import datarun

    real_preflight = datarun.preflight

    def preflight_then_lose_the_file(*args, **kwargs):
        real_preflight(*args, **kwargs)  # valid now ...
        blocklist.unlink()  # ... and gone by the time a worker starts the stage

    monkeypatch.setattr(datarun, "preflight", preflight_then_lose_the_file)
    with pytest.raises(PipelineError) as caught:
        run_data(str(recipe))
    message = str(caught.value)
    assert "stage 'blocklist' could not start" in message and str(blocklist) in message
    assert "Traceback" not in message


def test_the_cli_says_which_format_auto_chose_and_shows_each_stage(ray_session, tmp_path, capsys):
    from ops.cli import main

    rows = [{"instruction": f"Name colour {n}.", "input": "", "output": "Blue."} for n in range(3)]
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
            ]
        }
    )
    (tmp_path / "mixed.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "auto",
                "inputs": [{"path": str(tmp_path / "mixed.jsonl")}],
                "stages": [{"refusal": {}}, {"exact_dedup": {}}],
                "output": {"path": str(tmp_path / "out")},
            }
        )
    )
    assert main(["data", "run", str(recipe)]) == 0
    captured = capsys.readouterr()
    assert "format auto chose: alpaca (3 records), messages (1 records)" in captured.out
    # Progress on stderr: a line per named stage with records in -> out, the final counts.
    progress = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert any(line.endswith("read         4 records (1 of 1 files)") for line in progress)
    assert any(line.endswith("refusal      4 -> 4") for line in progress), progress
    assert any(line.endswith("exact_dedup  4 -> 4") for line in progress), progress
