"""A small preference-data pipeline output for DPO tests: canonical pair records (and binary
feedback records) in data/train and data/validation, as `instructflow data run` writes them.
The chosen replies answer; the rejected ones decline, a contrast a tiny model learns in a few
dozen steps and that carries over to the held-out prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.schema import make_record, message, rows_to_table
from tests.train.sft_corpus import conversations


def pair_records(count: int, offset: int = 0, binary: bool = False) -> list[dict]:
    rows = []
    for line, turns in enumerate(conversations(count, offset)):
        row = make_record(
            messages=[message(role, content) for role, content in turns],
            source_file="pairs.jsonl",
            source_format="pairwise",
            source_line=line,
            language="en",
        )
        refusal = [message("assistant", "Sorry, I cannot help with that request.")]
        if binary:
            if line % 2:  # every other record: the refusal, labelled undesirable
                row["messages"] = row["messages"][:-1] + refusal
                row["feedback"] = False
            else:
                row["feedback"] = True
        else:
            row["rejected"] = refusal
        rows.append(row)
    return rows


def write_pair_output(
    root: Path, train: int = 96, validation: int = 16, binary: bool = False
) -> Path:
    for split, rows in (
        ("train", pair_records(train, binary=binary)),
        ("validation", pair_records(validation, offset=10_000, binary=binary)),
    ):
        directory = root / "data" / split
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows_to_table(rows), directory / "part-00000-of-00001.parquet")
    shards = [
        {"fate": "output", "path": f"data/{split}/part-00000-of-00001.parquet"}
        for split in ("train", "validation")
    ]
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))
    return root
