"""The first k rows of each target by a total order, exactly, with bounded memory per worker.

Input: a dataset of small key rows, ``_target`` (a stratum) plus the order key as unsigned
64-bit words ``_order0, _order1, ...`` compared lexicographically; the last word must make rows
unique (a row uid). Output, per target and per rank k: the **cutoff**, the key of the k-th
smallest row, so "row is among the first k" is the local test ``key <= cutoff`` and choosing
the rows never needs a join or a sort of the corpus. ``None`` means k = 0.

Radix select, one byte of the key per round:

1. A histogram of the key's next byte per search (a target and its rank k), restricted to
   the rows that match the search's prefix so far: a Ray Data aggregate, summed per batch on
   the workers and per (search, byte) in a hash shuffle. The driver gets at most 256 rows
   per search. The first round's histogram is passed in: the caller already needed it to
   count rows per target.
2. The driver walks the byte counts to the bucket holding the k-th row, fixes that byte in
   the prefix and subtracts the rows below it from k.
3. Rounds repeat while a search's bucket holds more than ``resolve_rows`` rows. A uniform
   hash shrinks the bucket 256-fold per round, so a 250M-row stratum needs one round.
4. The rows of each remaining bucket (at most ``resolve_rows`` per search) are hash-shuffled
   to one block per search, sorted there, and the k-th row's key is the cutoff.

No worker ever holds more than one bucket of ``resolve_rows`` key rows of a search, the
driver holds 256 counts per search, and the result depends only on the keys, never on how
rows were batched or ordered.

A small key table (the stages' ``single_task_max_keys``) is counted and sorted in one Ray task
instead, like near dedup's small candidate graphs: same cutoffs, no shuffle rounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipeline.distributed import grouped_blocks
from pipeline.stage import DEFAULT_PARTITION_BYTES

TARGET_COLUMN = "_target"
ORDER_PREFIX = "_order"
SEARCH_COLUMN = "_search"
DIGIT_COLUMN = "_digit"
COUNT_COLUMN = "_count"
DIGIT_BITS = 8
DIGITS_PER_WORD = 64 // DIGIT_BITS
BUCKETS = 1 << DIGIT_BITS
RESOLVE_ROWS = 1 << 20
ALL_ONES = np.uint64(0xFFFF_FFFF_FFFF_FFFF)

Cutoff = tuple[int, ...] | None


def order_names(words: int) -> list[str]:
    return [f"{ORDER_PREFIX}{index}" for index in range(words)]


def key_table(targets: pa.Array, words: np.ndarray) -> pa.Table:
    """The key rows: ``_target`` and one uint64 column per word of ``words`` (rows x words)."""
    columns = {TARGET_COLUMN: targets}
    for index, name in enumerate(order_names(words.shape[1])):
        columns[name] = pa.array(words[:, index], pa.uint64())
    return pa.table(columns)


def key_words(table: pa.Table) -> np.ndarray:
    names = [name for name in table.column_names if name.startswith(ORDER_PREFIX)]
    if not table.num_rows:
        return np.zeros((0, len(names)), np.uint64)
    return np.stack([table.column(name).to_numpy() for name in names], axis=1).astype(np.uint64)


def at_or_below(words: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Row-wise lexicographic ``words <= bound`` (both rows x words)."""
    below = np.zeros(words.shape[0], dtype=bool)
    equal = np.ones(words.shape[0], dtype=bool)
    for column in range(words.shape[1]):
        below |= equal & (words[:, column] < bound[:, column])
        equal &= words[:, column] == bound[:, column]
    return below | equal


def digits(words: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Byte number ``depth`` (0 = most significant) of each row's key."""
    word = words[np.arange(words.shape[0]), depth // DIGITS_PER_WORD]
    shift = (64 - DIGIT_BITS * (1 + depth % DIGITS_PER_WORD)).astype(np.uint64)
    return ((word >> shift) & np.uint64(BUCKETS - 1)).astype(np.int64)


def prefix_mask(depth: int, words: int) -> np.ndarray:
    """Bits of a key fixed by the first ``depth`` bytes."""
    mask = np.zeros(words, np.uint64)
    for index in range(words):
        bits = min(64, max(0, depth * DIGIT_BITS - 64 * index))
        if bits:
            mask[index] = ALL_ONES << np.uint64(64 - bits) if bits < 64 else ALL_ONES
    return mask


@dataclass
class Search:
    """The k-th row of one target: ``need`` more rows among those matching ``prefix``."""

    target: str
    slot: int
    need: int
    size: int
    depth: int
    prefix: tuple[int, ...]

    def narrow(self, counts: np.ndarray) -> None:
        """Fix the next byte to the bucket that holds the ``need``-th row."""
        cumulative = np.cumsum(counts)
        digit = int(np.searchsorted(cumulative, self.need))
        self.need -= int(cumulative[digit - 1]) if digit else 0
        self.size = int(counts[digit])
        word, position = divmod(self.depth, DIGITS_PER_WORD)
        prefix = list(self.prefix)
        prefix[word] |= digit << (64 - DIGIT_BITS * (position + 1))
        self.prefix = tuple(prefix)
        self.depth += 1


def flat(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.to_numpy(zero_copy_only=False)


def matches(batch: pa.Table, searches: Sequence[Search]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``batch`` inside each search's bucket: (row indexes, search indexes). A row
    may sit in the buckets of several searches of its target (one per slot)."""
    words = key_words(batch)
    masks = np.stack([prefix_mask(search.depth, words.shape[1]) for search in searches])
    prefixes = np.array([search.prefix for search in searches], np.uint64)
    found_rows, found_searches = [], []
    for slot in sorted({search.slot for search in searches}):
        members = np.array([i for i, s in enumerate(searches) if s.slot == slot], np.int64)
        names = pa.array([searches[i].target for i in members], pa.string())
        index = pc.index_in(batch.column(TARGET_COLUMN), value_set=names)
        position = flat(pc.fill_null(index, -1))
        rows = np.flatnonzero(position >= 0)
        ids = members[position[rows]]
        inside = np.all((words[rows] & masks[ids]) == prefixes[ids], axis=1)
        found_rows.append(rows[inside])
        found_searches.append(ids[inside])
    return np.concatenate(found_rows), np.concatenate(found_searches)


def target_digit_counts(batch: pa.Table) -> pa.Table:
    """Ray Data UDF: rows per (target, first byte) in one batch."""
    first = digits(key_words(batch), np.zeros(batch.num_rows, np.int64))
    table = pa.table({TARGET_COLUMN: batch.column(TARGET_COLUMN), DIGIT_COLUMN: first})
    counted = table.group_by([TARGET_COLUMN, DIGIT_COLUMN]).aggregate([([], "count_all")])
    return pa.table(
        {
            TARGET_COLUMN: counted.column(TARGET_COLUMN),
            DIGIT_COLUMN: counted.column(DIGIT_COLUMN).cast(pa.int64()),
            COUNT_COLUMN: counted.column("count_all").cast(pa.int64()),
        }
    )


def search_digit_counts(batch: pa.Table, searches: Sequence[Search]) -> pa.Table:
    """Ray Data UDF: rows per (search, next byte) among each search's bucket."""
    rows, ids = matches(batch, searches)
    depth = np.array([searches[i].depth for i in ids], np.int64)
    keys = ids * BUCKETS + digits(key_words(batch)[rows], depth)
    unique, counts = np.unique(keys, return_counts=True)
    return pa.table(
        {
            SEARCH_COLUMN: pa.array(unique // BUCKETS, pa.int64()),
            DIGIT_COLUMN: pa.array(unique % BUCKETS, pa.int64()),
            COUNT_COLUMN: pa.array(counts, pa.int64()),
        }
    )


def sum_counts(block: pa.Table, key: str) -> pa.Table:
    """Per block of whole (key, byte) groups: their summed counts."""
    totals = block.group_by([key, DIGIT_COLUMN]).aggregate([(COUNT_COLUMN, "sum")])
    return totals.rename_columns([key, DIGIT_COLUMN, COUNT_COLUMN])


def summed(partials: ray.data.Dataset, key: str, workers: int) -> dict:
    """Sum the per-batch byte counts per (key, byte) in a hash shuffle; the driver gets 256
    counts per key."""
    totals = partials.repartition(max(1, workers), keys=[key, DIGIT_COLUMN]).map_batches(
        partial(sum_counts, key=key), batch_size=None, batch_format="pyarrow"
    )
    blocks = list(totals.iter_batches(batch_format="pyarrow", batch_size=None))
    return histograms_of(pa.concat_tables(blocks), key) if blocks else {}


@ray.remote
def on_whole_table(fn: Callable[[pa.Table], Any], blocks: list) -> Any:
    """``fn`` over all blocks of a small materialized dataset, in one task."""
    return fn(pa.concat_tables(ray.get(blocks)))


def histograms_of(counts: pa.Table, key: str) -> dict:
    """(key, byte, count) rows as 256 counts per key."""
    histograms: dict = {}
    for name, digit, count in zip(
        counts.column(key).to_pylist(),
        counts.column(DIGIT_COLUMN).to_pylist(),
        counts.column(COUNT_COLUMN).to_pylist(),
        strict=True,
    ):
        histograms.setdefault(name, np.zeros(BUCKETS, np.int64))[digit] += count
    return histograms


def target_histograms(
    keys: ray.data.Dataset, workers: int, single_task: bool = False
) -> dict[str, np.ndarray]:
    """Rows per first byte of the key, per target: their sums are the targets' row counts.
    ``single_task``: count the whole (small, materialized) key table in one task."""
    if single_task:
        counts = on_whole_table.remote(target_digit_counts, keys.to_arrow_refs())
        return histograms_of(ray.get(counts), TARGET_COLUMN)
    partials = keys.map_batches(target_digit_counts, batch_format="pyarrow")
    return summed(partials, TARGET_COLUMN, workers)


def bucket_rows(batch: pa.Table, searches: Sequence[Search]) -> pa.Table:
    """Ray Data UDF: each search's bucket rows, tagged with the search."""
    rows, ids = matches(batch, searches)
    words = key_words(batch)[rows]
    columns = {SEARCH_COLUMN: pa.array(ids, pa.int64())}
    for index, name in enumerate(order_names(words.shape[1])):
        columns[name] = pa.array(words[:, index], pa.uint64())
    return pa.table(columns)


def pick_ranked(block: pa.Table, needs: Mapping[int, int]) -> pa.Table:
    """Per search in a block (whole searches per block): the key of its ``need``-th row."""
    words = key_words(block)
    ids = block.column(SEARCH_COLUMN).to_numpy()
    order = np.lexsort([*(words[:, i] for i in range(words.shape[1] - 1, -1, -1)), ids])
    ids, words = ids[order], words[order]
    present = np.unique(ids)
    starts = np.searchsorted(ids, present)
    picked = starts + np.array([needs[int(i)] for i in present], np.int64) - 1
    columns = {SEARCH_COLUMN: pa.array(present, pa.int64())}
    for index, name in enumerate(order_names(words.shape[1])):
        columns[name] = pa.array(words[picked, index], pa.uint64())
    return pa.table(columns)


def first_k_cutoffs(
    keys: ray.data.Dataset,
    ranks: Mapping[str, Sequence[int]],
    histograms: Mapping[str, np.ndarray],
    *,
    workers: int,
    resolve_rows: int = RESOLVE_ROWS,
    single_task: bool = False,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
) -> dict[str, list[Cutoff]]:
    """Per target, the cutoff key of each rank in ``ranks[target]`` (materialized ``keys``;
    ``histograms`` from ``target_histograms``). ``single_task``: sort the whole (small) key
    table in one task instead of the histogram rounds."""
    words = len([name for name in keys.schema().names if name.startswith(ORDER_PREFIX)])
    cutoffs: dict[str, list[Cutoff]] = {target: [] for target in ranks}
    searches: list[Search] = []
    for target in sorted(ranks):
        size = int(histograms[target].sum()) if target in histograms else 0
        for slot, rank in enumerate(ranks[target]):
            cutoffs[target].append(None if rank <= 0 else (int(ALL_ONES),) * words)
            if 0 < rank < size:
                searches.append(Search(target, slot, rank, size, 0, (0,) * words))
    if single_task:
        resolve_rows = sum(histogram.sum() for histogram in histograms.values())
    for search in searches:
        if search.size > resolve_rows:
            search.narrow(histograms[search.target])
    while wide := [
        s for s in searches if s.size > resolve_rows and s.depth < words * DIGITS_PER_WORD
    ]:
        partials = keys.map_batches(
            partial(search_digit_counts, searches=wide), batch_format="pyarrow"
        )
        for index, counts in summed(partials, SEARCH_COLUMN, workers).items():
            wide[index].narrow(counts)
    if searches:
        for index, key in resolve(keys, searches, workers, single_task, partition_bytes).items():
            search = searches[index]
            cutoffs[search.target][search.slot] = key
    return cutoffs


def ranked_in_buckets(table: pa.Table, searches: list[Search]) -> pa.Table:
    needs = {index: search.need for index, search in enumerate(searches)}
    return pick_ranked(bucket_rows(table, searches), needs)


def resolve(
    keys: ray.data.Dataset,
    searches: list[Search],
    workers: int,
    single_task: bool,
    partition_bytes: int = DEFAULT_PARTITION_BYTES,
) -> dict[int, tuple]:
    """The ``need``-th key of each search's bucket: in one task, or per search in blocks of
    a hash shuffle on the search."""
    if single_task:
        task = partial(ranked_in_buckets, searches=searches)
        batches = [ray.get(on_whole_table.remote(task, keys.to_arrow_refs()))]
    else:
        rows = keys.map_batches(partial(bucket_rows, searches=searches), batch_format="pyarrow")
        volume = sum(search.size for search in searches) * 8 * (1 + len(searches[0].prefix))
        picked = grouped_blocks(
            rows,
            SEARCH_COLUMN,
            partial(pick_ranked, needs={i: s.need for i, s in enumerate(searches)}),
            max(1, workers, math.ceil(volume / partition_bytes)),
        )
        batches = picked.iter_batches(batch_format="pyarrow", batch_size=None)
    found = {}
    for batch in batches:
        words = key_words(batch)
        for row, index in enumerate(batch.column(SEARCH_COLUMN).to_pylist()):
            found[index] = tuple(int(value) for value in words[row])
    return found


def cut_positions(
    targets: pa.ChunkedArray | pa.Array, words: np.ndarray, cutoffs: Mapping[str, list[Cutoff]]
) -> np.ndarray:
    """Per row, how many of its target's cutoffs lie below its key: 0 = among the first
    ``ranks[0]`` rows, 1 = between the first and second rank, and so on."""
    names = sorted(cutoffs)
    slots = max((len(cutoffs[name]) for name in names), default=0)
    bounds = np.zeros((len(names), slots, words.shape[1]), np.uint64)
    valid = np.zeros((len(names), slots), dtype=bool)
    for row, name in enumerate(names):
        for slot, cutoff in enumerate(cutoffs[name]):
            if cutoff is not None:
                bounds[row, slot] = cutoff
                valid[row, slot] = True
    found = pc.index_in(targets, value_set=pa.array(names, pa.string()))
    if found.null_count:
        raise ValueError("a row's target has no cutoffs: the key pass and this pass disagree")
    index = flat(found)
    inside = np.zeros(words.shape[0], np.int64)
    for slot in range(slots):
        inside += valid[index, slot] & at_or_below(words, bounds[index, slot])
    return slots - inside
