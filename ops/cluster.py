"""Connecting to Ray: embedded local Ray on a laptop, or a running cluster by ``--address``."""

from __future__ import annotations

import logging
import os

import ray
from ray.data import DataContext

import ops
import pipeline
import train

# Task results up to this size are kept in the caller's own memory instead of the object
# store (Ray's default is 100 KiB). A shuffle makes maps x partitions small shards, all owned
# by the driver, so with the default the driver's heap held the whole in-flight shuffle: 216
# MiB of private memory at 100k records, 650 MiB at 1M (exact + near dedup). At 1 KiB it was
# 246 MiB at 1M, at the same wall time. cluster.yaml starts the head with the same setting.
INLINE_OBJECT_BYTES = 1024
# Ray kills an idle task worker after 1 s once the node has more workers than CPUs, and the
# long-lived actors of a run (the tally, Ray Data's stats and autoscaling actors) already make
# it so on a small machine: each shuffle, join and write then started its worker processes
# afresh, and on 2 CPUs a 10-record dedup run spent more time starting Python than working
# (the figures are in BENCHMARKS.md, "Pipeline"). Kept idle workers hold no data; they only
# skip a Python start and the imports.
IDLE_WORKER_KEEP_MS = 10_000

JEMALLOC_CONF = "_RJEM_MALLOC_CONF"
# What polars/__init__.py (2.1) writes into JEMALLOC_CONF ahead of the value it found.
POLARS_JEMALLOC_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"

# Environment of every Ray worker. Arrow allocates through mimalloc, which by default keeps
# freed pages for a while before handing them back. A worker runs one shuffle task after
# another, so what it kept from the last one counted in the next one's peak: in
# `instructflow bench dedup-memory` at 1M records the largest worker's private memory was
# 327 MiB with the default and 269 MiB with pages returned at once (two runs, 160 s and 164 s).
# Ray Data's joins run their reduce in Polars, which allocates through its own jemalloc and,
# with Polars' settings, keeps freed pages for half a second to a second: in one process, five
# left joins of 200k rows left 127 MiB private that way and 107 MiB with decay 0.
# A value already set in the driver's environment wins (for jemalloc's options, option by
# option: they are appended after ours, and jemalloc takes the last).
WORKER_ENV = {
    "MIMALLOC_PURGE_DELAY": "0",
    JEMALLOC_CONF: "dirty_decay_ms:0,muzzy_decay_ms:0",
}


def local_system_config() -> dict[str, int]:
    """Ray's system settings for a Ray this process starts (``connect`` and the tests)."""
    return {
        "max_direct_call_object_size": INLINE_OBJECT_BYTES,
        "idle_worker_killing_time_threshold_ms": IDLE_WORKER_KEEP_MS,
    }


# Object-store settings the driver's environment has travel to every worker as they are, so
# that a Ray worker opens s3:// and gs:// paths with the endpoint and credentials the driver
# checked the recipe with (a MinIO or R2 endpoint, keys from the shell). Without them a worker
# on another node would try AWS itself, or that node's own credentials. AWS_PROFILE and
# GOOGLE_APPLICATION_CREDENTIALS name files, which must exist on the workers too.
FORWARDED_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
)


def worker_env() -> dict[str, str]:
    env = {
        name: os.environ.get(name, value)
        for name, value in WORKER_ENV.items()
        if name != JEMALLOC_CONF
    }
    users = without_polars_default(os.environ.get(JEMALLOC_CONF, ""))
    env[JEMALLOC_CONF] = ",".join(filter(None, [WORKER_ENV[JEMALLOC_CONF], users]))
    env.update({name: os.environ[name] for name in FORWARDED_ENV if name in os.environ})
    return env


def without_polars_default(conf: str) -> str:
    """``conf`` less what ``import polars`` put in front of it. Polars writes its defaults
    into the variable on import, before what was there, so once this process has imported
    it (a run does) the variable is Polars' settings, not a user's choice."""
    if conf.startswith(POLARS_JEMALLOC_DEFAULT):
        conf = conf[len(POLARS_JEMALLOC_DEFAULT) :]
    return conf.strip(",")


# Set by Ray's job supervisor for the driver of a Jobs API job: the job's runtime_env, which
# ray.init merges into the driver's own.
JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def connect(
    address: str | None, *, progress_bars: bool = True, num_cpus: int | None = None
) -> None:
    """Start or join Ray once per process; a session already started (tests) is reused.

    With an address, the driver's own copy of the packages travels as ``py_modules`` so the
    workers run exactly the code that validated the recipe, whatever the cluster has installed.
    Without one, a Ray address in ``RAY_ADDRESS`` is joined (Ray's own rule for ``ray.init``;
    a dashboard URL there is for ``instructflow submit`` and does not count). Ray sets it for
    the driver of every Jobs API job, so a submitted command runs on the cluster it was
    submitted to. Inside a job nothing is added to the job's runtime_env: it already carries
    the code and the worker environment (``instructflow submit`` puts them there), and Ray
    refuses a driver's env_vars that repeat the job's.
    """
    if not ray.is_initialized():
        address = address or ray_address_from_environment()
        if address:
            in_job = JOB_CONFIG_VARIABLE in os.environ
            ray.init(
                address=address,
                runtime_env=None
                if in_job
                else {"py_modules": [pipeline, ops, train], "env_vars": worker_env()},
                logging_level=logging.WARNING,
            )
        else:
            # "local", not None: with None, Ray joins any instance already running on this
            # machine (found by pgrep), where this process's settings are refused.
            ray.init(
                address="local",
                num_cpus=num_cpus,
                runtime_env={"env_vars": worker_env()},
                include_dashboard=False,
                logging_level=logging.WARNING,
                _system_config=local_system_config(),
            )
    context = DataContext.get_current()
    context.enable_progress_bars = progress_bars
    context.print_on_execution_start = False


def ray_address_from_environment() -> str | None:
    """``RAY_ADDRESS`` when it names a Ray cluster (``host:port``, ``auto``, ``ray://``), not
    when it is a dashboard's http(s) URL."""
    value = os.environ.get("RAY_ADDRESS", "")
    return value if value and not value.startswith(("http://", "https://")) else None
