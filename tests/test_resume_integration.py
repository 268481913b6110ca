"""A data run killed mid-dedup, resumed and killed again mid-write, then resumed to the end,
writes the same bytes as a run never interrupted, and no reader mistakes it for finished
before that. The killed runs are real processes, killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from ops.datarun import run_data
from pipeline.checkpoint import CHECKPOINTS, STAGED_RESULTS, unfinished_run_problem

pytestmark = pytest.mark.slow  # on Ray, end to end

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART_DATA = ROOT / "examples" / "quickstart" / "data"


def write_recipe(directory: Path) -> Path:
    """The quickstart's files through cleaning and exact dedup, in shards so small (4 KiB)
    that the write takes long enough to be killed in the middle of it."""
    recipe = {
        "name": "resume",
        "inputs": [{"path": str(QUICKSTART_DATA)}],
        "stages": [{"clean": {}}, {"exact_dedup": {"key": "conversation"}}],
        "output": {"path": str(directory / "out"), "shard_target_bytes": 4096},
        "run": {"batch_rows": 100, "progress_bars": False},
    }
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def committed_files(output: Path) -> dict[str, str]:
    """sha256 of every shard a finished run shows, and its manifest but for the recipe hash
    (the two runs' recipes differ in output.path)."""
    manifest = json.loads((output / "manifest.json").read_text())
    manifest.pop("recipe_sha256")
    return {
        str(path.relative_to(output)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(output.rglob("*.parquet"))
        if ".instructflow" not in path.parts
    } | {"manifest.json": json.dumps(manifest, sort_keys=True)}


def checkpoint_done(output: Path, prefix: str) -> bool:
    return any((output / CHECKPOINTS).glob(f"{prefix}*/_COMPLETE.json"))


def kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 240) -> None:
    """Start ``instructflow data run`` in its own session; SIGKILL it (and its local Ray)
    as soon as ``ready()``; fail if it finished first."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "data", "run", *args, "--no-progress"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if ready():
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.02)
    stderr = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"the run ended (rc {process.returncode}) before it could be killed: {stderr}")


@pytest.fixture(scope="module")
def uninterrupted(ray_session, tmp_path_factory) -> Path:
    outcome = run_data(str(write_recipe(tmp_path_factory.mktemp("whole"))))
    return Path(outcome.output_path)


def test_killed_mid_dedup_and_mid_write_resumes_to_identical_bytes(uninterrupted, tmp_path):
    recipe = write_recipe(tmp_path)
    output = tmp_path / "out"

    # 1. Killed in dedup: the input of exact_dedup is checkpointed, the processed data is not.
    kill_when([str(recipe)], lambda: checkpoint_done(output, "before-001-exact_dedup"))
    assert not checkpoint_done(output, "processed")
    assert not (output / "manifest.json").exists() and not (output / "data").exists()
    assert "unfinished" in unfinished_run_problem(str(output))
    dedup_input = next((output / CHECKPOINTS).glob("before-001-exact_dedup/_COMPLETE.json"))
    made = dedup_input.stat().st_mtime_ns

    # 2. Resumed, and killed again once a few shards are staged.
    def some_shards_staged() -> bool:
        results = output / STAGED_RESULTS
        return results.is_dir() and len(list(results.glob("*.json"))) >= 3

    kill_when([str(recipe), "--resume"], some_shards_staged)
    staged = len(list((output / STAGED_RESULTS).glob("*.json")))
    total = len(json.loads((uninterrupted / "manifest.json").read_text())["shards"])
    assert 3 <= staged < total, (staged, total)
    assert not (output / "manifest.json").exists() and not (output / "data").exists()
    assert dedup_input.stat().st_mtime_ns == made  # reused, not read and filtered again

    # 3. Resumed to the end, in this process: the staged shards are reused.
    outcome = run_data(str(recipe), resume=True)
    resumed = outcome.stats["resumed"]
    assert resumed["from"] == "processed" and resumed["shards_reused"] >= staged
    assert outcome.stats["conservation"]["balanced"]
    assert committed_files(output) == committed_files(uninterrupted)
    assert unfinished_run_problem(str(output)) is None
    assert not (output / CHECKPOINTS).exists()
