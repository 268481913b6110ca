"""Decontamination: drop training records that near-duplicate an evaluation item.

Evaluation sets are files of benchmark prompts: JSONL or a JSON array (one object per item;
the prompt is ``field``, or the first of prompt/question/instruction/input/text/problem), or
plain text (one prompt per line). They are small, so every worker indexes all of them in
``__init__`` and each batch is checked locally: no shuffle, no driver-side corpus data.

Two matchers, as the literature uses both:
- ``minhash`` (default): MinHash-LSH candidates on the same band layout as near dedup, then
  the estimated Jaccard of the record's key text and the item must reach ``threshold``;
- ``ngram``: any shared word n-gram (character n-gram for CJK) of length ``ngram``, the
  GPT-3 / Llama style overlap test (13-grams), which also catches a prompt wrapped in a
  longer instruction.

Reason: ``dedup.contaminated``; the detail names the evaluation item (``file#index`` or its
``id``) and the similarity. The stage's findings count matches per item for stats.json and
the report.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from pipeline.dedup_keys import KeyName, key_texts
from pipeline.discover import open_filesystem
from pipeline.minhash import MinHasher, Shingler, band_hashes, optimal_bands
from pipeline.stage import Drop, FilePath, Filter, Resources, StageConfig, StageCounts

PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "text", "problem")
ID_FIELDS = ("id", "task_id", "question_id")


def read_eval_items(path: str, field: str | None) -> list[tuple[str, str]]:
    """``(label, prompt)`` per evaluation item, or ValueError naming the file and line."""
    filesystem, local = open_filesystem(path)
    try:
        with filesystem.open_input_stream(local) as stream:
            content = stream.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"evaluation set {path!r} cannot be read as UTF-8: {error}") from None
    stem = PurePosixPath(local).name
    if local.endswith((".jsonl", ".json")):
        return json_items(path, stem, content, field)
    lines = content.splitlines()
    return [(f"{stem}#{index}", line.strip()) for index, line in enumerate(lines) if line.strip()]


def json_items(path: str, stem: str, content: str, field: str | None) -> list[tuple[str, str]]:
    if path.endswith(".json"):
        objects = list(enumerate(json.loads(content)))
    else:
        objects = [
            (index, json.loads(line))
            for index, line in enumerate(content.splitlines())
            if line.strip()
        ]
    items = []
    for index, item in objects:
        names = (field,) if field else PROMPT_FIELDS
        prompt = next((item[name] for name in names if isinstance(item.get(name), str)), None)
        if prompt is None:
            raise ValueError(
                f"evaluation set {path!r} item {index}: no string field "
                f"{' or '.join(names)} (set eval_field)"
            )
        ident = next((item[name] for name in ID_FIELDS if name in item), index)
        items.append((f"{stem}#{ident}", prompt))
    return items


class DecontaminateConfig(StageConfig):
    eval_sets: tuple[FilePath, ...] = Field(min_length=1)
    eval_field: str | None = None
    key: KeyName = "instruction"
    method: Literal["minhash", "ngram"] = "minhash"
    threshold: float = Field(0.7, gt=0.0, lt=1.0)
    ngram: int = Field(13, ge=3, le=64)
    num_perm: int = Field(128, ge=16, le=1024)
    word_ngram: int = Field(5, ge=1, le=32)
    char_ngram: int = Field(5, ge=1, le=32)

    @field_validator("eval_sets")
    @classmethod
    def _readable(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        for path in paths:
            if "://" not in path and not read_eval_items(path, None):
                raise ValueError(f"evaluation set {path!r} holds no items")
        return paths


class Decontaminate(Filter):
    name: ClassVar[str] = "decontaminate"
    Config: ClassVar[type[StageConfig]] = DecontaminateConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("dedup.contaminated",)
    config: DecontaminateConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        # An actor pool: the evaluation index is built once per worker.
        return Resources(concurrency=4)

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        items = [
            item
            for path in self.config.eval_sets
            for item in read_eval_items(path, self.config.eval_field)
        ]
        self.labels = [label for label, _ in items]
        prompts = [prompt for _, prompt in items]
        if self.config.method == "minhash":
            self.build_minhash_index(prompts)
        else:
            self.build_ngram_index(prompts)

    def build_minhash_index(self, prompts: list[str]) -> None:
        config = self.config
        self.hasher = MinHasher(
            num_perm=config.num_perm,
            seed=0,
            shingler=Shingler(word_ngram=config.word_ngram, char_ngram=config.char_ngram),
        )
        self.bands, self.rows = optimal_bands(config.threshold, config.num_perm)
        self.eval_signatures = self.hasher.signatures(prompts)
        bands = band_hashes(self.eval_signatures, self.bands, self.rows)
        flat = bands.reshape(-1)
        order = np.argsort(flat, kind="stable")
        self.band_keys = flat[order]
        self.band_items = (order // self.bands).astype(np.int64)

    def build_ngram_index(self, prompts: list[str]) -> None:
        shingler = Shingler(word_ngram=self.config.ngram, char_ngram=self.config.ngram)
        self.shingler = shingler
        hashes, owners = [], []
        for index, prompt in enumerate(prompts):
            grams = shingler.shingle_hashes(prompt)
            hashes.append(grams)
            owners.append(np.full(len(grams), index, dtype=np.int64))
        flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
        order = np.argsort(flat, kind="stable")
        self.gram_keys = flat[order]
        self.gram_items = np.concatenate(owners)[order] if owners else np.zeros(0, np.int64)

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        texts = key_texts(batch, self.config.key)
        if self.config.method == "minhash":
            return self.minhash_matches(texts)
        return [self.ngram_match(text) for text in texts]

    def minhash_matches(self, texts: list[str]) -> list[Drop | None]:
        signatures = self.hasher.signatures(texts)
        bands = band_hashes(signatures, self.bands, self.rows)
        decisions: list[Drop | None] = []
        for row, text in enumerate(texts):
            found = lookup(self.band_keys, self.band_items, bands[row])
            if not text.strip() or found.size == 0:
                decisions.append(None)
                continue
            similarity = (self.eval_signatures[found] == signatures[row]).mean(axis=1)
            best = int(np.argmax(similarity))
            if similarity[best] < self.config.threshold:
                decisions.append(None)
                continue
            decisions.append(self.drop(int(found[best]), float(similarity[best])))
        return decisions

    def ngram_match(self, text: str) -> Drop | None:
        grams = self.shingler.shingle_hashes(text)
        found = lookup(self.gram_keys, self.gram_items, grams, unique=False)
        if found.size == 0:
            return None
        items, shared = np.unique(found, return_counts=True)
        best = int(items[np.argmax(shared)])
        return self.drop(best, round(float(shared.max()) / max(1, len(grams)), 4))

    def drop(self, item: int, similarity: float) -> Drop:
        return Drop(
            "dedup.contaminated",
            {"eval_item": self.labels[item], "similarity": round(similarity, 4)},
        )

    def _apply(self, alive: pa.Table, counts: StageCounts) -> pa.Table:
        result = super()._apply(alive, counts)
        for detail in result.column("drop_detail").to_pylist():
            if detail:
                counts.findings[json.loads(detail)["eval_item"]] += 1
        return result


def lookup(
    keys: np.ndarray, owners: np.ndarray, probes: np.ndarray, unique: bool = True
) -> np.ndarray:
    """Owners of every probe found in the sorted ``keys`` (with repeats if not unique)."""
    if keys.size == 0 or probes.size == 0:
        return np.zeros(0, np.int64)
    left = np.searchsorted(keys, probes, side="left")
    right = np.searchsorted(keys, probes, side="right")
    hits = [owners[a:b] for a, b in zip(left, right, strict=True) if b > a]
    if not hits:
        return np.zeros(0, np.int64)
    found = np.concatenate(hits)
    return np.unique(found) if unique else found
