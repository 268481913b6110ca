"""Tiny models for demos, tests and benchmarks: a tokenizer trained on the pipeline's own
output and a model built from a config (random weights), saved in Hugging Face format so
the SFT recipe loads it with the same ``from_pretrained(path)`` it uses for a hub model.
Nothing is downloaded.

    instructflow train tiny-model out/quickstart out/tiny-llama
    instructflow train tiny-model out/quickstart out/tiny-t5 --kind seq2seq [--arch bart]

The tokenizer is byte-level BPE (any script, Chinese included, round-trips), with ``<pad>``,
``<s>``, ``</s>``, ``<unk>`` and a chat template whose turns are ``<|role|>`` lines ended
by ``</s>``. Causal models are Llama (RoPE, so packed position ids restart per example);
seq2seq models are T5 or BART. Texts are streamed from the shards in record batches, never loaded
whole.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]

# Named sizes. "tiny" is the demo and test model; "0.5b" is the GPU benchmark's (Llama
# shapes close to Qwen2.5-0.5B: 24 layers, 896 hidden, 14 heads, 2 KV heads).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "kv_heads": 2},
    "small": {"hidden": 256, "intermediate": 688, "layers": 4, "heads": 4, "kv_heads": 2},
    "0.5b": {"hidden": 896, "intermediate": 4864, "layers": 24, "heads": 14, "kv_heads": 2},
}


def shard_texts(output_dir: str, batch_rows: int = 1024) -> Iterator[str]:
    """Every system prompt, turn and context of the run's output shards, batch by batch."""
    import pyarrow.dataset as ds

    from pipeline.read import open_filesystem

    filesystem, root = open_filesystem(posixpath.join(output_dir, "data"))
    dataset = ds.dataset(root, filesystem=filesystem, format="parquet")
    for batch in dataset.to_batches(
        columns=["system", "messages", "context"], batch_size=batch_rows
    ):
        for row in batch.to_pylist():
            for text in (row["system"], row["context"]):
                if text:
                    yield text
            for turn in row["messages"]:
                yield turn["content"]


def train_tokenizer(texts: Iterator[str], vocab_size: int = 2048, seq2seq: bool = False) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if seq2seq:  # T5's convention: every encoded sequence ends with </s>
        eos = backend.token_to_id("</s>")
        backend.post_processor = processors.TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", eos)]
        )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token=None if seq2seq else "<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE.replace("{{ bos_token }}", "" if seq2seq else "<s>")
    return tokenizer


def build_model(
    tokenizer: Any, kind: str = "causal", size: str = "tiny", seed: int = 0, arch: str = "t5"
) -> Any:
    """A model of the named size with random weights (seeded), sized to the tokenizer.
    Seq2seq ``arch``: ``t5`` or ``bart``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

    shape = SIZES[size]
    torch.manual_seed(seed)
    if kind == "seq2seq" and arch == "bart":
        from transformers import BartConfig, BartForConditionalGeneration

        config = BartConfig(
            vocab_size=len(tokenizer),
            d_model=shape["hidden"],
            encoder_ffn_dim=shape["intermediate"],
            decoder_ffn_dim=shape["intermediate"],
            encoder_layers=shape["layers"],
            decoder_layers=shape["layers"],
            encoder_attention_heads=shape["heads"],
            decoder_attention_heads=shape["heads"],
            max_position_embeddings=1024,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            forced_eos_token_id=tokenizer.eos_token_id,
        )
        return BartForConditionalGeneration(config)
    if kind == "seq2seq":
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=shape["hidden"],
            d_ff=shape["intermediate"],
            d_kv=shape["hidden"] // shape["heads"],
            num_layers=shape["layers"],
            num_decoder_layers=shape["layers"],
            num_heads=shape["heads"],
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
        return T5ForConditionalGeneration(config)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape["hidden"],
        intermediate_size=shape["intermediate"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def save_tiny_model(
    data_dir: str,
    out_dir: str,
    kind: str = "causal",
    size: str = "tiny",
    vocab_size: int = 2048,
    seed: int = 0,
    arch: str = "t5",
) -> str:
    """Train the tokenizer on ``data_dir``'s shards, build the model, save both to ``out_dir``."""
    tokenizer = train_tokenizer(shard_texts(data_dir), vocab_size, seq2seq=kind == "seq2seq")
    model = build_model(tokenizer, kind, size, seed, arch)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


__all__ = ["SIZES", "build_model", "save_tiny_model", "shard_texts", "train_tokenizer"]
