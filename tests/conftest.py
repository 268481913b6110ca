"""Shared fixtures: one local Ray for the whole session (Ray's ray_start_regular_shared pattern)."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


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
