"""Embedding similarity for the novelty filter: paraphrases ROUGE-L does not see.

With ``embedding:`` in a ``novelty`` config, a pair is also similar when the cosine of the two
texts' embeddings reaches ``embedding.threshold``; the greedy pass then runs on the union of
both kinds of similar pair, so a row is dropped when an earlier kept row is lexically *or*
semantically close. Nothing is compared all against all:

    texts --embedding model (Ray Data actor pool; CPU or declared GPUs)--> unit vectors
      --random-hyperplane LSH (SimHash: Charikar 2002)--> bands --shuffle on band-->
      bucket pairs, each checked with the exact cosine --> similar pairs

Two unit vectors at angle theta give the same sign on a random hyperplane with probability
1 - theta / pi, so the shape (bands of ``rows`` signs out of ``planes``) is chosen, as for
MinHash, so that a pair exactly at the threshold becomes a candidate with probability
``recall``. The embedding is the attention-masked mean of the model's last hidden states,
L2-normalised (sentence-transformers' mean pooling), from any transformers checkpoint or hub
id (``model``); a training output directory stands for its best checkpoint.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import xxhash
from pydantic import BaseModel, ConfigDict, Field

from pipeline.dedup_keys import RANK_COLUMN, UID_COLUMN

EMBEDDING_COLUMN = "_embedding"
HYPERPLANE_SEED = 0x51_3A_54


class EmbeddingConfig(BaseModel):
    """``embedding:`` in a ``novelty`` config."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    model: str
    threshold: float = Field(0.9, gt=0.0, lt=1.0)  # cosine
    planes: int = Field(128, ge=8, le=1024)
    recall: float = Field(0.995, gt=0.0, lt=1.0)
    max_length: int = Field(128, ge=8)
    batch_size: int = Field(32, ge=1)
    concurrency: int = Field(1, ge=1)  # actors
    num_gpus: float = Field(0.0, ge=0.0)  # per actor


def simhash_shape(threshold: float, planes: int, recall: float) -> tuple[int, int]:
    """(bands, rows): the most rows whose S-curve reaches ``recall`` at cosine ``threshold``."""
    agree = 1.0 - math.acos(threshold) / math.pi
    for rows in range(planes, 0, -1):
        bands = planes // rows
        if 1.0 - (1.0 - agree**rows) ** bands >= recall:
            return bands, rows
    raise ValueError(
        f"embedding.planes {planes} cannot reach recall {recall} at cosine {threshold}; "
        "raise planes or lower recall"
    )


class Embedder:
    """Ray Data callable: unit embeddings of each batch's texts (one model per actor)."""

    def __init__(self, model: str, max_length: int, num_gpus: float) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from pipeline.generate.backend import resolve_training_output

        path = resolve_training_output(model)
        self.torch = torch
        self.device = "cuda" if num_gpus > 0 and torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = [text or "" for text in batch.column("text").to_pylist()]
        vectors = self.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        column = pa.array([vector.tobytes() for vector in vectors], pa.binary())
        return batch.append_column(EMBEDDING_COLUMN, column)

    def embed(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        encoded = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        with torch.inference_mode():
            model = self.model
            inputs = {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
            }
            if getattr(model.config, "is_encoder_decoder", False):
                hidden = model.get_encoder()(**inputs).last_hidden_state
            else:
                hidden = model(**inputs).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
        return pooled.cpu().numpy().astype(np.float32)


def embeddings_of(block: pa.Table) -> np.ndarray:
    raw = block.column(EMBEDDING_COLUMN).to_pylist()
    if not raw:
        return np.zeros((0, 1), dtype=np.float32)
    return np.frombuffer(b"".join(raw), dtype=np.float32).reshape(len(raw), -1)


def hyperplanes(dimension: int, planes: int, seed: int) -> np.ndarray:
    """(dimension, planes) Gaussian normals, the same on every worker for a seed."""
    return np.random.default_rng([seed, HYPERPLANE_SEED]).standard_normal((dimension, planes))


def embedding_band_table(batch: pa.Table, *, bands: int, rows: int, seed: int) -> pa.Table:
    """Embedded probe rows -> one row per (row, band): the band's signs hashed with its index."""
    from pipeline.novelty import BAND_COLUMN, FIXED_COLUMN

    if batch.num_rows == 0:
        return embedding_band_schema().empty_table()
    vectors = embeddings_of(batch)
    signs = (vectors @ hyperplanes(vectors.shape[1], bands * rows, seed)) > 0
    hashes = np.empty((batch.num_rows, bands), dtype=np.uint64)
    for band in range(bands):
        part = np.packbits(signs[:, band * rows : (band + 1) * rows], axis=1)
        for row in range(batch.num_rows):
            key = band.to_bytes(4, "little") + part[row].tobytes()
            hashes[row, band] = xxhash.xxh3_64_intdigest(key, seed=seed & 0xFFFF_FFFF)
    repeat = pa.array(np.repeat(np.arange(batch.num_rows), bands))
    return pa.table(
        {
            BAND_COLUMN: pa.array(hashes.reshape(-1), pa.uint64()),
            UID_COLUMN: batch.column(UID_COLUMN).take(repeat),
            "id": batch.column("id").take(repeat),
            RANK_COLUMN: batch.column(RANK_COLUMN).take(repeat),
            FIXED_COLUMN: batch.column(FIXED_COLUMN).take(repeat),
            EMBEDDING_COLUMN: batch.column(EMBEDDING_COLUMN).take(repeat),
        },
        schema=embedding_band_schema(),
    )


def embedding_band_schema() -> pa.Schema:
    from pipeline.novelty import BAND_COLUMN, FIXED_COLUMN

    return pa.schema(
        [
            pa.field(BAND_COLUMN, pa.uint64()),
            pa.field(UID_COLUMN, pa.int64()),
            pa.field("id", pa.string()),
            pa.field(RANK_COLUMN, pa.float64()),
            pa.field(FIXED_COLUMN, pa.bool_()),
            pa.field(EMBEDDING_COLUMN, pa.binary()),
        ]
    )


def cosine_pairs(
    block: pa.Table, *, threshold: float, window: int | None, edges_per_row: int | None
) -> pa.Table:
    """A block's bucket pairs checked with the exact cosine of their embeddings."""
    from pipeline.novelty import bucket_candidates, checked_table

    vectors = embeddings_of(block)
    found = []
    for left, right in bucket_candidates(block, window):
        cosine = np.einsum("ij,ij->i", vectors[left], vectors[right]).astype(np.float64)
        similar = cosine >= threshold
        found.append((left[similar], right[similar], np.minimum(cosine[similar], 1.0)))
    return checked_table(block, found, edges_per_row)


def embedding_edges(
    probes: Any,
    config: EmbeddingConfig,
    *,
    seed: int,
    num_partitions: int,
    window: int | None,
    edges_per_row: int | None,
) -> Any:
    """Similar pairs by embedding cosine (SIMILAR_SCHEMA), materialized."""
    from pipeline.distributed import grouped_blocks
    from pipeline.novelty import BAND_COLUMN

    bands, rows = simhash_shape(config.threshold, config.planes, config.recall)
    embedded = probes.map_batches(
        Embedder,
        fn_constructor_kwargs={
            "model": config.model,
            "max_length": config.max_length,
            "num_gpus": config.num_gpus,
        },
        batch_size=config.batch_size,
        batch_format="pyarrow",
        num_gpus=config.num_gpus,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=config.concurrency),
    )
    banded = embedded.map_batches(
        partial(embedding_band_table, bands=bands, rows=rows, seed=seed), batch_format="pyarrow"
    )
    return grouped_blocks(
        banded,
        BAND_COLUMN,
        partial(
            cosine_pairs, threshold=config.threshold, window=window, edges_per_row=edges_per_row
        ),
        num_partitions,
    ).materialize()


__all__ = ["EmbeddingConfig", "Embedder", "embedding_edges", "simhash_shape"]
