"""Sharded Parquet output with deterministic names and byte-identical content.

Every row gets a shard from a seeded hash of ``(id, source_file, source_line)``; the shard
count per part is ``ceil(content bytes / shard_target_bytes)``. A part is a fate (``output``,
``rejects``, ``quarantine``) or, for output rows a split stage assigned, ``output/<split>``,
written to ``data/<split>/``. A Ray Data groupby brings
each shard's rows to one worker, which sorts them by that key and writes one file. Nothing
depends on read order or batching, so the same input and recipe give the same bytes.

Memory per writer is one shard, whatever the corpus size. The groupby hash-partitions its key
into one partition per shard, and a reduce task holds its whole partition, so two shards whose
keys hash alike would share a task: hashing the plain keys of 41-shard runs puts up to 4 in
one partition, and peak worker memory grew with the shard count. ``routed_shard_keys``
therefore gives each shard a key (``part/shard#salt``) that Ray's own partition function sends
to a partition of its own.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.accounting import FATES, fate_of, row_sort_key
from pipeline.checkpoint import (
    RunDirectory,
    uri_join,
    write_bytes_atomically,
    write_json_atomically,
)
from pipeline.schema import QUARANTINE_SCHEMA, RECORD_SCHEMA, REJECT_SCHEMA

FATE_DIRECTORIES = {"output": "data", "rejects": "rejects", "quarantine": "quarantine"}
FATE_SCHEMAS = {"output": RECORD_SCHEMA, "rejects": REJECT_SCHEMA, "quarantine": QUARANTINE_SCHEMA}
SHARD_KEY = "_shard"
WRITE_RESULT_SCHEMA = pa.schema(
    [
        ("fate", pa.string()),
        ("shard", pa.int64()),
        ("path", pa.string()),
        ("rows", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
    ]
)


def shard_counts(
    content_bytes: dict[str, int],
    rows: dict[str, int],
    target: int,
    split_bytes: dict[str, int] | None = None,
    split_rows: dict[str, int] | None = None,
) -> dict[str, int]:
    """Shards per part: enough to keep each near the target size, at least one if any rows.

    The output always has at least one shard, empty if need be, so that ``load_dataset`` and
    ``read_parquet`` work on a run that kept nothing; once rows are split, each split with
    rows has its own, and ``data/`` itself only holds rows no split stage assigned.
    """
    counts = {
        fate: max(1, math.ceil(content_bytes.get(fate, 0) / target))
        if rows.get(fate, 0) or fate == "output"
        else 0
        for fate in FATES
    }
    if split_rows:
        split_bytes = split_bytes or {}
        unsplit_rows = rows.get("output", 0) - sum(split_rows.values())
        unsplit_bytes = content_bytes.get("output", 0) - sum(split_bytes.values())
        counts["output"] = max(1, math.ceil(unsplit_bytes / target)) if unsplit_rows else 0
        for split in sorted(split_rows):
            counts[f"output/{split}"] = max(1, math.ceil(split_bytes.get(split, 0) / target))
    return counts


def part_fate(part: str) -> str:
    return part.split("/", 1)[0]


def shard_name(part: str, shard: int, total: int) -> str:
    fate, _, split = part.partition("/")
    directory = posixpath.join(FATE_DIRECTORIES[fate], split) if split else FATE_DIRECTORIES[fate]
    return f"{directory}/part-{shard:05d}-of-{total:05d}.parquet"


def shard_groups(shards_per_fate: dict[str, int]) -> list[str]:
    """Every ``part/shard`` group, in a fixed order."""
    return [
        f"{part}/{shard:05d}"
        for part in sorted(shards_per_fate)
        for shard in range(shards_per_fate[part])
    ]


def routed_shard_keys(shards_per_fate: dict[str, int]) -> dict[str, str]:
    """``part/shard`` -> a key ``part/shard#salt`` that Ray Data's hash partitioning (the
    function its shuffle map tasks call) sends to a partition no other shard's key goes to,
    with one partition per shard. The smallest salt that lands on a free partition wins, so
    the keys are deterministic. Without Ray's function (another Ray version) the groups are
    their own keys and partitions are only balanced on average."""
    groups = shard_groups(shards_per_fate)
    partition_of = _ray_partition_function()
    if partition_of is None or len(groups) < 2:
        return {group: group for group in groups}
    free = set(range(len(groups)))
    keys: dict[str, str] = {}
    for group in groups:
        salt = 0
        while group not in keys:
            candidates = [f"{group}#{salt + offset}" for offset in range(64)]
            for candidate, partition in zip(
                candidates, partition_of(candidates, len(groups)), strict=True
            ):
                if int(partition) in free:
                    free.discard(int(partition))
                    keys[group] = candidate
                    break
            salt += 64
    return keys


def _ray_partition_function() -> Any:
    """``(keys, partitions) -> partition of each key`` as Ray Data's hash shuffle computes
    it, or None when this Ray has no such internal function."""
    try:
        from ray.data._internal.arrow_ops.transform_pyarrow import _hash_partition_vectorized
    except ImportError:
        return None

    def partition_of(keys: list[str], partitions: int) -> Any:
        table = pa.table({SHARD_KEY: pa.array(keys, pa.string())})
        return _hash_partition_vectorized(table, partitions)

    return partition_of


def shard_path(group: str, shards_per_fate: dict[str, int]) -> str:
    """The file a ``part/shard`` group is written to."""
    part, shard = group.rsplit("/", 1)
    return shard_name(part, int(shard), shards_per_fate[part])


def shard_group(key: str) -> str:
    """The ``part/shard`` a routed key stands for."""
    return key.split("#", 1)[0]


def assign_shards(
    batch: pa.Table,
    shards_per_fate: dict[str, int],
    routed: dict[str, str] | None = None,
    keep: set[str] | None = None,
) -> pa.Table:
    """Ray Data UDF: add the group key each row is written under (``part/shard``, or its
    routed key from ``routed_shard_keys`` when given); with ``keep``, only the rows of
    those groups stay (a resumed write skips the shards it staged before)."""
    fates = fate_of(batch.column("drop_reason")).to_pylist()
    splits = batch.column("split").to_pylist()
    keys = row_sort_key(
        batch.column("id").to_pylist(),
        batch.column("source_file").to_pylist(),
        batch.column("source_line").to_pylist(),
    )
    parts = [
        f"{fate}/{split}" if fate == "output" and split else fate
        for fate, split in zip(fates, splits, strict=True)
    ]
    groups = [
        f"{part}/{key % shards_per_fate[part]:05d}" for part, key in zip(parts, keys, strict=True)
    ]
    mask = None if keep is None else pa.array([group in keep for group in groups])
    if routed is not None:
        groups = [routed[group] for group in groups]
    keyed = batch.append_column(SHARD_KEY, pa.array(groups, pa.string()))
    return keyed if mask is None else keyed.filter(mask)


def write_shard(
    group: pa.Table,
    *,
    run: RunDirectory,
    shards_per_fate: dict[str, int],
    compression: str,
    row_group_rows: int,
) -> pa.Table:
    """Ray Data map_groups UDF: sort one shard's rows and stage them as one Parquet file."""
    part, shard_text = shard_group(group.column(SHARD_KEY)[0].as_py()).rsplit("/", 1)
    fate, shard = part_fate(part), int(shard_text)
    keys = row_sort_key(
        group.column("id").to_pylist(),
        group.column("source_file").to_pylist(),
        group.column("source_line").to_pylist(),
    )
    # The hash is the primary order; the full key breaks the (astronomically rare) ties, and
    # ``augmentation`` those between records augmented from one parent into the same text.
    order_table = pa.table(
        {
            "key": pa.array(keys, pa.uint64()),
            "id": group.column("id"),
            "file": group.column("source_file"),
            "line": group.column("source_line"),
            "augmentation": group.column("augmentation"),
        }
    )
    order = pc.sort_indices(
        order_table,
        sort_keys=[
            ("key", "ascending"),
            ("id", "ascending"),
            ("file", "ascending"),
            ("line", "ascending"),
            ("augmentation", "ascending"),
        ],
    )
    table = group.take(order).select(FATE_SCHEMAS[fate].names).cast(FATE_SCHEMAS[fate])
    result = stage_shard(
        table,
        fate,
        shard,
        shard_name(part, shard, shards_per_fate[part]),
        run,
        compression,
        row_group_rows,
    )
    return pa.Table.from_pylist([result], schema=WRITE_RESULT_SCHEMA)


def stage_shard(
    table: pa.Table,
    fate: str,
    shard: int,
    relative: str,
    run: RunDirectory,
    compression: str,
    row_group_rows: int,
) -> dict[str, Any]:
    """Write one shard into the run's staging, then its result row beside it: a shard whose
    result row exists is whole, and a resumed run does not write it again."""
    digest, size = write_table(
        table, uri_join(run.staged_shards, relative), compression, row_group_rows
    )
    result = {
        "fate": fate,
        "shard": shard,
        "path": relative,
        "rows": table.num_rows,
        "bytes": size,
        "sha256": digest,
    }
    write_json_atomically(run.shard_result_uri(relative), result)
    return result


def write_table(
    table: pa.Table, uri: str, compression: str, row_group_rows: int
) -> tuple[str, int]:
    """Write deterministically (no timestamps), whole or not at all; return the file's
    sha256 and size."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=None if compression == "none" else compression,
        row_group_size=row_group_rows,
        write_statistics=True,
    )
    payload = sink.getvalue()
    write_bytes_atomically(uri, payload.to_pybytes())
    return hashlib.sha256(payload).hexdigest(), payload.size


def write_missing_shards(
    results: list[dict[str, Any]],
    shards_per_fate: dict[str, int],
    run: RunDirectory,
    compression: str,
    row_group_rows: int,
) -> list[dict[str, Any]]:
    """Hashing can leave a shard empty; write it anyway so part-i-of-n names have no gaps."""
    present = {r["path"] for r in results}
    added = []
    for part, total in shards_per_fate.items():
        fate = part_fate(part)
        for shard in range(total):
            relative = shard_name(part, shard, total)
            if relative not in present:
                empty = FATE_SCHEMAS[fate].empty_table()
                added.append(
                    stage_shard(empty, fate, shard, relative, run, compression, row_group_rows)
                )
    return added
