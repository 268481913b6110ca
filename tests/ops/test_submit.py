"""instructflow submit and job: what a job is made of (no Ray), then a real Ray head with its
dashboard, started as `ray start --head` in a process group of its own, taking jobs through
the CLI as a user's laptop would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from ops import cluster, submit
from ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
HEAD_START_TIMEOUT_S = 180


# --- what a job is made of -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("explicit", "environ", "expected"),
    [
        ("http://head:8265/", {"RAY_ADDRESS": "http://other:8265"}, "http://head:8265"),
        ("head:8265", {}, "http://head:8265"),
        (None, {"RAY_ADDRESS": "https://head:8265"}, "https://head:8265"),
        (None, {"RAY_ADDRESS": "10.0.0.1:6379"}, submit.DEFAULT_DASHBOARD),  # ray.init's, not ours
        (None, {"RAY_API_SERVER_ADDRESS": "http://a:1", "RAY_ADDRESS": "http://b:2"}, "http://a:1"),
        (None, {}, "http://127.0.0.1:8265"),
    ],
)
def test_the_dashboard_address(explicit, environ, expected) -> None:
    assert submit.dashboard_address(explicit, environ) == expected


def test_a_ray_client_address_is_not_the_jobs_api() -> None:
    with pytest.raises(submit.SubmitError, match="http://<head>:8265"):
        submit.dashboard_address("ray://head:10001", {})


def test_a_shipped_instructflow_command_runs_the_shipped_code() -> None:
    command = ["--", "instructflow", "data", "run", "my recipe.yaml", "--set", "a.b=1"]
    assert (
        submit.entrypoint(command, shipped=True)
        == "python3 -m ops.cli data run 'my recipe.yaml' --set a.b=1"
    )
    assert submit.entrypoint(command, shipped=False) == (
        "instructflow data run 'my recipe.yaml' --set a.b=1"  # the installed package's script
    )
    assert submit.entrypoint(["python", "-c", "print(1)"], shipped=True) == "python -c 'print(1)'"
    with pytest.raises(submit.SubmitError, match="no command"):
        submit.entrypoint(["--"], shipped=True)


def test_the_jobs_environment_is_the_worker_env_with_env_over_it() -> None:
    worker_env = {"MIMALLOC_PURGE_DELAY": "0"}
    assert submit.env_vars(
        ["MIMALLOC_PURGE_DELAY=250", "HF_HUB_OFFLINE=1", "EMPTY="], worker_env
    ) == {
        "MIMALLOC_PURGE_DELAY": "250",
        "HF_HUB_OFFLINE": "1",
        "EMPTY": "",
    }
    with pytest.raises(submit.SubmitError, match="KEY=VALUE"):
        submit.env_vars(["NOEQUALS"], worker_env)


def test_the_runtime_env_ships_the_directory_or_installs_the_pinned_package(tmp_path) -> None:
    from importlib.metadata import version

    shipped = submit.runtime_env(
        working_dir=str(tmp_path), install=None, excludes=["data/"], env={"A": "1"}
    )
    assert shipped["working_dir"] == str(tmp_path)
    assert {".git/", ".venv/", "/out/", "__pycache__/", "data/"} <= set(shipped["excludes"])
    assert shipped["env_vars"] == {"A": "1"}
    installed = submit.runtime_env(working_dir=None, install="", excludes=[], env={})
    assert installed == {"pip": [f"instructflow=={version('instructflow')}"], "env_vars": {}}
    assert submit.runtime_env(working_dir=None, install="instructflow[cloud]", excludes=[], env={})[
        "pip"
    ] == ["instructflow[cloud]"]
    with pytest.raises(submit.SubmitError, match="not a directory"):
        submit.runtime_env(working_dir=str(tmp_path / "nope"), install=None, excludes=[], env={})


def test_a_working_dir_too_big_to_upload_names_what_is_big(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    with (tmp_path / "data" / "corpus.jsonl").open("wb") as sparse:
        sparse.truncate(700 * 2**20)  # sparse: its size without the disk
    (tmp_path / ".venv").mkdir()
    with (tmp_path / ".venv" / "torch.so").open("wb") as excluded:
        excluded.truncate(900 * 2**20)
    (tmp_path / "recipe.yaml").write_text("inputs: []\n")

    class RefusingClient:
        def submit_job(self, **_: Any) -> str:
            raise RuntimeError("Request failed with status code 413: Maximum request body size.")

    environment = submit.runtime_env(working_dir=str(tmp_path), install=None, excludes=[], env={})
    with pytest.raises(submit.SubmitError) as caught:
        submit.submit_job(
            RefusingClient(), "http://h:8265", entrypoint="x", runtime_env=environment, job_id=None
        )
    message = str(caught.value)
    assert "data/ 700 MiB" in message and ".venv" not in message
    assert "--exclude" in message and "--install" in message


def test_no_dashboard_is_one_line_naming_the_address_and_how_to_start_one(capsys) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["job", "list", "--address", f"http://127.0.0.1:{port}"]) == submit.EXIT_NOT_ASKED
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert f"http://127.0.0.1:{port}" in error and "ray start --head --dashboard-host" in error


def test_ctrl_c_while_following_says_the_job_keeps_running(capsys) -> None:
    class Client:
        def get_job_info(self, job_id: str) -> SimpleNamespace:
            return SimpleNamespace(status="RUNNING")

        async def tail_job_logs(self, job_id: str):
            yield "step 1\n"
            raise KeyboardInterrupt

    assert submit.follow(Client(), "http://h:8265", "raysubmit_x") == submit.EXIT_INTERRUPTED
    out, err = capsys.readouterr()
    assert out == "step 1\n"
    assert "keeps running" in err
    assert "instructflow job stop raysubmit_x --address http://h:8265" in err


# --- connect() inside a job ----------------------------------------------------------------


@pytest.fixture
def captured_init(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster.ray, "init", lambda **kwargs: calls.append(kwargs))
    return calls


def test_a_jobs_driver_joins_its_cluster_with_the_jobs_runtime_env(
    monkeypatch: pytest.MonkeyPatch, captured_init
) -> None:
    """As Ray's job supervisor starts the driver: RAY_ADDRESS and the job's config set."""
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    monkeypatch.setenv(cluster.JOB_CONFIG_VARIABLE, json.dumps({"runtime_env": {}}))

    cluster.connect(None, progress_bars=False)

    (kwargs,) = captured_init
    assert kwargs["address"] == "10.0.0.1:6379"
    assert kwargs["runtime_env"] is None  # Ray refuses env_vars repeating the job's


def test_ray_address_outside_a_job_is_joined_like_address(
    monkeypatch: pytest.MonkeyPatch, captured_init
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.delenv(cluster.JOB_CONFIG_VARIABLE, raising=False)

    cluster.connect(None, progress_bars=False)

    (kwargs,) = captured_init
    assert kwargs["address"] == "ray://head:10001"
    assert [module.__name__ for module in kwargs["runtime_env"]["py_modules"]] == [
        "pipeline",
        "ops",
        "train",
    ]


def test_a_dashboard_url_in_ray_address_leaves_runs_local(
    monkeypatch: pytest.MonkeyPatch, captured_init
) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")  # set for `instructflow submit`

    cluster.connect(None, progress_bars=False)

    assert captured_init[0]["address"] == "local"


# --- a real head ---------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


def dashboard_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_head():
    """A one-node cluster as `ray up` makes a head: its own ports (other Rays on this machine
    keep theirs), its own --temp-dir, no token auth (a fresh head's default). Stopped by
    killing its process group: `ray stop` would stop every Ray on the machine, and a SIGTERM
    drains for half a minute. Job drivers run in sessions of their own; Ray's watcher kills
    each once its supervisor is gone."""
    temp_dir = tempfile.mkdtemp(prefix="ifsub-", dir="/tmp")  # short: Ray's socket paths
    gcs, dashboard, *others = free_ports(9)
    names = (
        "ray-client-server-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
        "node-manager-port",
        "object-manager-port",
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", cluster.JOB_CONFIG_VARIABLE)
    }
    env |= {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",  # jobs' python3: this venv's
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        # A loaded machine starts the head's agents slowly; Ray's defaults gave up at 15 s.
        "RAY_agent_register_timeout_ms": "120000",
        "RAY_raylet_start_wait_time_s": "120",
    }
    log_path = Path(temp_dir, "head.log")
    with log_path.open("wb") as log:
        head = subprocess.Popen(
            [
                str(Path(bin_dir, "ray")),
                "start",
                "--head",
                "--block",
                f"--port={gcs}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard}",
                "--include-dashboard=true",
                "--num-cpus=2",
                f"--temp-dir={temp_dir}",
                "--disable-usage-stats",
                *(f"--{name}={port}" for name, port in zip(names, others, strict=True)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT_S
        while not ("Ray runtime started" in log_path.read_text() and dashboard_answers(url)):
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def jobs(ray_head):
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(ray_head)


def write_tiny_run(directory: Path) -> Path:
    """Five records and a line that is not JSON (quarantined at read), cleaned: a run with
    something to count and no shuffle, the cheapest that shows conservation."""
    rows = [
        {"instruction": f"Say hello number {i}", "output": f"Hello, number {i}!"} for i in range(5)
    ]
    lines = [json.dumps(row) for row in rows] + ["{not json"]
    (directory / "in.jsonl").write_text("\n".join(lines) + "\n")
    recipe = {
        "inputs": [{"path": str(directory / "in.jsonl"), "format": "alpaca"}],
        "stages": [{"clean": {}}],
        "output": {"path": str(directory / "out")},
        "run": {"progress_bars": False},
    }
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.mark.slow
def test_a_data_run_submitted_with_wait_runs_on_the_cluster(ray_head, jobs, tmp_path, capsys):
    recipe = write_tiny_run(tmp_path)
    job_id = f"data-run-{os.getpid()}-{time.monotonic_ns()}"

    code = main(
        ["submit", "--address", ray_head, "--working-dir", str(ROOT), "--job-id", job_id]
        + ["--wait", "--", "instructflow", "data", "run", str(recipe)]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert f"job {job_id}: SUCCEEDED" in out.splitlines()[-1]
    assert "input 6 -> output 5, rejects 0, quarantine 1" in out  # the job's own log, streamed
    conservation = json.loads((tmp_path / "out" / "stats.json").read_text())["conservation"]
    assert conservation["balanced"] and conservation["input"] == 6
    assert conservation["output"] + conservation["rejects"] + conservation["quarantine"] == 6
    info = jobs.get_job_info(job_id)
    assert info.entrypoint == f"python3 -m ops.cli data run {recipe}"
    # A driver that joined this cluster is a Ray job of it; one that started a Ray of its
    # own inside the job would leave the submission without one.
    assert info.job_id is not None and info.driver_info is not None
    assert info.runtime_env["env_vars"] == cluster.worker_env()


@pytest.mark.slow
def test_a_failing_job_exits_1_with_its_status_and_ran_the_shipped_code(ray_head, capsys):
    code = main(
        ["submit", "--address", ray_head, "--working-dir", str(ROOT), "--wait", "--"]
        + ["python3", "-c", "import ops, sys; print('ops from', ops.__file__); sys.exit(3)"]
    )

    out = capsys.readouterr().out
    assert code == submit.EXIT_CODES["FAILED"] == 1, out
    assert "FAILED (Job entrypoint command failed with exit code 3)" in out.splitlines()[-1]
    shipped_from = next(line for line in out.splitlines() if line.startswith("ops from"))
    assert "working_dir_files" in shipped_from  # the job's cwd is the shipped directory


@pytest.mark.slow
def test_status_logs_and_stop_of_a_long_job(ray_head, jobs, tmp_path, capsys):
    job_id = f"sleeper-{os.getpid()}-{time.monotonic_ns()}"
    sleeper = "print('sleeping', flush=True); import time; time.sleep(600)"
    assert (
        main(
            ["submit", "--address", ray_head, "--working-dir", str(tmp_path), "--job-id", job_id]
            + ["--", "python3", "-c", sleeper]
        )
        == 0
    )
    assert f"instructflow job logs {job_id} --follow" in capsys.readouterr().out

    deadline = time.monotonic() + 60
    while "sleeping" not in jobs.get_job_logs(job_id):
        assert time.monotonic() < deadline, jobs.get_job_logs(job_id)
        time.sleep(0.5)
    assert main(["job", "status", job_id, "--address", ray_head]) == 0
    assert capsys.readouterr().out.startswith(f"job {job_id}: RUNNING")
    assert main(["job", "logs", job_id, "--address", ray_head]) == 0
    assert "sleeping" in capsys.readouterr().out
    assert main(["job", "list", "--address", ray_head]) == 0
    assert any(
        line.startswith(f"{job_id}  RUNNING") for line in capsys.readouterr().out.splitlines()
    )

    assert main(["job", "stop", job_id, "--address", ray_head]) == 0
    assert capsys.readouterr().out.strip().endswith("STOPPED (Job was intentionally stopped.)")
    assert main(["job", "logs", job_id, "--follow", "--address", ray_head]) == 3
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"job {job_id}: STOPPED")


@pytest.mark.slow
def test_an_unknown_job_id_is_one_clear_line(ray_head, capsys):
    for command in (["status"], ["logs"], ["logs", "--follow"], ["stop"]):
        assert main(["job", *command, "no-such-job", "--address", ray_head]) == 2
        error = capsys.readouterr().err.strip()
        assert error == (
            f"error: no job 'no-such-job' on the cluster at {ray_head} "
            f"(`instructflow job list --address {ray_head}` lists them)"
        )
