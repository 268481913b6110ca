"""The one plan builder: a validated recipe becomes a Ray Data graph, run end to end.

    input files --(read+convert, fused)--> stage chains --materialize--> summaries
        --> shard keys --> groupby(fate/shard) --> one Parquet file per shard

Consecutive stages with the same resource needs run as one chain inside one Ray Data
operator, so records cross the object store once per chain, not once per stage. Only the
stage itself declares what it needs (``Stage.resources``); this module reads it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa
import ray
from pydantic import ValidationError

from pipeline.accounting import FATES, Summary, check_conservation, summarize_batch
from pipeline.config import DataRecipe, StageSpec
from pipeline.ingest import INGEST_REASONS, InputConfig, ingest_file
from pipeline.memory import releasing
from pipeline.read import InputFile, list_input_files
from pipeline.registry import is_global, reason_owners, stage_class
from pipeline.stage import GlobalContext, Resources, Stage, StageCounts
from pipeline.writer import (
    SHARD_KEY,
    WRITE_RESULT_SCHEMA,
    assign_shards,
    routed_shard_keys,
    shard_counts,
    write_missing_shards,
    write_shard,
)


class StageFailure(RuntimeError):
    """A stage raised on a batch: names the stage and the files the batch came from."""


def one_line(error: BaseException) -> str:
    """An exception as one line: Ray passes worker errors on as text, line by line."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)
        )
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


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


def run_stage(stage: Stage, batch: pa.Table) -> tuple[pa.Table, StageCounts]:
    """``stage.run(batch)``; a failure becomes a StageFailure naming the stage and the
    batch's first files, so the driver reports it in one line instead of a worker trace."""
    try:
        return stage.run(batch)
    except Exception as error:
        files = sorted(set(batch.column("source_file").to_pylist()))[:3]
        raise StageFailure(
            f"stage {stage.name!r} failed on a batch from {', '.join(files)}: {one_line(error)}"
        ) from error


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


def build_dataset(recipe: DataRecipe, files: list[dict[str, Any]], tally: Any) -> ray.data.Dataset:
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = recipe.run.max_workers or max(1, cpus)
    groups = segments(recipe.stages)
    # The first chain reads the files itself when it is a plain CPU chain; otherwise the
    # readers run as a CPU chain of no stages in front of it.
    first_specs = groups.pop(0)[1] if groups and groups[0][0] == Resources() else []
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
            )
            # A global stage reads its input several times (keys, then the join back):
            # materialize once so upstream stages never run twice.
            dataset = stage_class(spec.name)(spec.config).apply(dataset.materialize(), context)
            continue
        (specs,) = rest
        dataset = dataset.map_batches(
            StageChain,
            fn_constructor_kwargs={"specs": specs, "tally": tally},
            batch_size=needs.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=needs.concurrency or workers),
            num_cpus=needs.num_cpus,
            num_gpus=needs.num_gpus or None,
        )
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


def execute(recipe: DataRecipe, output_path: str) -> RunResult:
    """Run the recipe on the connected Ray cluster and write shards under ``output_path``."""
    with bounded_shuffle_inputs(recipe.run.shuffle_partition_bytes):
        return _execute(recipe, output_path)


def _execute(recipe: DataRecipe, output_path: str) -> RunResult:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    files = input_files(recipe)
    tally = Tally.remote()
    processed = build_dataset(recipe, files, tally).materialize()
    seconds["process"] = time.perf_counter() - started

    summary = Summary()
    summaries = processed.map_batches(summarize_batch, batch_format="pyarrow", batch_size=None)
    for row in summaries.iter_rows():
        summary.merge(Summary.from_json(row["summary"]))
    unknown = sorted(set(summary.reasons) - set(INGEST_REASONS) - set(reason_owners()))
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

    results = write_all(processed, recipe, output_path, shards_per_fate)
    seconds["write"] = time.perf_counter() - started - seconds["process"] - seconds["summarize"]

    read_per_file, stage_counts = ray.get(tally.snapshot.remote())
    written = {fate: sum(r["rows"] for r in results if r["fate"] == fate) for fate in FATES}
    created = ray.get(tally.created_total.remote())
    check_conservation(read_per_file, summary, written, created=created)
    return RunResult(summary, read_per_file, stage_counts, results, shards_per_fate, seconds)


def write_all(
    processed: ray.data.Dataset,
    recipe: DataRecipe,
    output_path: str,
    shards_per_fate: dict[str, int],
) -> list[dict[str, Any]]:
    total_shards = sum(shards_per_fate.values())
    if processed.count() == 0:
        return write_missing_shards(
            [],
            shards_per_fate,
            output_path,
            recipe.output.compression,
            recipe.output.row_group_rows,
        )
    # One partition per shard, each shard's key routed to its own (see pipeline.writer).
    routed = routed_shard_keys(shards_per_fate)
    keyed = processed.map_batches(
        partial(assign_shards, shards_per_fate=shards_per_fate, routed=routed),
        batch_format="pyarrow",
    )
    written = keyed.groupby(SHARD_KEY, num_partitions=max(1, total_shards)).map_groups(
        releasing(
            partial(
                write_shard,
                output_path=output_path,
                shards_per_fate=shards_per_fate,
                compression=recipe.output.compression,
                row_group_rows=recipe.output.row_group_rows,
            )
        ),
        batch_format="pyarrow",
    )
    # One small row per shard: bounded by the shard count, not the corpus.
    results = [row for row in written.iter_rows()]
    results += write_missing_shards(
        results,
        shards_per_fate,
        output_path,
        recipe.output.compression,
        recipe.output.row_group_rows,
    )
    return sorted(results, key=lambda r: (r["fate"], r["path"]))


__all__ = ["RunResult", "StageFailure", "WRITE_RESULT_SCHEMA", "execute"]
