"""Small pipeline outputs for RL tests, as `instructflow data run` writes them.

- ``write_sft_output``: conversations (capitals, colours) whose replies come in three
  styles at random, independent of the question: plain ("The capital of Peru is Lima."),
  all lowercase, or ending with "Any other questions?". A tiny model fine-tuned on them
  samples each style sometimes, whatever it is asked.
- ``write_rl_output``: the same kinds of questions, each with one constraint the data
  engine's ``constrain`` stage would attach (its sentence appended to the instruction, the
  constraint in the ``constraints`` column): all lowercase, or end with the phrase. RL can
  only raise the reward by tying the style to the instruction. The validation prompts are
  questions the training split never asks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.schema import make_record, message, rows_to_table
from tests.train.sft_corpus import COLOURS, COUNTRIES

END_PHRASE = "Any other questions?"
LOWERCASE = (
    "change_case:english_lowercase",
    {},
    "Your entire response should be in English, and in all lowercase letters.",
)
ENDING = (
    "startend:end_checker",
    {"end_phrase": END_PHRASE},
    f"Finish your response with this exact phrase: {END_PHRASE}",
)
CONSTRAINT_TYPE = pa.struct(
    [("kind", pa.string()), ("args", pa.string()), ("held_out", pa.bool_())]
)


def question(index: int) -> tuple[str, str]:
    country, capital = COUNTRIES[index % len(COUNTRIES)]
    colour = COLOURS[index % len(COLOURS)]
    if index % 2 == 0:
        return f"What is the capital of {country}?", f"The capital of {country} is {capital}."
    return f"Name a colour number {index}.", f"One colour is {colour}."


def styled(reply: str, index: int) -> str:
    style = (index * 7) % 3
    if style == 1:
        return reply.lower()
    if style == 2:
        return f"{reply} {END_PHRASE}"
    return reply


def write_table(directory: Path, rows: list[dict], constraints: list | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    table = rows_to_table(rows)
    if constraints is not None:
        column = pa.array(constraints, pa.list_(CONSTRAINT_TYPE))
        if "constraints" in table.schema.names:
            index = table.schema.get_field_index("constraints")
            table = table.set_column(
                index, table.schema.field(index), column.cast(table.schema.field(index).type)
            )
        else:
            table = table.append_column("constraints", column)
    pq.write_table(table, directory / "part-00000-of-00001.parquet")


def record(turns: list[tuple[str, str]], line: int) -> dict:
    return make_record(
        messages=[message(role, content) for role, content in turns],
        source_file="synthetic.jsonl",
        source_format="messages",
        source_line=line,
        language="en",
    )


def write_manifest(root: Path) -> None:
    """The commit marker of a finished run: training refuses a directory without it."""
    shards = [
        {"fate": "output", "path": f"data/{split}/part-00000-of-00001.parquet"}
        for split in ("train", "validation")
    ]
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))


def write_sft_output(root: Path, train: int = 240, validation: int = 24) -> Path:
    for split, indices in (("train", range(train)), ("validation", range(5000, 5000 + validation))):
        rows = []
        for line, index in enumerate(indices):
            prompt, reply = question(index)
            rows.append(record([("user", prompt), ("assistant", styled(reply, index))], line))
        write_table(root / "data" / split, rows)
    write_manifest(root)
    return root


def write_rl_output(root: Path, train: int = 96, validation: int = 24) -> Path:
    for split, indices in (("train", range(train)), ("validation", range(9000, 9000 + validation))):
        rows, constraints = [], []
        for line, index in enumerate(indices):
            prompt, reply = question(index)
            kind, args, sentence = LOWERCASE if index % 2 == 0 else ENDING
            if (index // 2) % 2:
                kind, args, sentence = ENDING if index % 2 == 0 else LOWERCASE
            rows.append(record([("user", f"{prompt} {sentence}"), ("assistant", reply)], line))
            constraints.append(
                [{"kind": kind, "args": json.dumps(args, sort_keys=True), "held_out": False}]
            )
        write_table(root / "data" / split, rows, constraints)
    write_manifest(root)
    return root


__all__ = ["END_PHRASE", "write_rl_output", "write_sft_output"]
