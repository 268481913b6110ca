"""Connecting to Ray: embedded local Ray on a laptop, or a running cluster by ``--address``."""

from __future__ import annotations

import logging

import ray
from ray.data import DataContext

import ops
import pipeline
import train


def connect(
    address: str | None, *, progress_bars: bool = True, num_cpus: int | None = None
) -> None:
    """Start or join Ray once per process; a session already started (tests) is reused.

    With an address, the driver's own copy of the packages travels as ``py_modules`` so the
    workers run exactly the code that validated the recipe, whatever the cluster has installed.
    """
    if not ray.is_initialized():
        if address:
            ray.init(
                address=address,
                runtime_env={"py_modules": [pipeline, ops, train]},
                logging_level=logging.WARNING,
            )
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    context = DataContext.get_current()
    context.enable_progress_bars = progress_bars
    context.print_on_execution_start = False
