"""The one plan builder: a validated recipe becomes a Ray Data graph, run end to end.

    input files --(read+convert, fused)--> stage chains --materialize--> summaries
        --> shard keys --> groupby(fate/shard) --> one Parquet file per shard

Consecutive stages with the same resource needs run as one chain inside one Ray Data
operator, so records cross the object store once per chain, not once per stage. Only the
stage itself declares what it needs (``Stage.resources``); this module reads it.
"""

from __future__ import annotations

import contextlib
import gc
import json
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from pipeline.accounting import FATES, Summary, check_conservation, summarize_batch
from pipeline.checkpoint import (
    PROCESSED,
    ResumeError,
    RunDirectory,
    commit,
    write_checkpoint_block,
)
from pipeline.config import DataRecipe, StageSpec
from pipeline.distributed import in_one_task, on_driver_node
from pipeline.ingest import CONVERSION_REJECTS, INGEST_REASONS, InputConfig, ingest_file
from pipeline.manifest import build_manifest
from pipeline.memory import releasing
from pipeline.read import InputFile, list_input_files, open_filesystem
from pipeline.registry import is_global, reason_owners, stage_class
from pipeline.schema import FLOW_SCHEMA, empty_flow_table
from pipeline.stage import GlobalContext, Resources, StageCounts
from pipeline.stage_failure import StageFailure, one_line, run_stage
from pipeline.writer import (
    SHARD_KEY,
    WRITE_RESULT_SCHEMA,
    assign_shards,
    routed_shard_keys,
    shard_counts,
    shard_groups,
    shard_path,
    write_missing_shards,
    write_shard,
)


@ray.remote(num_cpus=0)
class Tally:
    """Collects what only workers can see: reader counts per file and per-stage timing.

    File counts are set, not added, so a retried read task cannot count a file twice.
    """

    def __init__(self) -> None:
        self.files: dict[str, int] = {}
        self.stages: dict[int, StageCounts] = {}
        self.created: dict[str, int] = {}

    def file_read(self, uri: str, records: int) -> None:
        self.files[uri] = records

    def rows_created(self, batch_digest: str, rows: int) -> None:
        """Rows one augmentation batch created, keyed by a digest of them: set, not added,
        so a retried batch cannot count twice."""
        self.created[batch_digest] = rows

    def created_total(self) -> int:
        return sum(self.created.values())

    def stage_ran(self, position: int, counts: dict[str, Any]) -> None:
        previous = self.stages.get(position, StageCounts())
        self.stages[position] = previous + StageCounts.from_dict(counts)

    def snapshot(self) -> tuple[dict[str, int], dict[int, dict[str, Any]]]:
        return self.files, {pos: counts.to_dict() for pos, counts in self.stages.items()}

    def state(self) -> dict[str, Any]:
        """Everything counted so far, as JSON-able data a checkpoint keeps."""
        files, stages = self.snapshot()
        return {"files": files, "stages": stages, "created": self.created}

    def restore(self, state: dict[str, Any]) -> None:
        """Counts from a checkpoint: the work before it is not done again, so neither is
        its counting."""
        self.files = dict(state["files"])
        self.stages = {
            int(position): StageCounts.from_dict(counts)
            for position, counts in state["stages"].items()
        }
        self.created = dict(state["created"])


class StageChain:
    """Ray Data callable: a run of stages built once per worker, applied in order per batch."""

    def __init__(self, specs: list[tuple[int, str, dict[str, Any]]], tally: Any) -> None:
        self.tally = tally
        self.stages = []
        for position, name, options in specs:
            cls = stage_class(name)
            try:
                self.stages.append((position, cls(cls.Config.model_validate(options))))
            except Exception as error:  # e.g. a model or list file gone since validation
                raise StageFailure(
                    f"stage {name!r} could not start on worker: {one_line(error)}"
                ) from error

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.apply(batch)

    def apply(self, batch: pa.Table) -> pa.Table:
        for position, stage in self.stages:
            batch, counts = run_stage(stage, batch)
            ray.get(self.tally.stage_ran.remote(position, counts.to_dict()))
        return batch


class ReadAndProcess(StageChain):
    """Ray Data callable over input files: read, convert and run the first CPU chain.

    Reading lives inside the chain's actor rather than in an upstream operator: Ray would
    fuse the two and bundle many one-row file items into a single call to fill the chain's
    batch size, leaving every other actor idle. Here one call is one file, streamed out in
    ``batch_rows`` batches, so files spread across the pool and memory stays bounded.
    """

    def __init__(
        self,
        specs: list[tuple[int, str, dict[str, Any]]],
        tally: Any,
        inputs: list[dict[str, Any]],
        seed: int,
        batch_rows: int,
    ) -> None:
        super().__init__(specs, tally)
        self.inputs = [InputConfig.model_validate(item) for item in inputs]
        self.seed = seed
        self.batch_rows = batch_rows

    def __call__(self, files: pa.Table) -> Any:  # a generator of processed batches
        for uri, size, index in zip(
            files.column("uri").to_pylist(),
            files.column("size").to_pylist(),
            files.column("input_index").to_pylist(),
            strict=True,
        ):
            records = 0
            for table in ingest_file(
                InputFile(uri=uri, size=size),
                self.inputs[index],
                seed=self.seed,
                batch_rows=self.batch_rows,
            ):
                records += table.num_rows
                yield self.apply(table)
            ray.get(self.tally.file_read.remote(uri, records))


@dataclass
class RunResult:
    summary: Summary
    read_per_file: dict[str, int]
    stage_counts: dict[int, dict[str, Any]]
    shards: list[dict[str, Any]]
    shards_per_fate: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    # With --resume: the checkpoint it started from and how many staged shards it reused.
    resumed: dict[str, Any] | None = None
    # Wall seconds of each step of "process" (StepClock): they add up to it.
    steps: list[dict[str, Any]] = field(default_factory=list)


def input_files(recipe: DataRecipe) -> list[dict[str, Any]]:
    """Every input file, listed on the driver (metadata only), in a deterministic order."""
    rows = []
    for index, source in enumerate(recipe.inputs):
        for item in list_input_files(source.path):
            rows.append({"uri": item.uri, "size": item.size, "input_index": index})
    return rows


Segment = tuple[Resources, list[tuple[int, str, dict]]] | tuple[None, int, StageSpec]


def segments(specs: tuple[StageSpec, ...]) -> list[Segment]:
    """Consecutive per-batch stages with equal resource needs become one chain (one Ray Data
    operator each); a global stage stands alone as ``(None, position, spec)``."""
    grouped: list[Segment] = []
    for position, spec in enumerate(specs):
        if not spec.config.enabled:
            continue
        if is_global(spec.name):
            grouped.append((None, position, spec))
            continue
        needs = stage_class(spec.name).resources(spec.config)
        entry = (position, spec.name, spec.config.model_dump(mode="json"))
        if grouped and grouped[-1][0] == needs:
            grouped[-1][1].append(entry)
        else:
            grouped.append((needs, [entry]))
    return grouped


def chains(specs: tuple[StageSpec, ...]) -> list[tuple[Resources, list[tuple[int, str, dict]]]]:
    """The per-batch chains alone (global stages left out)."""
    return [segment for segment in segments(specs) if segment[0] is not None]


def read_stage(
    recipe: DataRecipe, files: list[dict[str, Any]], tally: Any, first_specs: list, workers: int
) -> ray.data.Dataset:
    dataset = ray.data.from_items(files, override_num_blocks=max(1, len(files)))
    return dataset.map_batches(
        ReadAndProcess,
        fn_constructor_kwargs={
            "specs": first_specs,
            "tally": tally,
            "inputs": [item.model_dump(mode="json") for item in recipe.inputs],
            "seed": recipe.seed,
            "batch_rows": recipe.run.batch_rows,
        },
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=min(workers, max(1, len(files)))),
    )


def checkpoint_name(position: int, spec: StageSpec) -> str:
    """The checkpoint of the dataset entering the global stage at ``position``."""
    return f"before-{position:03d}-{spec.name}"


def checkpointed(
    dataset: ray.data.Dataset, name: str, run: RunDirectory, tally: Any, checkpoints: bool
) -> Any:
    """``dataset.materialize()``; when ``checkpoints`` (the recipe's ``run.checkpoints``) is
    on, every block is saved as checkpoint ``name`` instead, and the checkpoint, read back
    and materialized, is what is returned.

    The blocks are written by the one execution of ``dataset``: a checkpoint costs a Parquet
    write and a read of the data, and no extra pass; ``_COMPLETE.json`` follows the write.
    """
    if not checkpoints:
        return dataset.materialize()
    directory = run.start_checkpoint(name)
    rows = dataset.map_batches(
        partial(write_checkpoint_block, directory=directory),
        batch_format="pyarrow",
        batch_size=None,
    ).count()
    run.complete_checkpoint(name, rows, ray.get(tally.state.remote()))
    # What follows reads the checkpoint back rather than keep the blocks that wrote it, so a
    # block lost with a node is read again from storage. Kept, its lineage ran back to the
    # input files through actor pools shut down since, whose actors cannot be restarted once
    # their constructor's arguments are freed (ray-project/ray#53727): the run hung on the
    # first lost block (tests/test_multinode.py). The cost is one Parquet read per checkpoint.
    return checkpoint_dataset(name, run)


def restored(name: str, run: RunDirectory, tally: Any) -> ray.data.Dataset:
    """Checkpoint ``name`` read back, with the Tally's counts as they were when it was made."""
    dataset = checkpoint_dataset(name, run)
    ray.get(tally.restore.remote(run.completed_checkpoint(name)["tally"]))
    return dataset


def checkpoint_dataset(name: str, run: RunDirectory) -> ray.data.Dataset:
    """Completed checkpoint ``name`` as a materialized dataset of its files."""
    record = run.completed_checkpoint(name)
    directory = run.checkpoint_uri(name)
    if record["rows"] == 0:
        dataset = ray.data.from_arrow(empty_flow_table())
    else:
        # One task per file rather than read_parquet: Ray Data lists Parquet files through
        # actors of its own that are not restarted, so a node lost while they ran failed the
        # run, and a task's lost block is simply read again.
        dataset = ray.data.from_arrow_refs(
            [
                read_checkpoint_file.remote(posixpath.join(directory, file))
                for file in record["files"]
            ]
        )
    if dataset.count() != record["rows"]:
        raise StageFailure(
            f"checkpoint {directory} holds {dataset.count()} rows, not the {record['rows']} it "
            "recorded; rerun with --overwrite"
        )
    return dataset


@ray.remote
def read_checkpoint_file(uri: str) -> pa.Table:
    import pyarrow.parquet as pq

    filesystem, path = open_filesystem(uri)
    return pq.read_table(path, filesystem=filesystem, schema=FLOW_SCHEMA)


def resume_point(recipe: DataRecipe, run: RunDirectory, resume: bool) -> str | None:
    """The latest completed checkpoint of this run, when resuming."""
    if not resume:
        return None
    names = [
        checkpoint_name(position, spec)
        for position, spec in enumerate(recipe.stages)
        if spec.config.enabled and is_global(spec.name)
    ] + [PROCESSED]
    completed = [name for name in names if run.completed_checkpoint(name) is not None]
    return completed[-1] if completed else None


class StepClock:
    """Wall seconds of a run's steps. Ray Data streams the stages between two
    materializations (the checkpoints before each global stage) as one execution, so a step
    is what runs between two of them: the read and the first map stages, then each global
    stage with the map stages after it. The steps' seconds add up to the run's "process".
    (A stage's own ``seconds`` in stats.json is the time its workers spent, summed.)"""

    def __init__(self, started: float) -> None:
        self.mark = started
        self.stages: list[str] = []
        self.steps: list[dict[str, Any]] = []

    def add(self, *names: str) -> None:
        self.stages.extend(names)

    def close(self) -> None:
        now = time.perf_counter()
        self.steps.append({"stages": self.stages, "seconds": round(now - self.mark, 3)})
        self.mark, self.stages = now, []


def build_dataset(
    recipe: DataRecipe,
    files: list[dict[str, Any]],
    tally: Any,
    run: RunDirectory,
    start: str | None = None,
    clock: StepClock | None = None,
) -> ray.data.Dataset:
    """The processed dataset, materialized and checkpointed; from checkpoint ``start`` on
    when it is given (the stages before it are not run again). ``clock`` times its steps."""
    clock = clock or StepClock(time.perf_counter())
    if start == PROCESSED:
        clock.add(f"checkpoint {PROCESSED}")
        dataset = restored(PROCESSED, run, tally)
        clock.close()
        return dataset
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = recipe.run.max_workers or max(1, cpus)
    groups = segments(recipe.stages)
    if start is not None:
        # Resume: skip every segment before the global stage whose input was checkpointed.
        first = next(
            index
            for index, (needs, *rest) in enumerate(groups)
            if needs is None and checkpoint_name(*rest) == start
        )
        groups = groups[first:]
        clock.add(f"checkpoint {start}")
        dataset = restored(start, run, tally)
    else:
        # The first chain reads the files itself when it is a plain CPU chain; otherwise the
        # readers run as a CPU chain of no stages in front of it.
        first_specs = groups.pop(0)[1] if groups and groups[0][0] == Resources() else []
        clock.add("read", *(spec[1] for spec in first_specs))
        dataset = read_stage(recipe, files, tally, first_specs, workers)
    file_index = {item["uri"]: index for index, item in enumerate(files)}
    for needs, *rest in groups:
        if needs is None:
            position, spec = rest
            context = GlobalContext(
                seed=recipe.seed,
                workers=workers,
                position=position,
                file_index=file_index,
                tally=tally,
                partition_bytes=recipe.run.shuffle_partition_bytes,
                single_task_bytes=single_task_bytes(recipe),
            )
            # A global stage reads its input several times (keys, then the join back):
            # materialize once so upstream stages never run twice, and keep it as the
            # checkpoint a resumed run starts from.
            name = checkpoint_name(position, spec)
            if name != start:
                dataset = checkpointed(dataset, name, run, tally, recipe.run.checkpoints)
            clock.close()
            clock.add(spec.name)
            dataset = stage_class(spec.name)(spec.config).apply(dataset, context)
            continue
        (specs,) = rest
        clock.add(*(spec[1] for spec in specs))
        dataset = dataset.map_batches(
            StageChain,
            fn_constructor_kwargs={"specs": specs, "tally": tally},
            batch_size=needs.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=needs.concurrency or workers),
            num_cpus=needs.num_cpus,
            num_gpus=needs.num_gpus or None,
        )
    dataset = checkpointed(dataset, PROCESSED, run, tally, recipe.run.checkpoints)
    clock.close()
    return dataset


@contextlib.contextmanager
def bounded_shuffle_inputs(partition_bytes: int) -> Iterator[None]:
    """Shuffle map tasks take at most ``partition_bytes`` of input at a time.

    Ray Data's SHUFFLE_V2 coalesces input blocks up to ``shuffle_input_batch_bytes`` (1 GiB by
    default) before a map task partitions them, so a worker's memory grew with the corpus
    until it reached 1 GiB (twice that with the partitioned copy): 324 MiB of private memory
    at 100k records, 2 GiB at 1M. Capped at the partition size, it stops growing. The
    driver's DataContext travels with each execution; restored afterwards (tests share it).
    """
    context = ray.data.DataContext.get_current()
    previous = context.shuffle_input_batch_bytes
    if previous <= 0 or previous > partition_bytes:
        context.shuffle_input_batch_bytes = partition_bytes
    try:
        yield
    finally:
        context.shuffle_input_batch_bytes = previous


def execute(
    recipe: DataRecipe,
    output_path: str,
    *,
    resume: bool = False,
    documents: Callable[[RunResult], dict[str, bytes]] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run the recipe on the connected Ray cluster and commit its shards under
    ``output_path``, with ``manifest.json`` last and ``documents(result)`` (stats, report)
    before it. With ``resume``, the run in ``output_path`` continues from its latest
    checkpoint and reuses the shards it staged."""
    run = RunDirectory(output_path)
    files = input_files(recipe)
    if resume:
        check_resumable(run, recipe, files)
    else:
        run.write_marker(recipe.fingerprint(), files)
    try:
        with bounded_shuffle_inputs(recipe.run.shuffle_partition_bytes):
            result = _execute(recipe, files, run, resume, progress)
    finally:
        # The run's datasets sit in reference cycles (Ray Data's plans and operators) that
        # hold their blocks until Python's collector runs: 28 objects after a small run, none
        # after this. A driver that goes on after the run (``instructflow run``'s next step,
        # a notebook) would otherwise keep them in the object store. This alone did not stop
        # Ray from rebuilding an earlier run's lost blocks when a node died during a later
        # run in the same driver (through actor pools shut down since: the later run hung),
        # so tests/test_multinode.py runs each run as a driver of its own, as jobs are.
        gc.collect()
    staged = dict(documents(result)) if documents else {}
    manifest = json.dumps(build_manifest(recipe, result), indent=2, ensure_ascii=False)
    staged["manifest.json"] = manifest.encode("utf-8")
    commit(run, result.shards, staged)
    return result


def check_resumable(run: RunDirectory, recipe: DataRecipe, files: list[dict[str, Any]]) -> None:
    """Only the same recipe on the same inputs may continue an interrupted run."""
    marker = run.marker()
    where = run.output_path
    if marker is None:
        raise ResumeError(f"{where}: no interrupted instructflow run to resume here")
    if run.finished():
        raise ResumeError(f"{where}: the run here finished; pass --overwrite to run it again")
    if marker["recipe_sha256"] != recipe.fingerprint():
        raise ResumeError(
            f"{where}: the recipe changed since the interrupted run (sha256 "
            f"{marker['recipe_sha256'][:12]} then, {recipe.fingerprint()[:12]} now); resume "
            "with the same recipe and --set options, or pass --overwrite to start again"
        )
    then = [(item["uri"], item["size"]) for item in marker["inputs"]]
    now = [(item["uri"], item["size"]) for item in files]
    if then != now:
        changed = sorted(set(then) ^ set(now))[0]
        raise ResumeError(
            f"{where}: the inputs changed since the interrupted run (first difference: "
            f"{changed[0]}, {changed[1]} bytes); pass --overwrite to start again"
        )


class ProgressWatch:
    """While a run processes, every ``every`` seconds: what the tally has counted so far
    (records read, and per stage records in and out), handed to ``report`` when it changed.
    A daemon thread; ``stop`` reports once more, the final counts."""

    def __init__(
        self,
        tally: Any,
        recipe: DataRecipe,
        report: Callable[[dict[str, Any]], None],
        total_files: int,
        every: float = 2.0,
    ) -> None:
        import threading

        self.tally, self.recipe, self.report, self.every = tally, recipe, report, every
        self.total_files = total_files
        self.started = time.perf_counter()
        self.last: Any = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="instructflow-progress", daemon=True)
        self.thread.start()

    def counts(self) -> dict[str, Any]:
        files, stages = ray.get(self.tally.snapshot.remote())
        return {
            "files": len(files),
            "total_files": self.total_files,
            "read": sum(files.values()),
            "stages": [
                {
                    "stage": self.recipe.stages[position].name,
                    "in": counts.get("seen", 0),
                    "out": counts.get("kept", 0) + counts.get("created", 0),
                }
                for position, counts in sorted(stages.items())
                if position < len(self.recipe.stages)
            ],
        }

    def tick(self) -> None:
        counts = self.counts()
        if counts != self.last and (counts["files"] or counts["stages"]):
            self.last = counts
            self.report({"seconds": time.perf_counter() - self.started, **counts})

    def loop(self) -> None:
        while not self.done.wait(self.every):
            try:
                self.tick()
            except Exception:  # a progress line is never worth failing a run over
                return

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=self.every + 5)
        try:
            self.tick()
        except Exception:
            pass


def _execute(
    recipe: DataRecipe,
    files: list[dict[str, Any]],
    run: RunDirectory,
    resume: bool,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    tally = Tally.options(scheduling_strategy=on_driver_node()).remote()
    start = resume_point(recipe, run, resume)
    clock = StepClock(started)
    watch = ProgressWatch(tally, recipe, progress, len(files)) if progress is not None else None
    try:
        processed = build_dataset(recipe, files, tally, run, start, clock)
    finally:
        if watch is not None:
            watch.stop()
    seconds["process"] = clock.mark - started

    summary = Summary()
    summaries = processed.map_batches(summarize_batch, batch_format="pyarrow", batch_size=None)
    for row in summaries.iter_rows():
        summary.merge(Summary.from_json(row["summary"]))
    known = {*INGEST_REASONS, *CONVERSION_REJECTS, *reason_owners()}
    unknown = sorted(set(summary.reasons) - known)
    if unknown:
        raise StageFailure(f"drop reasons outside the fixed vocabulary: {', '.join(unknown)}")
    shards_per_fate = shard_counts(
        summary.bytes,
        summary.rows,
        recipe.output.shard_target_bytes,
        summary.split_bytes,
        summary.split_rows,
    )
    seconds["summarize"] = time.perf_counter() - started - seconds["process"]

    staged = run.staged_results() if resume else {}
    if not resume:
        run.clear_staging()
    results = write_all(processed, recipe, run, shards_per_fate, staged)
    seconds["write"] = time.perf_counter() - started - seconds["process"] - seconds["summarize"]

    read_per_file, stage_counts = ray.get(tally.snapshot.remote())
    written = {fate: sum(r["rows"] for r in results if r["fate"] == fate) for fate in FATES}
    created = ray.get(tally.created_total.remote())
    check_conservation(read_per_file, summary, written, created=created)
    resumed = {"from": start, "shards_reused": len(staged)} if resume else None
    return RunResult(
        summary,
        read_per_file,
        stage_counts,
        results,
        shards_per_fate,
        seconds,
        resumed,
        clock.steps,
    )


def write_all(
    processed: ray.data.Dataset,
    recipe: DataRecipe,
    run: RunDirectory,
    shards_per_fate: dict[str, int],
    staged: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Stage every shard not staged yet (``staged``: result rows by path, from an
    interrupted run) and return all the result rows, in a fixed order."""
    expected = {shard_path(group, shards_per_fate) for group in shard_groups(shards_per_fate)}
    if set(staged) - expected:  # staged under another shard plan: not this run's data
        raise StageFailure(
            f"{run.staged_shards} holds shards this run would not write "
            f"({sorted(set(staged) - expected)[0]}); rerun with --overwrite"
        )
    results = list(staged.values())
    pending = {
        group
        for group in shard_groups(shards_per_fate)
        if shard_path(group, shards_per_fate) not in staged
    }
    if pending and processed.count():
        results += stage_shards(processed, recipe, run, shards_per_fate, pending)
    results += write_missing_shards(
        results,
        shards_per_fate,
        run,
        recipe.output.compression,
        recipe.output.row_group_rows,
    )
    return sorted(results, key=lambda r: (r["fate"], r["path"]))


def single_task_bytes(recipe: DataRecipe) -> int:
    """``run.single_task_bytes``, unset meaning ``run.shuffle_partition_bytes``."""
    run = recipe.run
    return run.shuffle_partition_bytes if run.single_task_bytes is None else run.single_task_bytes


def shards_in_one_task(
    table: pa.Table, *, assign: Callable[[pa.Table], pa.Table], write: Callable[..., pa.Table]
) -> pa.Table:
    """``stage_shards``' groupby in one task: the rows keyed by shard, each shard's rows
    (in any order: ``write_shard`` sorts them) written as one file."""
    keyed = assign(table)
    if keyed.num_rows == 0:
        return WRITE_RESULT_SCHEMA.empty_table()
    keyed = keyed.sort_by(SHARD_KEY)
    keys = keyed.column(SHARD_KEY).combine_chunks()
    starts = np.flatnonzero(
        np.r_[True, pc.not_equal(keys[1:], keys[:-1]).to_numpy(zero_copy_only=False)]
    )
    stops = np.r_[starts[1:], keyed.num_rows]
    return pa.concat_tables(
        [write(keyed.slice(start, stop - start)) for start, stop in zip(starts, stops, strict=True)]
    )


def stage_shards(
    processed: ray.data.Dataset,
    recipe: DataRecipe,
    run: RunDirectory,
    shards_per_fate: dict[str, int],
    pending: set[str],
) -> list[dict[str, Any]]:
    """One groupby over the rows of the ``pending`` shard groups, one file per shard; or,
    for a dataset of at most ``run.single_task_bytes``, every shard by one task (the same
    ``write_shard`` per shard group, so the same bytes, without the groupby's shuffle)."""
    total_shards = sum(shards_per_fate.values())
    # One partition per shard, each shard's key routed to its own (see pipeline.writer).
    routed = routed_shard_keys(shards_per_fate)
    write = partial(
        write_shard,
        run=run,
        shards_per_fate=shards_per_fate,
        compression=recipe.output.compression,
        row_group_rows=recipe.output.row_group_rows,
    )
    if (processed.size_bytes() or 0) <= single_task_bytes(recipe):
        found = in_one_task(
            processed,
            shards_in_one_task,
            assign=partial(
                assign_shards, shards_per_fate=shards_per_fate, routed=routed, keep=pending
            ),
            write=write,
        )
        return ray.get(found).to_pylist()
    keyed = processed.map_batches(
        partial(assign_shards, shards_per_fate=shards_per_fate, routed=routed, keep=pending),
        batch_format="pyarrow",
    )
    written = keyed.groupby(SHARD_KEY, num_partitions=max(1, total_shards)).map_groups(
        releasing(write), batch_format="pyarrow"
    )
    # One small row per shard: bounded by the shard count, not the corpus.
    return [row for row in written.iter_rows()]


__all__ = ["RunResult", "StageFailure", "WRITE_RESULT_SCHEMA", "execute"]
