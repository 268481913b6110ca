"""``instructflow bench pipeline``: whole-pipeline throughput and Ray's overhead.

The baseline runs the very same reader, converter and stages as plain Python on one core in
this process, then sorts and writes the kept records to one Parquet file. The Ray runs use
the real plan (materialize, summaries, shuffle, sharded write) at each CPU count. Overhead is
per core: ``ray_seconds * cores / baseline_seconds - 1``. Ray start-up is excluded: on a
cluster it is paid once, not per job.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.corpora import DirtConfig, write_corpus
from pipeline.config import DataRecipe, parse_recipe
from pipeline.ingest import ingest_file
from pipeline.read import list_input_files
from pipeline.registry import stage_class
from pipeline.schema import RECORD_SCHEMA

BENCH_FILES = 8
BENCH_STAGES = [
    "clean",
    "pii",
    "language",
    "length",
    "repetition",
    "characters",
    "stopwords",
    "refusal",
    "copy",
]


def bench_recipe(corpus_dir: Path, output_dir: Path, seed: int) -> DataRecipe:
    return parse_recipe(
        {
            "name": "bench-pipeline",
            "seed": seed,
            "inputs": [{"path": str(corpus_dir), "format": "alpaca"}],
            "stages": [{name: {}} for name in BENCH_STAGES],
            "output": {"path": str(output_dir), "shard_target_bytes": 32 * 1024 * 1024},
            "run": {"progress_bars": False},
        }
    )


def make_corpus(corpus_dir: Path, records: int, seed: int) -> int:
    """The project's own generator, in BENCH_FILES files, with the usual light dirt."""
    shutil.rmtree(corpus_dir, ignore_errors=True)
    corpus_dir.mkdir(parents=True)
    per_file = -(-records // BENCH_FILES)
    for index in range(BENCH_FILES):
        count = min(per_file, records - index * per_file)
        if count > 0:
            write_corpus(
                corpus_dir / f"part-{index:02d}.jsonl", count, seed=seed + index, dirt=DirtConfig()
            )
    return sum(f.stat().st_size for f in corpus_dir.iterdir())


def plain_python(recipe: DataRecipe, output_file: Path) -> tuple[float, int]:
    """The same work on one core with no Ray: read, convert, every stage, sort, write."""
    started = time.perf_counter()
    stages = [stage_class(s.name)(s.config) for s in recipe.stages]
    kept = []
    for item in list_input_files(recipe.inputs[0].path):
        for batch in ingest_file(
            item, recipe.inputs[0], seed=recipe.seed, batch_rows=recipe.run.batch_rows
        ):
            for stage in stages:
                batch, _ = stage.run(batch)
            kept.append(batch.filter(pc.is_null(batch.column("drop_reason"))))
    table = pa.concat_tables(kept).sort_by("id").select(RECORD_SCHEMA.names).cast(RECORD_SCHEMA)
    pq.write_table(table, output_file, compression="zstd")
    return time.perf_counter() - started, table.num_rows


def ray_run(recipe: DataRecipe, cpus: int) -> tuple[float, int]:
    import ray

    from ops.cluster import connect
    from pipeline.plan import execute

    ray.shutdown()
    connect(None, progress_bars=False, num_cpus=cpus)
    shutil.rmtree(recipe.output.path, ignore_errors=True)
    started = time.perf_counter()
    result = execute(recipe, recipe.output.path)
    seconds = time.perf_counter() - started
    ray.shutdown()
    return seconds, result.summary.rows["output"]


def bench_pipeline(records: int, cpus: list[int] | None, workdir: str, seed: int) -> dict[str, Any]:
    logging.getLogger("ray").setLevel(logging.WARNING)
    root = Path(workdir).resolve()
    corpus_bytes = make_corpus(root / "corpus", records, seed)
    recipe = bench_recipe(root / "corpus", root / "ray-output", seed)
    megabytes = corpus_bytes / 1e6
    base_seconds, base_kept = plain_python(recipe, root / "plain.parquet")
    rows = [
        {"mode": "plain python, 1 core", "cores": 1, "seconds": base_seconds, "kept": base_kept}
    ]
    counts = cpus or sorted({1, os.cpu_count() or 1})
    # The last run is the most cores again without the checkpoints --resume starts from:
    # what they cost is the difference between those two rows.
    without = recipe.model_copy(
        update={"run": recipe.run.model_copy(update={"checkpoints": False})}
    )
    for count, plan, label in [(count, recipe, "") for count in counts] + [
        (counts[-1], without, ", no checkpoints")
    ]:
        seconds, kept = ray_run(plan, count)
        if kept != base_kept:
            raise RuntimeError(f"Ray kept {kept} records, plain Python {base_kept}: results differ")
        mode = f"ray, {count} cpu{label}"
        rows.append({"mode": mode, "cores": count, "seconds": seconds, "kept": kept})
    for row in rows:
        row["records_per_s"] = records / row["seconds"]
        row["records_per_s_per_core"] = row["records_per_s"] / row["cores"]
        row["mb_per_s_per_core"] = megabytes / row["seconds"] / row["cores"]
        row["overhead_vs_plain"] = row["seconds"] * row["cores"] / base_seconds - 1
    report = {"records": records, "corpus_mb": round(megabytes, 2), "runs": rows}
    print_table(report)
    (root / "bench-pipeline.json").write_text(json.dumps(report, indent=2))
    return report


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\n{report['records']} records, {report['corpus_mb']} MB, "
        f"stages: {', '.join(BENCH_STAGES)}"
    )
    print(
        f"{'mode':<36}{'seconds':>9}{'rec/s':>10}{'rec/s/core':>12}{'MB/s/core':>11}{'overhead':>10}"
    )
    for row in report["runs"]:
        print(
            f"{row['mode']:<36}{row['seconds']:>9.2f}{row['records_per_s']:>10.0f}"
            f"{row['records_per_s_per_core']:>12.0f}{row['mb_per_s_per_core']:>11.2f}"
            f"{100 * row['overhead_vs_plain']:>9.1f}%"
        )
