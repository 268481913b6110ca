"""The Ray Data side of RL: canonical records -> prompt rows, and rows -> reward samples.

A record is a prompt: its conversation up to the first reply (``train.sft_data.
opening_turns``), rendered as training renders prompts and cut to its last
``prompt.max_length`` tokens. Its first reply, if any, is the ``reference`` some rewards
compare with, and its ``constraints`` (set by the data engine's ``constrain`` stage) are what
the ``ifeval`` reward checks. A row: ``input_ids`` (``list<int32>``), ``prompt`` (the last user
turn's text, what a constraint such as repeat_prompt reads), ``constraints`` (JSON, ``[]``
when none), ``reference``, and ``train.sft_rows.COUNT_COLUMNS`` for the data statistics.
``Rollouts`` holds a step's sampled completions, from either engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from train.rewards.builtin import Sample
from train.sft_data import generation_input_ids, opening_turns
from train.sft_rows import COUNT_COLUMNS, load_tokenizer

PROMPT_RECORD_COLUMNS = ["id", "system", "messages", "context", "constraints"]
ROW_SCHEMA = pa.schema(
    [
        pa.field("input_ids", pa.list_(pa.int32())),
        pa.field("prompt", pa.string()),
        pa.field("constraints", pa.string()),
        pa.field("reference", pa.string()),
        *[pa.field(name, pa.int64()) for name in COUNT_COLUMNS],
    ]
)


def constraint_list(value: Any) -> list[dict[str, Any]]:
    """A record's ``constraints`` column value -> plain dicts with ``args`` parsed."""
    if not value:
        return []
    items = []
    for item in value:
        args = item.get("args") or "{}"
        items.append(
            {
                "kind": item["kind"],
                "args": json.loads(args) if isinstance(args, str) else dict(args),
                "held_out": bool(item.get("held_out", False)),
            }
        )
    return items


def prompt_row(
    record: dict[str, Any], tokenizer: Any, prompt_format: str, max_length: int
) -> dict[str, Any] | None:
    """One record's row, or None when it has no user turn to answer."""
    turns = opening_turns(record)
    if not turns or turns[-1]["role"] != "user":
        return None
    ids = generation_input_ids(turns, tokenizer, prompt_format, "causal", 10**9)
    truncated = len(ids) > max_length
    ids = ids[-max_length:]
    reference = next(
        (turn["content"] for turn in record.get("messages") or [] if turn["role"] == "assistant"),
        "",
    )
    return {
        "input_ids": ids,
        "prompt": turns[-1]["content"],
        "constraints": json.dumps(constraint_list(record.get("constraints")), sort_keys=True),
        "reference": reference,
        "tokens": len(ids),
        "supervised": 0,
        "records": 1,
        "truncated": int(truncated),
    }


def prompt_rows(
    records: list[dict[str, Any]], tokenizer: Any, prompt_format: str, max_length: int
) -> pa.Table:
    rows = [prompt_row(record, tokenizer, prompt_format, max_length) for record in records]
    return pa.Table.from_pylist([row for row in rows if row is not None], schema=ROW_SCHEMA)


class PromptRows:
    """Ray Data callable class: records -> prompt rows, the tokenizer loaded once per actor;
    the ``path`` column (``train.launch.tokenized`` files rows by it) passes through."""

    def __init__(
        self, tokenizer_path: str, prompt_format: str, max_length: int, trust_remote_code: bool
    ) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path, trust_remote_code)
        self.prompt_format = prompt_format
        self.max_length = max_length

    def __call__(self, block: pa.Table) -> pa.Table:
        records = block.to_pylist()
        rows, paths = [], []
        for record in records:
            row = prompt_row(record, self.tokenizer, self.prompt_format, self.max_length)
            if row is not None:
                rows.append(row)
                paths.append(record["path"])
        table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
        return table.append_column("path", pa.array(paths, pa.string()))


@dataclass
class Rollouts:
    """G completions of each prompt, row-major (prompt 0's G first)."""

    sequences: Any  # [N, prompt width + T]: left-padded prompt, completion, pad after the end
    attention_mask: Any  # [N, prompt width + T]
    prompt_width: int
    completion_mask: Any  # [N, T] float: the completion's tokens, its end token included
    texts: list[str]
    finished: Any  # [N] bool: the completion ended with the end token (not cut)

    @property
    def completion_tokens(self) -> int:
        return int(self.completion_mask.sum())


def samples_of(rows: dict[str, Any], completions: list[str], group: int) -> list[Sample]:
    """Reward samples for ``group`` completions of each row, in row-major order."""
    samples = []
    for index, completion in enumerate(completions):
        row = index // group
        constraints = tuple(json.loads(str(rows["constraints"][row])))
        samples.append(
            Sample(
                prompt=str(rows["prompt"][row]),
                completion=completion,
                constraints=constraints,
                reference=str(rows["reference"][row]),
            )
        )
    return samples


__all__ = ["PROMPT_RECORD_COLUMNS", "PromptRows", "Rollouts", "prompt_rows", "samples_of"]
