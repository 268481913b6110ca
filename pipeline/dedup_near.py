"""Near dedup with MinHash-LSH, distributed end to end on Ray Data.

    corpus --templates (dedup_template: sample, shuffle on the file)--> template shingles
    corpus --signatures (actor pool, template shingles masked)--> S: uid, id, rank,
      signature [, key text]  [materialized]
    S --explode bands--> (band hash, uid) --hash shuffle on band--> star edges per bucket
    edges --large/small-star connected components--> (uid, root): candidate components
    labels + S --join, shuffle on root--> per candidate component: its pairs are found again
      from its own band hashes and checked (``verify``), the checked pairs form clusters,
      one keeper per cluster, losers -> duplicate_of and estimated similarity
    losers --join onto corpus--> dedup.near

Components with more than ``max_component_rows`` members (by default what fits in a quarter
of a shuffle partition, ``COMPONENT_SHARE``) are resolved by ``resolved_by_joins`` instead,
to the same decisions: their edges are joined with both ends' signatures and checked, the
checked edges clustered, keepers picked on a shuffle without signatures, and losers scored
against keeper signatures copied to salted groups. No task there holds more than a bounded
number of signatures.

Candidates, then checks. LSH alone is a blunt threshold: with bands and rows that balance
false positives and false negatives at 0.7, a pair at Jaccard exactly 0.7 is found 44% of the
time and one at 0.6 13% (at 0.8: 8% and 1%), so the threshold one sets is not the one one
gets. With ``verify`` (default ``signature``) the LSH shape is chosen for recall instead
(false negatives weighted 0.9) and every candidate pair is kept only when its similarity
reaches the threshold: estimated from the full signatures (``signature``: no data beyond what
is already there) or computed on the shingles (``exact``: the key text rides along with the
signature). A pair's check needs only its component, so it runs inside the per-component step
that picks keepers: no extra shuffle or join. ``verify: none`` is plain LSH with balanced
weights, as datasketch and DataTrove do it.

Prompt groups. Pairs and binary records that share an identical prompt (one UltraFeedback
prompt gives several pairs) are one prompt group, not near duplicates of each other: their
key is the prompt (``dedup_keys.key_texts``), so they always fall in one cluster, and a
member of the keeper's own prompt group is kept as a member of the cluster (its
``cluster_id`` set, so splits keep the group together) instead of dropped. Prompt groups that
near-duplicate each other are clustered as any records are: the keeper's group stays whole,
the others go as ``dedup.near``.

Shuffle volume: the band shuffle moves ``bands x records`` rows of 16 bytes (band hash and
uid); everything after it moves only candidate rows. A bucket of k rows emits k-1 edges to its
smallest uid (a star; over ``STAR_ROWS`` rows, chained stars), never k² pairs, so one
boilerplate text shared by a million records costs a million edges. The representative of a
cluster is its best member by the keeper policy, ties broken by id and then uid, so it never
depends on arrival order.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from pydantic import Field, field_validator, model_validator

from pipeline.components import (
    EDGE_SCHEMA,
    SIZE_COLUMN,
    connected_components,
    edges_table,
    labels_in_process,
)
from pipeline.dedup_keys import (
    RANK_COLUMN,
    UID_COLUMN,
    KeeperPolicy,
    KeyName,
    alive,
    keeper_rank,
    key_texts,
    pick_keepers,
    row_uids,
)
from pipeline.dedup_template import Templates, learn_templates, templates_in_process
from pipeline.distributed import (
    count_alive,
    fits_one_task,
    grouped_blocks,
    in_one_task,
    mark_drops,
    partitions_for,
    partitions_for_bytes,
    report_findings,
)
from pipeline.memory import releasing
from pipeline.minhash import (
    MinHasher,
    Shingler,
    band_hashes,
    exact_jaccard,
    has_shingles,
    optimal_bands,
)
from pipeline.schema import prompt_groups
from pipeline.stage import GlobalContext, GlobalStage, StageConfig

SIGNATURE_COLUMN = "_signature"
PROMPT_COLUMN = "_prompt_group"  # schema.prompt_key of a feedback record; null otherwise
NO_ID = pa.scalar(None, pa.string())
BAND_COLUMN = "_band"
TEXT_COLUMN = "_text"
SHINGLES_COLUMN = "_shingles"  # with template_share: the row's shingles, and how many masked
MASKED_COLUMN = "_masked"
VerifyMode = Literal["none", "signature", "exact"]
# LSH weights (false positive, false negative) when nothing is set: balanced for plain LSH,
# recall-first when every candidate pair is checked afterwards. On the labelled benchmark
# (BENCHMARKS.md) 0.9 against 0.5 raised en F1 at 0.7 from 0.944 to 0.972 with signature checks.
BALANCED_WEIGHTS = (0.5, 0.5)
RECALL_WEIGHTS = (0.1, 0.9)


# The per-component step's blocks aim at 1/COMPONENT_SHARE of ``run.shuffle_partition_bytes``
# of candidates, and by default a component over that share goes through the joins. A block
# then holds about half a partition with its largest component, with room to spare for hash
# imbalance. The step copies its block a few times (gather, sort, signature matrix); with a
# whole partition's worth per block and per component (the old default), its largest block
# on the 1M benchmark corpus at 16 MiB partitions was 21 MB and it peaked at 253-261 MiB;
# with a quarter, at 204, under the partition-sized joins and writes (213-217; BENCHMARKS.md).
COMPONENT_SHARE = 4


class NearDedupConfig(StageConfig):
    key: KeyName = "conversation"
    # 0.6 with template masking: the best setting measured on both the natural-duplicate
    # benchmark (one passage under other datasets' templates) and the labelled one
    # (BENCHMARKS.md, "Dedup on natural data"); 0.8 without masking scored lowest of the
    # systems compared on a held-out prompted collection.
    threshold: float = Field(0.6, gt=0.0, lt=1.0)
    num_perm: int = Field(128, ge=16, le=1024)
    # Set both to override the optimum derived from the threshold and the weights.
    bands: int | None = Field(None, ge=1)
    rows: int | None = Field(None, ge=1)
    # Unset: 0.5 / 0.5 with verify none, 0.1 / 0.9 (recall first) when pairs are checked.
    false_positive_weight: float | None = Field(None, ge=0.0, le=1.0)
    false_negative_weight: float | None = Field(None, ge=0.0, le=1.0)
    # 3-grams, not the 5 of text-dedup and DataTrove: instruction records are short, and one
    # edited word spoils n shingles. On the labelled benchmark (BENCHMARKS.md) 3 over 5 raised
    # F1 at 0.7 from 0.876 to 0.943 (en) and 0.886 to 0.947 (zh), precision >= 0.987.
    word_ngram: int = Field(3, ge=1, le=32)
    char_ngram: int = Field(3, ge=1, le=32)
    # How a candidate pair is checked against the threshold: "signature" (estimated Jaccard
    # of the two full signatures), "exact" (Jaccard of the shingle sets; the key text travels
    # with the signature), or "none" (every LSH candidate is a duplicate).
    verify: VerifyMode = "signature"
    keep: KeeperPolicy = "lowest_id"
    # Template-aware keys (pipeline.dedup_template): a shingle in more than this share of an
    # input file's sampled records is that file's template and is masked before MinHash.
    # None compares whole keys. 0.02-0.10 scored alike on the natural benchmark.
    template_share: float | None = Field(0.05, gt=0.0, lt=1.0)
    # Files with fewer sampled records learn no template; each file is sampled to about
    # template_sample records.
    template_min_records: int = Field(20, ge=2)
    template_sample: int = Field(2000, ge=10)
    # Candidate graphs up to this many edges (16 bytes each) are clustered in one task
    # instead of shuffle rounds; 0 forces the distributed rounds.
    single_task_max_edges: int = Field(2_000_000, ge=0)
    # Candidate components of up to this many records are checked and resolved in one task
    # with their signatures (one block of the shuffle on the root); larger ones go through
    # joins whose tasks hold a bounded number of signatures, whatever the component's size.
    # Unset: as many as fit in a quarter of a shuffle partition (``COMPONENT_SHARE``).
    # 0 sends every component through the joins.
    max_component_rows: int | None = Field(None, ge=0)

    @field_validator("verify", mode="before")
    @classmethod
    def verify_from_bool(cls, value: Any) -> Any:
        # Recipes written before the modes existed said true (exact) or false (none).
        if isinstance(value, bool):
            return "exact" if value else "none"
        return value

    @model_validator(mode="after")
    def bands_and_rows_together(self) -> NearDedupConfig:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("set both bands and rows, or neither (derived from threshold)")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            )
        if sum(self.weights()) <= 0:
            raise ValueError("false_positive_weight + false_negative_weight must be > 0")
        return self

    def weights(self) -> tuple[float, float]:
        """(false positive, false negative) weights of the LSH shape, defaults filled in."""
        default = BALANCED_WEIGHTS if self.verify == "none" else RECALL_WEIGHTS
        return (
            default[0] if self.false_positive_weight is None else self.false_positive_weight,
            default[1] if self.false_negative_weight is None else self.false_negative_weight,
        )

    def lsh_shape(self) -> tuple[int, int]:
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        false_positive_weight, false_negative_weight = self.weights()
        return optimal_bands(
            self.threshold,
            self.num_perm,
            false_positive_weight=false_positive_weight,
            false_negative_weight=false_negative_weight,
        )

    def component_row_cap(self, partition_bytes: int) -> int:
        if self.max_component_rows is not None:
            return self.max_component_rows
        return max(1, partition_bytes // (COMPONENT_SHARE * member_bytes(self.num_perm)))

    def shingler(self) -> Shingler:
        return Shingler(word_ngram=self.word_ngram, char_ngram=self.char_ngram)

    def hasher(self, seed: int) -> MinHasher:
        return MinHasher(
            num_perm=self.num_perm,
            seed=seed,
            shingler=self.shingler(),
        )


# Rows a Signatures actor turns into signatures at a time (about 3 MB of alpaca-sized
# records; the key texts become Python strings and lists on the way).
SIGNATURE_SLICE_ROWS = 4096


class Signatures:
    """Ray Data callable: MinHash signatures of the live rows of each batch (actor pool, so
    the kernel's JIT compile happens once per worker)."""

    def __init__(
        self,
        config: dict[str, Any],
        file_index: dict[str, int],
        seed: int,
        templates: Any = None,
    ) -> None:
        self.config = NearDedupConfig.model_validate(config)
        self.hasher = self.config.hasher(seed)
        self.file_index = file_index
        # Each file's template shingles (dedup_template.Templates), put in the object store
        # once for the pool; None without template_share.
        self.templates = ray.get(templates) if isinstance(templates, ray.ObjectRef) else templates

    def __call__(self, batch: pa.Table) -> pa.Table:
        # Slices of SIGNATURE_SLICE_ROWS, each one's Python lists and hash buffers returned to
        # the system before the next: what an actor holds does not depend on the batch size
        # Ray Data hands it (a whole read block), nor on how many batches it has run. An
        # empty batch is one empty slice, for the schema.
        sign = releasing(self.signed)
        starts = range(0, max(batch.num_rows, 1), SIGNATURE_SLICE_ROWS)
        return pa.concat_tables([sign(batch.slice(at, SIGNATURE_SLICE_ROWS)) for at in starts])

    def signed(self, batch: pa.Table) -> pa.Table:
        batch = alive(batch)
        texts = key_texts(batch, self.config.key)
        uids = row_uids(batch, self.file_index)
        counts = None
        if self.templates is None:
            signatures = self.hasher.signatures(texts)
        else:
            starts, stops = self.templates.lookup(uids)
            signatures, counts = self.hasher.masked_signatures(
                texts, self.templates.shingles, starts, stops
            )
        # A text without shingles ("?!", empty) has the all-max signature: it would match
        # every other such text, so it is left out of near dedup altogether.
        usable = np.asarray(has_shingles(signatures), dtype=bool)
        mask = pa.array(usable)
        batch, signatures, uids = batch.filter(mask), signatures[usable], uids[usable]
        columns = {
            UID_COLUMN: pa.array(uids, pa.int64()),
            "id": batch.column("id"),
            RANK_COLUMN: pa.array(keeper_rank(batch, self.config.keep), pa.float64()),
            SIGNATURE_COLUMN: signature_array(signatures),
            PROMPT_COLUMN: prompt_groups(batch),
        }
        if self.config.verify == "exact":
            columns[TEXT_COLUMN] = pa.array(texts, pa.string()).filter(mask)
        if counts is not None:
            columns[SHINGLES_COLUMN] = pa.array(counts[usable, 0], pa.int64())
            columns[MASKED_COLUMN] = pa.array(counts[usable, 1], pa.int64())
        return pa.table(columns)


def signature_array(signatures: np.ndarray) -> pa.Array:
    rows, width = signatures.shape if signatures.ndim == 2 else (0, 0)
    values = pa.array(signatures.reshape(-1), pa.uint64())
    return (
        pa.FixedSizeListArray.from_arrays(values, width)
        if rows
        else pa.array([], pa.list_(pa.uint64(), width))
    )


def signature_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = column.type.list_size
    return column.flatten().to_numpy().reshape(-1, width)


def band_rows(batch: pa.Table, bands: int, rows: int) -> pa.Table:
    """One ``(band hash, uid)`` row per band per record."""
    hashes = band_hashes(signature_matrix(batch.column(SIGNATURE_COLUMN)), bands, rows)
    uids = batch.column(UID_COLUMN).to_numpy()
    return pa.table(
        {
            BAND_COLUMN: pa.array(hashes.reshape(-1), pa.uint64()),
            UID_COLUMN: pa.array(np.repeat(uids, bands), pa.int64()),
        }
    )


# Members per star in one LSH bucket. A bucket of k <= STAR_ROWS rows is one star on its
# smallest uid; a larger one (boilerplate shared by thousands of records) is cut, in uid
# order, into stars of STAR_ROWS rows whose centres are chained. The components are the same,
# and no uid is the centre of more than STAR_ROWS - 1 edges per band, so the joins that check
# edges against signatures never gather a whole giant bucket in one task.
STAR_ROWS = 256


def bucket_edges(block: pa.Table, star_rows: int = STAR_ROWS) -> pa.Table:
    """Within a block holding whole buckets (rows of one band hash): each bucket of k > 1
    rows gives k-1 edges, as stars of at most ``star_rows`` rows on their smallest uid, the
    stars' centres chained in uid order."""
    bands = block.column(BAND_COLUMN).to_numpy()
    uids = block.column(UID_COLUMN).to_numpy()
    if len(bands) < 2:
        return EDGE_SCHEMA.empty_table()
    order = np.lexsort((uids, bands))
    bands, uids = bands[order], uids[order]
    starts = np.flatnonzero(np.r_[True, bands[1:] != bands[:-1]])
    lengths = np.diff(np.r_[starts, len(bands)])
    position = np.arange(len(bands)) - np.repeat(starts, lengths)
    head = position % star_rows == 0
    centre = uids[np.maximum.accumulate(np.where(head, np.arange(len(uids)), 0))]
    member = (np.repeat(lengths, lengths) > 1) & ~head & (uids != centre)
    chained = np.flatnonzero(head & (position > 0))
    small = np.concatenate([centre[member], centre[chained - 1]])
    large = np.concatenate([uids[member], uids[chained]])
    linked = small != large
    return unique_pairs(small[linked], large[linked])


def unique_pairs(u: np.ndarray, v: np.ndarray) -> pa.Table:
    """The distinct ``(u, v)`` rows, sorted, as an edge table (one direction, as given)."""
    if len(u) == 0:
        return EDGE_SCHEMA.empty_table()
    pairs = np.unique(np.stack([u, v], axis=1), axis=0)
    return pa.table({"u": pairs[:, 0], "v": pairs[:, 1]}, schema=EDGE_SCHEMA)


GROUP_COLUMN = "_group"
CLUSTER_COLUMN = "_cluster"
MEMBER_SCHEMA = pa.schema(
    [
        pa.field(UID_COLUMN, pa.int64()),
        pa.field("duplicate_of", pa.string()),
        pa.field("similarity", pa.float64()),
        pa.field(CLUSTER_COLUMN, pa.string()),
    ]
)
KEEPER_UID = "_keeper_uid"  # pick_keepers' column


PAIR_CHUNK = 16_384  # candidate pairs compared at once (2 x 16k x 1 KiB of signatures)


def rows_of(uids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The row index of each of ``wanted`` in ``uids`` (all present, uids unique)."""
    order = np.argsort(uids)
    return order[np.searchsorted(uids[order], wanted)]


def signature_similarity(matrix: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of each pair of rows: the fraction of equal signature slots."""
    similarity = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), PAIR_CHUNK):
        chunk = pairs[start : start + PAIR_CHUNK]
        similarity[start : start + len(chunk)] = (matrix[chunk[:, 0]] == matrix[chunk[:, 1]]).mean(
            axis=1
        )
    return similarity


def shingle_similarity(texts: pa.ChunkedArray, pairs: np.ndarray, shingler: Shingler) -> np.ndarray:
    """Exact Jaccard of each pair's shingle sets; each text is shingled once."""
    shingles: dict[int, np.ndarray] = {}

    def of(row: int) -> np.ndarray:
        if row not in shingles:
            shingles[row] = shingler.shingle_hashes(texts[row].as_py() or "")
        return shingles[row]

    return np.array([exact_jaccard(of(a), of(b)) for a, b in pairs.tolist()], dtype=np.float64)


def checked_groups(
    block: pa.Table, matrix: np.ndarray, config: NearDedupConfig | None
) -> np.ndarray:
    """The duplicate cluster of each row of a block of whole candidate components (``matrix``:
    its signatures): the smallest uid connected to it by checked pairs (its own uid when none
    passes).

    Without ``config`` or with ``verify: none`` every candidate component is one cluster.
    Otherwise the component's candidate pairs are found again from the band hashes of its
    signatures (``band_rows`` and ``bucket_edges``, as in the global step: a bucket never spans
    two components, since its rows are linked) and kept only when their similarity reaches the
    threshold, so one false candidate no longer chains two clusters together, and a component
    can split into several clusters or none."""
    uids = block.column(UID_COLUMN).to_numpy()
    if config is None or config.verify == "none":
        return block.column("root").to_numpy()
    bands, rows = config.lsh_shape()
    edges = bucket_edges(band_rows(block, bands, rows).sort_by(BAND_COLUMN))
    pairs = np.stack([rows_of(uids, edges.column(end).to_numpy()) for end in ("u", "v")], axis=1)
    if config.verify == "signature":
        similarity = signature_similarity(matrix, pairs)
    else:
        similarity = shingle_similarity(block.column(TEXT_COLUMN), pairs, config.shingler())
    kept = pairs[similarity >= config.threshold]
    groups = uids.copy()
    if len(kept):
        labels = labels_in_process(edges_table(uids[kept[:, 0]], uids[kept[:, 1]]))
        linked = rows_of(uids, labels.column("node").to_numpy())
        groups[linked] = labels.column("root").to_numpy()
    return groups


def keepers_with_similarity(block: pa.Table, config: NearDedupConfig | None = None) -> pa.Table:
    """Per duplicate cluster of a block of whole candidate components (from the shuffle on
    ``root``; clusters from ``checked_groups``, whose pairs ``config`` checks): the keeper by
    rank, each loser's estimated Jaccard to it from the two signatures, and the cluster (the
    keeper's id) for every member, keeper included. Rows left alone by the checks are in no
    cluster."""
    if block.num_rows == 0:
        return MEMBER_SCHEMA.empty_table()
    matrix = signature_matrix(block.column(SIGNATURE_COLUMN))
    groups = checked_groups(block, matrix, config)
    losers = pick_keepers(GROUP_COLUMN, block.append_column(GROUP_COLUMN, pa.array(groups)))
    if losers.num_rows == 0:
        return MEMBER_SCHEMA.empty_table()
    uids = block.column(UID_COLUMN).to_numpy()
    own_rows = rows_of(uids, losers.column(UID_COLUMN).to_numpy())
    keeper_uids = losers.column(KEEPER_UID).to_numpy()
    keeper_rows = rows_of(uids, keeper_uids)
    similarity = (matrix[own_rows] == matrix[keeper_rows]).mean(axis=1)
    kin = same_prompt_group(block, own_rows, keeper_rows)
    keeper_uid_set, first = np.unique(keeper_uids, return_index=True)
    loser_rows = pa.table(
        {
            UID_COLUMN: losers.column(UID_COLUMN),
            "duplicate_of": pc.if_else(pa.array(kin), NO_ID, losers.column("duplicate_of")),
            "similarity": pa.array(similarity, pa.float64(), mask=kin),
            CLUSTER_COLUMN: losers.column("duplicate_of"),
        },
        schema=MEMBER_SCHEMA,
    )
    cluster_keepers = pa.table(
        {
            UID_COLUMN: pa.array(keeper_uid_set, pa.int64()),
            "duplicate_of": pa.nulls(len(first), pa.string()),
            "similarity": pa.nulls(len(first), pa.float64()),
            CLUSTER_COLUMN: losers.column("duplicate_of").take(pa.array(first)),
        },
        schema=MEMBER_SCHEMA,
    )
    return pa.concat_tables([loser_rows, cluster_keepers])


def same_prompt_group(block: pa.Table, rows: np.ndarray, keepers: np.ndarray) -> np.ndarray:
    """Per loser row: is it in its keeper's prompt group (both feedback records with one
    prompt)? Those are kept as cluster members, not dropped. A block without the column
    (signature tables built by hand) has no prompt groups."""
    if PROMPT_COLUMN not in block.column_names:
        return np.zeros(len(rows), dtype=bool)
    prompts = block.column(PROMPT_COLUMN).combine_chunks()
    if prompts.null_count == len(prompts):
        return np.zeros(len(rows), dtype=bool)
    own = prompts.take(pa.array(rows, pa.int64()))
    theirs = prompts.take(pa.array(keepers, pa.int64()))
    return pc.fill_null(pc.equal(own, theirs), False).to_numpy(zero_copy_only=False)


def member_partitions(candidates: int, signatures: ray.data.Dataset, context: GlobalContext) -> int:
    """Partitions of the shuffle on the root: ``candidates`` rows of the signature table, at
    most 1/COMPONENT_SHARE of a shuffle partition each on average. Sizes are block metadata of
    the materialized signatures: no data moves."""
    rows = signatures.count()
    row_bytes = (signatures.size_bytes() or 0) / rows if rows else 0
    share = context.partition_bytes / COMPONENT_SHARE
    return partitions_for_bytes(candidates * row_bytes, context, share)


def member_bytes(num_perm: int) -> int:
    """Bytes a candidate record takes in the per-component step: its signature, uid, root,
    rank and an id of a few dozen characters."""
    return num_perm * 8 + 96


PAYLOAD_U = "_payload_u"
PAYLOAD_V = "_payload_v"


def unique_edges(block: pa.Table) -> pa.Table:
    return unique_pairs(block.column("u").to_numpy(), block.column("v").to_numpy())


def checked_edges(batch: pa.Table, config: NearDedupConfig) -> pa.Table:
    """Candidate edges that carry both ends' signatures (or key texts, with ``exact``), kept
    when the pair's similarity reaches the threshold: the same test ``checked_groups`` makes
    inside a component."""
    if batch.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    # Both ends stacked: row i's u end is row i, its v end row i + n.
    ends = pa.chunked_array(batch.column(PAYLOAD_U).chunks + batch.column(PAYLOAD_V).chunks)
    rows = np.arange(batch.num_rows)
    pairs = np.stack([rows, rows + batch.num_rows], axis=1)
    if config.verify == "signature":
        similarity = signature_similarity(signature_matrix(ends), pairs)
    else:
        similarity = shingle_similarity(ends, pairs, config.shingler())
    kept = pa.array(similarity >= config.threshold)
    return batch.select(["u", "v"]).filter(kept).cast(EDGE_SCHEMA)


# Losers per (keeper, salt) group when losers are scored against their keeper: a cluster of
# n members is spread over ceil(n / SALT_ROWS) groups, each of which gets a copy of the
# keeper's signature, so no task holds more than SALT_ROWS losers' signatures.
SALT_ROWS = 4096
SALT_COLUMN = "_salt"
SALTS_COLUMN = "_salts"
KEEPER_FLAG = "_is_keeper"
ASSIGNMENT_SCHEMA = pa.schema(
    [
        pa.field(UID_COLUMN, pa.int64()),
        pa.field(KEEPER_UID, pa.int64()),
        pa.field("duplicate_of", pa.string()),
        pa.field(CLUSTER_COLUMN, pa.string()),
        pa.field(SALT_COLUMN, pa.int64()),
        pa.field(SALTS_COLUMN, pa.int64()),
    ]
)


def salt_of(uids: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """A loser's group among its keeper's ``salts``: a fixed mix of its uid, not its order."""
    mixed = (uids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17)
    return (mixed % salts.astype(np.uint64)).astype(np.int64)


def keeper_assignments(block: pa.Table, salt_rows: int = SALT_ROWS) -> pa.Table:
    """Per cluster of a block of whole clusters (``root`` with uid, id and rank; no
    signatures): the keeper by rank (``pick_keepers``), and each loser's keeper and salt. The
    keeper's own row has salt -1 and the number of salts its cluster is spread over."""
    losers = pick_keepers("root", block)
    if losers.num_rows == 0:
        return ASSIGNMENT_SCHEMA.empty_table()
    keeper_of = losers.column(KEEPER_UID).to_numpy()
    keepers, first, counts = np.unique(keeper_of, return_index=True, return_counts=True)
    salts = -(-counts // salt_rows)
    loser_salts = salts[np.searchsorted(keepers, keeper_of)]
    clusters = losers.column("duplicate_of")
    loser_rows = pa.table(
        {
            UID_COLUMN: losers.column(UID_COLUMN),
            KEEPER_UID: losers.column(KEEPER_UID),
            "duplicate_of": clusters,
            CLUSTER_COLUMN: clusters,
            SALT_COLUMN: salt_of(losers.column(UID_COLUMN).to_numpy(), loser_salts),
            SALTS_COLUMN: loser_salts,
        },
        schema=ASSIGNMENT_SCHEMA,
    )
    keeper_rows = pa.table(
        {
            UID_COLUMN: keepers,
            KEEPER_UID: keepers,
            "duplicate_of": pa.nulls(len(keepers), pa.string()),
            CLUSTER_COLUMN: clusters.take(pa.array(first)),
            SALT_COLUMN: np.full(len(keepers), -1, dtype=np.int64),
            SALTS_COLUMN: salts,
        },
        schema=ASSIGNMENT_SCHEMA,
    )
    return pa.concat_tables([loser_rows, keeper_rows])


def spread_keepers(batch: pa.Table) -> pa.Table:
    """Each keeper row (salt -1) becomes one row per salt of its cluster, flagged, so that
    every (keeper, salt) group gets the keeper's signature; loser rows pass through."""
    salt = batch.column(SALT_COLUMN).to_numpy()
    losers = np.flatnonzero(salt >= 0)
    keepers = np.flatnonzero(salt < 0)
    copies = batch.column(SALTS_COLUMN).to_numpy()[keepers]
    keeper_salts = np.arange(copies.sum()) - np.repeat(np.cumsum(copies) - copies, copies)
    spread = batch.take(pa.array(np.concatenate([losers, np.repeat(keepers, copies)])))
    spread = spread.set_column(
        spread.schema.get_field_index(SALT_COLUMN),
        SALT_COLUMN,
        pa.array(np.concatenate([salt[losers], keeper_salts]), pa.int64()),
    )
    flag = np.r_[np.zeros(len(losers), dtype=bool), np.ones(int(copies.sum()), dtype=bool)]
    return spread.append_column(KEEPER_FLAG, pa.array(flag))


def scored_against_keeper(block: pa.Table) -> pa.Table:
    """Within a block holding whole (keeper, salt) groups, each with its keeper's row: each
    loser's estimated Jaccard to its keeper, and the keeper's own row (once, from salt 0)
    so that ``cluster_id`` reaches it. ``MEMBER_SCHEMA``, as ``keepers_with_similarity``."""
    if block.num_rows == 0:
        return MEMBER_SCHEMA.empty_table()
    block = block.take(
        pc.sort_indices(
            block,
            sort_keys=[
                (KEEPER_UID, "ascending"),
                (SALT_COLUMN, "ascending"),
                (KEEPER_FLAG, "descending"),
                (UID_COLUMN, "ascending"),
            ],
        )
    )
    flag = block.column(KEEPER_FLAG).to_numpy(zero_copy_only=False)
    keeper_row = np.maximum.accumulate(np.where(flag, np.arange(block.num_rows), 0))
    losers = np.flatnonzero(~flag)
    group = np.stack(
        [block.column(KEEPER_UID).to_numpy(), block.column(SALT_COLUMN).to_numpy()], axis=1
    )
    if not (group[losers] == group[keeper_row[losers]]).all():
        raise RuntimeError("near_dedup: a (keeper, salt) group arrived without its keeper row")
    matrix = signature_matrix(block.column(SIGNATURE_COLUMN))
    similarity = signature_similarity(matrix, np.stack([losers, keeper_row[losers]], axis=1))
    kin = same_prompt_group(block, losers, keeper_row[losers])
    first_copy = np.flatnonzero(flag & (block.column(SALT_COLUMN).to_numpy() == 0))
    rows = np.concatenate([losers, first_copy])
    unmatched = np.r_[kin, np.ones(len(first_copy), bool)]
    return pa.table(
        {
            UID_COLUMN: block.column(UID_COLUMN).take(pa.array(rows)),
            "duplicate_of": pc.if_else(
                pa.array(unmatched), NO_ID, block.column("duplicate_of").take(pa.array(rows))
            ),
            "similarity": pa.array(
                np.r_[similarity, np.full(len(first_copy), np.nan)], pa.float64(), mask=unmatched
            ),
            CLUSTER_COLUMN: block.column(CLUSTER_COLUMN).take(pa.array(rows)),
        },
        schema=MEMBER_SCHEMA,
    )


def resolved_by_joins(
    edges: ray.data.Dataset,
    labels: ray.data.Dataset,
    signatures: ray.data.Dataset,
    config: NearDedupConfig,
    partitions: int,
    partition_bytes: int,
) -> ray.data.Dataset:
    """``keepers_with_similarity``'s rows for candidate components too large for one task
    (``labels``: their members), from joins whose tasks hold a bounded number of signatures:

        edges inside them --join signatures on v, then on u--> checked edges (``verify``)
        checked edges --connected components--> clusters
        clusters + (uid, id, rank) --shuffle on root--> keeper and salt of every member
        members + signatures --spread keeper rows over salts, shuffle on (keeper, salt)-->
            each loser's similarity to its keeper

    A star centre has at most ``STAR_ROWS`` - 1 edges per band, and a (keeper, salt) group
    at most ``SALT_ROWS`` losers; the shuffle on root carries no signatures (about 40 bytes a
    member, the order of the connected components' own star step)."""
    if config.verify == "none":
        clusters = labels.select_columns(["node", "root"])
    else:
        # The same pair comes from every band its two records share a bucket in: the semi
        # join puts all edges of a u in one partition, where repeats are dropped.
        inside = (
            edges.join(
                labels.select_columns(["node"]).rename_columns({"node": "u"}),
                join_type="left_semi",
                num_partitions=partitions,
                on=("u",),
            )
            .map_batches(unique_edges, batch_size=None, batch_format="pyarrow")
            .materialize()
        )
        # Each edge row carries two signatures (or key texts) through the joins.
        edge_bytes = 2 * member_bytes(config.num_perm)
        partitions = max(partitions, math.ceil(inside.count() * edge_bytes / partition_bytes))
        payload = TEXT_COLUMN if config.verify == "exact" else SIGNATURE_COLUMN
        side = signatures.select_columns([UID_COLUMN, payload])
        with_v = inside.join(
            side.rename_columns({UID_COLUMN: "v", payload: PAYLOAD_V}),
            join_type="inner",
            num_partitions=partitions,
            on=("v",),
        )
        with_both = with_v.join(
            side.rename_columns({UID_COLUMN: "u", payload: PAYLOAD_U}),
            join_type="inner",
            num_partitions=partitions,
            on=("u",),
        )
        checked = with_both.map_batches(
            partial(checked_edges, config=config), batch_format="pyarrow"
        ).materialize()
        if checked.count() == 0:
            return ray.data.from_arrow(MEMBER_SCHEMA.empty_table())
        clusters, _ = connected_components(
            checked, partitions, single_task_max_edges=config.single_task_max_edges
        )
    members = clusters.rename_columns({"node": UID_COLUMN}).join(
        signatures.select_columns([UID_COLUMN, "id", RANK_COLUMN]),
        join_type="inner",
        num_partitions=partitions,
        on=(UID_COLUMN,),
    )
    assigned = grouped_blocks(members, "root", keeper_assignments, partitions)
    with_signatures = assigned.join(
        signatures.select_columns([UID_COLUMN, SIGNATURE_COLUMN, PROMPT_COLUMN]),
        join_type="inner",
        num_partitions=partitions,
        on=(UID_COLUMN,),
    ).map_batches(spread_keepers, batch_format="pyarrow")
    return grouped_blocks(
        with_signatures, [KEEPER_UID, SALT_COLUMN], scored_against_keeper, partitions
    ).materialize()


def by_size(labels: pa.Table, *, cap: int, large: bool) -> pa.Table:
    """The labels of components with more than ``cap`` members (``large``) or the others."""
    over = pc.greater(labels.column(SIZE_COLUMN), cap)
    return labels.filter(over if large else pc.invert(over)).select(["node", "root"])


def masked_findings(templates: Templates, signatures: ray.data.Dataset) -> Counter:
    """What template masking did: files with a template, its shingles, and the records'
    shingles seen and masked (their ratio is the masked share)."""
    findings = templates.counts()
    if signatures.count():
        totals = signatures.sum([SHINGLES_COLUMN, MASKED_COLUMN])
        findings["template.record_shingles"] = int(totals[f"sum({SHINGLES_COLUMN})"])
        findings["template.masked_shingles"] = int(totals[f"sum({MASKED_COLUMN})"])
    return findings


def losers_in_process(
    table: pa.Table,
    *,
    config: NearDedupConfig,
    seed: int,
    file_index: dict[str, int],
    template_options: dict[str, Any] | None,
    records_per_file: dict[int, int] | None,
) -> tuple[pa.Table, Counter]:
    """``NearDedup.apply``'s losers and findings for a whole input held in one table, by the
    functions its distributed steps run per block: templates learned from the same sample,
    the same signatures, the bucket edges of all bands at once, components by
    ``labels_in_process`` (roots are the smallest uids either way), and
    ``keepers_with_similarity`` over every candidate at once (its checks and clusters never
    cross a component, so one call decides as one call per component does)."""
    templates = None
    if template_options is not None and records_per_file is not None:
        templates = templates_in_process(
            table, records_per_file=records_per_file, **template_options
        )
        templates = templates if templates.files.size else None
    signatures = Signatures(config.model_dump(mode="json"), file_index, seed, templates)(table)
    findings = Counter()
    if templates is not None:
        findings = templates.counts()
        if signatures.num_rows:
            findings["template.record_shingles"] = int(pc.sum(signatures[SHINGLES_COLUMN]).as_py())
            findings["template.masked_shingles"] = int(pc.sum(signatures[MASKED_COLUMN]).as_py())
    bands, rows = config.lsh_shape()
    edges = bucket_edges(band_rows(signatures, bands, rows))
    if edges.num_rows == 0:
        return MEMBER_SCHEMA.empty_table(), findings
    labels = labels_in_process(edges)
    uids = signatures.column(UID_COLUMN).to_numpy()
    members = signatures.take(pa.array(rows_of(uids, labels.column("node").to_numpy())))
    members = members.append_column("root", labels.column("root"))
    return keepers_with_similarity(members.sort_by("root"), config), findings


def marked(dataset: Any, losers: Any, context: GlobalContext) -> Any:
    """The corpus with the losers (a dataset or, from one task, a table) dropped as
    ``dedup.near`` and every cluster member's ``cluster_id`` set."""
    return mark_drops(
        dataset,
        losers,
        reason="dedup.near",
        detail_columns=("duplicate_of", "similarity"),
        context=context,
        cluster_column=CLUSTER_COLUMN,
    )


class NearDedup(GlobalStage):
    name: ClassVar[str] = "near_dedup"
    Config = NearDedupConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("dedup.near",)

    def template_records(self, context: GlobalContext) -> dict[int, int] | None:
        """Records per input file (index) to learn templates from, from the read's tally;
        None when ``template_share`` is off or no file is large enough to learn from (the
        template pass is spared)."""
        config = self.config
        if config.template_share is None:
            return None
        read = ray.get(context.tally.snapshot.remote())[0] if context.tally is not None else {}
        records = {
            index: read.get(uri, config.template_sample)
            for uri, index in context.file_index.items()
        }
        if max(records.values(), default=0) < config.template_min_records:
            return None
        return records

    def template_options(self, context: GlobalContext) -> dict[str, Any]:
        config = self.config
        return {
            "key": config.key,
            "file_index": context.file_index,
            "seed": context.seed,
            "share": config.template_share,
            "min_records": config.template_min_records,
            "sample": config.template_sample,
            "word_ngram": config.word_ngram,
            "char_ngram": config.char_ngram,
        }

    def templates(self, dataset: Any, context: GlobalContext, partitions: int) -> Templates | None:
        """The template shingles of every input file (dedup_template), or None when
        ``template_share`` is off or no file has one."""
        records = self.template_records(context)
        if records is None:
            return None
        templates = learn_templates(
            dataset,
            records_per_file=records,
            partitions=partitions,
            **self.template_options(context),
        )
        return templates if templates.files.size else None

    def apply_in_one_task(self, dataset: Any, context: GlobalContext) -> Any:
        """The whole stage in one task (``losers_in_process``), its losers broadcast back."""
        records = self.template_records(context)
        found, findings = in_one_task(
            dataset,
            losers_in_process,
            num_returns=2,
            config=self.config,
            seed=context.seed,
            file_index=context.file_index,
            template_options=None if records is None else self.template_options(context),
            records_per_file=records,
        )
        losers, findings = ray.get([found, findings])
        report_findings(context.tally, context.position, findings)
        return marked(dataset, losers, context)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        config = self.config
        if fits_one_task(dataset, context, member_bytes(config.num_perm)):
            return self.apply_in_one_task(dataset, context)
        bands, rows = config.lsh_shape()
        partitions = partitions_for(dataset, context)
        templates = self.templates(dataset, context, partitions)
        # Held here until the signatures are made: a pool actor started late reads it.
        templates_ref = None if templates is None else ray.put(templates)
        signatures = dataset.map_batches(
            Signatures,
            fn_constructor_kwargs={
                "config": config.model_dump(mode="json"),
                "file_index": context.file_index,
                "seed": context.seed,
                "templates": templates_ref,
            },
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=context.workers),
        ).materialize()
        if templates is not None:
            report_findings(context.tally, context.position, masked_findings(templates, signatures))
            del templates_ref
        band_table = signatures.map_batches(
            partial(band_rows, bands=bands, rows=rows), batch_format="pyarrow"
        )
        edges = grouped_blocks(band_table, BAND_COLUMN, bucket_edges, partitions).materialize()
        if edges.count() == 0:
            return dataset.map_batches(
                partial(count_alive, position=context.position, tally=context.tally),
                batch_format="pyarrow",
            )
        labels, _ = connected_components(
            edges, partitions, single_task_max_edges=config.single_task_max_edges, sizes=True
        )
        cap = config.component_row_cap(context.partition_bytes)
        small = labels.map_batches(partial(by_size, cap=cap, large=False), batch_format="pyarrow")
        large = labels.map_batches(
            partial(by_size, cap=cap, large=True), batch_format="pyarrow"
        ).materialize()
        # Candidate components with rank and signature: one join, then one shuffle on the
        # root checks each component's pairs, forms clusters, picks keepers and scores losers.
        members = small.rename_columns({"node": UID_COLUMN}).join(
            signatures, join_type="inner", num_partitions=partitions, on=(UID_COLUMN,)
        )
        per_component = partial(keepers_with_similarity, config=config)
        # Sized for every candidate (a count from block metadata), the large components' too:
        # never fewer partitions than the small ones need.
        losers = grouped_blocks(
            members, "root", per_component, member_partitions(labels.count(), signatures, context)
        ).materialize()
        if large.count():
            # Components larger than one task should hold: the same decisions, by joins.
            losers = losers.union(
                resolved_by_joins(
                    edges, large, signatures, config, partitions, context.partition_bytes
                )
            ).materialize()
        return marked(dataset, losers, context)


__all__ = ["NearDedup", "NearDedupConfig", "bucket_edges", "edges_table"]
