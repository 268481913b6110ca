"""A small pipeline output for SFT tests: canonical records in data/train and
data/validation, as `instructflow data run` with a split stage writes them. The replies
follow simple patterns a tiny model learns in a few dozen steps."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.schema import make_record, message, rows_to_table

COUNTRIES = [
    ("France", "Paris"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Chile", "Santiago"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Cuba", "Havana"),
    ("India", "Delhi"),
]
COLOURS = ["red", "green", "blue", "yellow", "black", "white", "purple", "orange"]


def conversations(count: int, offset: int = 0) -> list[list[tuple[str, str]]]:
    made = []
    for index in range(offset, offset + count):
        country, capital = COUNTRIES[index % len(COUNTRIES)]
        colour = COLOURS[index % len(COLOURS)]
        if index % 3 == 0:
            made.append(
                [
                    ("user", f"What is the capital of {country}?"),
                    ("assistant", f"The capital of {country} is {capital}."),
                ]
            )
        elif index % 3 == 1:
            made.append(
                [
                    ("user", f"Name a colour number {index}."),
                    ("assistant", f"One colour is {colour}."),
                    ("user", "And another one?"),
                    ("assistant", f"Another colour is {COLOURS[(index + 3) % 8]}."),
                ]
            )
        else:
            made.append(
                [
                    ("user", f"Repeat the word {colour} {index % 5 + 1} times."),
                    ("assistant", " ".join([colour] * (index % 5 + 1)) + "."),
                ]
            )
    return made


def write_split(directory: Path, turns_list: list[list[tuple[str, str]]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rows = []
    for line, turns in enumerate(turns_list):
        row = make_record(
            messages=[message(role, content) for role, content in turns],
            source_file="synthetic.jsonl",
            source_format="messages",
            source_line=line,
            language="en",
        )
        rows.append(row)
    pq.write_table(rows_to_table(rows), directory / "part-00000-of-00001.parquet")


def write_pipeline_output(root: Path, train: int = 160, validation: int = 24) -> Path:
    write_split(root / "data" / "train", conversations(train))
    write_split(root / "data" / "validation", conversations(validation, offset=10_000))
    shards = [
        {"fate": "output", "path": f"data/{split}/part-00000-of-00001.parquet"}
        for split in ("train", "validation")
    ]
    # The commit marker of a finished run: `train sft` refuses a directory without it.
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))
    return root
