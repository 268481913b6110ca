"""``instructflow bench augment``: back-translation throughput, sentences per second.

It times ``Seq2SeqTranslator``, the code each ``back_translate`` actor runs, on English
instructions from the project's synthetic generator, one direction (source -> pivot) at a
time after one warm-up batch. Two models:

- a tiny MarianMT built from a config (d_model 32, one layer each side) with a word-level
  tokenizer trained on the benchmark sentences: it measures the stage's own overhead
  (tokenising, sorting, padding, decoding) more than translation, and needs no download;
- optionally a real model (a hub id in the local cache, or a directory), e.g.
  ``Helsinki-NLP/opus-mt-en-de`` (MarianMT tokenizers need ``sentencepiece``) or an NLLB
  checkpoint with ``language_codes``.

The baseline, in the same run on the same loaded model, is a plain loop: the same
``generate`` call on batches of the same size taken in input order, without the translator's
sort by length (which keeps padding down). ``x plain`` is the translator's sentences per
second over the plain loop's.

GPU when asked (``--device cuda``, or ``auto`` and torch sees one), CPU otherwise; the device
is in every result.

    instructflow bench augment --sentences 512 --batch-size 32 --device cpu
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.corpora import generate_records

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")


def wants_gpu(device: str) -> bool:
    """``cpu``: no; ``auto``: when torch sees a CUDA device; ``cuda``: yes, or ValueError
    if torch sees none (rather than a CPU figure labelled as a GPU run)."""
    if device == "cpu":
        return False
    import torch

    available = torch.cuda.is_available()
    if device == "cuda" and not available:
        raise ValueError(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    return available


def benchmark_sentences(count: int, seed: int = 0) -> list[str]:
    """English instructions, first lines only: what back-translation sends a model."""
    records = generate_records(count, seed=seed, language_mix={"en": 1.0})
    return [record["instruction"].split("\n")[0] for record in records]


def build_tiny_translator(
    directory: str | Path, texts: list[str], *, seed: int = 0, d_model: int = 32, layers: int = 1
) -> str:
    """A randomly initialised MarianMT and its word-level tokenizer, saved to ``directory``
    so ``AutoModelForSeq2SeqLM`` / ``AutoTokenizer`` load it by path. Returns the path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    words = Tokenizer(models.WordLevel(unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    pad, eos = words.token_to_id("<pad>"), words.token_to_id("</s>")
    words.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    config = MarianConfig(
        vocab_size=words.get_vocab_size(),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=512,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
        forced_eos_token_id=eos,
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    Path(directory).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return str(directory)


def time_translation(
    model: str,
    sentences: list[str],
    *,
    source: str = "en",
    target: str = "de",
    language_codes: dict[str, str] | None = None,
    use_gpu: bool = False,
    batch_size: int = 32,
    num_beams: int = 1,
    max_length: int = 64,
) -> dict[str, Any]:
    """Sentences per second of one direction, after a warm-up batch (model load excluded)."""
    from pipeline.augment.translate import Seq2SeqTranslator

    started = time.perf_counter()
    translator = Seq2SeqTranslator(
        {(source, target): model},
        language_codes=language_codes or {},
        num_gpus=1.0 if use_gpu else 0.0,
        max_length=max_length,
        num_beams=num_beams,
        generation_batch_size=batch_size,
        gpu_dtype="float16",
    )
    load_seconds = time.perf_counter() - started
    translator(sentences[:batch_size], source, target)
    started = time.perf_counter()
    outputs = translator(sentences, source, target)
    seconds = time.perf_counter() - started
    plain_seconds = plain_generate_seconds(translator, sentences, source, target)
    return {
        "model": model,
        "device": translator.device,
        "threads": translator.torch.get_num_threads(),
        "sentences": len(sentences),
        "batch_size": batch_size,
        "num_beams": num_beams,
        "max_length": max_length,
        "load_seconds": round(load_seconds, 3),
        "seconds": round(seconds, 3),
        "sentences_per_second": round(len(sentences) / seconds, 1),
        "plain_seconds": round(plain_seconds, 3),
        "plain_sentences_per_second": round(len(sentences) / plain_seconds, 1),
        "over_plain": round(plain_seconds / seconds, 3),
        "output_words_per_sentence": round(
            sum(len(text.split()) for text in outputs) / max(1, len(outputs)), 1
        ),
    }


def plain_generate_seconds(
    translator: Any, sentences: list[str], source: str, target: str
) -> float:
    """The baseline: the translator's model and ``generate`` on batches in input order."""
    tokenizer, model = translator.models[(source, target)]
    size = translator.generation_batch_size
    started = time.perf_counter()
    for start in range(0, len(sentences), size):
        translator.generate(tokenizer, model, sentences[start : start + size], source, target)
    return time.perf_counter() - started


def bench_augment(
    *,
    model: str | None = None,
    sentences: int = 512,
    workdir: str = "out/bench-augment",
    use_gpu: bool = False,
    batch_size: int = 32,
    num_beams: int = 1,
    max_length: int = 64,
    target: str = "de",
    language_codes: dict[str, str] | None = None,
    json_out: str | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time the tiny model, and ``model`` if given; print a table, optionally write JSON."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    texts = benchmark_sentences(sentences, seed=seed)
    tiny = build_tiny_translator(Path(workdir) / "tiny-marian", texts, seed=seed)
    settings = {
        "use_gpu": use_gpu,
        "batch_size": batch_size,
        "num_beams": num_beams,
        "max_length": max_length,
        "target": target,
    }
    results = [{"name": "tiny-marian", **time_translation(tiny, texts, **settings)}]
    if model:
        results.append(
            {
                "name": model,
                **time_translation(model, texts, language_codes=language_codes, **settings),
            }
        )
    print(
        f"{'model':<36}{'device':>8}{'sentences/s':>14}{'plain/s':>10}{'x plain':>9}"
        f"{'words/out':>11}{'load s':>8}"
    )
    for row in results:
        print(
            f"{row['name'][-36:]:<36}{row['device']:>8}{row['sentences_per_second']:>14}"
            f"{row['plain_sentences_per_second']:>10}{row['over_plain']:>9.2f}"
            f"{row['output_words_per_sentence']:>11}{row['load_seconds']:>8}"
        )
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(results, indent=2))
    return results
