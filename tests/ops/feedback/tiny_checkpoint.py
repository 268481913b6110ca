"""A checkpoint ``instructflow generate`` accepts, without training: a tiny Llama built from a
config, a tokenizer trained on a few sentences, and ``instructflow.json`` written by hand."""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "What is the capital of Peru? The capital of Peru is Lima.",
    "Name three primary colours: red, yellow and blue.",
    "Write a haiku about rain falling on the roof at night.",
    "How do I boil an egg? Put it in boiling water for eight minutes.",
] * 8


def write_tiny_checkpoint(directory: Path) -> str:
    from train.sft import CHECKPOINT_META
    from train.tiny import build_model, train_tokenizer

    tokenizer = train_tokenizer(iter(SENTENCES), vocab_size=300)
    model = build_model(tokenizer, "causal", "tiny", seed=0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    meta = {"method": "sft", "kind": "causal", "prompt_format": "chat", "max_length": 128}
    meta |= {"base_model": str(directory), "lora": False, "step": 0, "metrics": {}}
    (directory / CHECKPOINT_META).write_text(json.dumps(meta), encoding="utf-8")
    return str(directory)
