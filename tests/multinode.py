"""Multi-node scenarios on one machine: a Ray cluster of a head and two worker nodes
(``ray.cluster_utils.Cluster``: one raylet and object store each, on loopback ports), a run
submitted to it with one worker node killed part-way (the data run), or undisturbed and then
killed (the SFT run).

Each scenario runs in a process of its own, so its cluster never meets the session Ray of
the test suite; it writes what it saw as JSON, which ``tests/test_multinode.py`` reads:

    python -m tests.multinode data RESULT.json WORKDIR
    python -m tests.multinode sft RESULT.json WORKDIR

The head has no CPUs, as a head that only runs drivers: every task and actor of a run is on
the two killable workers, and only what Ray pins to the driver's node (Ray Train's
controller, the pipeline's tally) is on the head. The victim is killed as a node dies
(``remove_node(allow_graceful=False)``: raylet, object store and workers SIGKILLed) once the
run has reached a given point, watched from a thread; a replacement node then joins, as an
autoscaler would add one. What Ray retried comes from the state API (task attempts, actor
restarts, dead nodes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Small stores: the runs are small, and three nodes share one machine's memory.
OBJECT_STORE_BYTES = 100 * 1024 * 1024
RUN_TIMEOUT_S = 300


def start_cluster(worker_cpus: int) -> Any:
    """A head for the driver and two worker nodes of ``worker_cpus`` each, the head started
    as cluster.yaml starts it (the system config of ``ops.cluster``)."""
    from ray.cluster_utils import Cluster

    from ops.cluster import local_system_config

    head = {
        "num_cpus": 0,
        "object_store_memory": OBJECT_STORE_BYTES,
        "include_dashboard": True,  # the state API that the retry report reads
        "dashboard_port": 0,
        "_system_config": local_system_config(),
    }
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(2):
        add_worker(cluster, worker_cpus)
    cluster.wait_for_nodes()
    return cluster


def add_worker(cluster: Any, cpus: int) -> Any:
    return cluster.add_node(num_cpus=cpus, object_store_memory=OBJECT_STORE_BYTES)


def submitted(address: str, args: list[str], log: Path) -> subprocess.Popen:
    """``instructflow ARGS --address ADDRESS`` as a driver process of its own, a job of the
    cluster as a submitted one is, its output in ``log``. A job's objects go with its
    driver: a later run never waits on an earlier run's lost blocks being rebuilt."""
    command = [sys.executable, "-m", "ops.cli", *args, "--address", address]
    handle = log.open("w")
    return subprocess.Popen(
        command, stdout=handle, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1]
    )


def finished(process: subprocess.Popen, log: Path, timeout: float) -> str:
    """The driver's output once it exited 0; fails with its output's tail otherwise."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        tail = log.read_text()[-3000:]
        raise TimeoutError(f"{process.args} did not end in {timeout} s:\n{tail}") from None
    output = log.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"{process.args} exited {process.returncode}:\n{output[-3000:]}")
    return output


def run_with_node_killed(
    cluster: Any, process: subprocess.Popen, log: Path, ready: Callable[[], bool]
) -> tuple[str, dict[str, Any]]:
    """As soon as ``ready()`` holds while the driver ``process`` runs, the busiest worker
    node is killed and a replacement node added, as an autoscaler would. Returns the
    driver's output and what was killed when; fails if the run ended before the kill, or
    does not end in ``RUN_TIMEOUT_S``."""
    started = time.monotonic()
    while process.poll() is None and not ready():
        if time.monotonic() - started > RUN_TIMEOUT_S:
            process.kill()
            raise TimeoutError("the run never reached the point of the kill")
        time.sleep(0.05)
    if process.poll() is not None:
        raise RuntimeError(f"the run ended before the kill:\n{log.read_text()[-3000:]}")
    killed = kill_busiest_worker(cluster)
    killed["after_seconds"] = round(time.monotonic() - started, 1)
    try:
        output = finished(process, log, RUN_TIMEOUT_S)
    except TimeoutError as error:
        raise TimeoutError(
            f"{error}\nkilled: {killed}; unfinished: "
            f"{json.dumps(unfinished_work(cluster.address), indent=1)}"
        ) from None
    return output, killed


def kill_busiest_worker(cluster: Any) -> dict[str, Any]:
    victim, running = busiest_worker(cluster)
    cpus = victim._ray_params.num_cpus
    cluster.remove_node(victim, allow_graceful=False)
    replacement = add_worker(cluster, cpus)
    return {
        "node_id": victim.node_id,
        "running_tasks": running,
        "replacement_node_id": replacement.node_id,
    }


def busiest_worker(cluster: Any) -> tuple[Any, int]:
    """The worker node with the most running tasks (the first on a tie), and how many: the
    kill should hit work, not an idle node."""
    from ray.util.state import list_tasks

    running: dict[str, int] = {}
    try:
        running_tasks = list_tasks(
            address=cluster.address,
            filters=[("state", "=", "RUNNING")],
            limit=10_000,
            timeout=5,  # the kill should land where it was meant to
        )
        for task in running_tasks:
            running[task.node_id] = running.get(task.node_id, 0) + 1
    except Exception:  # noqa: BLE001 - the state API lagging is no reason not to kill
        pass
    workers = sorted(cluster.worker_nodes, key=lambda node: node.node_id)
    victim = max(workers, key=lambda node: running.get(node.node_id, 0))
    return victim, running.get(victim.node_id, 0)


def unfinished_work(address: str) -> dict[str, Any]:
    """What a stuck run waits on: unfinished tasks and actors by name and state, and the
    resources left."""
    import ray
    from ray.util.state import list_actors, list_tasks

    tasks = list_tasks(address=address, filters=[("state", "!=", "FINISHED")], limit=10_000)
    actors = list_actors(address=address, filters=[("state", "!=", "DEAD")], limit=10_000)
    return {
        "tasks": counted(f"{task.name} {task.state}" for task in tasks),
        "actors": counted(f"{actor.class_name} {actor.state}" for actor in actors),
        "available": ray.available_resources(),
    }


def retry_report(address: str, job_id: str | None = None) -> dict[str, Any]:
    """What Ray retried, from its state API: task attempts after the first and failed ones
    (by error type), actors restarted, nodes dead."""
    from ray.util.state import list_actors, list_nodes, list_tasks

    time.sleep(2)  # task events reach the GCS in batches, once a second
    filters = [("job_id", "=", job_id)] if job_id else None
    tasks = list_tasks(
        address=address, filters=filters, limit=10_000, detail=True, raise_on_missing_output=False
    )
    retried = [task for task in tasks if task.attempt_number > 0]
    failed: dict[str, int] = {}
    for task in tasks:
        if task.state == "FAILED":
            failed[task.error_type or "unknown"] = failed.get(task.error_type or "unknown", 0) + 1
    actors = list_actors(address=address, limit=10_000, detail=True, raise_on_missing_output=False)
    restarted = [actor for actor in actors if (actor.num_restarts or 0) > 0]
    dead = [node for node in list_nodes(address=address, detail=True) if node.state == "DEAD"]
    return {
        "task_attempts": len(tasks),
        "retried_attempts": len(retried),
        "retried_by_name": counted(task.name for task in retried),
        "failed_attempts_by_error": failed,
        "actors_restarted": len(restarted),
        "actor_restarts_by_class": counted(actor.class_name for actor in restarted),
        "dead_nodes": [
            {"node_id": node.node_id, "reason": node.state_message or ""} for node in dead
        ],
    }


def counted(names: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


# --- the data run -------------------------------------------------------------------------

# Two CPUs a node for pools of two (run.max_workers): a pool never holds every CPU, so the
# tasks that recompute lost blocks for its actors can run. A pool holding them all waits on
# its arguments while their recomputation waits for a CPU.
DATA_WORKER_CPUS = 2
DATA_FILES = 4
RECORDS_PER_FILE = 750


def write_data_inputs(directory: Path) -> Path:
    """A few thousand generated records with planted exact and near duplicates, in a few
    files (one read task each)."""
    from bench.corpora import DirtConfig, write_corpus

    inputs = directory / "inputs"
    for index in range(DATA_FILES):
        write_corpus(
            inputs / f"part-{index}.jsonl",
            RECORDS_PER_FILE,
            seed=index,
            dirt=DirtConfig(exact_duplicate=0.08, near_duplicate=0.05),
        )
    return inputs


def data_recipe(directory: Path, inputs: Path, name: str) -> Path:
    import yaml

    recipe = {
        "name": "multinode",
        "seed": 5,
        "inputs": [{"path": str(inputs)}],
        "stages": [
            {"clean": {}},
            {"exact_dedup": {"key": "conversation"}},
            # Components by the distributed rounds, not one task: ViolationCounter and the
            # grouped blocks are on the cluster too.
            {"near_dedup": {"threshold": 0.7, "single_task_max_edges": 0}},
            {"sample": {"total": 2000}},
        ],
        "output": {"path": str(directory / name), "shard_target_bytes": 256 * 1024},
        # single_task_bytes 0: the global stages and the write take their distributed path
        # (shuffles, joins), whose tasks the kill must not break; one task would be too easy.
        "run": {
            "batch_rows": 250,
            "max_workers": 2,
            "progress_bars": False,
            "single_task_bytes": 0,
        },
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def committed_files(output: Path) -> dict[str, str]:
    """sha256 of every shard of a finished run (data and rejects), and its manifest but for
    the recipe hash (the two runs' recipes differ in output.path)."""
    manifest = json.loads((output / "manifest.json").read_text())
    manifest.pop("recipe_sha256")
    return {
        str(path.relative_to(output)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(output.rglob("*.parquet"))
        if ".instructflow" not in path.parts
    } | {"manifest.json": hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()}


def data_outcome(output: Path, seconds: float) -> dict[str, Any]:
    stats = json.loads((output / "stats.json").read_text())
    return {
        "seconds": round(seconds, 1),
        "files": committed_files(output),
        "conservation": stats["conservation"],
    }


def data_scenario(workdir: Path) -> dict[str, Any]:
    import ray

    from pipeline.checkpoint import CHECKPOINTS

    inputs = write_data_inputs(workdir)
    cluster = start_cluster(DATA_WORKER_CPUS)
    try:
        ray.init(address=cluster.address)  # for the state API only: it runs nothing
        # Only the disturbed run: tests/test_multinode.py compares it with the same recipe
        # run undisturbed on the session's one-node Ray (one cluster run less, ~40 s).
        outcome: dict[str, Any] = {"inputs": str(inputs)}
        name = "killed"
        recipe = data_recipe(workdir, inputs, name)
        log = workdir / f"{name}.log"
        started = time.monotonic()
        process = submitted(cluster.address, ["data", "run", str(recipe), "--no-progress"], log)
        written = workdir / name / CHECKPOINTS / "before-001-exact_dedup"

        def reading(written: Path = written) -> bool:
            """The first pass (read, convert, clean) is part-way: some of the checkpoint
            exact dedup starts from is written, not all. The kill lands in its actors."""
            return any(written.glob("*.parquet")) and not (written / "_COMPLETE.json").exists()

        _, kill = run_with_node_killed(cluster, process, log, reading)
        outcome[name] = data_outcome(workdir / name, time.monotonic() - started)
        outcome[name]["kill"] = kill
        outcome[name]["retries"] = retry_report(cluster.address)
        return outcome
    finally:
        ray.shutdown()
        cluster.shutdown()


# --- the SFT run --------------------------------------------------------------------------

# One CPU a node, one Ray Train worker each: the two workers are on the two worker nodes.
SFT_WORKER_CPUS = 1
SFT_STEPS = 12
SFT_EVAL_EVERY = 4  # a checkpoint at 4, 8 and 12


def sft_recipe(directory: Path, corpus: Path, model: str) -> str:
    """The recipe of tests/train/test_sft_integration.py: two CPU workers over gloo."""
    import yaml

    recipe = {
        "name": "multinode-sft",
        "seed": 3,
        "data": {"path": str(corpus)},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 64},
        "training": {
            "max_steps": SFT_STEPS,
            "micro_batch_size": 4,
            "gradient_accumulation": 2,
            "learning_rate": 3e-3,
            "warmup_steps": 2,
            "log_every_steps": 2,
        },
        "eval": {"every_steps": SFT_EVAL_EVERY, "samples": 1, "max_new_tokens": 8},
        "scaling": {"num_workers": 2, "cpus_per_worker": 1, "max_failures": 1},
        "output": {"path": str(directory / "sft")},
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sft.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def logged_steps(summary: dict[str, Any]) -> list[int]:
    lines = (Path(summary["logs"]) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


def train_report(address: str, summary: dict[str, Any]) -> dict[str, Any]:
    """Ray Train's restarts: its run attempts (state tracking), the worker actors it started
    on the cluster so far, and the steps logged (a resumed run appends to the
    same metrics.jsonl; the step it resumed from is in the workers' log)."""
    from ray.util.state import list_actors

    workers = list_actors(
        address=address,
        filters=[("class_name", "=", "RayTrainWorker")],
        limit=10_000,
        detail=True,
        raise_on_missing_output=False,
    )
    return {
        "attempts": train_attempts(),
        "workers_started": len(workers),  # on this cluster so far, every run together
        "logged_steps": logged_steps(summary),
    }


def train_attempts() -> list[dict[str, Any]]:
    """Each attempt of each Ray Train run, from Ray Train's state actor (there with
    RAY_TRAIN_ENABLE_STATE_TRACKING=1): status and the detail of how it ended."""
    import ray
    from ray.train.v2._internal.state.state_actor import get_state_actor

    actor = get_state_actor()
    if actor is None:
        return []
    attempts = ray.get(actor.get_train_run_attempts.remote())
    return [
        {
            "run_id": run_id,
            "status": str(attempt.status.value),
            "detail": (attempt.status_detail or "")[:300],
        }
        for run_id, by_id in attempts.items()
        for attempt in sorted(by_id.values(), key=lambda attempt: attempt.start_time_ns)
    ]


def sft_scenario(workdir: Path) -> dict[str, Any]:
    import ray

    from tests.train.sft_corpus import write_pipeline_output
    from train.launch import SUMMARY
    from train.sft import COMMITTED
    from train.tiny import save_tiny_model

    os.environ["RAY_TRAIN_ENABLE_STATE_TRACKING"] = "1"  # the attempts in train_report
    corpus = write_pipeline_output(workdir / "pipeline" / "out")
    model = save_tiny_model(str(corpus), str(workdir / "llama"), vocab_size=512)
    cluster = start_cluster(SFT_WORKER_CPUS)
    try:
        ray.init(address=cluster.address)  # for the state API and Ray Train's state actor
        outcome: dict[str, Any] = {}
        for name in ("whole", "killed"):
            recipe = sft_recipe(workdir / name, corpus, model)
            log = workdir / f"{name}.log"
            started = time.monotonic()
            process = submitted(cluster.address, ["train", "sft", recipe], log)
            if name == "whole":
                output, kill = finished(process, log, RUN_TIMEOUT_S), None
            else:
                committed = workdir / name / "sft" / "ray_train" / "step_0000004" / COMMITTED
                output, kill = run_with_node_killed(cluster, process, log, committed.exists)
            summary = json.loads((workdir / name / "sft" / SUMMARY).read_text())
            outcome[name] = {
                "seconds": round(time.monotonic() - started, 1),
                "last": summary["last"],
                "train": train_report(cluster.address, summary),
                "resumed_from": [
                    int(step)
                    for step in re.findall(r"resumed from the checkpoint at step (\d+)", output)
                ],
            }
            if kill:
                outcome[name]["kill"] = kill
                outcome[name]["retries"] = retry_report(cluster.address)
        return outcome
    finally:
        ray.shutdown()
        cluster.shutdown()


SCENARIOS = {"data": data_scenario, "sft": sft_scenario}


def main(argv: list[str]) -> int:
    name, result_path, workdir = argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    result = SCENARIOS[name](Path(workdir))
    Path(result_path).write_text(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
