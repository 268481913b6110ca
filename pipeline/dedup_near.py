"""Near dedup with MinHash-LSH, distributed end to end on Ray Data.

    corpus --signatures (actor pool)--> S: uid, id, rank, signature [, key text]  [materialized]
    S --explode bands--> (band hash, uid) --hash shuffle on band--> star edges per bucket
    edges --large/small-star connected components--> (uid, root): candidate components
    labels + S --join, shuffle on root--> per candidate component: its pairs are found again
      from its own band hashes and checked (``verify``), the checked pairs form clusters,
      one keeper per cluster, losers -> duplicate_of and estimated similarity
    losers --join onto corpus--> dedup.near

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

Shuffle volume: the band shuffle moves ``bands x records`` rows of 16 bytes (band hash and
uid); everything after it moves only candidate rows. A bucket of k rows emits k-1 edges to its
smallest uid (a star), never k² pairs, so one boilerplate text shared by a million records
costs a million edges. The representative of a cluster is its best member by the keeper
policy, ties broken by id and then uid, so it never depends on arrival order.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from pipeline.components import (
    EDGE_SCHEMA,
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
from pipeline.distributed import count_alive, grouped_blocks, mark_drops, partitions_for
from pipeline.minhash import (
    MinHasher,
    Shingler,
    band_hashes,
    exact_jaccard,
    has_shingles,
    optimal_bands,
)
from pipeline.stage import GlobalContext, GlobalStage, StageConfig

SIGNATURE_COLUMN = "_signature"
BAND_COLUMN = "_band"
TEXT_COLUMN = "_text"
VerifyMode = Literal["none", "signature", "exact"]
# LSH weights (false positive, false negative) when nothing is set: balanced for plain LSH,
# recall-first when every candidate pair is checked afterwards. On the labelled benchmark
# (BENCHMARKS.md) 0.9 against 0.5 raised en F1 at 0.7 from 0.944 to 0.972 with signature checks.
BALANCED_WEIGHTS = (0.5, 0.5)
RECALL_WEIGHTS = (0.1, 0.9)


class NearDedupConfig(StageConfig):
    key: KeyName = "conversation"
    threshold: float = Field(0.8, gt=0.0, lt=1.0)
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
    # Candidate graphs up to this many edges (16 bytes each) are clustered in one task
    # instead of shuffle rounds; 0 forces the distributed rounds.
    single_task_max_edges: int = Field(2_000_000, ge=0)

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

    def shingler(self) -> Shingler:
        return Shingler(word_ngram=self.word_ngram, char_ngram=self.char_ngram)

    def hasher(self, seed: int) -> MinHasher:
        return MinHasher(
            num_perm=self.num_perm,
            seed=seed,
            shingler=self.shingler(),
        )


class Signatures:
    """Ray Data callable: MinHash signatures of the live rows of each batch (actor pool, so
    the kernel's JIT compile happens once per worker)."""

    def __init__(self, config: dict[str, Any], file_index: dict[str, int], seed: int) -> None:
        self.config = NearDedupConfig.model_validate(config)
        self.hasher = self.config.hasher(seed)
        self.file_index = file_index

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch = alive(batch)
        texts = key_texts(batch, self.config.key)
        signatures = self.hasher.signatures(texts)
        # A text without shingles ("?!", empty) has the all-max signature: it would match
        # every other such text, so it is left out of near dedup altogether.
        usable = np.asarray(has_shingles(signatures), dtype=bool)
        mask = pa.array(usable)
        batch, signatures = batch.filter(mask), signatures[usable]
        columns = {
            UID_COLUMN: pa.array(row_uids(batch, self.file_index), pa.int64()),
            "id": batch.column("id"),
            RANK_COLUMN: pa.array(keeper_rank(batch, self.config.keep), pa.float64()),
            SIGNATURE_COLUMN: signature_array(signatures),
        }
        if self.config.verify == "exact":
            columns[TEXT_COLUMN] = pa.array(texts, pa.string()).filter(mask)
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


def bucket_edges(block: pa.Table) -> pa.Table:
    """Within a block sorted by band hash: each bucket of k > 1 rows gives k-1 edges from
    its smallest uid to the others."""
    bands = block.column(BAND_COLUMN).to_numpy()
    uids = block.column(UID_COLUMN).to_numpy()
    if len(bands) < 2:
        return EDGE_SCHEMA.empty_table()
    starts = np.flatnonzero(np.r_[True, bands[1:] != bands[:-1]])
    lengths = np.diff(np.r_[starts, len(bands)])
    centre = np.repeat(np.minimum.reduceat(uids, starts), lengths)
    linked = (np.repeat(lengths, lengths) > 1) & (uids != centre)
    if not linked.any():
        return EDGE_SCHEMA.empty_table()
    small, large = centre[linked], uids[linked]
    pairs = np.unique(np.stack([small, large], axis=1), axis=0)
    return pa.table({"u": pairs[:, 0], "v": pairs[:, 1]}, schema=EDGE_SCHEMA)


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
    own = matrix[rows_of(uids, losers.column(UID_COLUMN).to_numpy())]
    keeper_uids = losers.column("_keeper_uid").to_numpy()
    keeper = matrix[rows_of(uids, keeper_uids)]
    keeper_uid_set, first = np.unique(keeper_uids, return_index=True)
    loser_rows = pa.table(
        {
            UID_COLUMN: losers.column(UID_COLUMN),
            "duplicate_of": losers.column("duplicate_of"),
            "similarity": pa.array((own == keeper).mean(axis=1), pa.float64()),
            CLUSTER_COLUMN: losers.column("duplicate_of"),
        },
        schema=MEMBER_SCHEMA,
    )
    keeper_rows = pa.table(
        {
            UID_COLUMN: pa.array(keeper_uid_set, pa.int64()),
            "duplicate_of": pa.nulls(len(first), pa.string()),
            "similarity": pa.nulls(len(first), pa.float64()),
            CLUSTER_COLUMN: losers.column("duplicate_of").take(pa.array(first)),
        },
        schema=MEMBER_SCHEMA,
    )
    return pa.concat_tables([loser_rows, keeper_rows])


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


class NearDedup(GlobalStage):
    name: ClassVar[str] = "near_dedup"
    Config = NearDedupConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("dedup.near",)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        import ray

        config = self.config
        bands, rows = config.lsh_shape()
        partitions = partitions_for(dataset, context)
        signatures = dataset.map_batches(
            Signatures,
            fn_constructor_kwargs={
                "config": config.model_dump(mode="json"),
                "file_index": context.file_index,
                "seed": context.seed,
            },
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=context.workers),
        ).materialize()
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
            edges, partitions, single_task_max_edges=config.single_task_max_edges
        )
        # Candidate components with rank and signature: one join, then one shuffle on the
        # root checks each component's pairs, forms clusters, picks keepers and scores losers.
        members = labels.rename_columns({"node": UID_COLUMN}).join(
            signatures, join_type="inner", num_partitions=partitions, on=(UID_COLUMN,)
        )
        per_component = partial(keepers_with_similarity, config=config)
        losers = grouped_blocks(members, "root", per_component, partitions).materialize()
        return mark_drops(
            dataset,
            losers,
            reason="dedup.near",
            detail_columns=("duplicate_of", "similarity"),
            context=context,
            cluster_column=CLUSTER_COLUMN,
        )


__all__ = ["NearDedup", "NearDedupConfig", "bucket_edges", "edges_table"]
