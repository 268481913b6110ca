"""Outputs and checkpoints on an S3-compatible store: moto's S3 server on loopback, configured
the way a MinIO or R2 user configures instructflow, by the environment (AWS_ENDPOINT_URL and
the keys), which ``connect`` hands to the Ray workers (``ops.cluster.worker_env``).

The runs go in one child process started with that environment (``python -m
tests.test_s3_storage``), as a user's shell starts ``instructflow``; it starts its own Ray.
The session's shared Ray was started before the server and its workers do not have the
variables. In the child: a data run with one local and one S3 input to local disk, its output
copied to ``s3://.../run``; the run again there with ``--overwrite``, its write cut short after
two shards (in process: a resume reads only what is on the store; test_resume_integration.py
SIGKILLs real runs on local disk), then ``--resume``d; SFT from that S3 output to S3, whole and
with a worker killed mid-run then ``--resume``d; ``generate`` on the S3 output directory.
This process checks what is on the store. Errors (no bucket, no endpoint) are checked here:
they are raised before Ray starts.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT / "examples" / "quickstart" / "data" / "alpaca_en.jsonl"
BUCKET = "instructflow-test"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
SFT_STEPS = 4
PROMPT = "Name a primary colour."


# The child process ----------------------------------------------------------------------


def data_recipe(work: Path) -> Path:
    """Half the alpaca examples from local disk, half from the bucket; small shards, so a
    write has several to cut short."""
    recipe = {
        "name": "s3-storage",
        "seed": 7,
        "inputs": [
            {"path": str(work / "inputs" / "local.jsonl")},
            {"path": f"s3://{BUCKET}/inputs/remote.jsonl"},
        ],
        "stages": [{"clean": {}}, {"split": {"fractions": {"train": 0.8, "validation": 0.2}}}],
        "output": {"path": str(work / "local"), "shard_target_bytes": 8192},
        "run": {"progress_bars": False},
    }
    path = work / "data.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def sft_recipe(work: Path, name: str, model: str) -> Path:
    recipe = {
        "name": name,
        "seed": 3,
        "data": {"path": f"s3://{BUCKET}/run"},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 64},
        "training": {
            "max_steps": SFT_STEPS,
            "micro_batch_size": 4,
            "gradient_accumulation": 1,
            "learning_rate": 3e-3,
            "warmup_steps": 1,
            "log_every_steps": 2,
        },
        "eval": {"every_steps": 2, "samples": 0, "max_rows": 8},
        "scaling": {"num_workers": 1},
        "output": {"path": f"s3://{BUCKET}/{name}"},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


class WriteCutShort(RuntimeError):
    """Stands in for a kill in the middle of the write."""


@contextlib.contextmanager
def write_cut_short(after: int):
    """The next run stages ``after`` shards, then stops."""
    from pipeline import plan

    stage_shards = plan.stage_shards

    def some_then_stop(processed, recipe, run, shards_per_fate, pending):
        stage_shards(processed, recipe, run, shards_per_fate, set(sorted(pending)[:after]))
        raise WriteCutShort(f"stopped after staging {after} shards")

    plan.stage_shards = some_then_stop
    try:
        yield
    finally:
        plan.stage_shards = stage_shards


def refusal(call) -> str:
    from pipeline.config import RecipeError

    try:
        call()
    except RecipeError as error:
        return str(error)
    raise AssertionError("not refused")


def run_scenarios(work: Path) -> dict[str, Any]:
    from ops.datarun import run_data
    from ops.trainrun import run_sft
    from pipeline.checkpoint import STAGED_RESULTS
    from train.generate import generate_one, resolve_checkpoint
    from train.launch import TrainError
    from train.tiny import save_tiny_model

    recipe = str(data_recipe(work))
    run_uri = f"s3://{BUCKET}/run"
    to_s3 = [f"output.path={run_uri}"]
    results: dict[str, Any] = {}
    clock = [time.perf_counter()]
    run_data(recipe)
    timed("data run, local output", clock)
    # The local run copied to the store stands in for an earlier run there (each run costs
    # seconds): --overwrite must know it as a run's own files, as it does locally.
    filesystem, root = pafs.FileSystem.from_uri(run_uri)
    pafs.copy_files(str(work / "local"), root, destination_filesystem=filesystem)
    results["again"] = refusal(lambda: run_data(recipe, to_s3))
    results["resume_finished"] = refusal(lambda: run_data(recipe, to_s3, resume=True))
    with write_cut_short(after=2), contextlib.suppress(WriteCutShort):
        run_data(recipe, to_s3, overwrite=True)
    results["staged"] = len(files_under(filesystem, f"{root}/{STAGED_RESULTS}"))
    manifest = filesystem.get_file_info(f"{root}/manifest.json")
    results["manifest_after_cut"] = manifest.type != pafs.FileType.NotFound
    results["unfinished"] = refusal(lambda: run_data(recipe, to_s3))
    results["resumed"] = run_data(recipe, to_s3, resume=True).stats["resumed"]
    timed("data run on s3: overwritten, cut short, resumed", clock)

    model = save_tiny_model(str(work / "local"), str(work / "llama"), vocab_size=256)
    timed("tiny model", clock)
    results["whole"] = run_sft(str(sft_recipe(work, "sft-whole", model)))
    timed("sft uninterrupted", clock)
    killed = str(sft_recipe(work, "sft", model))
    try:
        run_sft(killed, fault={"crash_at_step": 3})
    except TrainError as error:
        results["crash"] = str(error)
    timed("sft killed", clock)
    results["without_resume"] = refusal(lambda: run_sft(killed))
    results["sft"] = run_sft(killed, resume=True)
    timed("sft resumed", clock)
    results["copy"] = resolve_checkpoint(f"s3://{BUCKET}/sft")
    weights = Path(results["copy"]) / "model.safetensors"
    copied = weights.stat().st_mtime_ns
    results["reply"] = generate_one(f"s3://{BUCKET}/sft", PROMPT, max_new_tokens=4)
    results["copy_reused"] = weights.stat().st_mtime_ns == copied
    timed("generate", clock)
    return results


def timed(label: str, started: list[float]) -> None:
    """Test-time bookkeeping: seconds since the last mark, on the child's log."""
    now = time.perf_counter()
    print(f"[s3 test] {label}: {now - started[-1]:.1f} s", flush=True)
    started.append(now)


# What is on the store, read the same way here and in the child ------------------------------


def files_under(filesystem: pafs.FileSystem, root: str) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    if filesystem.get_file_info(root).type == pafs.FileType.File:
        with filesystem.open_input_stream(root) as stream:
            return {"": stream.read()}
    found = {}
    for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True)):
        if info.type == pafs.FileType.File:
            with filesystem.open_input_stream(info.path) as stream:
                found[info.path[len(root.rstrip("/")) + 1 :]] = stream.read()
    return found


def committed(filesystem: pafs.FileSystem, root: str) -> dict[str, str]:
    """sha256 of every committed file but the recipe's (whose hash covers output.path) and
    the run marker (which holds that hash); manifest and stats without the hash, stats
    without its timings."""
    found = files_under(filesystem, root)
    digests = {
        path: hashlib.sha256(payload).hexdigest()
        for path, payload in found.items()
        if path.endswith(".parquet") and not path.startswith(".instructflow/")
    }
    manifest = json.loads(found["manifest.json"])
    manifest.pop("recipe_sha256")
    return digests | {
        "manifest.json": json.dumps(manifest, sort_keys=True),
        "stats.json": json.dumps(untimed(json.loads(found["stats.json"])), sort_keys=True),
    }


def untimed(stats: dict[str, Any]) -> dict[str, Any]:
    """stats.json less what differs between any two runs: timings (and the steps they
    time: a resumed run's start at its checkpoint), the recipe's hash (it covers
    output.path) and what a resumed run reused."""
    stats = copy.deepcopy(stats)
    for key in ("recipe_sha256", "seconds", "steps", "resumed"):
        stats.pop(key)
    for stage in stats["stages"]:
        stage.pop("seconds", None)
    return stats


# This process -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 on a free loopback port: (endpoint URL, a filesystem on it)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    filesystem = pafs.S3FileSystem(
        access_key=KEYS["AWS_ACCESS_KEY_ID"],
        secret_key=KEYS["AWS_SECRET_ACCESS_KEY"],
        endpoint_override=f"{host}:{port}",
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    filesystem.create_dir(BUCKET)
    yield f"http://{host}:{port}", filesystem
    server.stop()


def store_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", **KEYS}


@pytest.fixture(scope="module")
def scenarios(s3_server, tmp_path_factory) -> dict[str, Any]:
    """The child process's runs; their outputs are on the store and under ``work``."""
    import matplotlib

    endpoint, filesystem = s3_server
    work = tmp_path_factory.mktemp("s3")
    lines = ALPACA.read_text().splitlines()[:120]
    (work / "inputs").mkdir()
    (work / "inputs" / "local.jsonl").write_text("\n".join(lines[:60]) + "\n")
    with filesystem.open_output_stream(f"{BUCKET}/inputs/remote.jsonl") as stream:
        stream.write(("\n".join(lines[60:]) + "\n").encode())
    env = {
        **os.environ,
        **store_env(endpoint),
        "HF_HUB_OFFLINE": "1",
        # Training logs of an S3 run go under ~/.instructflow/logs; checkpoint copies under
        # the cache. Both stay in the test's directory; matplotlib keeps its font cache.
        "HOME": str(work / "home"),
        "XDG_CACHE_HOME": str(work / "cache"),
        "MPLCONFIGDIR": matplotlib.get_configdir(),
    }
    log = work / "child.log"
    with log.open("w") as output:
        completed = subprocess.run(
            [sys.executable, "-m", "tests.test_s3_storage", str(work)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=540,
        )
    if completed.returncode != 0:
        pytest.fail(f"the child failed (rc {completed.returncode}):\n{log.read_text()[-4000:]}")
    return {"work": work, **json.loads((work / "results.json").read_text())}


@pytest.mark.slow  # a Ray of its own, end to end
def test_a_data_run_on_s3_writes_what_the_local_run_writes(scenarios, s3_server):
    from ops.report import render_report

    _, filesystem = s3_server
    local = pafs.LocalFileSystem()
    expected = committed(local, str(scenarios["work"] / "local"))
    assert sum(path.startswith("data/train/") for path in expected) > 1  # several shards
    sources = pq.read_table(scenarios["work"] / "local" / "data").column("source_file")
    assert f"s3://{BUCKET}/inputs/remote.jsonl" in set(sources.to_pylist())
    assert committed(filesystem, f"{BUCKET}/run") == expected  # overwritten, then resumed
    # The report is rendered from the stats, as the local run's is.
    on_store = files_under(filesystem, f"{BUCKET}/run")
    stats = json.loads(on_store["stats.json"])
    assert on_store["report.html"] == render_report(stats).encode("utf-8")
    local_stats = json.loads((scenarios["work"] / "local" / "stats.json").read_text())
    report = (scenarios["work"] / "local" / "report.html").read_bytes()
    assert report == render_report(local_stats).encode("utf-8")


@pytest.mark.slow
def test_overwrite_and_resume_on_s3_behave_as_on_local_disk(scenarios, s3_server):
    _, filesystem = s3_server
    assert "output.path: is not empty; pass --overwrite" in scenarios["again"]
    assert "--resume: the run here finished; pass --overwrite" in scenarios["resume_finished"]
    # The overwritten run was cut short with two shards staged and no manifest.
    assert scenarios["staged"] == 2 and not scenarios["manifest_after_cut"]
    assert "holds an unfinished run" in scenarios["unfinished"]
    assert scenarios["resumed"] == {"from": "processed", "shards_reused": 2}
    left = files_under(filesystem, f"{BUCKET}/run/.instructflow")
    assert set(left) == {"run.json"}  # checkpoints and staging gone once committed


@pytest.mark.slow
def test_sft_checkpoints_on_s3_and_a_killed_run_resumes_from_them(scenarios, s3_server):
    _, filesystem = s3_server
    whole, resumed = scenarios["whole"], scenarios["sft"]
    assert "training failed" in scenarios["crash"]
    assert "pass --resume" in scenarios["without_resume"]
    assert resumed["last"]["step"] == whole["last"]["step"] == SFT_STEPS
    assert resumed["last"]["train_loss"] == pytest.approx(whole["last"]["train_loss"], rel=1e-4)
    assert resumed["last"]["val_loss"] == pytest.approx(whole["last"]["val_loss"], rel=1e-4)
    assert resumed["best"]["path"].startswith(f"s3://{BUCKET}/sft/ray_train/step_")
    on_store = files_under(filesystem, f"{BUCKET}/sft")
    summary = json.loads(on_store["train_summary.json"])
    assert summary["last"] == resumed["last"]
    last = summary["last"]["path"].removeprefix(f"s3://{BUCKET}/sft/")
    assert {"config.json", "model.safetensors", "instructflow.json", "training_state.pt"} <= {
        path.removeprefix(last + "/") for path in on_store if path.startswith(last + "/")
    }


@pytest.mark.slow
def test_generate_reads_an_s3_output_through_a_local_copy(scenarios):
    copied = Path(scenarios["copy"])
    assert copied.is_relative_to(scenarios["work"] / "cache" / "instructflow" / "checkpoints")
    assert (copied / "model.safetensors").is_file()
    assert not (copied / "training_state.pt").exists()  # the optimizer state stays behind
    assert scenarios["copy_reused"]  # generate found the copy current, and did not fetch again
    assert isinstance(scenarios["reply"], str)


@pytest.fixture
def store_in_env(s3_server, monkeypatch):
    """This process's driver-side checks on the server (no Ray worker involved)."""
    endpoint, _ = s3_server
    for name, value in store_env(endpoint).items():
        monkeypatch.setenv(name, value)
    return endpoint


@pytest.fixture
def no_ray(monkeypatch):
    """Fail if a run gets as far as connecting to Ray."""
    from ops import datarun, trainrun

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(datarun, "connect", refuse)
    monkeypatch.setattr(trainrun, "connect", refuse)


def local_data_recipe(tmp_path: Path, output: str) -> str:
    (tmp_path / "in.jsonl").write_text(ALPACA.read_text().splitlines()[0] + "\n")
    recipe = {"inputs": [{"path": str(tmp_path / "in.jsonl")}], "output": {"path": output}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return str(tmp_path / "recipe.yaml")


@pytest.mark.slow
def test_a_missing_bucket_is_named_before_ray_starts(store_in_env, no_ray, scenarios, tmp_path):
    from ops.datarun import run_data
    from ops.trainrun import run_sft
    from pipeline.config import RecipeError

    with pytest.raises(RecipeError) as data_error:
        run_data(local_data_recipe(tmp_path, "s3://no-such-bucket/run"))
    sft = sft_recipe(tmp_path, "sft", str(scenarios["work"] / "llama"))
    with pytest.raises(RecipeError) as sft_error:
        run_sft(str(sft), ["output.path=s3://no-such-bucket/sft"])
    for error, path in (
        (data_error, "s3://no-such-bucket/run"),
        (sft_error, "s3://no-such-bucket/sft"),
    ):
        (line,) = str(error.value).splitlines()[1:]
        assert line == (
            "  output.path: not writable: bucket 'no-such-bucket' does not exist "
            f"(instructflow does not create buckets) (got {path!r})"
        )


def test_options_in_an_s3_uri_are_refused_before_ray_starts(no_ray, tmp_path):
    from ops.datarun import run_data
    from pipeline.config import RecipeError

    output = f"s3://{BUCKET}/run?endpoint_override=127.0.0.1:9000"
    with pytest.raises(RecipeError, match=r"options in the URI \(after '\?'\) are not supported"):
        run_data(local_data_recipe(tmp_path, output))


@pytest.mark.slow  # Arrow retries for ~6 s
def test_an_unreachable_endpoint_is_named_before_ray_starts(no_ray, monkeypatch, tmp_path):
    from ops.datarun import run_data
    from pipeline.config import RecipeError

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name, value in store_env(endpoint).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RecipeError) as error:
        run_data(local_data_recipe(tmp_path, f"s3://{BUCKET}/run"))
    (line,) = str(error.value).splitlines()[1:]
    assert line == (
        f"  output.path: not writable: cannot reach the endpoint {endpoint}; check "
        f"AWS_ENDPOINT_URL and the network (got 's3://{BUCKET}/run')"
    )


def test_the_drivers_store_settings_travel_to_the_workers(monkeypatch):
    from ops.cluster import FORWARDED_ENV, worker_env

    for name in FORWARDED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = worker_env()
    assert (
        env["AWS_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_SECRET_ACCESS_KEY"] == "secret"
    )
    assert not {"AWS_ACCESS_KEY_ID", "AWS_PROFILE"} & set(env)  # only what the driver has


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    (workdir / "results.json").write_text(json.dumps(run_scenarios(workdir), indent=2))
