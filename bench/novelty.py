"""``instructflow bench novelty``: the distributed ROUGE-L novelty filter against Self-Instruct's.

Self-Instruct and Alpaca keep a generated instruction when its ROUGE-L with every instruction
kept so far is below 0.7: each newcomer against every keeper, in one process. This bench runs,
on the same instructions in the same order, per size:

- **all-pairs**: that filter (``pipeline.novelty.greedy_all_pairs``, with the same exact
  bit-parallel ROUGE-L as ours, so the ratio measures the algorithm, not the LCS code). It is
  timed up to ``--all-pairs-max`` instructions; above, its time is extrapolated from the
  comparisons it would make (exactly: the sum over instructions of the keepers before it,
  known from the exact kept set) at the per-comparison cost measured at the largest timed size.
- **exact index**: the same kept set through prefix filtering in one process
  (``greedy_exact_index``): the exact answer at every size, to check ours against.
- **instructflow**: ``pipeline.novelty.similar_losers`` on Ray (MinHash-LSH over indexed
  tokens, exact ROUGE-L on bucket pairs, the greedy pass over the similar pairs), on a Ray that
  is already started and warmed up, with ``--workers`` CPUs.

Reported: kept counts, instructions on which ours and the exact set disagree (goal: <= 1%),
wall seconds and the all-pairs / instructflow ratio (goal: >= 20x at 200k).

The instructions are a generated set: ``bench.corpora`` English records (templates over word
banks, so many tasks are near copies of others, as a generator's are), or ``--corpus``, a
JSON/JSONL file of alpaca-style records (its ``instruction`` field) or of plain strings.

    instructflow bench novelty --sizes 10000 50000 200000
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.novelty import (
    PROBE_SCHEMA,
    greedy_all_pairs,
    greedy_exact_index,
    rouge_tokens,
    similar_losers,
)


@dataclass
class SizeResult:
    size: int
    kept_exact: int
    kept_ours: int
    disagree: int
    disagree_share: float
    exact_index_s: float
    ours_s: float
    all_pairs_s: float
    all_pairs_measured: bool
    all_pairs_comparisons: int
    kept_all_pairs: int | None
    ratio: float
    exact_index_ratio: float


def instructions(size: int, seed: int, corpus: str | None) -> list[str]:
    """``size`` instructions in generation order."""
    if corpus:
        path = Path(corpus)
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
        texts = [item if isinstance(item, str) else item["instruction"] for item in items]
        if len(texts) < size:
            raise ValueError(f"{corpus} has {len(texts)} instructions, fewer than {size}")
        return texts[:size]
    from bench.corpora import generate_records

    records = generate_records(size, seed=seed, language_mix={"en": 1.0}, system_rate=0.0)
    return [record["instruction"] for record in records]


def probe_table(texts: list[str]) -> pa.Table:
    return pa.table(
        {
            "_uid": pa.array(np.arange(len(texts)), pa.int64()),
            "id": [f"i{index:07d}" for index in range(len(texts))],
            "_rank": pa.array(np.arange(len(texts), dtype=np.float64)),
            "_fixed": pa.array(np.zeros(len(texts), dtype=bool)),
            "text": texts,
        },
        schema=PROBE_SCHEMA,
    )


def run_ours(
    ray: Any, texts: list[str], threshold: float, workers: int, seed: int
) -> tuple[np.ndarray, float]:
    table = probe_table(texts)
    rows = max(1, -(-table.num_rows // (4 * workers)))
    blocks = [table.slice(at, rows) for at in range(0, table.num_rows, rows)]
    started = time.perf_counter()
    losers = similar_losers(
        ray.data.from_arrow(blocks),
        threshold=threshold,
        num_perm=128,
        recall=0.995,
        seed=seed,
        num_partitions=max(workers, -(-len(texts) // 50_000) * workers),
    )
    dropped = np.zeros(len(texts), dtype=bool)
    for ref in losers.to_arrow_refs():
        dropped[ray.get(ref).column("_uid").to_numpy()] = True
    return ~dropped, time.perf_counter() - started


def comparisons_of(kept: np.ndarray) -> int:
    """What the all-pairs filter compares: each instruction with every keeper before it."""
    before = np.concatenate([[0], np.cumsum(kept)[:-1]])
    return int(before.sum())


def bench_novelty(
    sizes: list[int],
    *,
    threshold: float = 0.7,
    all_pairs_max: int = 10_000,
    workers: int = 2,
    seed: int = 0,
    corpus: str | None = None,
    json_out: str | None = None,
    warmup: int = 500,
) -> list[SizeResult]:
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Warm-up: worker processes and the shuffle machinery start once, outside the timings.
    if warmup:
        run_ours(ray, instructions(warmup, seed + 1, None), threshold, workers, seed)
    per_comparison: float | None = None
    results = []
    for size in sorted(sizes):
        texts = instructions(size, seed, corpus)
        tokens = [rouge_tokens(text) for text in texts]
        ours, ours_s = run_ours(ray, texts, threshold, workers, seed)
        started = time.perf_counter()
        exact, _ = greedy_exact_index(tokens, threshold)
        exact_s = time.perf_counter() - started
        comparisons = comparisons_of(exact)
        kept_all_pairs = None
        if size <= all_pairs_max:
            started = time.perf_counter()
            all_pairs, counted = greedy_all_pairs(tokens, threshold)
            all_pairs_s = time.perf_counter() - started
            assert counted == comparisons and (all_pairs == exact).all(), "exact index disagrees"
            kept_all_pairs = int(all_pairs.sum())
            per_comparison = all_pairs_s / max(comparisons, 1)
        elif per_comparison is None:
            raise ValueError(f"--all-pairs-max {all_pairs_max} is below every size: nothing timed")
        else:
            all_pairs_s = per_comparison * comparisons
        disagree = int((ours != exact).sum())
        result = SizeResult(
            size=size,
            kept_exact=int(exact.sum()),
            kept_ours=int(ours.sum()),
            disagree=disagree,
            disagree_share=disagree / size,
            exact_index_s=exact_s,
            ours_s=ours_s,
            all_pairs_s=all_pairs_s,
            all_pairs_measured=size <= all_pairs_max,
            all_pairs_comparisons=comparisons,
            kept_all_pairs=kept_all_pairs,
            ratio=all_pairs_s / ours_s,
            exact_index_ratio=exact_s / ours_s,
        )
        results.append(result)
        print_result(result)
        if json_out:  # after every size: a long run's early sizes survive it
            Path(json_out).write_text(json.dumps([asdict(item) for item in results], indent=2))
    return results


def print_result(result: SizeResult) -> None:
    how = "timed" if result.all_pairs_measured else "extrapolated"
    print(
        f"{result.size:>8} instructions: kept {result.kept_exact} (exact) / {result.kept_ours} "
        f"(instructflow), disagree on {result.disagree} ({result.disagree_share:.3%}); "
        f"all-pairs {result.all_pairs_s:.1f} s ({how}, {result.all_pairs_comparisons:,} "
        f"comparisons), exact index {result.exact_index_s:.1f} s, instructflow "
        f"{result.ours_s:.1f} s: {result.ratio:.1f}x all-pairs, "
        f"{result.exact_index_ratio:.2f}x exact index",
        flush=True,
    )
