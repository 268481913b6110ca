"""Scoring and the two external baselines of ``instructflow bench dedup``, on the labelled
corpus of ``bench.corpora.labelled_dedup``.

``score`` counts a cluster of k records as right when exactly k-1 of them go, whichever survives.
Baseline A is datasketch as people use it (``datasketch_dedup``); baseline B is DataTrove's four
MinHash stages, run by ``bench/datatrove_baseline.py`` in a virtual environment of its own
(``ensure_datatrove_venv``, ``datatrove_dedup``); ``compare_baselines`` runs both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datasketch import MinHashLSH

from bench.corpora.dedup_passages import LANGUAGES, reference_minhash, reference_shingles
from bench.corpora.labelled_dedup import BenchmarkCorpus, read_labels, read_texts

DATATROVE_VERSION = "0.10.1"


# The MinHash stages import regex and xxhash (extra "processing"), JsonlReader needs orjson
# (extra "io"), and the word tokenizers need spaCy, plus jieba for Chinese. DataTrove's own
# "multilingual" extra would also pull TensorFlow and a dozen tokenizers we do not use. Nothing
# here needs torch.
DATATROVE_REQUIREMENTS = (
    f"datatrove[io,processing]=={DATATROVE_VERSION}",
    "spacy==3.8.18",
    "jieba==0.42.1",
)


DATATROVE_SCRIPT = Path(__file__).with_name("datatrove_baseline.py")


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    removed: int
    correct: int
    expected: int


def score(labels: list[int | None], removed: set[int]) -> Score:
    """Score removed 1-based line numbers against ``labels`` (cluster of each line, or None).

    A cluster of k lines should lose exactly k-1 of them, a unique line none: a removal is
    correct while it is one of the first k-1 from its cluster, so removing all k counts one
    wrong. Precision is 1.0 when nothing is removed; recall is 1.0 when nothing should be.
    """
    outside = sorted(line for line in removed if not 1 <= line <= len(labels))
    if outside:
        raise ValueError(f"removed lines {outside[:5]} are outside 1..{len(labels)}")
    sizes: dict[int, int] = {}
    removed_per_cluster: dict[int, int] = {}
    for line, cluster in enumerate(labels, start=1):
        if cluster is not None:
            sizes[cluster] = sizes.get(cluster, 0) + 1
            if line in removed:
                removed_per_cluster[cluster] = removed_per_cluster.get(cluster, 0) + 1
    expected = sum(size - 1 for size in sizes.values())
    correct = sum(min(count, sizes[cluster] - 1) for cluster, count in removed_per_cluster.items())
    precision = correct / len(removed) if removed else 1.0
    recall = correct / expected if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, len(removed), correct, expected)


def datasketch_dedup(
    texts: list[str],
    threshold: float,
    num_perm: int = 128,
    word_ngram: int = 5,
    char_ngram: int = 5,
) -> set[int]:
    """Removed 1-based line numbers: a text goes when the LSH index already holds a candidate,
    otherwise it joins the index. ``MinHashLSH`` picks its own bands and rows for ``threshold``."""
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed: set[int] = set()
    for line, text in enumerate(texts, start=1):
        minhash = reference_minhash(reference_shingles(text, word_ngram, char_ngram), num_perm)
        if index.query(minhash):
            removed.add(line)
        else:
            index.insert(line, minhash)
    return removed


def datasketch_bands_rows(threshold: float, num_perm: int = 128) -> tuple[int, int]:
    """The (bands, rows) that ``MinHashLSH`` chooses for ``threshold``."""
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return index.b, index.r


def ensure_datatrove_venv(venv_dir: Path) -> Path:
    """A virtual environment with ``DATATROVE_REQUIREMENTS`` at ``venv_dir``; its python.

    Kept apart from the project's environment because DataTrove's pins (xxhash<4, spaCy, ...)
    are not the project's. Reuses the environment when it already has the pinned version.
    """
    python = venv_dir / "bin" / "python"
    if python.exists() and _installed_datatrove(python) == DATATROVE_VERSION:
        return python
    if not python.exists():
        base_python = shutil.which("python3") or sys.executable
        _run_checked([base_python, "-m", "venv", str(venv_dir)], "creating the DataTrove venv")
    command = [str(python), "-m", "pip", "install", "--quiet", *DATATROVE_REQUIREMENTS]
    _run_checked(command, "installing DataTrove")
    return python


def _installed_datatrove(python: Path) -> str | None:
    probe = "import importlib.metadata as m, spacy, jieba; print(m.version('datatrove'))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _run_checked(command: list[str], doing: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{doing} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"stderr tail:\n{result.stderr[-3000:]}"
        )
    return result


def datatrove_dedup(
    corpus: Path,
    threshold: float,
    workdir: Path,
    venv_python: Path,
    workers: int,
    *,
    language: str,
    num_perm: int = 128,
    n_grams: int = 5,
) -> tuple[set[int], float]:
    """Removed 1-based line numbers and the wall seconds of DataTrove's four MinHash stages.

    ``language`` picks DataTrove's word tokenizer ("en": spaCy English, "zh": spaCy Chinese
    with jieba); see ``bench/datatrove_baseline.py`` for the bands and rows it derives.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language={language!r}; choose one of {', '.join(LANGUAGES)}")
    command = [
        str(venv_python),
        str(DATATROVE_SCRIPT),
        *("--input", str(corpus), "--work", str(workdir), "--threshold", str(threshold)),
        *("--num-perm", str(num_perm), "--language", language, "--workers", str(workers)),
        *("--n-grams", str(n_grams)),
    ]
    result = _run_checked(command, "the DataTrove baseline")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"the DataTrove baseline printed no result line; stderr tail:\n{result.stderr[-3000:]}"
        )
    report = json.loads(lines[-1])
    return set(report["removed"]), float(report["seconds"])


def compare_baselines(
    benchmark: BenchmarkCorpus,
    thresholds: Iterable[float],
    workdir: Path,
    datatrove_python: Path | None,
    workers: int = 1,
    num_perm: int = 128,
    word_ngram: int = 5,
    char_ngram: int = 5,
) -> list[dict[str, Any]]:
    """One row per (baseline, threshold): its score, wall seconds, bands and rows.

    Both baselines shingle as instructflow is told to: datasketch with the same word and
    character n-grams, DataTrove with ``word_ngram`` words of its own tokenizer (jieba's words
    for Chinese: it has no character shingles).

    datasketch runs in this process on one core; DataTrove (when ``datatrove_python`` is
    given) runs its four stages with ``workers`` processes.
    """
    texts, labels = read_texts(benchmark.corpus_path), read_labels(benchmark.labels_path)
    rows = []
    for threshold in thresholds:
        started = time.perf_counter()
        removed = datasketch_dedup(texts, threshold, num_perm, word_ngram, char_ngram)
        seconds = time.perf_counter() - started
        bands, rows_per_band = datasketch_bands_rows(threshold, num_perm)
        rows.append(
            _row("datasketch", threshold, seconds, bands, rows_per_band, score(labels, removed))
        )
        if datatrove_python is not None:
            removed, seconds = datatrove_dedup(
                benchmark.corpus_path,
                threshold,
                workdir / f"datatrove-{benchmark.language}-{threshold}",
                datatrove_python,
                workers,
                language=benchmark.language,
                num_perm=num_perm,
                n_grams=word_ngram,
            )
            bands, rows_per_band = _datatrove_bands_rows(threshold, num_perm)
            rows.append(
                _row("datatrove", threshold, seconds, bands, rows_per_band, score(labels, removed))
            )
    return rows


def _datatrove_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    from bench.datatrove_baseline import optimal_bands_rows  # the script's own choice

    return optimal_bands_rows(threshold, num_perm)


def _row(
    baseline: str, threshold: float, seconds: float, bands: int, rows: int, result: Score
) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "threshold": threshold,
        "seconds": round(seconds, 3),
        "bands": bands,
        "rows": rows,
        **asdict(result),
    }
