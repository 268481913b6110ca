"""Freed memory goes back to the system between tasks (pipeline.memory)."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import pytest

from pipeline.memory import MALLOC_TRIM, releasing

# 1,000 buffers of 100 kB come from glibc's heap (under its 128 KiB mmap threshold); one more
# buffer after them pins the heap's top, so freeing the rest leaves ~95 MiB of free pages
# that glibc keeps, as a worker keeps what its last task freed, until it is asked to trim.
FRAGMENTED_HEAP = """
import os
from pipeline.memory import release_freed_memory

def private():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

base = private()
blocks = [bytearray(100_000) for _ in range(1000)]
pin = bytearray(100_000)
del blocks
held = private() - base
release_freed_memory()
print(held >> 20, (private() - base) >> 20)
"""


@pytest.mark.skipif(MALLOC_TRIM is None, reason="glibc's malloc_trim is not available")
def test_release_returns_a_freed_heap_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP], capture_output=True, text=True, check=True
    )
    held, after = (int(value) for value in done.stdout.split())
    assert held >= 80, done.stdout
    assert after <= 10, done.stdout


def keepers(batch: list[int], *, offset: int) -> list[int]:
    return [value + offset for value in batch]


def test_releasing_keeps_the_result_and_the_name_ray_data_shows() -> None:
    wrapped = releasing(partial(keepers, offset=1))
    assert wrapped([1, 2]) == [2, 3]
    assert wrapped.__name__ == "keepers"
    assert releasing(keepers).__name__ == "keepers"


def test_releasing_passes_errors_through() -> None:
    def broken(batch: list[int]) -> list[int]:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        releasing(broken)([1])
