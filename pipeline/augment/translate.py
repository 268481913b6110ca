"""Seq2seq translation through transformers, loaded once per Ray actor.

``Seq2SeqTranslator(...)(texts, source, target)`` translates a list of texts. Each direction
names a hub id or a local directory; ``AutoModelForSeq2SeqLM`` and ``AutoTokenizer`` load
MarianMT (one model per direction), NLLB-200 and M2M100 (one model for all directions). The
multilingual ones are told the languages: ``tokenizer.src_lang`` is set to the source code
and generation starts with the target code (``forced_bos_token_id``), from
``language_codes`` (``{en: eng_Latn}`` for NLLB, ``{en: en}`` for M2M100). A model is
treated that way exactly when its tokenizer has ``src_lang``.

Texts are sorted by length and generated in chunks of ``generation_batch_size``, so a chunk
pads to similar lengths; results come back in the caller's order. GPU when the stage asked
for one and torch sees one, CPU otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (texts, source language, target language) -> translations, same length and order.
Translate = Callable[[list[str], str, str], list[str]]


class Seq2SeqTranslator:
    def __init__(
        self,
        directions: dict[tuple[str, str], str],
        *,
        language_codes: dict[str, str],
        num_gpus: float,
        max_length: int,
        num_beams: int,
        generation_batch_size: int,
        gpu_dtype: str,
    ) -> None:
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self.torch = torch
        self.device = "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
        dtype = getattr(torch, gpu_dtype) if self.device == "cuda" else torch.float32
        loaded: dict[str, tuple[Any, Any]] = {}
        for reference in sorted(set(directions.values())):
            tokenizer = AutoTokenizer.from_pretrained(reference)
            model = AutoModelForSeq2SeqLM.from_pretrained(reference, dtype=dtype)
            loaded[reference] = (tokenizer, model.to(self.device).eval())
        self.models = {direction: loaded[ref] for direction, ref in directions.items()}
        self.language_codes = language_codes
        self.max_length = max_length
        self.num_beams = num_beams
        self.generation_batch_size = generation_batch_size

    def __call__(self, texts: list[str], source: str, target: str) -> list[str]:
        tokenizer, model = self.models[(source, target)]
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        translated = [""] * len(texts)
        for start in range(0, len(order), self.generation_batch_size):
            chunk = order[start : start + self.generation_batch_size]
            outputs = self.generate(tokenizer, model, [texts[i] for i in chunk], source, target)
            for index, output in zip(chunk, outputs, strict=True):
                translated[index] = output
        return translated

    def generate(
        self, tokenizer: Any, model: Any, texts: list[str], source: str, target: str
    ) -> list[str]:
        options: dict[str, Any] = {}
        if hasattr(tokenizer, "src_lang"):
            tokenizer.src_lang = self.code(source)
            options["forced_bos_token_id"] = self.language_token(tokenizer, target)
        inputs = tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        ).to(self.device)
        with self.torch.inference_mode():
            generated = model.generate(
                **inputs, num_beams=self.num_beams, max_new_tokens=self.max_length, **options
            )
        return tokenizer.batch_decode(generated, skip_special_tokens=True)

    def code(self, language: str) -> str:
        if language not in self.language_codes:
            raise ValueError(
                f"a multilingual model needs language_codes[{language!r}] "
                f"(NLLB: eng_Latn, deu_Latn, ...; M2M100: en, de, ...)"
            )
        return self.language_codes[language]

    def language_token(self, tokenizer: Any, language: str) -> int:
        code = self.code(language)
        if hasattr(tokenizer, "get_lang_id"):  # M2M100 codes are "de", tokens "__de__"
            return int(tokenizer.get_lang_id(code))
        token_id = tokenizer.convert_tokens_to_ids(code)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(f"language code {code!r} is not a token of this model's tokenizer")
        return int(token_id)
