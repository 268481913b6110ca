"""Template-aware near-dedup keys: the shingles of text that recurs across many records of
one input file (template words, option lists, label sets) are masked before MinHash.

A prompted collection wraps one source passage in many datasets' templates. Two records of
one passage under two templates share the passage's shingles and little else, and two
different passages under one template share all of its words: whole-record Jaccard misses
the first pair and, for short passages, finds the second. What one file's records have in
common is its template, so it is learned from the corpus itself:

1. **Sample** (one map pass): each file's live records are sampled by a seeded hash of their
   row uid, at a rate that leaves about ``template_sample`` of them per file (the file's
   record count comes from the read's tally). Each sampled record emits its distinct shingle
   hashes with its file, and one marker row that counts it.
2. **Count** (one hash shuffle on the file): per file, a shingle in more than
   ``template_share`` of the file's sampled records is a template shingle. Files with fewer
   than ``template_min_records`` sampled records learn nothing: too few to tell a template
   from a passage they happen to share. What one file holds is bounded: at most
   ``template_sample`` records' shingles in, at most ``shingles per record / share`` out.
3. **Mask**: the signature of a record is the MinHash of its shingles less its file's template
   shingles (``pipeline.minhash.MinHasher.masked_signatures``). A record whose every shingle
   is template keeps them all: it is compared on its whole text rather than left out.

The template shingles travel to the signature workers as one object (a few thousand hashes
per file). The stage reports the files that learned a template, its shingles, and how many
of the records' shingles were masked (``findings``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import partial

import numpy as np
import pyarrow as pa
import ray

from pipeline.dedup_keys import LINE_BITS, alive, key_texts, row_uids
from pipeline.distributed import grouped_blocks
from pipeline.minhash import Shingler, fmix64_array

FILE_COLUMN = "_file"
SHINGLE_COLUMN = "_shingle"
MARKER = np.uint64(0)  # the row that counts a sampled record; a real hash 0 becomes 1
SAMPLE_SALT = 0x7E4A_1A7E
TEMPLATE_SCHEMA = pa.schema(
    [pa.field(FILE_COLUMN, pa.int64()), pa.field(SHINGLE_COLUMN, pa.uint64())]
)


def sample_thresholds(records_per_file: dict[int, int], sample: int) -> dict[int, int]:
    """Per file index, the uint64 a record's sampling hash must stay below: about ``sample``
    records of the file's count."""
    top = 2**64 - 1
    return {
        file: top if count <= sample else int(top * (sample / count))
        for file, count in records_per_file.items()
    }


def sampled_shingles(
    batch: pa.Table,
    *,
    key: str,
    file_index: dict[str, int],
    thresholds: dict[int, int],
    seed: int,
    word_ngram: int,
    char_ngram: int,
) -> pa.Table:
    """(file, shingle) rows of the sampled live records of ``batch``: their distinct shingle
    hashes and one MARKER row each."""
    batch = alive(batch)
    uids = row_uids(batch, file_index)
    files = uids >> LINE_BITS
    hashes = fmix64_array(uids.astype(np.uint64) ^ np.uint64(seed ^ SAMPLE_SALT))
    original = uids >= 0  # augmented rows have no file of their own
    limits = np.array(
        [
            thresholds.get(int(file), 0) if mine else 0
            for file, mine in zip(files.tolist(), original.tolist(), strict=True)
        ],
        dtype=np.uint64,
    )
    keep = original & (hashes < limits)
    if not keep.any():
        return TEMPLATE_SCHEMA.empty_table()
    shingler = Shingler(word_ngram=word_ngram, char_ngram=char_ngram)
    texts = key_texts(batch.filter(pa.array(keep)), key)
    file_parts, shingle_parts = [], []
    for file, text in zip(files[keep].tolist(), texts, strict=True):
        shingles = shingler.shingle_hashes(text)
        shingles[shingles == MARKER] = 1
        shingles = np.concatenate([np.array([MARKER], np.uint64), np.unique(shingles)])
        file_parts.append(np.full(shingles.size, file, dtype=np.int64))
        shingle_parts.append(shingles)
    return pa.table(
        {
            FILE_COLUMN: pa.array(np.concatenate(file_parts), pa.int64()),
            SHINGLE_COLUMN: pa.array(np.concatenate(shingle_parts), pa.uint64()),
        },
        schema=TEMPLATE_SCHEMA,
    )


def frequent_shingles(block: pa.Table, *, share: float, min_records: int) -> pa.Table:
    """Per file of the block (sorted by file), its shingles in more than ``share`` of its
    sampled records, when it has at least ``min_records`` of them."""
    if block.num_rows == 0:
        return TEMPLATE_SCHEMA.empty_table()
    files = block.column(FILE_COLUMN).to_numpy()
    shingles = block.column(SHINGLE_COLUMN).to_numpy()
    bounds = np.flatnonzero(np.diff(files)) + 1
    file_parts, shingle_parts = [], []
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, files.size], strict=True):
        values = shingles[start:stop]
        records = int(np.count_nonzero(values == MARKER))
        if records < min_records:
            continue
        unique, counts = np.unique(values[values != MARKER], return_counts=True)
        common = unique[counts > share * records]
        file_parts.append(np.full(common.size, files[start], dtype=np.int64))
        shingle_parts.append(common)
    if not file_parts:
        return TEMPLATE_SCHEMA.empty_table()
    return pa.table(
        {
            FILE_COLUMN: pa.array(np.concatenate(file_parts), pa.int64()),
            SHINGLE_COLUMN: pa.array(np.concatenate(shingle_parts), pa.uint64()),
        },
        schema=TEMPLATE_SCHEMA,
    )


class Templates:
    """Each file's sorted template shingles, packed for the signature workers: ``lookup``
    gives a batch's rows their slice of ``shingles``."""

    def __init__(self, by_file: dict[int, np.ndarray]) -> None:
        files = sorted(by_file)
        self.files = np.array(files, dtype=np.int64)
        parts = [np.sort(by_file[file]).astype(np.uint64) for file in files]
        sizes = np.array([part.size for part in parts], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.shingles = np.concatenate(parts) if parts else np.empty(0, np.uint64)

    def lookup(self, uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, stop) into ``shingles`` per row; empty for rows of files without a
        template and for augmented rows."""
        starts = np.zeros(uids.size, dtype=np.int64)
        stops = np.zeros(uids.size, dtype=np.int64)
        if self.files.size == 0:
            return starts, stops
        files = np.where(uids >= 0, uids >> LINE_BITS, -1)
        position = np.minimum(np.searchsorted(self.files, files), self.files.size - 1)
        found = self.files[position] == files
        starts[found] = self.offsets[position[found]]
        stops[found] = self.offsets[position[found] + 1]
        return starts, stops

    def counts(self) -> Counter:
        return Counter(
            {
                "template.files": int(self.files.size),
                "template.shingles": int(self.shingles.size),
            }
        )


def learn_templates(
    dataset: ray.data.Dataset,
    *,
    key: str,
    file_index: dict[str, int],
    records_per_file: dict[int, int],
    seed: int,
    share: float,
    min_records: int,
    sample: int,
    word_ngram: int,
    char_ngram: int,
    partitions: int,
) -> Templates:
    """Steps 1 and 2 of the module docstring: the template shingles of every file."""
    sampled = dataset.map_batches(
        partial(
            sampled_shingles,
            key=key,
            file_index=file_index,
            thresholds=sample_thresholds(records_per_file, sample),
            seed=seed,
            word_ngram=word_ngram,
            char_ngram=char_ngram,
        ),
        batch_format="pyarrow",
    )
    found = grouped_blocks(
        sampled,
        FILE_COLUMN,
        partial(frequent_shingles, share=share, min_records=min_records),
        max(1, min(partitions, len(records_per_file))),
    )
    # Bounded: per file at most (shingles per record) / share of them.
    return templates_of(found.iter_batches(batch_size=None, batch_format="pyarrow"))


def templates_of(blocks: Iterable[pa.Table]) -> Templates:
    """``Templates`` from blocks of ``frequent_shingles`` rows."""
    by_file: dict[int, list[np.ndarray]] = {}
    for block in blocks:
        files = block.column(FILE_COLUMN).to_numpy()
        shingles = block.column(SHINGLE_COLUMN).to_numpy()
        for file in np.unique(files):
            by_file.setdefault(int(file), []).append(shingles[files == file])
    return Templates({file: np.concatenate(parts) for file, parts in by_file.items()})


def templates_in_process(
    table: pa.Table,
    *,
    key: str,
    file_index: dict[str, int],
    records_per_file: dict[int, int],
    seed: int,
    share: float,
    min_records: int,
    sample: int,
    word_ngram: int,
    char_ngram: int,
) -> Templates:
    """``learn_templates`` over a whole input held in one table: the same sample (a hash of
    each row's uid) and the same counts, with a sort in place of the shuffle on the file."""
    sampled = sampled_shingles(
        table,
        key=key,
        file_index=file_index,
        thresholds=sample_thresholds(records_per_file, sample),
        seed=seed,
        word_ngram=word_ngram,
        char_ngram=char_ngram,
    )
    found = frequent_shingles(sampled.sort_by(FILE_COLUMN), share=share, min_records=min_records)
    return templates_of([found])
