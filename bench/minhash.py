"""MinHash signature throughput: ``pipeline.minhash`` against datasketch, on one core.

Both sides hash the same shingles with ``num_perm`` permutations, in the same process. The
datasketch side is timed as people use it (``MinHash(num_perm)``, ``update(shingle.encode())``
per shingle, then ``hashvalues``) with the shingle strings made beforehand and left out of its
time; the instructflow side is timed from raw texts, normalisation and shingling included. So
the speed-up is, if anything, understated. Numba's compile is paid before the clock starts.
``speedup`` is against per-shingle ``update``; ``speedup_over_update_batch`` against datasketch's
vectorised ``update_batch``, for the record.

    from bench.minhash import benchmark_signatures, english_documents
    benchmark_signatures(english_documents(2000), repeats=3)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from datasketch import MinHash

from bench.corpora import generate_paragraphs
from pipeline.minhash import DEFAULT_NUM_PERM, DEFAULT_SHINGLER, MinHasher, Shingler

# generate_paragraphs' character bounds that give paragraphs of about 200 words.
DOCUMENT_CHARS = (1000, 1400)


def english_documents(count: int, seed: int = 0) -> list[str]:
    """``count`` synthetic English documents of about 200 words (``bench.corpora`` prose)."""
    low, high = DOCUMENT_CHARS
    return list(generate_paragraphs(count, seed=seed, min_chars=low, max_chars=high))


def shingle_strings(texts: list[str], shingler: Shingler) -> list[list[bytes]]:
    """Each text's distinct shingles, UTF-8 encoded: exactly what datasketch is fed."""
    return [[shingle.encode("utf-8") for shingle in shingler.shingles(text)] for text in texts]


def datasketch_minhashes(shingles: list[list[bytes]], num_perm: int) -> np.ndarray:
    """datasketch's signatures of pre-made shingles: the baseline's timed part."""
    rows = []
    for text_shingles in shingles:
        minhash = MinHash(num_perm=num_perm)
        for shingle in text_shingles:
            minhash.update(shingle)
        rows.append(minhash.hashvalues)
    return np.array(rows)


def datasketch_batch_minhashes(shingles: list[list[bytes]], num_perm: int) -> np.ndarray:
    """The same with ``update_batch``: datasketch's faster, vectorised way in."""
    rows = []
    for text_shingles in shingles:
        minhash = MinHash(num_perm=num_perm)
        minhash.update_batch(text_shingles)
        rows.append(minhash.hashvalues)
    return np.array(rows)


def datasketch_signatures(
    texts: list[str], num_perm: int = DEFAULT_NUM_PERM, shingler: Shingler = DEFAULT_SHINGLER
) -> np.ndarray:
    """The reference: datasketch MinHash over the same shingles as ``MinHasher``."""
    return datasketch_minhashes(shingle_strings(texts, shingler), num_perm)


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs: the least disturbed by other work on the machine."""
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def benchmark_signatures(
    texts: list[str], num_perm: int = DEFAULT_NUM_PERM, repeats: int = 1
) -> dict:
    """Signatures per second per core of both implementations on ``texts``, and the ratio."""
    if not texts:
        raise ValueError("benchmark_signatures needs at least one text")
    hasher = MinHasher(num_perm=num_perm)
    hasher.signatures(texts[:2])  # compile (or load the cached machine code) before timing
    shingles = shingle_strings(texts, hasher.shingler)
    ours = best_seconds(lambda: hasher.signatures(texts), repeats)
    theirs = best_seconds(lambda: datasketch_minhashes(shingles, num_perm), repeats)
    theirs_batched = best_seconds(lambda: datasketch_batch_minhashes(shingles, num_perm), repeats)
    return {
        "instructflow_docs_per_s": len(texts) / ours,
        "datasketch_docs_per_s": len(texts) / theirs,
        "speedup": theirs / ours,
        "datasketch_update_batch_docs_per_s": len(texts) / theirs_batched,
        "speedup_over_update_batch": theirs_batched / ours,
        "docs": len(texts),
        "avg_words": sum(len(text.split()) for text in texts) / len(texts),
        "avg_shingles": sum(map(len, shingles)) / len(texts),
        "num_perm": num_perm,
    }
