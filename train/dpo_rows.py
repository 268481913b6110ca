"""The Ray Data side of preference training: canonical pair records -> pair rows, the
reference model's log-probabilities stored with them, and the log-probabilities of a
micro-batch of rows under any model (the one function both the stored and the in-process
reference use, so the two agree).

A preference record (``pipeline.schema``) is a conversation whose last assistant turn is the
chosen reply, with ``rejected`` (the rejected side's turns in its place) for a pair or
``feedback`` (true: desirable) for binary feedback. A row has two sides, each ``<side>_input_ids``
and ``<side>_labels`` (``list<int32>``): the chosen (desirable) reply and the rejected
(undesirable) one. Only the last reply is supervised. A binary record fills one side and
leaves the other empty; pair losses take only rows with both sides. Causal prompts longer than
``max_length`` lose their beginning, so the reply survives; a reply that alone exceeds it is
cut at its end. Rows carry ``train.sft_rows.COUNT_COLUMNS`` for the data statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from train.sft_data import IGNORE, Example, seq2seq_examples, tokenize_record
from train.sft_rows import COUNT_COLUMNS, collate, load_tokenizer

SIDES = ("chosen", "rejected")
PAIR_RECORD_COLUMNS = ["system", "messages", "context", "rejected", "feedback"]
REFERENCE_COLUMNS = ("ref_chosen_logp", "ref_rejected_logp")


def last_reply_only(labels: list[int]) -> list[int]:
    """Labels with only the last supervised run kept: the final reply (and its end token)."""
    end = max((i for i, label in enumerate(labels) if label != IGNORE), default=-1)
    if end < 0:
        return labels
    start = end
    while start > 0 and labels[start - 1] != IGNORE:
        start -= 1
    return [IGNORE] * start + labels[start : end + 1] + [IGNORE] * (len(labels) - end - 1)


def keep_reply(example: Example, max_length: int) -> Example:
    """Cut an over-long causal example from the left so the reply survives; a reply longer
    than ``max_length`` by itself keeps its beginning."""
    ids, labels = example.input_ids, example.labels
    if len(ids) <= max_length:
        return example
    reply_start = next((i for i, label in enumerate(labels) if label != IGNORE), len(labels))
    if len(ids) - reply_start < max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    else:
        ids, labels = ids[:max_length], labels[:max_length]
    labels = [IGNORE, *labels[1:]]
    return Example(ids, labels, sum(label != IGNORE for label in labels), True)


def reply_example(
    record: dict[str, Any],
    turns: list[dict[str, Any]],
    tokenizer: Any,
    prompt_format: str,
    max_length: int,
    kind: str,
) -> Example | None:
    """``turns`` (prompt + one side's reply) tokenised with only that reply supervised; None
    when the reply is empty or nothing of it survives truncation."""
    if not turns or turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
        return None
    conversation = {**record, "messages": turns}
    if kind == "seq2seq":
        examples = seq2seq_examples(conversation, tokenizer, prompt_format, max_length)
        example = examples[-1] if examples else None
    else:
        full = tokenize_record(conversation, tokenizer, prompt_format, 1 << 30)
        labels = last_reply_only(full.labels)
        example = keep_reply(
            Example(full.input_ids, labels, sum(x != IGNORE for x in labels)), max_length
        )
    return example if example is not None and example.supervised > 0 else None


def sides_of(record: dict[str, Any]) -> dict[str, list[dict[str, Any]] | None]:
    """Each side's turns: prompt plus the chosen / rejected reply (None where there is none)."""
    turns = list(record["messages"])
    last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
    if last is None:
        return dict.fromkeys(SIDES)
    if record.get("rejected") is not None:
        return {"chosen": turns[: last + 1], "rejected": turns[:last] + list(record["rejected"])}
    if record.get("feedback") is not None:
        side = "chosen" if record["feedback"] else "rejected"
        return {side: turns[: last + 1], **{s: None for s in SIDES if s != side}}
    return dict.fromkeys(SIDES)


def pair_rows(
    records: list[dict[str, Any]],
    tokenizer: Any,
    prompt_format: str,
    max_length: int,
    kind: str,
    need_both: bool,
) -> pa.Table:
    """Records -> rows (see the module docstring). A record gives no row when it is no
    preference data, when ``need_both`` and it lacks a side, or when a side it has is empty."""
    rows = []
    for record in records:
        sides = sides_of(record)
        examples = {
            side: reply_example(record, turns, tokenizer, prompt_format, max_length, kind)
            if turns is not None
            else None
            for side, turns in sides.items()
        }
        present = [side for side in SIDES if sides[side] is not None]
        if not present or any(examples[side] is None for side in present):
            continue
        if need_both and len(present) < 2:
            continue
        row: dict[str, Any] = {"records": 1}
        for side in SIDES:
            example = examples[side]
            row[f"{side}_input_ids"] = example.input_ids if example else []
            row[f"{side}_labels"] = example.labels if example else []
        used = [examples[side] for side in present]
        seq2seq = kind == "seq2seq"
        row["tokens"] = sum(len(e.input_ids) + (len(e.labels) if seq2seq else 0) for e in used)
        row["supervised"] = sum(e.supervised for e in used)
        row["truncated"] = int(any(e.truncated for e in used))
        rows.append(row)
    return pair_table(rows)


def pair_table(rows: list[dict[str, Any]]) -> pa.Table:
    token_type = pa.list_(pa.int32())
    fields = [
        pa.field(f"{side}_{part}", token_type) for side in SIDES for part in ("input_ids", "labels")
    ]
    fields += [pa.field(name, pa.int64()) for name in COUNT_COLUMNS]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


class PairRows:
    """Ray Data ``map_batches`` callable: a block of preference records -> pair rows, each
    shard's records apart and tagged with their ``path`` (as ``train.sft_rows.TokenizeRows``),
    with the reference's log-probabilities when ``reference`` is given."""

    def __init__(
        self,
        tokenizer_path: str,
        prompt_format: str,
        max_length: int,
        kind: str,
        need_both: bool,
        trust_remote_code: bool = False,
        reference: dict[str, Any] | None = None,
    ) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path, trust_remote_code)
        self.options = (prompt_format, max_length, kind, need_both)
        # ReferenceLogps' arguments: the reference scores the rows in the same pass, so the
        # data is read, tokenised and scored by one pool of actors.
        self.reference = ReferenceLogps(**reference) if reference else None

    def __call__(self, batch: pa.Table) -> pa.Table:
        paths = batch.column("path").to_pylist()
        tables = []
        for path in dict.fromkeys(paths):
            mine = batch.filter(pa.array([p == path for p in paths]))
            rows = pair_rows(
                mine.select(PAIR_RECORD_COLUMNS).to_pylist(), self.tokenizer, *self.options
            )
            if self.reference is not None:
                rows = self.reference(rows)
            tables.append(rows.append_column("path", pa.array([path] * rows.num_rows, pa.string())))
        return pa.concat_tables(tables)


def side_logps(
    model: Any, unwrapped: Any, rows: dict[str, Any], pad_id: int, kind: str, device: Any
) -> tuple[Any, Any]:
    """(log-probabilities, token counts) of each row's chosen and rejected reply under
    ``model``, each a ``[2, rows]`` float32 tensor (side 0 chosen, side 1 rejected; 0 for an
    empty side). Both sides go through one forward pass."""
    import torch

    from train.sft import forward

    input_ids, labels, slots = [], [], []
    for side_index, side in enumerate(SIDES):
        for row_index, (ids, side_labels) in enumerate(
            zip(rows[f"{side}_input_ids"], rows[f"{side}_labels"], strict=True)
        ):
            if len(ids):
                input_ids.append(np.asarray(ids, dtype=np.int64))
                labels.append(np.asarray(side_labels, dtype=np.int64))
                slots.append((side_index, row_index))
    count = len(rows["chosen_input_ids"])
    batch = {
        name: value.to(device)
        for name, value in collate({"input_ids": input_ids, "labels": labels}, pad_id, kind).items()
    }
    batch_labels = batch.pop("labels")
    from train.preference_loss import sequence_logps

    logits = forward(model, unwrapped, batch, batch_labels, kind)
    logps, tokens = sequence_logps(logits, batch_labels, shift=kind == "causal")
    index = torch.as_tensor(slots, device=device).T
    out_logps = torch.zeros(2, count, device=device, dtype=torch.float32)
    out_tokens = torch.zeros(2, count, device=device, dtype=torch.float32)
    out_logps = out_logps.index_put((index[0], index[1]), logps)
    out_tokens = out_tokens.index_put((index[0], index[1]), tokens.float())
    return out_logps, out_tokens


def load_reference(
    model_path: str,
    kind: str,
    trust_remote_code: bool,
    attn_implementation: str | None,
    device: Any,
) -> Any:
    """The frozen reference model, in eval mode (no dropout), without gradients."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    options: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if attn_implementation and kind == "causal":
        options["attn_implementation"] = attn_implementation
    model = model_class.from_pretrained(model_path, **options).to(device).eval()
    model.requires_grad_(False)
    return model


class ReferenceLogps:
    """Ray Data ``map_batches`` callable: adds the reference model's ``ref_chosen_logp`` and
    ``ref_rejected_logp`` to each pair row, in micro-batches of ``batch_size`` rows."""

    def __init__(
        self,
        model_path: str,
        kind: str,
        pad_id: int,
        batch_size: int,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        use_gpu: bool = False,
    ) -> None:
        import torch

        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.model = load_reference(
            model_path, kind, trust_remote_code, attn_implementation, self.device
        )
        self.kind, self.pad_id, self.batch_size = kind, pad_id, batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        import torch

        columns = {name: batch.column(name).to_pylist() for name in pair_token_columns()}
        chosen, rejected = [], []
        with torch.no_grad():
            for start in range(0, batch.num_rows, self.batch_size):
                micro = {
                    name: values[start : start + self.batch_size]
                    for name, values in columns.items()
                }
                logps, _ = side_logps(
                    self.model, self.model, micro, self.pad_id, self.kind, self.device
                )
                chosen += logps[0].tolist()
                rejected += logps[1].tolist()
        batch = batch.append_column(REFERENCE_COLUMNS[0], pa.array(chosen, pa.float64()))
        return batch.append_column(REFERENCE_COLUMNS[1], pa.array(rejected, pa.float64()))


def pair_token_columns() -> list[str]:
    return [f"{side}_{part}" for side in SIDES for part in ("input_ids", "labels")]


__all__ = [
    "PAIR_RECORD_COLUMNS",
    "PairRows",
    "REFERENCE_COLUMNS",
    "ReferenceLogps",
    "last_reply_only",
    "pair_rows",
    "side_logps",
]
