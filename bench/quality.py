"""``instructflow bench quality``: quality scoring and stratified sampling, each against a plain
single-process loop in the same run.

One process does everything, so only same-run ratios are compared on a shared machine:

1. **Corpus**: ``records`` dolly records from the project's generator, about half damaged
   (``DirtConfig.low_quality``), English in four files and Chinese in four, labelled by
   language in the recipe (dolly's ``category`` gives the task). **Model**: a small fastText
   quality model trained by ``ops.quality.train_classifier`` on separately generated good and
   bad records (``bench.corpora.write_quality_corpus``).
2. **Quality scoring**, threshold ``SCORE_THRESHOLD``. The plain loop loads the model and, on
   one core, reads and converts every file with the pipeline's own reader, scores each batch
   with the code the stage calls (``classifier_texts`` then ``label_probabilities``), keeps
   the rows at or above the threshold and writes them to one Parquet file. The pipeline is
   ``pipeline.plan.execute`` of a recipe whose only stage is ``quality``, on a local Ray with
   ``workers`` CPUs: read, score, summaries, sharded write of data and rejects.
3. **Sampling**: strata ``[task, language]``, ``temperature`` mode, half the corpus. The plain
   loop reads the corpus into memory, allocates with ``SampleConfig.allocate`` and takes,
   per stratum, the rows with the smallest order keys (``pipeline.sample.order_words``: the
   seeded id hash, row uid and augmentation hash) by a sort, then writes them. It holds the
   whole corpus and every key in one process; the stage never gathers a stratum in one place
   (radix select over byte histograms, ``pipeline.first_k``). The pipeline runs a recipe whose
   only stage is ``sample``.

Each row reports records per second and the pipeline's throughput over the plain loop's
(``x plain``), with whether both kept exactly the same record ids (read back from the
pipeline's Parquet output). Ray starts once, with ``workers`` CPUs, and is warmed up by one
untimed run of both recipes on a small corpus; its start-up is not timed. Ray runs its
workers at nice 15 (its default ``worker_niceness``) and the plain loop runs in the driver, so
on a machine shared with other work the pipeline loses more to contention than the plain loop
does: the report gives the load average at the start and the end to judge a run by.

    instructflow bench quality --records 100000 --workers 2 --json-out quality.json
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.corpora import DirtConfig, write_corpus, write_quality_corpus
from ops.quality import TrainSettings, examples_from_files, train_classifier
from pipeline.classifier import classifier_texts, label_probabilities, load_fasttext
from pipeline.config import DataRecipe, parse_recipe
from pipeline.discover import InputFile
from pipeline.ingest import ingest_file
from pipeline.sample import SampleConfig, order_words
from pipeline.schema import FLOW_SCHEMA, RECORD_SCHEMA
from pipeline.strata import Quota, stratum_keys

DEFAULT_RECORDS = 100_000
DEFAULT_TRAIN_RECORDS = 20_000
DEFAULT_WORKDIR = ".bench/quality"
MIN_RECORDS = 100
LANGUAGE_SHARES = {"en": 0.7, "zh": 0.3}
FILES_PER_LANGUAGE = 4
SCORE_THRESHOLD = 0.5
SAMPLE_STRATA = ("task", "language")
WARM_UP_RECORDS = 200
TRAIN_SEED_OFFSET = 1_000  # training records come from another stream than the corpus
# Small: ~6 MB of n-gram buckets; scoring cost is mostly the feature text, not the model.
MODEL_SETTINGS = TrainSettings(dim=32, bucket=50_000, epoch=10)


@dataclass(frozen=True)
class QualityBenchSettings:
    workdir: Path
    records: int = DEFAULT_RECORDS
    workers: int = 1
    seed: int = 0
    train_records: int = DEFAULT_TRAIN_RECORDS
    warm_up: bool = True


def check_settings(settings: QualityBenchSettings) -> None:
    """Every argument checked before anything is generated or started."""
    if settings.records < MIN_RECORDS:
        raise ValueError(f"--records must be at least {MIN_RECORDS}, got {settings.records}")
    if settings.train_records < MIN_RECORDS:
        raise ValueError(
            f"--train-records must be at least {MIN_RECORDS}, got {settings.train_records}"
        )
    if settings.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {settings.workers}")


# ---------------------------------------------------------------------------------------
# Corpus, model and recipes


def write_bench_corpus(directory: Path, records: int, seed: int) -> list[dict[str, Any]]:
    """Dolly JSONL under ``directory/<language>/``; returns the recipe's inputs, one per
    language, labelled with it."""
    shutil.rmtree(directory, ignore_errors=True)
    inputs, file_seed = [], seed
    english = round(records * LANGUAGE_SHARES["en"])
    for language, count in (("en", english), ("zh", records - english)):
        per_file = -(-count // FILES_PER_LANGUAGE)
        for index in range(FILES_PER_LANGUAGE):
            part = min(per_file, count - index * per_file)
            if part > 0:
                write_corpus(
                    directory / language / f"part-{index:02d}.jsonl",
                    part,
                    seed=file_seed,
                    fmt="dolly",
                    dirt=DirtConfig.low_quality(),
                    language_mix={language: 1.0},
                )
            file_seed += 1
        path = str(directory / language)
        inputs.append({"path": path, "format": "dolly", "language": language})
    return inputs


def train_bench_model(directory: Path, records: int, seed: int) -> tuple[str, dict[str, Any]]:
    """A fastText quality model trained by the project's own trainer; its path and summary."""
    good, bad = write_quality_corpus(directory / "labelled", records, seed=seed)
    counts: Counter = Counter()
    examples = [
        *examples_from_files([str(good)], "good", counts),
        *examples_from_files([str(bad)], "bad", counts),
    ]
    settings = TrainSettings(**{**asdict(MODEL_SETTINGS), "seed": seed})
    model = str(directory / "quality.bin")
    started = time.perf_counter()
    summary = train_classifier(examples, model, settings, counts)
    summary["train_seconds"] = round(time.perf_counter() - started, 3)
    return model, summary


def bench_recipe(
    inputs: list[dict[str, Any]],
    stage: dict[str, Any],
    output: Path,
    settings: QualityBenchSettings,
) -> DataRecipe:
    return parse_recipe(
        {
            "name": "bench-quality",
            "seed": settings.seed,
            "inputs": inputs,
            "stages": [stage],
            "output": {"path": str(output)},
            "run": {"progress_bars": False, "max_workers": settings.workers},
        }
    )


def quality_stage(model: str) -> dict[str, Any]:
    return {"quality": {"model": model, "threshold": SCORE_THRESHOLD}}


def sample_stage(records: int) -> dict[str, Any]:
    total = records // 2
    return {"sample": {"strata": list(SAMPLE_STRATA), "mode": "temperature", "total": total}}


# ---------------------------------------------------------------------------------------
# Plain single-process loops


def read_corpus(recipe: DataRecipe) -> Iterator[pa.Table]:
    """Live rows of every input file, in the plan's file order, read by the pipeline's own
    reader and converters (``pipeline.plan.input_files`` lists them)."""
    from pipeline.plan import input_files

    for item in input_files(recipe):
        source = recipe.inputs[item["input_index"]]
        for batch in ingest_file(
            InputFile(uri=item["uri"], size=item["size"]),
            source,
            seed=recipe.seed,
            batch_rows=recipe.run.batch_rows,
        ):
            yield batch.filter(pc.is_null(batch.column("drop_reason")))


def write_records_table(tables: list[pa.Table], path: Path, recipe: DataRecipe) -> list[str]:
    """The kept rows as one Parquet file, canonical schema; their ids, sorted."""
    table = pa.concat_tables(tables).select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA)
    pq.write_table(table, path, compression=recipe.output.compression)
    return sorted(table.column("id").to_pylist())


def plain_quality(recipe: DataRecipe, output: Path) -> tuple[float, list[str]]:
    """Seconds of the plain scoring loop, and the ids it kept."""
    config = recipe.stages[0].config
    started = time.perf_counter()
    model = load_fasttext(config.model)
    score_field = FLOW_SCHEMA.field("quality_score")
    kept = []
    for batch in read_corpus(recipe):
        probabilities = label_probabilities(model, classifier_texts(batch))
        scores = [round(row.get(config.label, 0.0), 6) for row in probabilities]
        scored = batch.set_column(
            batch.schema.get_field_index("quality_score"),
            score_field,
            pa.array(scores, pa.float64()),
        )
        kept.append(scored.filter(pa.array([score >= config.threshold for score in scores])))
    ids = write_records_table(kept, output, recipe)
    return time.perf_counter() - started, ids


def stratified_selection(
    table: pa.Table, config: SampleConfig, seed: int, file_index: dict[str, int]
) -> tuple[np.ndarray, dict[str, Quota]]:
    """Rows the sample stage would take, by allocation and a sort of each stratum's keys."""
    words = order_words(
        table, seed=seed, file_index=file_index, prefer_quality=config.prefer_quality
    )
    strata = np.asarray(stratum_keys(table, config.strata).to_pylist(), dtype=object)
    names, inverse = np.unique(strata, return_inverse=True)
    quotas = config.allocate(
        {str(name): int(count) for name, count in zip(names, np.bincount(inverse), strict=True)}
    )
    chosen = [np.zeros(0, np.int64)]
    for index, name in enumerate(names):
        rows = np.flatnonzero(inverse == index)
        order = np.lexsort(words[rows].T[::-1])  # lexsort's last key is the primary one
        chosen.append(rows[order[: quotas[str(name)].taken]])
    return np.sort(np.concatenate(chosen)), quotas


def plain_sample(recipe: DataRecipe, output: Path) -> tuple[float, list[str], dict[str, Quota]]:
    """Seconds of the plain sampling loop, the ids it selected, and its allocation."""
    from pipeline.plan import input_files

    started = time.perf_counter()
    file_index = {item["uri"]: index for index, item in enumerate(input_files(recipe))}
    table = pa.concat_tables(read_corpus(recipe))  # all of it: the plain loop's memory cost
    rows, quotas = stratified_selection(table, recipe.stages[0].config, recipe.seed, file_index)
    ids = write_records_table([table.take(pa.array(rows, pa.int64()))], output, recipe)
    return time.perf_counter() - started, ids, quotas


# ---------------------------------------------------------------------------------------
# The pipeline on Ray


def pipeline_run(recipe: DataRecipe) -> tuple[float, dict[str, float], list[str]]:
    """Wall seconds of ``execute`` on the connected Ray, its phases, and the kept ids."""
    from pipeline.plan import execute

    shutil.rmtree(recipe.output.path, ignore_errors=True)
    started = time.perf_counter()
    result = execute(recipe, recipe.output.path)
    seconds = time.perf_counter() - started
    ids = pq.read_table(Path(recipe.output.path) / "data", columns=["id"]).column("id")
    phases = {phase: round(value, 3) for phase, value in result.seconds.items()}
    return seconds, phases, sorted(ids.to_pylist())


def connect_ray(workers: int) -> bool:
    """A local Ray with ``workers`` CPUs unless one runs already (tests); True if we started
    it, so that we also stop it."""
    import ray

    from ops.cluster import connect

    started = not ray.is_initialized()
    connect(None, progress_bars=False, num_cpus=workers)
    return started


def warm_up(workdir: Path, model: str, settings: QualityBenchSettings) -> None:
    """One untimed run of each recipe on a small corpus: workers started, modules imported."""
    inputs = write_bench_corpus(workdir / "warm-up" / "corpus", WARM_UP_RECORDS, settings.seed)
    for name, stage in (
        ("quality", quality_stage(model)),
        ("sample", sample_stage(WARM_UP_RECORDS)),
    ):
        pipeline_run(bench_recipe(inputs, stage, workdir / "warm-up" / name, settings))


def compare(
    records: int,
    workers: int,
    plain: tuple[float, list[str]],
    pipeline: tuple[float, dict[str, float], list[str]],
) -> dict[str, Any]:
    """One measurement: both runs' seconds and records/s, the ratio, and whether they agree."""
    plain_seconds, plain_ids = plain
    pipeline_seconds, phases, pipeline_ids = pipeline
    ratio = plain_seconds / pipeline_seconds
    return {
        "plain_seconds": round(plain_seconds, 3),
        "plain_records_per_s": round(records / plain_seconds, 1),
        "pipeline_seconds": round(pipeline_seconds, 3),
        "pipeline_records_per_s": round(records / pipeline_seconds, 1),
        "pipeline_over_plain": round(ratio, 3),
        "pipeline_over_plain_per_core": round(ratio / workers, 3),
        "pipeline_phases": phases,
        "plain_kept": len(plain_ids),
        "pipeline_kept": len(pipeline_ids),
        "same_ids": plain_ids == pipeline_ids,
    }


# ---------------------------------------------------------------------------------------
# The benchmark


def bench_quality(settings: QualityBenchSettings, json_out: str | None = None) -> dict[str, Any]:
    """Both measurements; prints the table and returns (and optionally writes) the report."""
    logging.getLogger("ray").setLevel(logging.WARNING)
    check_settings(settings)
    workdir = settings.workdir.resolve()
    load_at_start = load_average()
    inputs, corpus = generate_corpus(workdir / "corpus", settings)
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "workdir": str(workdir), "cpu_count": os.cpu_count()},
        "corpus": corpus,
    }
    train_seed = settings.seed + TRAIN_SEED_OFFSET
    model, summary = train_bench_model(workdir / "model", settings.train_records, train_seed)
    report["model"] = model_summary(summary, settings.train_records)
    scoring = quality_stage(model)
    quality = bench_recipe(inputs, scoring, workdir / "ray-quality", settings)
    sample = bench_recipe(inputs, sample_stage(settings.records), workdir / "ray-sample", settings)
    started_ray = connect_ray(settings.workers)
    try:
        if settings.warm_up:
            warm_up(workdir, model, settings)
        report["quality"] = measure_quality(quality, workdir, settings)
        report["sample"] = measure_sample(sample, workdir, settings)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    report["load_average"] = {"start": load_at_start, "end": load_average()}
    print_report(report)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(value, 2) for value in os.getloadavg()]


def generate_corpus(
    directory: Path, settings: QualityBenchSettings
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The benchmark corpus: the recipe's inputs, and its size and generation time."""
    started = time.perf_counter()
    inputs = write_bench_corpus(directory, settings.records, settings.seed)
    corpus_bytes = sum(path.stat().st_size for path in directory.rglob("*.jsonl"))
    return inputs, {
        "records": settings.records,
        "files": FILES_PER_LANGUAGE * len(LANGUAGE_SHARES),
        "mb": round(corpus_bytes / 1e6, 2),
        "generate_seconds": round(time.perf_counter() - started, 2),
    }


def model_summary(summary: dict[str, Any], train_records: int) -> dict[str, Any]:
    return {
        "train_records": train_records,
        "train_seconds": summary["train_seconds"],
        "fasttext": summary["fasttext"],
        "holdout_macro_f1": summary["metrics"]["macro"]["f1"] if summary["metrics"] else None,
    }


def measure_quality(
    recipe: DataRecipe, workdir: Path, settings: QualityBenchSettings
) -> dict[str, Any]:
    plain = plain_quality(recipe, workdir / "plain-quality.parquet")
    row = compare(settings.records, settings.workers, plain, pipeline_run(recipe))
    return {"threshold": SCORE_THRESHOLD, **row}


def measure_sample(
    recipe: DataRecipe, workdir: Path, settings: QualityBenchSettings
) -> dict[str, Any]:
    seconds, ids, quotas = plain_sample(recipe, workdir / "plain-sample.parquet")
    row = compare(settings.records, settings.workers, (seconds, ids), pipeline_run(recipe))
    config = recipe.stages[0].config
    return {
        "strata": list(config.strata),
        "mode": config.mode,
        "temperature": config.temperature,
        "total": config.total,
        "allocation": {name: asdict(quota) for name, quota in quotas.items()},
        **row,
    }


def print_report(report: dict[str, Any]) -> None:
    corpus, model, workers = report["corpus"], report["model"], report["settings"]["workers"]
    print(
        f"\ncorpus: {corpus['records']:,} dolly records (en/zh) in {corpus['files']} files, "
        f"{corpus['mb']} MB; quality model: {model['train_records']:,} training records, "
        f"dim {model['fasttext']['dim']}, held-out macro F1 {model['holdout_macro_f1']}"
    )
    print(f"\n{'':<40}{'seconds':>9}{'rec/s':>10}{'x plain':>9}{'kept':>9}  same ids")
    sample = report["sample"]
    titles = {
        "quality": f"quality scoring, threshold {report['quality']['threshold']}",
        "sample": f"sampling {' x '.join(sample['strata'])}, {sample['mode']}, "
        f"total {sample['total']:,}",
    }
    for name, title in titles.items():
        row = report[name]
        print(title)
        print(
            f"  {'plain loop, 1 process':<38}{row['plain_seconds']:>9.2f}"
            f"{row['plain_records_per_s']:>10,.0f}{1.0:>9.2f}{row['plain_kept']:>9,}"
        )
        print(
            f"  {f'pipeline, Ray {workers} CPUs':<38}{row['pipeline_seconds']:>9.2f}"
            f"{row['pipeline_records_per_s']:>10,.0f}{row['pipeline_over_plain']:>9.2f}"
            f"{row['pipeline_kept']:>9,}  {'yes' if row['same_ids'] else 'NO'}"
        )
    start, end = (report["load_average"][key][0] for key in ("start", "end"))
    print(f"load average (1 min) {start:.2f} at the start, {end:.2f} at the end")
