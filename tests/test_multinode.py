"""A Ray cluster of a head and two worker nodes on this machine (tests/multinode.py runs
each scenario in a process of its own): a data run with one worker node killed part-way
must write the bytes the same recipe writes undisturbed on the session's one-node Ray; an
SFT run, undisturbed and then killed part-way, must end with the same losses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.datarun import run_data
from tests.multinode import committed_files, data_recipe

pytestmark = pytest.mark.slow  # a cluster of three nodes, three runs on it

ROOT = Path(__file__).resolve().parents[1]


def scenario(name: str, workdir: Path) -> dict[str, Any]:
    """``python -m tests.multinode NAME``: its JSON result."""
    result = workdir / "result.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.multinode", name, str(result), str(workdir / "work")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def data_runs(tmp_path_factory):
    return scenario("data", tmp_path_factory.mktemp("multinode-data"))


@pytest.fixture(scope="module")
def sft_runs(tmp_path_factory):
    return scenario("sft", tmp_path_factory.mktemp("multinode-sft"))


@pytest.fixture(scope="module")
def one_node(data_runs, ray_session, tmp_path_factory) -> dict[str, Any]:
    """The same input files (shards name them) and recipe, undisturbed, on the session's
    Ray: one node, two CPUs."""
    recipe = data_recipe(tmp_path_factory.mktemp("one-node"), Path(data_runs["inputs"]), "one")
    result = run_data(str(recipe), progress_bars=False)
    return {"files": committed_files(Path(result.output_path)), "stats": result.stats}


def test_a_data_run_with_a_worker_node_killed_writes_the_bytes_of_one_undisturbed_node(
    data_runs, one_node
):
    killed = data_runs["killed"]
    assert len(one_node["files"]) >= 4  # data and rejects shards, and the manifest
    assert killed["files"] == one_node["files"]
    for conservation in (killed["conservation"], one_node["stats"]["conservation"]):
        assert conservation["balanced"] is True
        assert conservation["input"] == 3000
        assert (
            conservation["output"] + conservation["rejects"] + conservation["quarantine"]
            == conservation["input"]
        )
        assert conservation["rejects"] > 0  # the planted duplicates went


def test_ray_retried_what_the_killed_node_held_and_the_run_says_so(data_runs):
    killed = data_runs["killed"]
    report = killed["retries"]
    assert [node["node_id"] for node in report["dead_nodes"]] == [killed["kill"]["node_id"]]
    # The node died in the first pass: its work was retried, or its actors restarted.
    assert report["retried_attempts"] + report["actors_restarted"] > 0
    assert report["failed_attempts_by_error"]  # each lost attempt counted by its error


def test_an_sft_run_with_a_worker_node_killed_resumes_from_its_checkpoint(sft_runs):
    whole, killed = sft_runs["whole"], sft_runs["killed"]
    statuses = [attempt["status"] for attempt in killed["train"]["attempts"]]
    # The first run's one attempt, then the killed run's failed attempt and its restart.
    assert statuses == ["FINISHED", "ERRORED", "FINISHED"]
    assert killed["train"]["attempts"][1]["detail"]  # why: a dead worker or its peer's error
    # Two workers again for the restart, on the surviving node and the replacement.
    assert killed["train"]["workers_started"] == whole["train"]["workers_started"] + 4
    assert whole["resumed_from"] == []
    resumed = killed["resumed_from"]
    assert resumed and set(resumed) <= {4, 8}  # a committed checkpoint: every 4 steps
    assert killed["last"]["step"] == whole["last"]["step"] == 12
    assert killed["last"]["train_loss"] == pytest.approx(whole["last"]["train_loss"], rel=1e-5)
    assert killed["last"]["val_loss"] == pytest.approx(whole["last"]["val_loss"], rel=1e-5)
    assert killed["last"]["tokens_seen"] == whole["last"]["tokens_seen"]
    assert set(killed["train"]["logged_steps"]) == set(range(0, 13, 2))  # log_every_steps 2
    dead = killed["retries"]["dead_nodes"]
    assert [node["node_id"] for node in dead][-1] == killed["kill"]["node_id"]
