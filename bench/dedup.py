"""``instructflow bench dedup`` and ``instructflow bench dedup-memory``.

``bench dedup`` measures three things, each in one process so that only same-run ratios are
compared on a shared machine:

1. **Signatures**: MinHash signatures per second per core, instructflow's kernel against
   datasketch, on ~200-word English documents (``bench.minhash``).
2. **Quality**: precision, recall and F1 on the labelled near-duplicate benchmark of
   ``bench.corpora.labelled_dedup``, per language and threshold, of instructflow's
   ``near_dedup`` stage run through the real plan on Ray, of datasketch in one process, and of
   DataTrove's four MinHash stages. All three see the same corpus and compare the same text.
3. **Wall time** of those same runs. instructflow's is ``pipeline.plan.execute`` as a whole
   (read, dedup, summaries, sharded write) on a Ray that is already started and warmed up;
   datasketch's is its dedup loop over texts already in memory; DataTrove's is its four stages.

``bench dedup-memory`` runs ``exact_dedup`` then ``near_dedup`` on generated corpora of growing
size with the same worker count and samples the resident memory of every Ray worker of this
session (children of our raylet, so another Ray on the machine is not counted), of the driver,
and of the object store, to show that memory per worker does not grow with the corpus.

    instructflow bench dedup --records 20000 --threshold 0.7 0.8 --languages en zh
    instructflow bench dedup-memory --sizes 100000 1000000
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.corpora import DirtConfig, write_corpus
from bench.corpora.fixed_rate import write_fixed_rate_corpus
from bench.corpora.labelled_dedup import BenchmarkCorpus, build_benchmark, read_labels
from bench.dedup_baselines import compare_baselines, ensure_datatrove_venv, score
from bench.minhash import benchmark_signatures, english_documents
from pipeline.config import DataRecipe, parse_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]
DATATROVE_VENV = REPO_ROOT / ".bench" / "datatrove"
DEFAULT_WORKDIR = ".bench/dedup"
DEFAULT_RECORDS = 20_000
DEFAULT_THRESHOLDS = (0.7, 0.8)
DEFAULT_MEMORY_SIZES = (100_000, 1_000_000)
NUM_PERM = 128
SIGNATURE_DOCUMENTS = 2_000
SIGNATURE_REPEATS = 3
# A benchmark cluster holds 3 records on average (an original and 1-4 variants weighted
# 0.4/0.3/0.2/0.1), so records/5 clusters and the rest unique give about ``records`` records.
RECORDS_PER_CLUSTER = 5
WARM_UP_LINES = 300
# Files of one size whatever the corpus size, as real corpora come in bounded shards: a
# file is one read task and one block of up to Ray's 128 MiB, so ever larger files would
# measure the block cap rather than the corpus size.
MEMORY_RECORDS_PER_FILE = 12_500
MEMORY_PARTITION_MB = 16
SAMPLE_SECONDS = 0.2
STORE_SAMPLE_EVERY = 5  # object store stats cost ~0.1 s each: every 5th sample (1 s)
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")  # Ray's own, not workers


# ---------------------------------------------------------------------------------------
# instructflow through the real plan


def near_dedup_recipe(
    corpus: Path,
    output: Path,
    *,
    threshold: float,
    seed: int,
    workers: int,
    options: dict[str, Any],
) -> DataRecipe:
    """A recipe whose only stage is ``near_dedup`` at ``threshold`` (plus ``options``)."""
    return parse_recipe(
        {
            "name": "bench-dedup",
            "seed": seed,
            "inputs": [{"path": str(corpus), "format": "alpaca"}],
            "stages": [{"near_dedup": {**options, "threshold": threshold}}],
            "output": {"path": str(output)},
            "run": {"progress_bars": False, "max_workers": workers},
        }
    )


def removed_lines(output: Path, reason: str = "dedup.near") -> set[int]:
    """1-based input lines of the records a run removed for ``reason`` (its rejects)."""
    rejects = output / "rejects"
    if not rejects.is_dir():
        return set()
    table = pq.read_table(rejects, columns=["drop_reason", "source_line"])
    return set(table.filter(pc.equal(table["drop_reason"], reason))["source_line"].to_pylist())


def run_plan(recipe: DataRecipe) -> tuple[float, dict[str, float]]:
    """Wall seconds of ``execute`` on the connected Ray, and its own split of them."""
    from pipeline.plan import execute

    shutil.rmtree(recipe.output.path, ignore_errors=True)
    started = time.perf_counter()
    result = execute(recipe, recipe.output.path)
    seconds = time.perf_counter() - started
    shutil.rmtree(Path(recipe.output.path) / "data", ignore_errors=True)  # kept: rejects only
    return seconds, {phase: round(value, 3) for phase, value in result.seconds.items()}


def warm_up(corpus: Path, workdir: Path, seed: int, workers: int, options: dict) -> None:
    """One untimed run on the first lines of ``corpus``: workers started, modules imported,
    numba's cached machine code loaded."""
    sample = workdir / "warm-up" / "corpus.jsonl"
    sample.parent.mkdir(parents=True, exist_ok=True)
    with corpus.open(encoding="utf-8") as source:
        head = itertools.islice(source, WARM_UP_LINES)
        sample.write_text("".join(head), encoding="utf-8")
    recipe = near_dedup_recipe(
        sample,
        workdir / "warm-up" / "output",
        threshold=0.8,
        seed=seed,
        workers=workers,
        options=options,
    )
    run_plan(recipe)


def instructflow_rows(
    benchmark: BenchmarkCorpus, thresholds: list[float], settings: BenchSettings
) -> list[dict[str, Any]]:
    """One row per threshold: instructflow's score and wall seconds, like the baselines'."""
    labels = read_labels(benchmark.labels_path)
    rows = []
    for threshold in thresholds:
        output = settings.workdir / f"instructflow-{benchmark.language}-{threshold}"
        recipe = near_dedup_recipe(
            benchmark.corpus_path,
            output,
            threshold=threshold,
            seed=settings.seed,
            workers=settings.workers,
            options=settings.near_options,
        )
        seconds, phases = run_plan(recipe)
        bands, rows_per_band = recipe.stages[0].config.lsh_shape()
        result = score(labels, removed_lines(output))
        rows.append(
            {
                "system": "instructflow",
                "threshold": threshold,
                "seconds": round(seconds, 3),
                "bands": bands,
                "rows": rows_per_band,
                **asdict(result),
                "phases": phases,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------
# bench dedup


@dataclass(frozen=True)
class BenchSettings:
    workdir: Path
    records: int
    thresholds: tuple[float, ...]
    languages: tuple[str, ...]
    datatrove: bool
    workers: int
    seed: int
    near_options: dict[str, Any]
    signature_documents: int = SIGNATURE_DOCUMENTS
    signature_repeats: int = SIGNATURE_REPEATS
    warm_up: bool = True


def bench_dedup(settings: BenchSettings, json_out: str | None = None) -> dict[str, Any]:
    """All three measurements; prints the tables and returns (and optionally writes) them."""
    logging.getLogger("ray").setLevel(logging.WARNING)
    check_settings(settings)
    datatrove_python = ensure_datatrove_venv(DATATROVE_VENV) if settings.datatrove else None
    report: dict[str, Any] = {"settings": _plain_settings(settings)}
    report["signatures"] = benchmark_signatures(
        english_documents(settings.signature_documents, seed=settings.seed),
        num_perm=NUM_PERM,
        repeats=settings.signature_repeats,
    )
    print_signatures(report["signatures"])
    corpora = {
        language: build_benchmark(
            settings.workdir / f"corpus-{language}",
            language,
            clusters=settings.records // RECORDS_PER_CLUSTER,
            uniques=settings.records - 3 * (settings.records // RECORDS_PER_CLUSTER),
            seed=settings.seed,
        )
        for language in settings.languages
    }
    report["corpora"] = {language: _corpus_summary(c) for language, c in corpora.items()}
    started_ray = _connect(settings)
    try:
        if settings.warm_up:
            first = corpora[settings.languages[0]].corpus_path
            warm_up(first, settings.workdir, settings.seed, settings.workers, settings.near_options)
        report["quality"] = [
            {"language": language, **row}
            for language, benchmark in corpora.items()
            for row in _system_rows(benchmark, settings, datatrove_python)
        ]
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    report["speed"] = speed_ratios(report["quality"])
    print_quality(report)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def check_settings(settings: BenchSettings) -> None:
    """Every argument, and the near_dedup options, checked before anything runs."""
    if settings.records < RECORDS_PER_CLUSTER:
        raise ValueError(
            f"--records must be at least {RECORDS_PER_CLUSTER}, got {settings.records}"
        )
    if settings.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {settings.workers}")
    for threshold in settings.thresholds:  # parse_recipe names the bad key and value
        near_dedup_recipe(
            Path("corpus.jsonl"),
            settings.workdir,
            threshold=threshold,
            seed=settings.seed,
            workers=settings.workers,
            options=settings.near_options,
        )


def _system_rows(
    benchmark: BenchmarkCorpus, settings: BenchSettings, datatrove_python: Path | None
) -> list[dict[str, Any]]:
    thresholds = list(settings.thresholds)
    ours = instructflow_rows(benchmark, thresholds, settings)
    shingles = (
        near_dedup_recipe(
            benchmark.corpus_path,
            settings.workdir,
            threshold=thresholds[0],
            seed=settings.seed,
            workers=settings.workers,
            options=settings.near_options,
        )
        .stages[0]
        .config
    )
    theirs = compare_baselines(
        benchmark,
        thresholds,
        settings.workdir,
        datatrove_python,
        settings.workers,
        NUM_PERM,
        word_ngram=shingles.word_ngram,
        char_ngram=shingles.char_ngram,
    )
    cores = {"instructflow": settings.workers, "datasketch": 1, "datatrove": settings.workers}
    rows = ours + [{"system": row.pop("baseline"), **row} for row in theirs]
    return sorted(
        ({**row, "cores": cores[row["system"]]} for row in rows),
        key=lambda row: (row["threshold"], list(cores).index(row["system"])),
    )


def speed_ratios(quality: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per language and threshold: each system's seconds and its time over instructflow's."""
    runs: dict[tuple[str, float], dict[str, float]] = {}
    for row in quality:
        runs.setdefault((row["language"], row["threshold"]), {})[row["system"]] = row["seconds"]
    ratios = []
    for (language, threshold), seconds in runs.items():
        entry: dict[str, Any] = {"language": language, "threshold": threshold}
        entry.update({f"{system}_seconds": value for system, value in seconds.items()})
        for system in ("datasketch", "datatrove"):
            if system in seconds:
                entry[f"{system}_over_instructflow"] = round(
                    seconds[system] / seconds["instructflow"], 3
                )
        ratios.append(entry)
    return ratios


def _connect(settings: BenchSettings) -> bool:
    """Start a local Ray with ``workers`` CPUs unless one runs already (tests); True if we
    started it, so that we also stop it."""
    import ray

    from ops.cluster import connect

    started = not ray.is_initialized()
    connect(None, progress_bars=False, num_cpus=settings.workers)
    return started


def _plain_settings(settings: BenchSettings) -> dict[str, Any]:
    plain = asdict(settings)
    plain["workdir"] = str(settings.workdir)
    plain["cpu_count"] = os.cpu_count()
    return plain


def _corpus_summary(benchmark: BenchmarkCorpus) -> dict[str, Any]:
    summary = asdict(benchmark)
    return {key: value for key, value in summary.items() if not key.endswith("_path")}


def print_signatures(result: dict[str, Any]) -> None:
    print(
        f"\nsignatures: {result['docs']} docs of ~{result['avg_words']:.0f} words, "
        f"{result['num_perm']} perms, one core each\n"
        f"  instructflow {result['instructflow_docs_per_s']:>10,.0f} docs/s\n"
        f"  datasketch   {result['datasketch_docs_per_s']:>10,.0f} docs/s  "
        f"(instructflow x{result['speedup']:.1f})\n"
        f"  datasketch update_batch {result['datasketch_update_batch_docs_per_s']:,.0f} docs/s  "
        f"(instructflow x{result['speedup_over_update_batch']:.1f})"
    )


def print_quality(report: dict[str, Any]) -> None:
    print(
        f"\n{'lang':<5}{'thr':>5}  {'system':<13}{'cores':>5}{'bands x rows':>13}"
        f"{'P':>7}{'R':>7}{'F1':>7}{'removed':>9}{'expected':>9}{'seconds':>9}"
    )
    for row in report["quality"]:
        shape = f"{row['bands']} x {row['rows']}"
        print(
            f"{row['language']:<5}{row['threshold']:>5}  {row['system']:<13}{row['cores']:>5}"
            f"{shape:>13}{row['precision']:>7.3f}{row['recall']:>7.3f}{row['f1']:>7.3f}"
            f"{row['removed']:>9}{row['expected']:>9}{row['seconds']:>9.2f}"
        )
    print("\nwall time over instructflow's (> 1: instructflow is faster)")
    for entry in report["speed"]:
        ratios = ", ".join(
            f"{system} x{entry[f'{system}_over_instructflow']:.2f}"
            for system in ("datasketch", "datatrove")
            if f"{system}_over_instructflow" in entry
        )
        print(f"  {entry['language']} {entry['threshold']}: {ratios}")


# ---------------------------------------------------------------------------------------
# bench dedup-memory


@dataclass
class PeakMemory:
    """Peaks over a run, in bytes. ``worker_private`` is RSS less shared pages (the object
    store's pages that a worker maps count in its RSS but are not its own)."""

    worker_rss: int = 0
    worker_private: int = 0
    worker_total_rss: int = 0  # all workers together, at the worst sample
    driver_rss: int = 0
    driver_private: int = 0  # RSS less shared pages, as for workers
    raylet_rss: int = 0
    object_store: int = 0  # plasma bytes in use, Ray's own accounting
    workers_seen: int = 0
    samples: int = 0
    # What the worker with the largest private memory was running then (its process title).
    worker_private_task: str = ""
    # Peak private memory per kind of task (process title, partition counts left out; an
    # idle worker counts under the last task it ran), to see which step grows with size.
    worker_private_by_task: dict[str, int] = field(default_factory=dict)
    # Per kind of task: the most a worker's private memory rose above what it held at the
    # first sample of a run of that task (consecutive tasks of one kind in one worker count
    # as one run; an actor's run is its whole life). It separates what a task itself holds
    # from what its worker kept from earlier tasks (imports, allocator caches).
    worker_growth_by_task: dict[str, int] = field(default_factory=dict)


class MemorySampler:
    """Samples this Ray session's worker processes every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        import ray

        node = ray._private.worker._global_node
        self.raylet = psutil.Process(node.all_processes["raylet"][0].process.pid)
        self.driver = psutil.Process()
        self.interval = interval
        self.peak = PeakMemory()
        self.seen: set[int] = set()
        self.last_task: dict[int, str] = {}
        self.entry: dict[int, tuple[str, int]] = {}  # pid -> (task kind, private at start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak.workers_seen = len(self.seen)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            if self.peak.samples % STORE_SAMPLE_EVERY == 0:
                self.peak.object_store = max(self.peak.object_store, object_store_bytes())
            self._stop.wait(self.interval)

    def sample(self) -> None:
        peak, total = self.peak, 0
        for process in self.raylet.children():
            try:
                if process.name() in RAY_AGENTS or not process.name().startswith("ray::"):
                    continue
                memory = process.memory_info()
            except psutil.Error:  # a worker that exited between listing and reading
                continue
            self.seen.add(process.pid)
            total += memory.rss
            peak.worker_rss = max(peak.worker_rss, memory.rss)
            private, title = memory.rss - memory.shared, _title(process)
            if private > peak.worker_private:
                peak.worker_private = private
                peak.worker_private_task = title
            task = self._task_kind(process.pid, title)
            by_task = peak.worker_private_by_task
            by_task[task] = max(by_task.get(task, 0), private)
            if not task.startswith("idle after"):
                kind, entry = self.entry.get(process.pid, ("", 0))
                if kind != task:
                    kind, entry = self.entry[process.pid] = (task, private)
                growth = peak.worker_growth_by_task
                growth[task] = max(growth.get(task, 0), private - entry)
        peak.worker_total_rss = max(peak.worker_total_rss, total)
        driver = self.driver.memory_info()
        peak.driver_rss = max(peak.driver_rss, driver.rss)
        peak.driver_private = max(peak.driver_private, driver.rss - driver.shared)
        peak.raylet_rss = max(peak.raylet_rss, self.raylet.memory_info().rss)
        peak.samples += 1

    def _task_kind(self, pid: int, title: str) -> str:
        kind = _PARTITIONS.sub("partitions=N", title).strip() or "?"
        if kind.startswith("ray::IDLE"):
            return f"idle after {self.last_task.get(pid, 'nothing')}"
        self.last_task[pid] = kind
        return kind


_PARTITIONS = re.compile(r"partitions=\d+")


def _title(process: psutil.Process) -> str:
    """A Ray worker's process title names the task or actor it runs (``ray::Name``)."""
    try:
        return " ".join(process.cmdline())[:120] or process.name()
    except psutil.Error:
        return ""


_PLASMA_USAGE = re.compile(r"Plasma memory usage (\d+) MiB")


def object_store_bytes() -> int:
    """Plasma bytes in use now, from Ray's memory summary; 0 when it cannot be read."""
    from ray._private.internal_api import memory_summary

    try:
        match = _PLASMA_USAGE.search(memory_summary(stats_only=True))
    except Exception:  # an internal API: losing this optional figure must not end the run
        return 0
    return int(match.group(1)) << 20 if match else 0


MEMORY_CORPORA = ("fixed-rate", "templates")


def memory_corpus(
    corpus_dir: Path, records: int, seed: int, kind: str = "fixed-rate"
) -> tuple[float, int]:
    """``records`` generated alpaca records in files of MEMORY_RECORDS_PER_FILE; seconds
    spent and bytes. ``fixed-rate`` (``bench.corpora.fixed_rate``): duplicates, near duplicates and
    400-member families at the same rates at every size. ``templates``: ``bench.corpora`` with
    ``DirtConfig.typical()`` (5% exact and 3% near duplicates), whose chance near duplicates
    grow faster than the corpus. A corpus already there for the same arguments is reused."""
    if kind not in MEMORY_CORPORA:
        raise ValueError(f"memory corpus {kind!r}: expected one of {', '.join(MEMORY_CORPORA)}")
    marker = corpus_dir / "COMPLETE"
    wanted = f"{records} {seed} {MEMORY_RECORDS_PER_FILE}"
    if kind != "templates":
        wanted += f" {kind}"
    if marker.exists() and marker.read_text() == wanted:
        return 0.0, sum(path.stat().st_size for path in corpus_dir.glob("*.jsonl"))
    shutil.rmtree(corpus_dir, ignore_errors=True)
    corpus_dir.mkdir(parents=True)
    started = time.perf_counter()
    per_file = MEMORY_RECORDS_PER_FILE
    if kind == "fixed-rate":
        write_fixed_rate_corpus(corpus_dir, records, seed=seed, records_per_file=per_file)
    else:
        for index in range(-(-records // per_file)):
            count = min(per_file, records - index * per_file)
            if count > 0:
                write_corpus(
                    corpus_dir / f"part-{index:04d}.jsonl",
                    count,
                    seed=seed + index,
                    dirt=DirtConfig.typical(),
                )
    marker.write_text(wanted)
    seconds = time.perf_counter() - started
    return seconds, sum(path.stat().st_size for path in corpus_dir.glob("*.jsonl"))


def memory_recipe(
    corpus_dir: Path,
    output: Path,
    seed: int,
    workers: int,
    partition_mb: int = MEMORY_PARTITION_MB,
    near_options: dict[str, Any] | None = None,
) -> DataRecipe:
    """exact_dedup then near_dedup (with ``near_options``) with shuffle partitions and output
    shards of ``partition_mb``. A task holds up to one partition, so sizes compare at the
    bound when their partitions are equally full (BENCHMARKS.md: 17 MiB for 100k-3M)."""
    return parse_recipe(
        {
            "name": "bench-dedup-memory",
            "seed": seed,
            # The parts only: the COMPLETE marker beside them is not a record.
            "inputs": [{"path": str(corpus_dir / "part-*.jsonl"), "format": "alpaca"}],
            "stages": [{"exact_dedup": {}}, {"near_dedup": dict(near_options or {})}],
            "output": {"path": str(output), "shard_target_bytes": partition_mb << 20},
            "run": {
                "progress_bars": False,
                "max_workers": workers,
                "shuffle_partition_bytes": partition_mb << 20,
            },
        }
    )


def memory_run(recipe: DataRecipe, workers: int) -> dict[str, Any]:
    """One size: ``execute`` on a fresh Ray (unless one runs already) under the sampler."""
    import ray

    from ops.cluster import connect
    from pipeline.plan import execute

    output = Path(recipe.output.path)
    started_ray = not ray.is_initialized()
    connect(None, progress_bars=False, num_cpus=workers)
    shutil.rmtree(output, ignore_errors=True)
    try:
        with MemorySampler() as sampler:
            started = time.perf_counter()
            result = execute(recipe, str(output))
            seconds = time.perf_counter() - started
    finally:
        if started_ray:
            ray.shutdown()
    shutil.rmtree(output, ignore_errors=True)
    rows = result.summary.rows
    return {
        "seconds": round(seconds, 2),
        "output": rows.get("output", 0),
        "rejects": rows.get("rejects", 0),
        "dropped": dict(result.summary.reasons),
        "phases": {phase: round(value, 2) for phase, value in result.seconds.items()},
        **asdict(sampler.peak),
    }


def bench_dedup_memory(
    sizes: list[int],
    workers: int,
    workdir: str,
    seed: int,
    json_out: str | None = None,
    partition_mb: int = MEMORY_PARTITION_MB,
    near_options: dict[str, Any] | None = None,
    corpus: str = "fixed-rate",
) -> dict[str, Any]:
    """Peak memory of exact + near dedup per corpus size, same workers for every size."""
    logging.getLogger("ray").setLevel(logging.WARNING)
    if not sizes or min(sizes) < 1 or workers < 1 or partition_mb < 1:
        raise ValueError(
            f"need sizes >= 1, workers >= 1 and partition_mb >= 1, "
            f"got {sizes}, {workers}, {partition_mb}"
        )
    root = Path(workdir).resolve()
    # The template corpus keeps its old directory, so that runs before --corpus reuse it.
    prefix = "memory-corpus" if corpus == "templates" else f"memory-corpus-{corpus}"
    # Every recipe is parsed first: a bad near_dedup option fails here, naming the key,
    # before any corpus is generated or Ray starts.
    corpus_dirs = [root / f"{prefix}-{size}" for size in sizes]
    recipes = [
        memory_recipe(
            corpus_dir, root / f"memory-output-{size}", seed, workers, partition_mb, near_options
        )
        for size, corpus_dir in zip(sizes, corpus_dirs, strict=True)
    ]
    runs = []
    # memory_corpus checks ``corpus`` before it writes anything, so a bad name fails here too.
    for size, corpus_dir, recipe in zip(sizes, corpus_dirs, recipes, strict=True):
        generate_seconds, corpus_bytes = memory_corpus(corpus_dir, size, seed, corpus)
        row = {"records": size, "corpus_mb": round(corpus_bytes / 1e6, 1)}
        row["generate_seconds"] = round(generate_seconds, 2)
        row.update(memory_run(recipe, workers))
        runs.append(row)
        print_memory_row(row)
    report: dict[str, Any] = {
        "workers": workers,
        "seed": seed,
        "partition_mb": partition_mb,
        "corpus": corpus,
        "near_options": dict(near_options or {}),
        "runs": runs,
    }
    print_memory_by_task(runs)
    smallest, largest = runs[0], runs[-1]
    if smallest["worker_rss"]:
        report["worker_rss_ratio_largest_over_smallest"] = round(
            largest["worker_rss"] / smallest["worker_rss"], 3
        )
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def print_memory_by_task(runs: list[dict[str, Any]]) -> None:
    """Peak private MiB per kind of task, and how much of it the task added to what its
    worker held when it started; one column per size, largest first."""
    kinds = sorted(
        {kind for run in runs for kind in run["worker_private_by_task"]},
        key=lambda kind: -max(run["worker_private_by_task"].get(kind, 0) for run in runs),
    )
    sizes = " / ".join(f"{run['records']:,}" for run in runs)
    print(f"peak private MiB by task: {sizes}  |  added by the task: {sizes}")
    for kind in kinds:
        peaks = [run["worker_private_by_task"].get(kind, 0) / (1 << 20) for run in runs]
        added = [run["worker_growth_by_task"].get(kind, 0) / (1 << 20) for run in runs]
        print(
            f"  {' / '.join(f'{size:5.0f}' for size in peaks)}  |  "
            f"{' / '.join(f'{size:5.0f}' for size in added)}  {kind[:100]}"
        )


def print_memory_row(row: dict[str, Any]) -> None:
    mib = {
        key: row[key] / (1 << 20)
        for key in asdict(PeakMemory())
        if key.endswith(("rss", "private", "store"))
    }
    print(
        f"{row['records']:>10,} records {row['seconds']:>8.1f} s  "
        f"worker RSS {mib['worker_rss']:>6.0f} MiB (private {mib['worker_private']:.0f}, "
        f"all {mib['worker_total_rss']:.0f})  driver {mib['driver_rss']:.0f} MiB "
        f"(private {mib['driver_private']:.0f})  "
        f"object store {mib['object_store']:.0f} MiB  workers {row['workers_seen']}\n"
        f"{'':>19}largest private: {row['worker_private_task']}"
    )


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["word_ngram=3", "verify=true"]`` -> ``{"word_ngram": 3, "verify": True}`` (YAML
    values); the stage's config model checks names and values."""
    import yaml

    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--near-option {pair!r}: expected KEY=VALUE, e.g. word_ngram=3")
        options[key.strip()] = yaml.safe_load(value)
    return options
