"""Novelty: Self-Instruct's ROUGE-L filter, distributed and sub-quadratic.

Self-Instruct (and Alpaca's generator after it) keeps a new instruction only when its ROUGE-L
F-measure with every instruction kept so far is below a threshold (0.7): a greedy pass in
generation order, comparing each newcomer with every keeper, O(n x kept), in one process.
Here the decisions are the same (the same kept set, up to LSH misses, measured by ``instructflow
bench novelty``), found without the all-pairs scan:

    rows --tokens, MinHash of indexed tokens--> bands (band, uid, rank, tokens)
      --hash shuffle on band--> buckets: each pair of a bucket checked with exact ROUGE-L
      --> edges (earlier, later, similarity) at or above the threshold
      --connected components (pipeline.components)--> per component, the greedy pass on its
      edges alone: a row is dropped when an earlier *kept* row is similar, else kept

**Why MinHash finds the pairs.** ROUGE-L's tokens (lowercase ASCII letters and digits, as
``rouge_score`` without a stemmer) are hashed with their occurrence number ("the#1", "the#2"),
so a text is a set whose Jaccard similarity with another is the multiset one. A longest common
subsequence of length L is common to both multisets, so with lengths a and b the overlap is at
least L, and F = 2L / (a + b) >= t gives Jaccard >= t / (2 - t) (0.538 at 0.7). The LSH shape is
chosen so that a pair at exactly that Jaccard becomes a candidate with probability
``recall`` (0.995: 42 bands of 3 rows of 128 permutations at 0.7); real paraphrases sit well
above the bound and are missed far less often. Candidates are never trusted: each pair is
scored with exact ROUGE-L (bit-parallel LCS, Hyyro 2004), each pair once per block however
many buckets it shares, after two exact bounds that rule most out without an LCS: the length
bound F <= 2 min(a, b) / (a + b), and a 256-bit Bloom filter of each text's indexed tokens
whose AND (plus the bits a filter lost to its own collisions) bounds the common tokens.

**Big buckets.** A bucket of k alike rows has k^2 / 2 pairs. With ``window`` (32) a row is
checked against the bucket's first ``window`` rows in greedy order (the likely keepers) and
the ``window`` rows just before it: O(k) per bucket. A pair this skips is usually found in
another of the 42 buckets the two share. ``window: null`` checks every pair. Likewise a
cluster of n alike rows has n^2 / 2 similar pairs; each row keeps only its ``edges_per_row``
(16) earliest similar partners per shuffle block, since its fate is decided by the earliest
kept one, and candidate pairs are checked in chunks, so a block's memory stays bounded. The bench
(``instructflow bench novelty``) counts the rows whose fate differs from the exact filter.

**Why components give the greedy answer.** The greedy pass is the lexicographically first
maximal independent set of the graph whose edges are the similar pairs, taken in rank order: a
row's fate depends only on earlier rows it has an edge to, so each connected component is
decided on its own, from its edges, in one task. Rows on no edge are kept without ever being
compared.

**Order and references.** ``rank`` orders the greedy pass (generation order in
``self_instruct``; the keeper policy, then ``id``, then row uid in the ``novelty`` stage).
Reference rows (``fixed``: a Self-Instruct round's task pool) are always kept, come before
every other row and are never compared with each other.

**Embeddings.** With ``embedding:`` (``EmbeddingConfig`` below), pairs whose embedding
cosine reaches its threshold are found by random-hyperplane LSH, checked exactly, and join the
ROUGE-L pairs before the greedy pass: paraphrases with few words in common are caught too.

Memory: a bucket or a component is one task; the shuffle moves ``bands`` rows of a uid and the
token hashes per text. Texts without tokens are never similar to anything (ROUGE-L 0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache, partial
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from pipeline.components import connected_components
from pipeline.dedup_keys import (
    RANK_COLUMN,
    UID_COLUMN,
    KeeperPolicy,
    KeyName,
    alive,
    keeper_rank,
    key_texts,
    row_uids,
)
from pipeline.distributed import count_alive, grouped_blocks, mark_drops, partitions_for
from pipeline.minhash import band_hashes, fmix64_array, permutations
from pipeline.stage import GlobalContext, GlobalStage, StageConfig

STAGE = "novelty"
TOO_SIMILAR = "novelty.too_similar"
DROP_REASONS = (TOO_SIMILAR,)
ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
NOVELTY_SEED = 0x5E1F_1A57
FIXED_COLUMN = "_fixed"
TOKENS_COLUMN = "_tokens"
TEXT_COLUMN = "text"
BAND_COLUMN = "_band"
BLOOM_COLUMN = "_bloom"
# A bucket's rows are checked against its first DEFAULT_WINDOW rows and the DEFAULT_WINDOW
# just before them: a bucket of k rows costs O(k) checks, not k^2 / 2 (``window_pairs``).
DEFAULT_WINDOW = 32
# Similar pairs kept per row and block: its earliest partners (``earliest_per_row``).
DEFAULT_EDGES_PER_ROW = 16
# Candidate pairs a block's check holds at a time.
CHUNK_PAIRS = 2_000_000
# Words of a text's indexed-token Bloom filter: the popcount of two filters' AND, plus the
# bits either lost to its own collisions, bounds their common indexed tokens and so the LCS
# from above: most false candidates are ruled out without an LCS.
BLOOM_WORDS = 4
# Rows whose MinHash is computed at a time: (num_perm x tokens) uint64 products stay small.
SIGNATURE_SLICE_ROWS = 1024
# Similar pairs up to this many (about 80 bytes each) are resolved in one task, as near
# dedup clusters its small candidate graphs.
SINGLE_TASK_MAX_EDGES = 2_000_000

PROBE_SCHEMA = pa.schema(
    [
        pa.field(UID_COLUMN, pa.int64()),
        pa.field("id", pa.string()),
        pa.field(RANK_COLUMN, pa.float64()),
        pa.field(FIXED_COLUMN, pa.bool_()),
        pa.field(TEXT_COLUMN, pa.string()),
    ]
)
BAND_SCHEMA = pa.schema(
    [
        pa.field(BAND_COLUMN, pa.uint64()),
        pa.field(UID_COLUMN, pa.int64()),
        pa.field("id", pa.string()),
        pa.field(RANK_COLUMN, pa.float64()),
        pa.field(FIXED_COLUMN, pa.bool_()),
        pa.field(TOKENS_COLUMN, pa.binary()),
        pa.field(BLOOM_COLUMN, pa.binary()),
    ]
)
# An edge runs from the earlier row (u) to the later (v); the later one's fate depends on it.
SIMILAR_SCHEMA = pa.schema(
    [
        pa.field("u", pa.int64()),
        pa.field("v", pa.int64()),
        pa.field("similarity", pa.float64()),
        pa.field("u_id", pa.string()),
        pa.field("u_rank", pa.float64()),
        pa.field("u_fixed", pa.bool_()),
        pa.field("v_id", pa.string()),
        pa.field("v_rank", pa.float64()),
    ]
)
LOSER_SCHEMA = pa.schema(
    [
        pa.field(UID_COLUMN, pa.int64()),
        pa.field("id", pa.string()),
        pa.field("similar_to", pa.string()),
        pa.field("similarity", pa.float64()),
    ]
)


# ----- exact ROUGE-L ----------------------------------------------------------------------


def rouge_tokens(text: str) -> list[str]:
    """ROUGE's default tokens (``rouge_score``, no stemmer): lowercase ASCII letters and digits."""
    return ROUGE_TOKEN.findall(text.lower())


def token_ids(tokens: Sequence[str]) -> np.ndarray:
    """A 64-bit hash per token: LCS on these equals LCS on the tokens (barring a collision,
    about 1e-17 per pair of distinct tokens)."""
    return np.array([xxhash.xxh3_64_intdigest(token.encode()) for token in tokens], dtype=np.uint64)


def lcs_length(first: Sequence[Any], second: Sequence[Any]) -> int:
    """Length of the longest common subsequence, bit-parallel over ``first`` (Hyyro 2004,
    "Bit-parallel LCS-length computation revisited"): one pass over ``second``, each step a
    few big-integer operations on a |first|-bit vector."""
    if not first or not second:
        return 0
    if len(second) > len(first):
        first, second = second, first
    masks: dict[Any, int] = {}
    for index, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << index)
    full = (1 << len(first)) - 1
    vector = full
    for token in second:
        matched = vector & masks.get(token, 0)
        vector = ((vector + matched) | (vector - matched)) & full
    return len(first) - vector.bit_count()


def rouge_l(first: Sequence[Any], second: Sequence[Any]) -> float:
    """ROUGE-L F-measure of two token sequences (``rouge_score``'s, beta 1)."""
    common = lcs_length(first, second)
    if common == 0:
        return 0.0
    return 2.0 * common / (len(first) + len(second))


def could_reach(first_length: int, second_length: int, threshold: float) -> bool:
    """F <= 2 min / (a + b): pairs this rules out need no LCS."""
    total = first_length + second_length
    return total > 0 and 2.0 * min(first_length, second_length) >= threshold * total - 1e-12


def jaccard_bound(threshold: float) -> float:
    """The Jaccard similarity of indexed-token sets that a ROUGE-L F of ``threshold`` implies."""
    return threshold / (2.0 - threshold)


def lsh_shape(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """(bands, rows), bands x rows <= num_perm: the most rows (fewest false candidates) whose
    S-curve still reaches ``recall`` at the Jaccard bound of ``threshold``."""
    bound = jaccard_bound(threshold)
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - bound**rows) ** bands >= recall:
            return bands, rows
    raise ValueError(
        f"num_perm {num_perm} cannot reach recall {recall} at ROUGE-L {threshold} "
        f"(Jaccard {bound:.3f}); raise num_perm or lower recall"
    )


# ----- the greedy pass, in one process ----------------------------------------------------


def greedy_all_pairs(
    token_lists: Sequence[Sequence[Any]], threshold: float
) -> tuple[np.ndarray, int]:
    """The Self-Instruct / Alpaca filter: in order, keep a text when its ROUGE-L with every
    text kept so far is below ``threshold``. Returns (kept mask, comparisons made)."""
    kept_mask = np.zeros(len(token_lists), dtype=bool)
    kept: list[Sequence[Any]] = []
    comparisons = 0
    for index, tokens in enumerate(token_lists):
        comparisons += len(kept)
        if all(rouge_l(tokens, other) < threshold for other in kept):
            kept.append(tokens)
            kept_mask[index] = True
    return kept_mask, comparisons


def greedy_exact_index(
    token_lists: Sequence[Sequence[Any]], threshold: float
) -> tuple[np.ndarray, int]:
    """The same kept set as ``greedy_all_pairs``, exactly, through prefix filtering: a pair at
    ROUGE-L >= t shares at least t * n / (2 - t) indexed tokens of a text of n tokens, so under
    one global token order the first n - that + 1 tokens of each text intersect. Only kept
    texts are indexed. Returns (kept mask, ROUGE-L computations made)."""
    indexed = [indexed_tokens(tokens) for tokens in token_lists]
    frequency: dict[Any, int] = {}
    for tokens in indexed:
        for token in tokens:
            frequency[token] = frequency.get(token, 0) + 1
    postings: dict[Any, list[int]] = {}
    kept_mask = np.zeros(len(token_lists), dtype=bool)
    computed = 0
    for index, (tokens, items) in enumerate(zip(token_lists, indexed, strict=True)):
        prefix = prefix_of(items, frequency, threshold)
        candidates = {other for token in prefix for other in postings.get(token, ())}
        similar = False
        for other in sorted(candidates):
            if not could_reach(len(tokens), len(token_lists[other]), threshold):
                continue
            computed += 1
            if rouge_l(tokens, token_lists[other]) >= threshold:
                similar = True
                break
        if not similar and tokens:
            kept_mask[index] = True
            for token in prefix:
                postings.setdefault(token, []).append(index)
        elif not tokens:
            kept_mask[index] = True
    return kept_mask, computed


def indexed_tokens(tokens: Iterable[Any]) -> list[tuple[Any, int]]:
    seen: dict[Any, int] = {}
    items = []
    for token in tokens:
        seen[token] = seen.get(token, 0) + 1
        items.append((token, seen[token]))
    return items


def prefix_of(
    items: list[tuple[Any, int]], frequency: dict[Any, int], threshold: float
) -> list[tuple[Any, int]]:
    if not items:
        return []
    need = math.ceil(threshold * len(items) / (2.0 - threshold) - 1e-9)
    ordered = sorted(items, key=lambda item: (frequency[item], str(item)))
    return ordered[: len(items) - max(need, 1) + 1]


# ----- MinHash of indexed tokens ----------------------------------------------------------


def indexed_hashes(ids: np.ndarray) -> np.ndarray:
    """Token hashes with their occurrence number mixed in: a multiset as a set."""
    if ids.size == 0:
        return ids
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    run = np.arange(ids.size) - np.repeat(starts, np.diff(np.r_[starts, ids.size]))
    occurrence = np.empty(ids.size, dtype=np.uint64)
    occurrence[order] = run.astype(np.uint64)
    return fmix64_array(ids ^ (occurrence * np.uint64(0x9E3779B97F4A7C15)))


def signatures_of(id_lists: Sequence[np.ndarray], num_perm: int, seed: int) -> np.ndarray:
    """(n, num_perm) MinHash of each text's indexed-token set; every text has a token."""
    a, b = permutations(num_perm, seed ^ NOVELTY_SEED)
    out = np.empty((len(id_lists), num_perm), dtype=np.uint64)
    for start in range(0, len(id_lists), SIGNATURE_SLICE_ROWS):
        part = [indexed_hashes(ids) for ids in id_lists[start : start + SIGNATURE_SLICE_ROWS]]
        lengths = np.array([len(ids) for ids in part])
        values = np.concatenate(part)
        with np.errstate(over="ignore"):
            hashed = values[None, :] * a[:, None] + b[:, None]
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        out[start : start + len(part)] = np.minimum.reduceat(hashed, offsets, axis=1).T
    return out


def bloom_filters(id_lists: Sequence[np.ndarray]) -> np.ndarray:
    """(n, BLOOM_WORDS) uint64: one bit per indexed token of each text."""
    lengths = np.array([len(ids) for ids in id_lists], dtype=np.int64)
    out = np.zeros((len(id_lists), BLOOM_WORDS), dtype=np.uint64)
    if not lengths.sum():
        return out
    values = np.concatenate([indexed_hashes(ids) for ids in id_lists])
    rows = np.repeat(np.arange(len(id_lists)), lengths)
    bits = (values >> np.uint64(58)).astype(np.int64)  # top 6 bits: the bit in a word
    words = (values % np.uint64(BLOOM_WORDS)).astype(np.int64)
    np.bitwise_or.at(out, (rows, words), np.left_shift(np.uint64(1), bits.astype(np.uint64)))
    return out


def band_table(probes: pa.Table, *, bands: int, rows: int, num_perm: int, seed: int) -> pa.Table:
    """Probe rows -> one row per (row, band) for the shuffle; rows without tokens are left out."""
    texts = probes.column(TEXT_COLUMN).to_pylist()
    id_lists = [token_ids(rouge_tokens(text or "")) for text in texts]
    usable = np.array([len(ids) > 0 for ids in id_lists], dtype=bool)
    if not usable.any():
        return BAND_SCHEMA.empty_table()
    probes = probes.filter(pa.array(usable))
    id_lists = [ids for ids, use in zip(id_lists, usable, strict=True) if use]
    hashes = band_hashes(signatures_of(id_lists, num_perm, seed), bands, rows)
    payload = {
        TOKENS_COLUMN: pa.array([ids.tobytes() for ids in id_lists], pa.binary()),
        BLOOM_COLUMN: pa.array([row.tobytes() for row in bloom_filters(id_lists)], pa.binary()),
    }
    return banded_rows(probes, hashes, payload, BAND_SCHEMA)


def banded_rows(
    probes: pa.Table, hashes: np.ndarray, payload: dict[str, pa.Array], schema: pa.Schema
) -> pa.Table:
    """One row per (probe, band) of an (n, bands) hash array: the probe's identity columns
    and its ``payload`` (what a bucket check reads) repeated per band, for the shuffle."""
    repeat = pa.array(np.repeat(np.arange(probes.num_rows), hashes.shape[1]))
    columns = {BAND_COLUMN: pa.array(hashes.reshape(-1), pa.uint64())}
    for name in (UID_COLUMN, "id", RANK_COLUMN, FIXED_COLUMN):
        columns[name] = probes.column(name).take(repeat)
    for name, values in payload.items():
        columns[name] = values.take(repeat)
    return pa.table(columns, schema=schema)


# ----- buckets -> checked edges -----------------------------------------------------------


def order_key(rank: float, ident: str, uid: int, fixed: bool) -> tuple[int, float, str, int]:
    """The greedy order: references first, then rank, id and uid (smaller is earlier)."""
    return (0 if fixed else 1, rank, ident, uid)


@lru_cache(maxsize=256)
def all_pairs(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(size, 1)


def window_pairs(size: int, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (earlier, later) of a bucket of ``size`` rows in greedy order: all of them,
    or with ``window`` each row's pairs with the bucket's first ``window`` rows and with the
    ``window`` rows just before it."""
    if window is None or size <= 2 * window + 1:
        return all_pairs(size)
    firsts = [np.full(size - a - 1, a) for a in range(window)]
    later = [np.arange(a + 1, size) for a in range(window)]
    for gap in range(1, window + 1):
        firsts.append(np.arange(window, size - gap))
        later.append(np.arange(window, size - gap) + gap)
    return np.concatenate(firsts), np.concatenate(later)


class TokenRows:
    """A block's rows as token tuples and, for the bit-parallel LCS, their match masks."""

    def __init__(self, raw: list[bytes]) -> None:
        self.raw = raw
        self.tokens: dict[int, tuple[int, ...]] = {}
        self.masks: dict[int, dict[int, int]] = {}

    def of(self, row: int) -> tuple[int, ...]:
        if row not in self.tokens:
            self.tokens[row] = tuple(np.frombuffer(self.raw[row], dtype=np.uint64).tolist())
        return self.tokens[row]

    def lcs(self, row: int, other: int) -> int:
        """LCS of two rows, the bit vector over ``row`` (whose masks are kept)."""
        first, second = self.of(row), self.of(other)
        masks = self.masks.get(row)
        if masks is None:
            masks = {}
            for index, token in enumerate(first):
                masks[token] = masks.get(token, 0) | (1 << index)
            self.masks[row] = masks
        full = (1 << len(first)) - 1
        vector = full
        for token in second:
            matched = vector & masks.get(token, 0)
            vector = ((vector + matched) | (vector - matched)) & full
        return len(first) - vector.bit_count()


def bucket_candidates(
    block: pa.Table, window: int | None, chunk_pairs: int = CHUNK_PAIRS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Row index pairs (earlier, later) sharing a bucket in a block sorted by band (all, or
    per ``window_pairs``), in chunks of about ``chunk_pairs`` so that a block's memory does not
    follow its pair count; within a chunk each pair of texts once however many buckets they
    share. Pairs of two references are left out."""
    if block.num_rows < 2:
        return
    band = block.column(BAND_COLUMN).to_numpy()
    starts = np.r_[0, np.flatnonzero(band[1:] != band[:-1]) + 1]
    ends = np.r_[starts[1:], len(band)]
    multi = np.flatnonzero(ends - starts >= 2)
    if multi.size == 0:
        return
    uids = block.column(UID_COLUMN).to_numpy()
    fixed = block.column(FIXED_COLUMN).to_numpy(zero_copy_only=False)
    position = greedy_positions(block)
    # Within each bucket (the block is sorted by band), rows in greedy order.
    by_bucket = np.lexsort((position, band))
    _, text = np.unique(uids, return_inverse=True)
    texts = int(text.max()) + 1
    earlier: list[np.ndarray] = []
    later: list[np.ndarray] = []
    pending = 0
    for index, group in enumerate(multi):
        members = by_bucket[starts[group] : ends[group]]
        first, second = window_pairs(len(members), window)
        earlier.append(members[first])
        later.append(members[second])
        pending += len(first)
        if pending < chunk_pairs and index < len(multi) - 1:
            continue
        left, right = np.concatenate(earlier), np.concatenate(later)
        earlier, later, pending = [], [], 0
        keep = ~(fixed[left] & fixed[right]) & (uids[left] != uids[right])
        left, right = left[keep], right[keep]
        # Each pair once: a pair of texts shares many buckets when they are alike.
        _, first_seen = np.unique(text[left] * texts + text[right], return_index=True)
        yield left[first_seen], right[first_seen]


def greedy_positions(block: pa.Table) -> np.ndarray:
    """Each row's place in the greedy order (``order_key``) among the block's rows."""
    fixed = block.column(FIXED_COLUMN).to_numpy(zero_copy_only=False)
    keys = pa.table(
        {
            "later": pa.array(~fixed),
            "rank": block.column(RANK_COLUMN),
            "id": block.column("id"),
            "uid": block.column(UID_COLUMN),
        }
    )
    order = pc.sort_indices(
        keys, sort_keys=[(name, "ascending") for name in ("later", "rank", "id", "uid")]
    ).to_numpy()
    position = np.empty(block.num_rows, dtype=np.int64)
    position[order] = np.arange(block.num_rows)
    return position


def earliest_per_row(
    left: np.ndarray, right: np.ndarray, position: np.ndarray, limit: int
) -> np.ndarray:
    """Indexes of the pairs that are among the ``limit`` earliest partners of their later
    row: a row's fate depends on its earliest similar rows (the likely keepers), and a cluster
    of n alike rows would otherwise hold n^2 / 2 pairs."""
    if left.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((position[left], position[right]))
    later = position[right][order]
    starts = np.r_[0, np.flatnonzero(later[1:] != later[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < limit])


def similar_table(
    block: pa.Table, left: np.ndarray, right: np.ndarray, similarity: np.ndarray
) -> pa.Table:
    """SIMILAR_SCHEMA rows for the checked pairs (earlier row first)."""
    uids = block.column(UID_COLUMN).to_numpy()
    idents = block.column("id")
    ranks = block.column(RANK_COLUMN).to_numpy()
    fixed = block.column(FIXED_COLUMN).to_numpy(zero_copy_only=False)
    return pa.table(
        {
            "u": pa.array(uids[left], pa.int64()),
            "v": pa.array(uids[right], pa.int64()),
            "similarity": pa.array(similarity, pa.float64()),
            "u_id": idents.take(pa.array(left, pa.int64())),
            "u_rank": pa.array(ranks[left], pa.float64()),
            "u_fixed": pa.array(fixed[left], pa.bool_()),
            "v_id": idents.take(pa.array(right, pa.int64())),
            "v_rank": pa.array(ranks[right], pa.float64()),
        },
        schema=SIMILAR_SCHEMA,
    )


def bucket_pairs(
    block: pa.Table,
    *,
    threshold: float,
    window: int | None = None,
    edges_per_row: int | None = None,
) -> pa.Table:
    """A block's candidate pairs (``bucket_candidates``) checked with exact ROUGE-L, after the
    length and Bloom bounds: one row per similar pair, earlier row first; with
    ``edges_per_row``, only each row's earliest similar partners (``earliest_per_row``)."""
    raw = block.column(TOKENS_COLUMN)
    lengths = (pc.binary_length(raw).to_numpy(zero_copy_only=False) // 8).astype(np.int64)
    rows = TokenRows(raw.to_pylist())
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    blooms = None
    for left, right in bucket_candidates(block, window):
        reach = (
            2.0 * np.minimum(lengths[left], lengths[right])
            >= threshold * (lengths[left] + lengths[right]) - 1e-12
        )
        left, right = left[reach], right[reach]
        if blooms is None:
            blooms = np.frombuffer(
                b"".join(block.column(BLOOM_COLUMN).to_pylist()), dtype=np.uint64
            ).reshape(-1, BLOOM_WORDS)
            # Common tokens that share a bit count once in the AND; a filter with n tokens
            # and p bits set lost n - p of its own to such collisions: added back.
            lost = lengths - np.bitwise_count(blooms).sum(axis=1).astype(np.int64)
        common = np.bitwise_count(blooms[left] & blooms[right]).sum(axis=1).astype(np.int64)
        common += np.minimum(lost[left], lost[right])
        bound = np.minimum(common, np.minimum(lengths[left], lengths[right]))
        reach = 2.0 * bound >= threshold * (lengths[left] + lengths[right]) - 1e-12
        left, right = left[reach], right[reach]
        common_lcs = np.array(
            [rows.lcs(a, b) for a, b in zip(left.tolist(), right.tolist(), strict=True)],
            dtype=np.float64,
        )
        similarity = 2.0 * common_lcs / np.maximum(lengths[left] + lengths[right], 1)
        similar = similarity >= threshold
        found.append((left[similar], right[similar], similarity[similar]))
    return checked_table(block, found, edges_per_row)


def checked_table(
    block: pa.Table,
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    edges_per_row: int | None,
) -> pa.Table:
    """The similar pairs of a block's chunks as SIMILAR_SCHEMA rows, each pair once."""
    if not found:
        return SIMILAR_SCHEMA.empty_table()
    left = np.concatenate([part[0] for part in found])
    right = np.concatenate([part[1] for part in found])
    similarity = np.concatenate([part[2] for part in found])
    uids = block.column(UID_COLUMN).to_numpy()
    _, text = np.unique(uids, return_inverse=True)
    _, first_seen = np.unique(text[left] * (int(text.max()) + 1) + text[right], return_index=True)
    left, right, similarity = left[first_seen], right[first_seen], similarity[first_seen]
    if edges_per_row is not None:
        chosen = earliest_per_row(left, right, greedy_positions(block), edges_per_row)
        left, right, similarity = left[chosen], right[chosen], similarity[chosen]
    return similar_table(block, left, right, similarity)


# ----- components -> the greedy pass ------------------------------------------------------


def component_losers(block: pa.Table) -> pa.Table:
    """The greedy pass over a block of similar pairs (whole components, for ``root`` only
    partitions the work): in greedy order, a row is a loser when an earlier kept row is
    similar to it; its most similar kept row is named. Arrays, not Python objects per pair."""
    if block.num_rows == 0:
        return LOSER_SCHEMA.empty_table()
    nodes = pa.table(
        {
            "uid": pa.concat_arrays(
                [block.column("u").combine_chunks(), block.column("v").combine_chunks()]
            ),
            "id": pa.concat_arrays(
                [block.column("u_id").combine_chunks(), block.column("v_id").combine_chunks()]
            ),
            "rank": pa.concat_arrays(
                [block.column("u_rank").combine_chunks(), block.column("v_rank").combine_chunks()]
            ),
            "later": pa.concat_arrays(
                [
                    pc.invert(block.column("u_fixed")).combine_chunks(),
                    pa.array(np.ones(block.num_rows, dtype=bool)),
                ]
            ),
        }
    )
    order = pc.sort_indices(
        nodes, sort_keys=[(name, "ascending") for name in ("later", "rank", "id", "uid")]
    ).to_numpy()
    uids = nodes.column("uid").to_numpy()
    sorted_uids = uids[order]
    first = np.r_[True, sorted_uids[1:] != sorted_uids[:-1]]
    # Node i is the i-th distinct uid in greedy order (a uid's copies are adjacent there).
    node_of_entry = np.cumsum(first) - 1
    entry_node = np.empty(len(order), dtype=np.int64)
    entry_node[order] = node_of_entry
    node_rows = order[first]  # an entry per node, for its id and whether it is a reference
    reference = ~nodes.column("later").to_numpy(zero_copy_only=False)[node_rows]
    edge_u, edge_v = entry_node[: block.num_rows], entry_node[block.num_rows :]
    similarity = block.column("similarity").to_numpy()
    by_later = np.lexsort((edge_u, -similarity, edge_v))
    edge_u, edge_v, similarity = edge_u[by_later], edge_v[by_later], similarity[by_later]
    bounds = np.searchsorted(edge_v, np.arange(len(node_rows) + 1))
    kept = np.zeros(len(node_rows), dtype=bool)
    losers, matches, scores = [], [], []
    for node in range(len(node_rows)):
        if reference[node]:
            kept[node] = True
            continue
        earlier = edge_u[bounds[node] : bounds[node + 1]]
        hit = np.flatnonzero(kept[earlier])
        if hit.size == 0:
            kept[node] = True
            continue
        losers.append(node)
        matches.append(earlier[hit[0]])  # most similar, then earliest
        scores.append(similarity[bounds[node] + hit[0]])
    ids = nodes.column("id")
    loser_rows = pa.array(node_rows[np.array(losers, dtype=np.int64)], pa.int64())
    match_rows = pa.array(node_rows[np.array(matches, dtype=np.int64)], pa.int64())
    return pa.table(
        {
            UID_COLUMN: pa.array(uids[node_rows[np.array(losers, dtype=np.int64)]], pa.int64()),
            "id": ids.take(loser_rows),
            "similar_to": ids.take(match_rows),
            "similarity": pa.array(scores, pa.float64()),
        },
        schema=LOSER_SCHEMA,
    )


@ray.remote
def block_rows(table: pa.Table) -> int:
    return table.num_rows


def with_rows_only(dataset: Any) -> Any:
    """``dataset`` materialized without its empty blocks: Ray Data hands an empty block
    through map_batches without calling the function, schema-less, and a shuffle then fails
    to concatenate it with the others. Only a row count per block reaches the driver."""
    refs = dataset.materialize().to_arrow_refs()
    counts = ray.get([block_rows.remote(ref) for ref in refs])
    kept = [ref for ref, count in zip(refs, counts, strict=True) if count]
    return (
        ray.data.from_arrow_refs(kept) if kept else ray.data.from_arrow(PROBE_SCHEMA.empty_table())
    )


@ray.remote
def losers_task(*tables: pa.Table) -> pa.Table:
    edges = pa.concat_tables([table.cast(SIMILAR_SCHEMA) for table in tables])
    return component_losers(
        edges.append_column("root", pa.array(np.zeros(edges.num_rows, np.int64)))
    )


def similar_losers(
    probes: Any,
    *,
    threshold: float,
    num_perm: int,
    recall: float,
    seed: int,
    num_partitions: int,
    window: int | None = DEFAULT_WINDOW,
    edges_per_row: int | None = DEFAULT_EDGES_PER_ROW,
    single_task_max_edges: int = SINGLE_TASK_MAX_EDGES,
    embedding: EmbeddingConfig | None = None,
) -> Any:
    """The rows of ``probes`` (PROBE_SCHEMA: uid, id, rank, fixed, text) the greedy ROUGE-L
    filter drops: a materialized dataset of (uid, id, similar_to, similarity). With
    ``embedding``, pairs whose embedding cosine reaches its threshold are similar too."""
    bands, rows = lsh_shape(threshold, num_perm, recall)
    probes = with_rows_only(probes)
    banded = probes.map_batches(
        partial(band_table, bands=bands, rows=rows, num_perm=num_perm, seed=seed),
        batch_format="pyarrow",
    )
    edges = grouped_blocks(
        banded,
        BAND_COLUMN,
        partial(bucket_pairs, threshold=threshold, window=window, edges_per_row=edges_per_row),
        num_partitions,
    ).materialize()
    if embedding is not None:
        semantic = embedding_edges(
            probes,
            embedding,
            seed=seed,
            num_partitions=num_partitions,
            window=window,
            edges_per_row=edges_per_row,
        )
        edges = edges.union(semantic).materialize()
    count = edges.count()
    if count == 0:
        return ray.data.from_arrow(LOSER_SCHEMA.empty_table()).materialize()
    if count <= single_task_max_edges:
        # Few similar pairs (the usual case: only pairs at the threshold are edges): one
        # task runs the greedy pass over all of them, without a components shuffle.
        return ray.data.from_arrow_refs([losers_task.remote(*edges.to_arrow_refs())]).materialize()
    labels, _ = connected_components(
        edges.select_columns(["u", "v"]),
        num_partitions,
        single_task_max_edges=0,
    )
    rooted = edges.join(
        labels.rename_columns({"node": "u"}),
        join_type="inner",
        num_partitions=num_partitions,
        on=("u",),
    )
    return grouped_blocks(rooted, "root", component_losers, num_partitions).materialize()


# ----- embedding similarity ---------------------------------------------------------------
#
# Embedding similarity for the novelty filter: paraphrases ROUGE-L does not see.
#
# With ``embedding:`` in a ``novelty`` config, a pair is also similar when the cosine of the two
# texts' embeddings reaches ``embedding.threshold``; the greedy pass then runs on the union of
# both kinds of similar pair, so a row is dropped when an earlier kept row is lexically *or*
# semantically close. Nothing is compared all against all:
#
#     texts --embedding model (Ray Data actor pool; CPU or declared GPUs)--> unit vectors
#       --random-hyperplane LSH (SimHash: Charikar 2002)--> bands --shuffle on band-->
#       bucket pairs, each checked with the exact cosine --> similar pairs
#
# Two unit vectors at angle theta give the same sign on a random hyperplane with probability
# 1 - theta / pi, so the shape (bands of ``rows`` signs out of ``planes``) is chosen, as for
# MinHash, so that a pair exactly at the threshold becomes a candidate with probability
# ``recall``. The embedding is the attention-masked mean of the model's last hidden states,
# L2-normalised (sentence-transformers' mean pooling), from any transformers checkpoint or hub
# id (``model``); a training output directory stands for its best checkpoint.


EMBEDDING_COLUMN = "_embedding"
HYPERPLANE_SEED = 0x51_3A_54


class EmbeddingConfig(BaseModel):
    """``embedding:`` in a ``novelty`` config."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: str
    threshold: float = Field(0.9, gt=0.0, lt=1.0)  # cosine
    planes: int = Field(128, ge=8, le=1024)
    recall: float = Field(0.995, gt=0.0, lt=1.0)
    max_length: int = Field(128, ge=8)
    batch_size: int = Field(32, ge=1)
    concurrency: int = Field(1, ge=1)  # actors
    num_gpus: float = Field(0.0, ge=0.0)  # per actor


def simhash_shape(threshold: float, planes: int, recall: float) -> tuple[int, int]:
    """(bands, rows): the most rows whose S-curve reaches ``recall`` at cosine ``threshold``."""
    agree = 1.0 - math.acos(threshold) / math.pi
    for rows in range(planes, 0, -1):
        bands = planes // rows
        if 1.0 - (1.0 - agree**rows) ** bands >= recall:
            return bands, rows
    raise ValueError(
        f"embedding.planes {planes} cannot reach recall {recall} at cosine {threshold}; "
        "raise planes or lower recall"
    )


class Embedder:
    """Ray Data callable: unit embeddings of each batch's texts (one model per actor)."""

    def __init__(self, model: str, max_length: int, num_gpus: float) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from pipeline.generate.backend import resolve_training_output

        path = resolve_training_output(model)
        self.torch = torch
        self.device = "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = [text or "" for text in batch.column("text").to_pylist()]
        vectors = self.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        column = pa.array([vector.tobytes() for vector in vectors], pa.binary())
        return batch.append_column(EMBEDDING_COLUMN, column)

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            model = self.model
            inputs = {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
            }
            if getattr(model.config, "is_encoder_decoder", False):
                hidden = model.get_encoder()(**inputs).last_hidden_state
            else:
                hidden = model(**inputs).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy().astype(np.float32)


def embeddings_of(block: pa.Table) -> np.ndarray:
    raw = block.column(EMBEDDING_COLUMN).to_pylist()
    if not raw:
        return np.zeros((0, 1), dtype=np.float32)
    return np.frombuffer(b"".join(raw), dtype=np.float32).reshape(len(raw), -1)


def hyperplanes(dimension: int, planes: int, seed: int) -> np.ndarray:
    """(dimension, planes) Gaussian normals, the same on every worker for a seed."""
    return np.random.default_rng([seed, HYPERPLANE_SEED]).standard_normal((dimension, planes))


def embedding_band_table(batch: pa.Table, *, bands: int, rows: int, seed: int) -> pa.Table:
    """Embedded probe rows -> one row per (row, band): the band's signs hashed with its index."""
    if batch.num_rows == 0:
        return embedding_band_schema().empty_table()
    vectors = embeddings_of(batch)
    signs = (vectors @ hyperplanes(vectors.shape[1], bands * rows, seed)) > 0
    hashes = np.empty((batch.num_rows, bands), dtype=np.uint64)
    for band in range(bands):
        part = np.packbits(signs[:, band * rows : (band + 1) * rows], axis=1)
        for row in range(batch.num_rows):
            key = band.to_bytes(4, "little") + part[row].tobytes()
            hashes[row, band] = xxhash.xxh3_64_intdigest(key, seed=seed & 0xFFFF_FFFF)
    payload = {EMBEDDING_COLUMN: batch.column(EMBEDDING_COLUMN).combine_chunks()}
    return banded_rows(batch, hashes, payload, embedding_band_schema())


def embedding_band_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field(BAND_COLUMN, pa.uint64()),
            pa.field(UID_COLUMN, pa.int64()),
            pa.field("id", pa.string()),
            pa.field(RANK_COLUMN, pa.float64()),
            pa.field(FIXED_COLUMN, pa.bool_()),
            pa.field(EMBEDDING_COLUMN, pa.binary()),
        ]
    )


def cosine_pairs(
    block: pa.Table, *, threshold: float, window: int | None, edges_per_row: int | None
) -> pa.Table:
    """A block's bucket pairs checked with the exact cosine of their embeddings."""
    vectors = embeddings_of(block)
    found = []
    for left, right in bucket_candidates(block, window):
        cosine = np.einsum("ij,ij->i", vectors[left], vectors[right]).astype(np.float64)
        similar = cosine >= threshold
        found.append((left[similar], right[similar], np.minimum(cosine[similar], 1.0)))
    return checked_table(block, found, edges_per_row)


def embedding_edges(
    probes: Any,
    config: EmbeddingConfig,
    *,
    seed: int,
    num_partitions: int,
    window: int | None,
    edges_per_row: int | None,
) -> Any:
    """Similar pairs by embedding cosine (SIMILAR_SCHEMA), materialized."""
    bands, rows = simhash_shape(config.threshold, config.planes, config.recall)
    embedded = probes.map_batches(
        Embedder,
        fn_constructor_kwargs={
            "model": config.model,
            "max_length": config.max_length,
            "num_gpus": config.num_gpus,
        },
        batch_size=config.batch_size,
        batch_format="pyarrow",
        num_gpus=config.num_gpus,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=config.concurrency),
    )
    banded = embedded.map_batches(
        partial(embedding_band_table, bands=bands, rows=rows, seed=seed), batch_format="pyarrow"
    )
    return grouped_blocks(
        banded,
        BAND_COLUMN,
        partial(
            cosine_pairs, threshold=config.threshold, window=window, edges_per_row=edges_per_row
        ),
        num_partitions,
    ).materialize()


# ----- the stage --------------------------------------------------------------------------


class NoveltyConfig(StageConfig):
    # What is compared: the instruction (user turns), as Self-Instruct does, by default.
    key: KeyName = "instruction"
    threshold: float = Field(0.7, gt=0.0, lt=1.0)
    num_perm: int = Field(128, ge=16, le=1024)
    # Probability that a pair at the threshold's Jaccard bound becomes a candidate.
    recall: float = Field(0.995, gt=0.0, lt=1.0)
    # The greedy order: who counts as "earlier" (and so is kept) among similar rows.
    keep: KeeperPolicy = "lowest_id"
    # Pairs checked per row of a bucket (see ``window_pairs``); null: every pair, exact up to
    # LSH misses, and quadratic in a bucket's size.
    window: int | None = Field(DEFAULT_WINDOW, ge=1)
    # Similar pairs kept per row and shuffle block: its earliest partners; null: all of them.
    edges_per_row: int | None = Field(DEFAULT_EDGES_PER_ROW, ge=1)
    # Also similar: embedding cosine >= embedding.threshold (EmbeddingConfig).
    embedding: EmbeddingConfig | None = None


def probe_rows(batch: pa.Table, *, key: KeyName, keep: KeeperPolicy, file_index: dict) -> pa.Table:
    batch = alive(batch)
    return pa.table(
        {
            UID_COLUMN: pa.array(row_uids(batch, file_index), pa.int64()),
            "id": batch.column("id"),
            RANK_COLUMN: pa.array(keeper_rank(batch, keep), pa.float64()),
            FIXED_COLUMN: pa.array(np.zeros(batch.num_rows, dtype=bool)),
            TEXT_COLUMN: pa.array(key_texts(batch, key), pa.string()),
        },
        schema=PROBE_SCHEMA,
    )


class Novelty(GlobalStage):
    """Drop rows too similar (ROUGE-L) to an earlier kept row, as ``novelty.too_similar``."""

    name: ClassVar[str] = STAGE
    Config: ClassVar[type[StageConfig]] = NoveltyConfig
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS
    config: NoveltyConfig

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        config = self.config
        partitions = partitions_for(dataset, context)
        probes = dataset.map_batches(
            partial(probe_rows, key=config.key, keep=config.keep, file_index=context.file_index),
            batch_format="pyarrow",
        )
        losers = similar_losers(
            probes,
            threshold=config.threshold,
            num_perm=config.num_perm,
            recall=config.recall,
            seed=context.seed,
            num_partitions=partitions,
            window=config.window,
            edges_per_row=config.edges_per_row,
            embedding=config.embedding,
        )
        if losers.count() == 0:
            return dataset.map_batches(
                partial(count_alive, position=context.position, tally=context.tally),
                batch_format="pyarrow",
            )
        return mark_drops(
            dataset,
            losers,
            reason=TOO_SIMILAR,
            detail_columns=("similar_to", "similarity"),
            context=context,
        )


__all__ = [
    "DROP_REASONS",
    "Novelty",
    "NoveltyConfig",
    "TOO_SIMILAR",
    "greedy_all_pairs",
    "greedy_exact_index",
    "lcs_length",
    "lsh_shape",
    "rouge_l",
    "rouge_tokens",
    "similar_losers",
]
