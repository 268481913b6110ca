"""ops.cluster.connect: what it hands ray.init, and that the worker environment arrives."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ops import cluster

WORKER_ENV = {
    "MIMALLOC_PURGE_DELAY": "0",
    "_RJEM_MALLOC_CONF": "dirty_decay_ms:0,muzzy_decay_ms:0",
}


@pytest.fixture
def captured_init(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(cluster.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(cluster.ray, "init", lambda **kwargs: calls.append(kwargs))
    return calls


def test_local_ray_gets_the_worker_env_and_the_system_config(captured_init) -> None:
    cluster.connect(None, progress_bars=False, num_cpus=2)

    (kwargs,) = captured_init
    assert kwargs["num_cpus"] == 2
    assert kwargs["runtime_env"] == {"env_vars": WORKER_ENV}
    assert kwargs["_system_config"] == {
        "max_direct_call_object_size": 1024,
        "idle_worker_killing_time_threshold_ms": 10_000,
    }


def test_cluster_gets_the_packages_and_the_worker_env(captured_init) -> None:
    cluster.connect("ray://head:10001", progress_bars=False)

    (kwargs,) = captured_init
    assert kwargs["address"] == "ray://head:10001"
    runtime_env = kwargs["runtime_env"]
    assert [module.__name__ for module in runtime_env["py_modules"]] == ["pipeline", "ops", "train"]
    assert runtime_env["env_vars"] == WORKER_ENV


def test_a_value_set_in_the_drivers_environment_wins(
    monkeypatch: pytest.MonkeyPatch, captured_init
) -> None:
    monkeypatch.setenv("MIMALLOC_PURGE_DELAY", "250")

    cluster.connect(None, progress_bars=False)

    assert captured_init[0]["runtime_env"] == {
        "env_vars": {**WORKER_ENV, "MIMALLOC_PURGE_DELAY": "250"}
    }


def test_polars_own_jemalloc_defaults_do_not_count_as_a_users_choice(captured_init) -> None:
    import polars  # noqa: F401  (writes its defaults into the variable, as a run does)

    assert os.environ[cluster.JEMALLOC_CONF].startswith(cluster.POLARS_JEMALLOC_DEFAULT)
    cluster.connect(None, progress_bars=False)
    assert captured_init[0]["runtime_env"]["env_vars"] == WORKER_ENV


@pytest.mark.parametrize(
    ("drivers", "workers"),
    [
        ("dirty_decay_ms:500,muzzy_decay_ms:1000", "dirty_decay_ms:0,muzzy_decay_ms:0"),
        (
            "dirty_decay_ms:500,muzzy_decay_ms:1000,thp:always,narenas:2",
            "dirty_decay_ms:0,muzzy_decay_ms:0,thp:always,narenas:2",
        ),
        ("dirty_decay_ms:250", "dirty_decay_ms:0,muzzy_decay_ms:0,dirty_decay_ms:250"),
    ],
)
def test_a_users_jemalloc_options_come_after_ours(
    monkeypatch: pytest.MonkeyPatch, drivers: str, workers: str
) -> None:
    monkeypatch.setenv(cluster.JEMALLOC_CONF, drivers)
    assert cluster.worker_env()[cluster.JEMALLOC_CONF] == workers  # jemalloc takes the last


def test_ray_workers_run_with_the_worker_env(ray_session) -> None:
    @ray_session.remote
    def purge_delay() -> str | None:
        import os

        return os.environ.get("MIMALLOC_PURGE_DELAY")

    assert ray_session.get(purge_delay.remote()) == "0"


def test_a_task_with_its_own_env_vars_keeps_the_worker_env(ray_session) -> None:
    """Ray Data's join reduce sets POLARS_MAX_THREADS in its task's runtime_env; Ray merges
    env_vars with the job's, so Polars' jemalloc still starts with decay 0."""

    @ray_session.remote(runtime_env={"env_vars": {"POLARS_MAX_THREADS": "1"}})
    def environment() -> tuple[str | None, str | None]:
        import os

        return os.environ.get("POLARS_MAX_THREADS"), os.environ.get("_RJEM_MALLOC_CONF")

    assert ray_session.get(environment.remote()) == ("1", WORKER_ENV["_RJEM_MALLOC_CONF"])
