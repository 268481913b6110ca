"""Handing a task's freed memory back to the system before the worker takes its next task.

A Ray worker process runs one task after another. What a task frees stays in the process's
allocators unless they return it: glibc keeps freed heap pages (and, after a large buffer is
freed, raises its mmap threshold so that later large buffers come from that heap too), and
Arrow's mimalloc pool keeps freed pages for a while. Kept pages count in the worker's memory
during every later task, so the more tasks a worker runs, the more chances it has to carry a
large one's leftovers into the next.
``release_freed_memory`` asks both allocators to return what is free; ``releasing`` calls it
after each call of a per-batch function. ``malloc_trim`` is glibc's; elsewhere (musl, macOS)
only Arrow's pool is asked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

import pyarrow as pa


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Return the free pages of Arrow's pool and of glibc's heaps to the system."""
    pa.default_memory_pool().release_unused()
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def releasing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, then ``release_freed_memory``: for Ray Data per-batch functions. The wrapper
    takes ``fn``'s name (a partial's function's), which Ray Data names the operator after."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            release_freed_memory()

    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "fn")
    call.__name__ = call.__qualname__ = name
    return call
