"""DataTrove's four-stage MinHash deduplication on one alpaca JSONL corpus; prints one JSON line.

Baseline B of ``instructflow bench dedup``. It runs with the python of the DataTrove virtual
environment that ``bench.dedup_baselines.ensure_datatrove_venv`` makes, not the project's:

    .bench/datatrove/bin/python bench/datatrove_baseline.py --input corpus.jsonl --work DIR \\
        --threshold 0.8 --num-perm 128 --language en --workers 2

The stages are those of DataTrove's ``examples/minhash_deduplication.py`` (signatures, buckets,
clusters, filter), on ``LocalPipelineExecutor`` instead of Slurm. Each record's text is
``instruction + "\\n" + output`` (``bench.corpora.dedup_passages.dedup_text``) and its id is its
1-based line number. The corpus is first split into one file per worker, because DataTrove's
readers give each task whole files. DataTrove's defaults stay as they are, but for ``--n-grams``
(the benchmark passes instructflow's shingle size; DataTrove's default is 5): n-gram shingles of
words after its ``simplify_text`` (lowercase, punctuation and whitespace folded, digits -> 0),
64-bit xxhash. Words come from its tokenizer for the language: spaCy's English tokenizer for
"en", and for "zh" spaCy's Chinese tokenizer with the jieba segmenter
(``Languages.mandarin_chinese__hani``; beware ``Languages.chinese``, "zho", which maps to a
whitespace tokenizer for Latin-script Chinese and so sees each clause of Chinese text as one
word).

Bands and rows: MinhashConfig has ``num_buckets`` (bands) and ``hashes_per_bucket`` (rows). They
are chosen as ``datasketch.MinHashLSH`` chooses them, minimising the equally weighted areas of
false positives and false negatives under the S-curve, with bands * rows <= --num-perm; so both
baselines band their signatures alike (0.7 -> 14 x 9, 0.8 -> 9 x 13 at 128; DataTrove's default
is 14 x 8).

Prints ``{"seconds", "removed", "bands", "rows", "datatrove"}``: the wall time of the four stages,
the removed line numbers, the banding, DataTrove's version. The file imports nothing from the
project and imports DataTrove only in ``run_stages``, so the project can import
``optimal_bands_rows`` without it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

WORK_FOLDERS = ("shards", "signatures", "buckets", "remove_ids", "removed", "kept", "logs")
# Our language codes -> DataTrove's Languages members (see the module docstring for "zh").
DATATROVE_LANGUAGES = {"en": "english", "zh": "mandarin_chinese__hani"}


def optimal_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) minimising the false-positive area below ``threshold`` plus the
    false-negative area above it, with bands * rows <= ``num_perm`` (datasketch's rule)."""
    similarity_below = np.linspace(0.0, threshold, 2001)
    similarity_above = np.linspace(threshold, 1.0, 2001)
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            candidate_below = 1 - (1 - similarity_below**rows) ** bands
            candidate_above = 1 - (1 - similarity_above**rows) ** bands
            false_positive = np.trapezoid(candidate_below, similarity_below)
            false_negative = np.trapezoid(1 - candidate_above, similarity_above)
            error = 0.5 * false_positive + 0.5 * false_negative
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def alpaca_adapter(self: Any, data: dict, path: str, id_in_file: int | str) -> dict:
    """DataTrove reader adapter: the text that dedup compares, with the line number as id."""
    return {"text": f"{data['instruction']}\n{data['output']}", "id": str(data["line"])}


def write_shards(corpus: Path, shard_dir: Path, shards: int) -> None:
    """Split ``corpus`` into ``shards`` contiguous files, each record tagged with its line."""
    lines = corpus.read_text(encoding="utf-8").splitlines()
    per_shard = -(-len(lines) // shards)
    shard_dir.mkdir(parents=True)
    for index in range(shards):
        with (shard_dir / f"{index:05d}.jsonl").open("w", encoding="utf-8") as shard:
            for line in range(index * per_shard, min(len(lines), (index + 1) * per_shard)):
                record = json.loads(lines[line])
                shard.write(json.dumps({**record, "line": line + 1}, ensure_ascii=False) + "\n")


def run_stages(
    work: Path, shards: int, workers: int, bands: int, rows: int, language: str, n_grams: int = 5
) -> float:
    """The four MinHash stages; returns their wall seconds."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.typeshelper import Languages

    config = MinhashConfig(n_grams=n_grams, num_buckets=bands, hashes_per_bucket=rows)

    def reader() -> JsonlReader:
        return JsonlReader(str(work / "shards"), adapter=alpaca_adapter, glob_pattern="*.jsonl")

    def executor(name: str, pipeline: list, tasks: int) -> LocalPipelineExecutor:
        return LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=tasks,
            workers=min(workers, tasks),
            logging_dir=str(work / "logs" / name),
        )

    signatures, buckets, remove_ids = (str(work / name) for name in WORK_FOLDERS[1:4])
    language_code = getattr(Languages, DATATROVE_LANGUAGES[language])
    stages = [
        executor(
            "signatures",
            [reader(), MinhashDedupSignature(signatures, config=config, language=language_code)],
            shards,
        ),
        executor("buckets", [MinhashDedupBuckets(signatures, buckets, config=config)], bands),
        executor("clusters", [MinhashDedupCluster(buckets, remove_ids, config=config)], 1),
        executor(
            "filter",
            [
                reader(),
                MinhashDedupFilter(
                    remove_ids,
                    exclusion_writer=JsonlWriter(str(work / "removed"), compression=None),
                ),
                JsonlWriter(str(work / "kept"), compression=None),
            ],
            shards,
        ),
    ]
    started = time.perf_counter()
    for stage in stages:
        stage.run()
    return time.perf_counter() - started


def removed_lines(removed_dir: Path) -> list[int]:
    lines = []
    for path in sorted(removed_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            lines.extend(int(json.loads(row)["id"]) for row in handle)
    return sorted(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--input", type=Path, required=True, help="alpaca JSONL corpus")
    parser.add_argument("--work", type=Path, required=True, help="folder for DataTrove's files")
    parser.add_argument("--threshold", type=float, required=True)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--language", choices=sorted(DATATROVE_LANGUAGES), required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--n-grams", type=int, default=5, help="words per shingle (default 5)")
    args = parser.parse_args(argv)
    if not 0 < args.threshold < 1 or args.workers < 1 or args.num_perm < 2:
        parser.error("need 0 < --threshold < 1, --workers >= 1 and --num-perm >= 2")

    for name in WORK_FOLDERS:  # a rerun must not find the last run's "completed" markers
        shutil.rmtree(args.work / name, ignore_errors=True)
    write_shards(args.input, args.work / "shards", args.workers)
    bands, rows = optimal_bands_rows(args.threshold, args.num_perm)
    seconds = run_stages(
        args.work, args.workers, args.workers, bands, rows, args.language, args.n_grams
    )

    from importlib.metadata import version

    result = {
        "seconds": seconds,
        "removed": removed_lines(args.work / "removed"),
        "bands": bands,
        "rows": rows,
        "datatrove": version("datatrove"),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
