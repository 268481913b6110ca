"""The Ray Data side of SFT: canonical records -> training rows, and rows -> model inputs.

``TokenizeRows`` is a Ray Data callable class (the tokenizer is loaded once per actor) that
maps one block of the pipeline's Parquet output to training rows. Each row carries summable
counts so the driver gets the data statistics with Ray Data aggregates, never by pulling
rows: ``tokens`` (non-padding), ``supervised`` (label tokens that are targets), ``records``
(records that made the row), ``truncated`` (records cut to ``max_length``).

Row layouts, all token columns ``list<int32>``:

- packed causal: ``input_ids``, ``labels``, ``position_ids``, each exactly ``max_length``
  long (``sft_data.pack``, best fit within the block: blocks are fixed by the input files,
  so the rows are the same on every run);
- unpacked causal: ``input_ids``, ``labels`` of each example's own length;
- seq2seq: ``input_ids`` (source) and ``labels`` (target), one row per assistant turn.

``collate`` turns a micro-batch of rows into tensors for the model: packed rows go in with
``position_ids`` and no attention mask (transformers then masks per example), the others are
right-padded to the longest row with an attention mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from train.sft_data import IGNORE, Example, pack, seq2seq_examples, tokenize_record

TOKEN_COLUMNS = ("input_ids", "labels", "position_ids")
COUNT_COLUMNS = ("tokens", "supervised", "records", "truncated")
RECORD_COLUMNS = ["system", "messages", "context"]


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers ship none; padding is masked
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class TokenizeRows:
    """Ray Data ``map_batches`` callable: a block of canonical records -> training rows."""

    def __init__(
        self,
        tokenizer_path: str,
        prompt_format: str,
        max_length: int,
        kind: str,
        packing: bool,
        trust_remote_code: bool = False,
    ) -> None:
        self.tokenizer = load_tokenizer(tokenizer_path, trust_remote_code)
        self.prompt_format = prompt_format
        self.max_length = max_length
        self.kind = kind
        self.packing = packing

    def __call__(self, batch: pa.Table) -> pa.Table:
        """With a ``path`` column (the shard each record came from), each shard's records
        are tokenised and packed on their own and their rows keep the path: a row never
        mixes records of two shards, so never of two splits."""
        if "path" not in batch.column_names:
            return self.rows(batch)
        paths = batch.column("path").to_pylist()
        tables = []
        for path in dict.fromkeys(paths):
            mask = pa.array([p == path for p in paths])
            rows = self.rows(batch.filter(mask))
            tables.append(rows.append_column("path", pa.array([path] * rows.num_rows, pa.string())))
        return pa.concat_tables(tables)

    def rows(self, batch: pa.Table) -> pa.Table:
        """Binary feedback marked undesirable (``feedback`` false) is never imitated."""
        columns = RECORD_COLUMNS + (["feedback"] if "feedback" in batch.column_names else [])
        records = [r for r in batch.select(columns).to_pylist() if r.get("feedback") is not False]
        return training_rows(
            records,
            self.tokenizer,
            self.prompt_format,
            self.max_length,
            self.kind,
            self.packing,
        )


def training_rows(
    records: list[dict[str, Any]],
    tokenizer: Any,
    prompt_format: str,
    max_length: int,
    kind: str,
    packing: bool,
) -> pa.Table:
    """Records to rows (see the module docstring); records with nothing supervised add none."""
    if kind == "seq2seq":
        rows = []
        for record in records:
            for position, example in enumerate(
                seq2seq_examples(record, tokenizer, prompt_format, max_length)
            ):
                rows.append(example_row(example, records=int(position == 0), seq2seq=True))
        return rows_table(rows, with_positions=False)
    examples = [tokenize_record(r, tokenizer, prompt_format, max_length) for r in records]
    examples = [example for example in examples if example.supervised > 0]
    if not packing:
        return rows_table([example_row(e, records=1) for e in examples], with_positions=False)
    rows = []
    for packed in pack(examples, max_length, tokenizer.pad_token_id):
        rows.append(
            {
                "input_ids": packed.input_ids,
                "labels": packed.labels,
                "position_ids": packed.position_ids,
                "tokens": sum(packed.lengths[:-1]),  # the last entry is the padding run
                "supervised": sum(label != IGNORE for label in packed.labels),
                "records": len(packed.sources),
                "truncated": sum(examples[index].truncated for index in packed.sources),
            }
        )
    return rows_table(rows, with_positions=True)


def example_row(example: Example, records: int, seq2seq: bool = False) -> dict[str, Any]:
    tokens = len(example.input_ids) + (len(example.labels) if seq2seq else 0)
    return {
        "input_ids": example.input_ids,
        "labels": example.labels,
        "tokens": tokens,
        "supervised": example.supervised,
        "records": records,
        "truncated": int(example.truncated),
    }


def rows_table(rows: list[dict[str, Any]], with_positions: bool) -> pa.Table:
    token_type = pa.list_(pa.int32())
    fields = [pa.field("input_ids", token_type), pa.field("labels", token_type)]
    if with_positions:
        fields.append(pa.field("position_ids", token_type))
    fields += [pa.field(name, pa.int64()) for name in COUNT_COLUMNS]
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)


def collate(rows: dict[str, np.ndarray], pad_id: int, kind: str) -> dict[str, Any]:
    """A micro-batch of rows (numpy columns, one entry per row) -> model keyword tensors plus
    ``labels``. See the module docstring for the three layouts."""
    import torch

    if "position_ids" in rows:
        return {
            name: torch.as_tensor(stacked(rows[name]))
            for name in ("input_ids", "position_ids", "labels")
        }
    input_ids = padded(rows["input_ids"], pad_id)
    labels = padded(rows["labels"], IGNORE)
    attention_mask = padded([np.ones(len(ids), dtype=np.int64) for ids in rows["input_ids"]], 0)
    batch = {
        "input_ids": torch.as_tensor(input_ids),
        "attention_mask": torch.as_tensor(attention_mask),
        "labels": torch.as_tensor(labels),
    }
    if kind == "seq2seq":
        batch["decoder_attention_mask"] = torch.as_tensor(
            padded([np.ones(len(ids), dtype=np.int64) for ids in rows["labels"]], 0)
        )
    return batch


def stacked(column: Any) -> np.ndarray:
    """Equal-length rows as one int64 matrix, whether Ray gave a matrix or row objects."""
    return np.stack([np.asarray(row, dtype=np.int64) for row in column])


def padded(sequences: Any, value: int) -> np.ndarray:
    longest = max(len(sequence) for sequence in sequences)
    out = np.full((len(sequences), longest), value, dtype=np.int64)
    for index, sequence in enumerate(sequences):
        out[index, : len(sequence)] = sequence
    return out


__all__ = ["COUNT_COLUMNS", "TokenizeRows", "collate", "load_tokenizer", "training_rows"]
