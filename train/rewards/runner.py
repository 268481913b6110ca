"""The recipe's rewards, each run under a timeout with its failures counted by name.

``RewardSet.score(samples)`` calls every reward of ``recipe.rewards`` once on the batch (in a
worker thread, so a hung reward is abandoned after ``timeout_s``) and returns a
``RewardBatch``: the weighted total per sample, which samples are valid, and per reward its
scores, failures, timeouts, not-applicable count, first error and seconds.

- A reward that raises or times out fails the whole batch for that reward; a built-in
  reward's per-sample error (a malformed constraint) fails only that sample. A sample with
  any failed reward is invalid: ``train.rl`` gives it no advantage and leaves it out of the
  loss, and the failures are logged by reward name. Never silently 0 or None.
- A sample where no reward applies (``Score.score`` None for all) is invalid too, counted as
  ``unscored``.
- ``RewardFailure`` is raised when one reward fails on every sample of a batch: a run whose
  reward is broken stops with the reward named and its error, rather than train on noise.
"""

from __future__ import annotations

import concurrent.futures
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from train.rewards.builtin import Reward, Sample, Score, build_reward


class RewardFailure(RuntimeError):
    """A reward failed on every completion of a batch; the message names it and its error."""


@dataclass
class RewardStats:
    """One reward's account of one batch."""

    name: str
    scores: np.ndarray  # per sample; nan where it failed or does not apply
    failures: int = 0  # samples it failed on (raised, timed out, bad value)
    timeouts: int = 0  # calls that ran past timeout_s
    not_applicable: int = 0
    error: str = ""  # the first failure's message
    seconds: float = 0.0
    details: Counter = field(default_factory=Counter)  # summed sub-scores
    detail_counts: Counter = field(default_factory=Counter)
    inapplicable: np.ndarray | None = None  # per sample: the reward returned None

    def __post_init__(self) -> None:
        if self.inapplicable is None:
            self.inapplicable = np.zeros(len(self.scores), dtype=bool)

    @property
    def failed(self) -> np.ndarray:
        return np.isnan(self.scores) & ~self.inapplicable


@dataclass
class RewardBatch:
    total: np.ndarray  # weighted sum of the rewards that apply; nan where invalid
    valid: np.ndarray  # bool: every reward that ran succeeded and at least one applied
    rewards: list[RewardStats]
    seconds: float

    def metrics(self) -> dict[str, float]:
        """Summable counts and sums for the log (``train.rl`` reduces them over ranks)."""
        out: dict[str, float] = {
            "reward_sum": float(np.nansum(self.total)),
            "reward_valid": float(self.valid.sum()),
            "reward_samples": float(len(self.total)),
        }
        for stats in self.rewards:
            scored = ~np.isnan(stats.scores)
            out[f"{stats.name}/sum"] = float(stats.scores[scored].sum())
            out[f"{stats.name}/scored"] = float(scored.sum())
            out[f"{stats.name}/failures"] = float(stats.failures)
            out[f"{stats.name}/timeouts"] = float(stats.timeouts)
            out[f"{stats.name}/not_applicable"] = float(stats.not_applicable)
            for key, value in stats.details.items():
                out[f"{stats.name}/{key}/sum"] = float(value)
                out[f"{stats.name}/{key}/count"] = float(stats.detail_counts[key])
        return out


class RewardSet:
    """The recipe's rewards, built once per worker (a reward model loads here)."""

    def __init__(self, specs: Sequence[Any], device: Any = "cpu") -> None:
        self.specs = list(specs)
        self.functions: list[Reward] = [
            build_reward(spec.kind, dict(spec.options), device) for spec in self.specs
        ]
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def score(self, samples: Sequence[Sample]) -> RewardBatch:
        started = time.perf_counter()
        count = len(samples)
        total = np.zeros(count)
        applied = np.zeros(count, dtype=bool)
        valid = np.ones(count, dtype=bool)
        accounts = []
        for spec, function in zip(self.specs, self.functions, strict=True):
            stats = self.run_one(spec, function, samples)
            valid &= ~stats.failed
            scored = ~np.isnan(stats.scores)
            total[scored] += spec.weight * stats.scores[scored]
            applied |= scored
            accounts.append(stats)
        valid &= applied
        return RewardBatch(
            np.where(valid, total, np.nan), valid, accounts, time.perf_counter() - started
        )

    def run_one(self, spec: Any, function: Reward, samples: Sequence[Sample]) -> RewardStats:
        name = spec.label
        count = len(samples)
        stats = RewardStats(name, np.full(count, np.nan))
        started = time.perf_counter()
        future = self.pool.submit(function, list(samples))
        try:
            results = future.result(timeout=spec.timeout_s)
        except concurrent.futures.TimeoutError:
            # The thread cannot be stopped: abandon it with its pool, start a fresh one.
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            stats.timeouts, stats.failures = 1, count
            stats.error = f"timed out after {spec.timeout_s:g} s on {count} completions"
            stats.seconds = time.perf_counter() - started
            return stats
        except Exception as error:  # the reward's own bug or bad input: counted by name
            stats.failures = count
            stats.error = f"{type(error).__name__}: {error}"
            stats.seconds = time.perf_counter() - started
            return stats
        stats.seconds = time.perf_counter() - started
        if not isinstance(results, list) or len(results) != count:
            stats.failures = count
            stats.error = f"returned {type(results).__name__}, not {count} scores"
            return stats
        for index, result in enumerate(results):
            if not isinstance(result, Score):
                stats.failures += 1
                stats.error = stats.error or f"returned {type(result).__name__}, not a Score"
                continue
            if result.score is None:
                if result.details.get("error"):
                    stats.failures += 1
                    stats.error = stats.error or str(result.details["error"])
                    continue
                stats.not_applicable += 1
                stats.inapplicable[index] = True
                continue
            if not math.isfinite(result.score):
                stats.failures += 1
                stats.error = stats.error or f"score {result.score} is not finite"
                continue
            stats.scores[index] = result.score
            for key, value in result.details.items():
                if isinstance(value, bool | int | float) and key != "error":
                    stats.details[key] += float(value)
                    stats.detail_counts[key] += 1
        return stats

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def check_batch(batch: RewardBatch, where: str) -> None:
    """Raise ``RewardFailure`` if a reward failed on every sample of the batch."""
    for stats in batch.rewards:
        if len(stats.scores) and stats.failures == len(stats.scores):
            raise RewardFailure(
                f"{where}: reward {stats.name!r} failed on all {stats.failures} completions: "
                f"{stats.error}"
            )


def failure_lines(batch: RewardBatch) -> list[str]:
    """One line per reward that failed on some samples, for the console."""
    return [
        f"reward {stats.name!r} failed on {stats.failures} of {len(stats.scores)} completions"
        + (f" ({stats.timeouts} timeout)" if stats.timeouts else "")
        + f": {stats.error}"
        for stats in batch.rewards
        if stats.failures
    ]


__all__ = ["RewardBatch", "RewardFailure", "RewardSet", "check_batch", "failure_lines"]
