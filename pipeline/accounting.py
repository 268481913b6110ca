"""Where every record ended up, counted from the data itself.

Each processed batch is summarised into a small, summable ``Summary`` (counts per fate,
per drop reason and per source file, mixes, length histograms, bottom-k samples). Summaries
are computed on the workers and merged on the driver, so the driver never sees records, and
because they are computed from the rows that will be written they stay exact when Ray retries
a task. ``check_conservation`` compares them with what the readers counted, file by file.

Augmentation stages add rows. A created row is one whose ``augmentation`` is set, in whatever
fate it ends (kept, rejected by the guard, dropped later by dedup); it keeps its parent's
``source_file`` and ``source_line``. So the balance is input + created = output + rejects +
quarantine, overall and per file, where a file's created rows are those made from its
records. ``augment.*`` drop reasons are shared by the augmentation stages, so they are
attributed to the stage named in each row's ``augmentation`` rather than by reason owner.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from pipeline.schema import QUARANTINE_PREFIXES, instructions_and_responses, record_kind

FATES = ("output", "rejects", "quarantine")
AUGMENT_PREFIX = "augment."
MIX_COLUMNS = ("language", "task", "domain", "source_format", "source_file")
# Kept records by kind (``schema.record_kind``: sft, pair, binary), beside the column mixes.
KIND_MIX = "kind"
# Character-length histogram edges: 0, 1, 2, 4, ... 2^20 (and beyond in the last bin).
LENGTH_EDGES = [0] + [2**power for power in range(21)]
SAMPLES_PER_GROUP = 5
SAMPLE_SEED = 0x5A3B1E


class ConservationError(RuntimeError):
    """Records went missing or appeared from nowhere between reading and writing."""


def fate_of(reasons: pa.ChunkedArray) -> pa.Array:
    """'output' for live rows, 'quarantine' for malformed input, 'rejects' for the rest."""
    quarantined = pc.or_(
        pc.starts_with(reasons, QUARANTINE_PREFIXES[0]),
        pc.starts_with(reasons, QUARANTINE_PREFIXES[1]),
    )
    return pc.if_else(
        pc.is_null(reasons), "output", pc.if_else(quarantined, "quarantine", "rejects")
    )


def content_bytes(table: pa.Table) -> int:
    """UTF-8 bytes of a table's text: depends on content only, not on how rows were batched."""
    total = 0
    for name in ("id", "system", "context", "tools", "meta", "source_file", "raw", "drop_detail"):
        total += pc.sum(pc.binary_length(table.column(name))).as_py() or 0
    for name in ("messages", "rejected"):
        contents = pc.struct_field(pc.list_flatten(table.column(name)), "content")
        total += pc.sum(pc.binary_length(contents)).as_py() or 0
    return total + 16 * table.num_rows


def row_sort_key(ids: list[str], files: list[str], lines: list[int]) -> list[int]:
    """A seeded 64-bit hash per row: sample order and shard choice never depend on batching."""
    return [
        xxhash.xxh3_64_intdigest(f"{i}\x1f{f}\x1f{n}".encode(), seed=SAMPLE_SEED)
        for i, f, n in zip(ids, files, lines, strict=True)
    ]


def length_histogram(lengths: list[int]) -> list[int]:
    counts = [0] * len(LENGTH_EDGES)
    for length in lengths:
        bucket = 0 if length <= 0 else min(length.bit_length(), len(LENGTH_EDGES) - 1)
        counts[bucket] += 1
    return counts


@dataclass
class Summary:
    rows: Counter = field(default_factory=Counter)
    bytes: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    per_file: Counter = field(default_factory=Counter)
    mix: dict[str, Counter] = field(
        default_factory=lambda: {c: Counter() for c in (*MIX_COLUMNS, KIND_MIX)}
    )
    lengths: dict[str, list[int]] = field(default_factory=dict)
    samples: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    # Rows created by augmentation, in every fate: per creating stage, per parent's source
    # file, and "stage/reason" for the created rows that were dropped.
    created: Counter = field(default_factory=Counter)
    created_per_file: Counter = field(default_factory=Counter)
    created_dropped: Counter = field(default_factory=Counter)
    # Output rows and content bytes per split (only rows a split stage assigned), so the
    # writer can size each split's shards.
    split_rows: Counter = field(default_factory=Counter)
    split_bytes: Counter = field(default_factory=Counter)

    def merge(self, other: Summary) -> None:
        self.rows.update(other.rows)
        self.bytes.update(other.bytes)
        self.reasons.update(other.reasons)
        self.per_file.update(other.per_file)
        self.created.update(other.created)
        self.created_per_file.update(other.created_per_file)
        self.created_dropped.update(other.created_dropped)
        self.split_rows.update(other.split_rows)
        self.split_bytes.update(other.split_bytes)
        for column, counts in other.mix.items():
            self.mix.setdefault(column, Counter()).update(counts)
        for key, counts in other.lengths.items():
            mine = self.lengths.setdefault(key, [0] * len(counts))
            self.lengths[key] = [a + b for a, b in zip(mine, counts, strict=True)]
        for group, rows in other.samples.items():
            merged = sorted(self.samples.get(group, []) + rows, key=lambda item: item[0])
            self.samples[group] = merged[:SAMPLES_PER_GROUP]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Summary:
        data = json.loads(text)
        return cls(
            rows=Counter(data["rows"]),
            bytes=Counter(data["bytes"]),
            reasons=Counter(data["reasons"]),
            per_file=Counter(data["per_file"]),
            mix={column: Counter(counts) for column, counts in data["mix"].items()},
            lengths=data["lengths"],
            samples={
                group: [tuple(item) for item in rows] for group, rows in data["samples"].items()
            },
            created=Counter(data.get("created", {})),
            created_per_file=Counter(data.get("created_per_file", {})),
            created_dropped=Counter(data.get("created_dropped", {})),
            split_rows=Counter(data.get("split_rows", {})),
            split_bytes=Counter(data.get("split_bytes", {})),
        )


def summarize_batch(batch: pa.Table) -> pa.Table:
    """Ray Data UDF: one batch of processed rows -> a one-row table holding its Summary JSON."""
    summary = Summary()
    fates = fate_of(batch.column("drop_reason"))
    summary.per_file.update(Counter(batch.column("source_file").to_pylist()))
    for fate in FATES:
        part = batch.filter(pc.equal(fates, fate))
        if part.num_rows:
            _summarize_fate(summary, fate, part)
    created = batch.filter(pc.is_valid(batch.column("augmentation")))
    if created.num_rows:
        _count_created(summary, created)
    return pa.table({"summary": [summary.to_json()]})


def _count_created(summary: Summary, created: pa.Table) -> None:
    stages = [json.loads(text)["stage"] for text in created.column("augmentation").to_pylist()]
    summary.created.update(Counter(stages))
    summary.created_per_file.update(Counter(created.column("source_file").to_pylist()))
    for stage, reason in zip(stages, created.column("drop_reason").to_pylist(), strict=True):
        if reason is not None:
            summary.created_dropped[f"{stage}/{reason}"] += 1


def _summarize_fate(summary: Summary, fate: str, part: pa.Table) -> None:
    summary.rows[fate] += part.num_rows
    summary.bytes[fate] += content_bytes(part)
    if fate == "output":
        for column in MIX_COLUMNS:
            summary.mix[column].update(Counter(part.column(column).to_pylist()))
        kinds = zip(
            part.column("rejected").is_null().to_pylist(),
            part.column("feedback").to_pylist(),
            strict=True,
        )
        summary.mix[KIND_MIX].update(
            record_kind(None if unpaired else [], label) for unpaired, label in kinds
        )
        _count_splits(summary, part)
    else:
        summary.reasons.update(Counter(part.column("drop_reason").to_pylist()))
    if fate != "quarantine":
        instructions, responses = instructions_and_responses(part)
        summary.lengths[f"{fate}.instruction"] = length_histogram([len(t) for t in instructions])
        summary.lengths[f"{fate}.response"] = length_histogram([len(t) for t in responses])
    else:
        instructions = responses = [""] * part.num_rows
    _collect_samples(summary, fate, part, instructions, responses)


def _count_splits(summary: Summary, part: pa.Table) -> None:
    splits = part.column("split")
    for name in pc.unique(splits).to_pylist():
        if name:
            rows = part.filter(pc.equal(splits, name))
            summary.split_rows[name] += rows.num_rows
            summary.split_bytes[name] += content_bytes(rows)


def _collect_samples(
    summary: Summary, fate: str, part: pa.Table, instructions: list[str], responses: list[str]
) -> None:
    columns = {
        name: part.column(name).to_pylist()
        for name in (
            "id",
            "source_file",
            "source_line",
            "language",
            "drop_reason",
            "drop_detail",
            "raw",
        )
    }
    keys = row_sort_key(columns["id"], columns["source_file"], columns["source_line"])
    for index in sorted(range(part.num_rows), key=keys.__getitem__):
        group = fate if fate == "output" else f"{fate}/{columns['drop_reason'][index]}"
        kept = summary.samples.setdefault(group, [])
        if len(kept) >= SAMPLES_PER_GROUP:
            continue
        sample = {name: values[index] for name, values in columns.items()}
        sample["instruction"] = instructions[index][:600]
        sample["response"] = responses[index][:600]
        sample["raw"] = (sample["raw"] or "")[:600]
        kept.append((keys[index], sample))


def check_conservation(
    read_per_file: dict[str, int],
    summary: Summary,
    written: dict[str, int],
    created: int | None = None,
) -> None:
    """Fail loudly unless input + created = output + rejects + quarantine, overall and for
    every file (a created row counts for its parent's file). ``created`` is what the
    augmentation workers reported making; the data must carry exactly that many."""
    problems = []
    total_read = sum(read_per_file.values())
    total_created = sum(summary.created.values())
    if created is not None and created != total_created:
        problems.append(
            f"augmentation stages created {created} records but {total_created} reached the end"
        )
    total_seen = sum(summary.rows[f] for f in FATES)
    if total_read + total_created != total_seen:
        problems.append(
            f"readers produced {total_read} records and augmentation created {total_created}, "
            f"but {total_seen} reached the end"
        )
    for uri in sorted(set(read_per_file) | set(summary.per_file) | set(summary.created_per_file)):
        read, created = read_per_file.get(uri, 0), summary.created_per_file.get(uri, 0)
        if read + created != summary.per_file.get(uri, 0):
            made = f"created {created}, " if created else ""
            problems.append(f"{uri}: read {read}, {made}accounted {summary.per_file.get(uri, 0)}")
    for fate in FATES:
        if written.get(fate, 0) != summary.rows[fate]:
            problems.append(
                f"{fate}: {summary.rows[fate]} rows processed, {written.get(fate, 0)} written"
            )
    if problems:
        raise ConservationError("record conservation broken:\n  " + "\n  ".join(problems[:50]))
