"""``instructflow generate``: replies from a trained checkpoint, for one prompt or a Parquet file.

The checkpoint's ``instructflow.json`` says how training rendered prompts (model kind,
prompt format, max length), so the prompt is built the same way (``train.sft_data``). A
LoRA checkpoint names its base model there and is loaded through peft. ``CHECKPOINT`` may
also be an ``instructflow train sft`` output directory, meaning its best checkpoint.

Batch mode reads Parquet through Ray Data: rows with a ``prompt`` column (text), or
canonical records (``messages``: the turns up to the first reply are the prompt). Replies go
to ``OUTPUT`` as Parquet with the input columns plus ``response``, one actor per CPU or GPU
holding the model once.
"""

from __future__ import annotations

import json
import os
from typing import Any

from train.sft import CHECKPOINT_META


class CheckpointError(ValueError):
    """The path is not a checkpoint this command can load; the message says what is there."""


def resolve_checkpoint(path: str) -> str:
    """A checkpoint directory, or the best one of a training output directory."""
    if os.path.isfile(os.path.join(path, CHECKPOINT_META)):
        return path
    summary = os.path.join(path, "train_summary.json")
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as file:
            best = (json.load(file).get("best") or {}).get("path")
        if best and os.path.isfile(os.path.join(best, CHECKPOINT_META)):
            return best
    raise CheckpointError(
        f"{path}: not a checkpoint (no {CHECKPOINT_META}) nor a training output with a best "
        "checkpoint (train_summary.json)"
    )


def load_for_generation(checkpoint: str, device: str = "cpu") -> tuple[Any, Any, dict]:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from train.sft_rows import load_tokenizer

    with open(os.path.join(checkpoint, CHECKPOINT_META), encoding="utf-8") as file:
        meta = json.load(file)
    model_class = AutoModelForSeq2SeqLM if meta["kind"] == "seq2seq" else AutoModelForCausalLM
    if meta.get("lora"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model_class.from_pretrained(meta["base_model"]), checkpoint
        )
    else:
        model = model_class.from_pretrained(checkpoint)
    model.to(device).eval()
    return model, load_tokenizer(checkpoint), meta


def generate_replies(
    model: Any,
    tokenizer: Any,
    meta: dict,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int,
) -> list[str]:
    """Greedy replies, one per conversation (each ends with a user turn), batched with left
    padding so every prompt ends where generation starts."""
    import torch

    from train.sft_data import generation_input_ids

    if not conversations:
        return []
    encoded = [
        generation_input_ids(
            turns, tokenizer, meta["prompt_format"], meta["kind"], meta["max_length"]
        )
        for turns in conversations
    ]
    longest = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(encoded), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), longest), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, longest - len(ids) :] = torch.tensor(ids)
        attention_mask[row, longest - len(ids) :] = 1
    device = next(model.parameters()).device
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
    new = output if meta["kind"] == "seq2seq" else output[:, longest:]
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new]


def generate_one(checkpoint: str, prompt: str, system: str = "", max_new_tokens: int = 128) -> str:
    model, tokenizer, meta = load_for_generation(resolve_checkpoint(checkpoint))
    turns = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return generate_replies(model, tokenizer, meta, [turns], max_new_tokens)[0]


def conversations_of(batch: dict[str, Any]) -> list[list[dict[str, str]]]:
    """Prompts of a batch: the ``prompt`` column, or canonical records up to the first reply."""
    from train.sft_data import opening_turns

    if "prompt" in batch:
        return [[{"role": "user", "content": str(text)}] for text in batch["prompt"]]
    return [
        opening_turns({"system": system, "messages": messages, "context": context})
        for system, messages, context in zip(
            batch["system"], batch["messages"], batch["context"], strict=True
        )
    ]


class Replier:
    """Ray Data callable class: the model is loaded once per actor."""

    def __init__(self, checkpoint: str, max_new_tokens: int, use_gpu: bool) -> None:
        self.model, self.tokenizer, self.meta = load_for_generation(
            checkpoint, "cuda" if use_gpu else "cpu"
        )
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        replies = generate_replies(
            self.model,
            self.tokenizer,
            self.meta,
            conversations_of(batch.to_pydict()),
            self.max_new_tokens,
        )
        return batch.append_column("response", pa.array(replies, pa.string()))


def generate_batch(
    checkpoint: str,
    input_path: str,
    output_path: str,
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    workers: int | None = None,
    use_gpu: bool = False,
) -> int:
    """Replies for every row of ``input_path``; returns the rows written."""
    import pyarrow.dataset as ds
    import ray.data

    from pipeline.read import open_filesystem

    checkpoint = resolve_checkpoint(checkpoint)
    filesystem, local = open_filesystem(input_path)
    columns = ds.dataset(local, filesystem=filesystem, format="parquet").schema.names
    if "prompt" not in columns and "messages" not in columns:
        raise CheckpointError(
            f"{input_path}: needs a 'prompt' column or canonical records ('messages'); "
            f"it has {', '.join(columns)}"
        )
    rows = ray.data.read_parquet(input_path, file_extensions=["parquet"])
    replies = rows.map_batches(
        Replier,
        fn_constructor_kwargs={
            "checkpoint": checkpoint,
            "max_new_tokens": max_new_tokens,
            "use_gpu": use_gpu,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            min_size=1,
            max_size=workers
            or max(1, int(ray.cluster_resources().get("GPU" if use_gpu else "CPU", 1))),
        ),
        num_gpus=1 if use_gpu else 0,
    )
    replies.write_parquet(output_path)
    filesystem, local = open_filesystem(output_path)
    return ds.dataset(local, filesystem=filesystem, format="parquet").count_rows()


__all__ = ["CheckpointError", "generate_batch", "generate_one", "resolve_checkpoint"]
