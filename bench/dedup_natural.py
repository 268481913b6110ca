"""``instructflow bench dedup --corpus natural``: precision, recall and F1 of near dedup on
the natural-duplicate benchmark (``bench.corpora.natural_dedup``: one passage under several
datasets' templates), for instructflow's settings and, in the same run on the same corpus,
datasketch and DataTrove. Scored as the labelled benchmark is (``bench.dedup_baselines.score``:
a true cluster of k records loses k-1).

instructflow reads the per-dataset files (``sources/``, prompt/completion), as a user's
collection comes; the baselines read the same records in one file and compare the prompt and
the completion, as instructflow's ``conversation`` key does.

    instructflow bench dedup --corpus natural --passages 3000 --threshold 0.7
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.corpora.natural_dedup import NaturalCorpus, build_natural_benchmark
from bench.dedup_baselines import compare_baselines, ensure_datatrove_venv, score
from pipeline.config import parse_recipe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
REMOVED_REASONS = ("dedup.exact", "dedup.near")


@dataclass(frozen=True)
class NaturalSettings:
    workdir: Path
    passages: int
    thresholds: tuple[float, ...]
    workers: int
    seed: int
    datatrove: bool
    # name -> the stages the run gets ({"near_dedup": {...}} and maybe exact_dedup first);
    # the threshold is set on near_dedup per row.
    systems: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    shared: Path | None = SHARED
    word_ngram: int = 5  # the baselines' shingles
    # Also time the defaults as `instructflow data run` in a fresh process.
    cold_run: bool = True


DEFAULTS = "instructflow defaults"
DISTRIBUTED = "defaults, distributed path"


def default_systems() -> dict[str, list[dict[str, Any]]]:
    """instructflow as a user gets it, and the settings the natural benchmark compares. A
    ``{"run": {...}}`` entry sets run options rather than a stage."""
    return {
        DEFAULTS: [{"exact_dedup": {}}, {"near_dedup": {}}],
        # The same stages forced through the shuffles (what a corpus over
        # run.single_task_bytes gets): same output, Ray's fixed costs per shuffle.
        DISTRIBUTED: [{"exact_dedup": {}}, {"near_dedup": {}}, {"run": {"single_task_bytes": 0}}],
        "whole records (no masking)": [{"near_dedup": {"template_share": None}}],
        "whole records, 5-grams": [{"near_dedup": {"template_share": None, "word_ngram": 5}}],
        "longest passage": [{"near_dedup": {"key": "longest_passage"}}],
        "prompt": [{"near_dedup": {"key": "prompt"}}],
    }


def natural_recipe_data(
    corpus: NaturalCorpus,
    output: Path,
    stages: list[dict[str, Any]],
    threshold: float,
    seed: int,
    workers: int,
) -> dict[str, Any]:
    with_threshold = [
        {"near_dedup": {**options, "threshold": threshold}} if name == "near_dedup" else stage
        for stage in stages
        for name, options in stage.items()
        if name != "run"
    ]
    run = {key: value for stage in stages for key, value in stage.get("run", {}).items()}
    return {
        "name": "bench-dedup-natural",
        "seed": seed,
        "inputs": [{"path": str(corpus.sources_dir), "format": "prompt_completion"}],
        "stages": with_threshold,
        "output": {"path": str(output)},
        "run": {"progress_bars": False, "max_workers": workers, **run},
    }


def output_digest(output: Path) -> str:
    """The shards' checksums from the manifest, as one digest: two runs wrote the same
    bytes when their digests are equal."""
    manifest = json.loads((output / "manifest.json").read_text())
    shards = sorted(
        (shard["path"].rsplit("/", 1)[-1], shard["sha256"]) for shard in manifest["shards"]
    )
    return hashlib.sha256(json.dumps(shards).encode()).hexdigest()[:16]


def cold_run_row(
    corpus: NaturalCorpus, threshold: float, settings: NaturalSettings
) -> dict[str, Any]:
    """The defaults as a user runs them: ``instructflow data run`` in a fresh process (Python
    and imports, Ray started and stopped, read, exact and near dedup, sharded write, stats and
    report), timed from outside."""
    output = settings.workdir / "runs" / f"cold-{threshold}"
    shutil.rmtree(output, ignore_errors=True)
    recipe = settings.workdir / "runs" / f"cold-{threshold}.yaml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    data = natural_recipe_data(
        corpus, output, default_systems()[DEFAULTS], threshold, settings.seed, settings.workers
    )
    recipe.write_text(json.dumps(data))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ops.cli", "data", "run", str(recipe), "--no-progress"],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    seconds = time.perf_counter() - started
    result = score(read_cluster_labels(corpus), removed_records(output, corpus))
    return {
        "system": "instructflow data run (defaults, cold process)",
        "threshold": threshold,
        "seconds": round(seconds, 3),
        "masked_share": template_share(output / "stats.json"),
        "output_digest": output_digest(output),
        **asdict(result),
    }


def removed_records(output: Path, corpus: NaturalCorpus) -> set[int]:
    """1-based lines of ``corpus.jsonl`` of the records the run removed as duplicates."""
    line_of = {}
    with corpus.labels_path.open(encoding="utf-8") as labels:
        for number, entry in enumerate(map(json.loads, labels), start=1):
            line_of[(entry["file"], entry["line"])] = number
    rejects = output / "rejects"
    if not rejects.is_dir():
        return set()
    table = pq.read_table(rejects, columns=["drop_reason", "source_file", "source_line"])
    table = table.filter(pc.is_in(table["drop_reason"], value_set=pa.array(REMOVED_REASONS)))
    return {
        line_of[(Path(file).name, line)]
        for file, line in zip(
            table["source_file"].to_pylist(), table["source_line"].to_pylist(), strict=True
        )
    }


def template_share(stats_path: Path) -> float | None:
    """The share of the records' shingles near dedup masked as template, from stats.json."""
    stats = json.loads(stats_path.read_text())
    for stage in stats["stages"]:
        findings = stage.get("findings") or {}
        if findings.get("template.record_shingles"):
            return round(
                findings["template.masked_shingles"] / findings["template.record_shingles"], 4
            )
    return None


def instructflow_row(
    corpus: NaturalCorpus, name: str, stages: list, threshold: float, settings: NaturalSettings
) -> dict[str, Any]:
    from ops.datarun import documents
    from pipeline.plan import execute

    output = settings.workdir / "runs" / f"{name.replace(' ', '-').replace(',', '')}-{threshold}"
    recipe = parse_recipe(
        natural_recipe_data(corpus, output, stages, threshold, settings.seed, settings.workers)
    )
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    execute(recipe, str(output), documents=partial(documents, recipe))
    seconds = time.perf_counter() - started
    labels = read_cluster_labels(corpus)
    result = score(labels, removed_records(output, corpus))
    return {
        "system": f"instructflow: {name}",
        "threshold": threshold,
        "seconds": round(seconds, 3),
        "masked_share": template_share(output / "stats.json"),
        "output_digest": output_digest(output),
        **asdict(result),
    }


def read_cluster_labels(corpus: NaturalCorpus) -> list[int | None]:
    with corpus.labels_path.open(encoding="utf-8") as labels:
        return [json.loads(line)["cluster"] for line in labels]


def bench_natural(settings: NaturalSettings, json_out: str | None = None) -> dict[str, Any]:
    """Build the corpus, run every system at every threshold, print and return the table."""
    import ray

    from ops.cluster import connect

    corpus = build_natural_benchmark(
        settings.workdir / "corpus-natural",
        settings.passages,
        seed=settings.seed,
        shared=settings.shared,
    )
    datatrove_python = None
    if settings.datatrove:
        from bench.dedup import DATATROVE_VENV

        datatrove_python = ensure_datatrove_venv(DATATROVE_VENV)
    systems = settings.systems or default_systems()
    started_ray = not ray.is_initialized()
    connect(None, progress_bars=False, num_cpus=settings.workers)
    rows: list[dict[str, Any]] = []
    try:
        for threshold in settings.thresholds:
            for name, stages in systems.items():
                rows.append(instructflow_row(corpus, name, stages, threshold, settings))
                print_row(rows[-1])
    finally:
        if started_ray:
            ray.shutdown()
    if settings.cold_run:
        for threshold in settings.thresholds:
            rows.append(cold_run_row(corpus, threshold, settings))
            print_row(rows[-1])
    for row in compare_baselines(
        corpus,
        settings.thresholds,
        settings.workdir,
        datatrove_python,
        settings.workers,
        word_ngram=settings.word_ngram,
        char_ngram=settings.word_ngram,
    ):
        rows.append({"system": row.pop("baseline"), **row})
        print_row(rows[-1])
    report = {
        "corpus": {
            key: value for key, value in asdict(corpus).items() if not isinstance(value, Path)
        },
        "settings": {
            "passages": settings.passages,
            "thresholds": list(settings.thresholds),
            "workers": settings.workers,
            "seed": settings.seed,
            "systems": systems,
        },
        "rows": rows,
    }
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def print_row(row: dict[str, Any]) -> None:
    masked = row.get("masked_share")
    print(
        f"{row['system']:<46}{row['threshold']:>6}{row['precision']:>7.3f}{row['recall']:>7.3f}"
        f"{row['f1']:>7.3f}{row['removed']:>8}{row['expected']:>8}{row['seconds']:>9.2f}"
        + (f"  masked {masked:.1%}" if masked is not None else ""),
        flush=True,
    )
