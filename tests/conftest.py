"""Shared fixtures: one local Ray for the whole session (Ray's ray_start_regular_shared pattern)."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
# Ray Train's controller polls its workers every 2 s by default, and a run waits for a poll
# to see its reports and its end: ~5 s of each tiny training run. The Ray this session
# starts, and the clusters tests start in subprocesses, inherit it.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")


@pytest.fixture(scope="session")
def ray_session():
    import ray
    from ray.data import DataContext

    from ops.cluster import local_system_config, worker_env

    if not ray.is_initialized():
        ray.init(
            address="local",  # a Ray of its own, even when another runs on this machine
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            runtime_env={"env_vars": worker_env()},  # the workers' environment, as in production
            _system_config=local_system_config(),  # and Ray's settings
        )
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    yield ray
    ray.shutdown()
