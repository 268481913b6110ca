"""What every training method shares to launch a run on Ray Train, after its own recipe
checks: the output directory (an earlier run, ``--resume``, ``--overwrite``), the pipeline's
split directories, Ray Data tokenisation into rows with their counts, the step plan, the
TorchTrainer fit and the summary it leaves.

A method module (``train.sft_launch``) checks its recipe, model and tokenizer and calls these;
``ops.trainrun`` loads the YAML, connects to Ray and calls the method. Nothing here imports
``ops``.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray

from pipeline.checkpoint import unfinished_run_problem
from pipeline.config import Problem
from pipeline.discover import storage_problem, uri_of
from pipeline.read import open_filesystem
from pipeline.stage_failure import find_cause
from train.config import SFTRecipe
from train.sft import NonFiniteLoss, TrainPlan
from train.sft_rows import COUNT_COLUMNS, RECORD_COLUMNS

RAY_TRAIN_DIR = "ray_train"
SUMMARY = "train_summary.json"
DATA_STATS = "data_stats.json"
TRAIN_ARTEFACTS = (RAY_TRAIN_DIR, "logs", SUMMARY, DATA_STATS, "recipe.yaml")


class TrainError(RuntimeError):
    """Training failed; the message says why in one line, not as a worker traceback."""


def absolute(path: str) -> str:
    return path if "://" in path or path.startswith("/") else str(Path(path).resolve())


def split_dir(recipe: SFTRecipe, split: str | None, key: str, problems: list[Problem]) -> str:
    """data/<split>/ of the pipeline run (data/ itself when the split is null)."""
    path = posixpath.join(recipe.data.path, "data", *([split] if split else []))
    try:
        unfinished = unfinished_run_problem(recipe.data.path)
    except (OSError, ValueError) as error:
        message = storage_problem(error) if isinstance(error, OSError) else first_line(error)
        unfinished = f"unreadable: {message}"
    if unfinished:  # once, not once per split
        if not any(problem.path == "data.path" for problem in problems):
            problems.append(Problem(path="data.path", message=unfinished, value=recipe.data.path))
        return path
    try:
        filesystem, local = open_filesystem(path)
        info = filesystem.get_file_info(local)
        files = (
            [
                entry
                for entry in filesystem.get_file_info(pafs.FileSelector(local, recursive=False))
                if entry.path.endswith(".parquet")
            ]
            if info.type == pafs.FileType.Directory
            else []
        )
    except (OSError, ValueError) as error:
        message = storage_problem(error) if isinstance(error, OSError) else first_line(error)
        problems.append(Problem(path=key, message=f"unreadable: {message}", value=path))
        return path
    if not files:
        hint = (
            "; add a `split` stage to the data recipe, or set data.train_split: null to use data/"
            if split
            else ""
        )
        problems.append(
            Problem(path=key, message=f"no Parquet shards in {path}{hint}", value=split)
        )
    return path


def check_output(path: str, *, resume: bool, overwrite: bool) -> list[Problem]:
    try:
        filesystem, root = open_filesystem(path)
        problems = previous_run_problems(filesystem, root, path, resume=resume, overwrite=overwrite)
        if not problems and "://" in path:
            # An object store is written to before Ray starts: a missing bucket, wrong keys
            # or an endpoint that does not answer show here, not after the data is tokenised.
            probe = posixpath.join(root, f".write-probe-{uuid.uuid4().hex}")
            filesystem.create_dir(root, recursive=True)
            with filesystem.open_output_stream(probe) as stream:
                stream.write(b"ok")
            filesystem.delete_file(probe)
    except OSError as error:
        return [
            Problem(
                path="output.path", message=f"not writable: {storage_problem(error)}", value=path
            )
        ]
    except ValueError as error:
        return [Problem(path="output.path", message=str(error), value=path)]
    return problems


def previous_run_problems(
    filesystem: pafs.FileSystem, root: str, path: str, *, resume: bool, overwrite: bool
) -> list[Problem]:
    """An earlier run in the output directory, refused unless resumed or overwritten."""
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.File:
        return [Problem(path="output.path", message="is a file; expected a directory", value=path)]
    previous = info.type == pafs.FileType.Directory and any(
        filesystem.get_file_info(posixpath.join(root, name)).type != pafs.FileType.NotFound
        for name in TRAIN_ARTEFACTS
    )
    if resume and not previous:
        return [Problem(path="output.path", message="--resume: no earlier run here", value=path)]
    if previous and not (resume or overwrite):
        return [
            Problem(
                path="output.path",
                message="holds an earlier training run; pass --resume to continue it from its "
                "latest checkpoint or --overwrite to start again",
                value=path,
            )
        ]
    return []


def clear_named_artefacts(path: str, artefacts: tuple[str, ...]) -> None:
    """Delete the named entries of ``path`` (a training run's fixed set of outputs)."""
    filesystem, root = open_filesystem(path)
    for name in artefacts:
        target = posixpath.join(root, name)
        info = filesystem.get_file_info(target)
        if info.type == pafs.FileType.Directory:
            filesystem.delete_dir(target)
        elif info.type == pafs.FileType.File:
            filesystem.delete_file(target)


def worker_cause(error: BaseException) -> str:
    """The worker's own exception out of Ray Train's error: ``rank N: Type: first line``.
    Ray Train's WorkerGroupError keeps each failed rank's exception in ``worker_failures``;
    its text varies (a snippet per rank, health-check wording for a dead process), so it is
    read only when that map is missing. A rank's collective error (gloo/NCCL: its peer went
    away) is the consequence of another rank's failure, so the cause is looked for first
    among the others."""
    failures = getattr(error, "worker_failures", None) or {}
    if failures:

        def follow_on(item: tuple[int, BaseException]) -> tuple[bool, int]:
            text = str(item[1])
            return (bool(re.search(r"gloo|NCCL|Connection (closed|reset)", text)), item[0])

        rank, failure = min(failures.items(), key=follow_on)
        lines = [line.strip() for line in str(failure).splitlines() if line.strip()]
        # A user exception's text ends with its own "Type: message" line (the traceback
        # tail); otherwise the first line is the message.
        own = [line for line in lines if re.match(r"\w+(?:\.\w+)*(?:Error|Exception|Exit)\b", line)]
        detail = own[-1] if own else f"{type(failure).__name__}: {lines[0] if lines else ''}"
        return f"rank {rank}: {detail}"[:500]
    text = str(error)
    found = re.search(r"^\s*(\w+(?:\.\w+)*(?:Error|Exception|Exit)\b.*)$", text, flags=re.M)
    if found:
        return found.group(1).strip()[:500]
    return first_line(error)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def tokenized(
    directories: dict[str, str],
    rows: type,
    options: dict[str, Any],
    columns: list[str] | None = None,
    num_gpus: float = 0,
) -> tuple[Any, Any, dict[str, Any]]:
    """(train rows, validation rows or None, data stats): the splits in ``directories``
    (``train`` and maybe ``validation``) tokenised (and packed) by Ray Data tasks of the
    method's ``rows`` callable (built with ``options``, once per worker: ``rows_of_block``)
    in one pass, materialised once so
    every worker and every epoch reads the same rows without tokenising again. Each row keeps
    the path of its shard; one small task per block then files its rows under their split
    and sums their counts, so the statistics cost no second pass over the data. ``columns``:
    the record columns the method reads (default: SFT's)."""
    import ray.data

    records = ray.data.read_parquet(
        list(directories.values()), file_extensions=["parquet"], include_paths=True
    ).select_columns([*(columns or RECORD_COLUMNS), "path"])
    tokenised = records.map_batches(
        partial(rows_of_block, rows=rows, options=options),
        batch_size=None,  # one block at a time: blocks follow the files, so packing is stable
        batch_format="pyarrow",
        num_gpus=num_gpus,
    ).materialize()
    prefixes = [directory.split("://")[-1].rstrip("/") + "/" for directory in directories.values()]
    filed = [
        file_block.options(num_returns=len(prefixes) + 1).remote(bundle_block, prefixes)
        for bundle in tokenised.iter_internal_ref_bundles()
        for bundle_block in bundle.block_refs
    ]
    stats = {name: {"rows": 0, **dict.fromkeys(COUNT_COLUMNS, 0)} for name in directories}
    for outputs in filed:
        for name, counts in zip(directories, ray.get(outputs[-1]), strict=True):
            for key, value in counts.items():
                stats[name][key] += value
    for name, directory in directories.items():
        filesystem, local = open_filesystem(directory)
        records_in = ds_count(local, filesystem)
        stats[name] = {
            "records_in": records_in,
            **stats[name],
            "records_without_supervised_tokens": records_in - stats[name]["records"],
        }
    splits = [
        ray.data.from_arrow_refs([outputs[index] for outputs in filed])
        for index in range(len(prefixes))
    ]
    return splits[0], (splits[1] if len(splits) > 1 else None), stats


def rows_of_block(block: Any, *, rows: type, options: dict[str, Any]) -> Any:
    """``rows(**options)`` over one block, as a Ray task. The callable (a tokenizer, nothing
    heavier) is built once per worker process and kept for the next block and the next run
    with the same options: a task reuses a warm worker, where a fresh actor pool costs each
    run a new process that imports transformers (~3 s each)."""
    key = (rows, repr(sorted(options.items())))
    made = _ROWS_CACHE.get(key)
    if made is None:
        _ROWS_CACHE.clear()  # one run's callable at a time: the last one's tokenizer goes
        made = _ROWS_CACHE[key] = rows(**options)
    return made(block)


_ROWS_CACHE: dict[tuple[type, str], Any] = {}


def actor_pool_size(num_gpus: float) -> int:
    """One actor per CPU, or per GPU when each takes one."""
    if num_gpus:
        return max(1, int(ray.cluster_resources().get("GPU", 1) // num_gpus))
    return max(1, int(ray_cpus()))


def ray_cpus() -> float:
    return ray.cluster_resources().get("CPU", 1)


@ray.remote
def file_block(block: Any, prefixes: list[str]) -> tuple:
    """One block's rows under each split (by the shard path each row carries), and the
    split's row count and summed counts."""
    import pyarrow.compute as pc

    outputs, counts = [], []
    paths = block.column("path")
    for prefix in prefixes:
        mine = block.filter(pc.starts_with(paths, prefix)).drop_columns(["path"])
        outputs.append(mine)
        counts.append(
            {"rows": mine.num_rows}
            | {name: int(pc.sum(mine.column(name)).as_py() or 0) for name in COUNT_COLUMNS}
        )
    return (*outputs, counts)


def ds_count(local: str, filesystem: Any) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(local, filesystem=filesystem, format="parquet").count_rows()


def plan_steps(
    recipe: SFTRecipe, rows: int, global_batch: int | None = None
) -> tuple[int, int, int]:
    training = recipe.training
    made_of = "training.micro_batch_size x training.gradient_accumulation x scaling.num_workers"
    if global_batch is None:
        global_batch = (
            training.micro_batch_size * training.gradient_accumulation * recipe.scaling.num_workers
        )
    else:
        made_of = "rollout.prompts_per_step"
    steps_per_epoch = rows // global_batch
    if steps_per_epoch == 0:
        raise TrainError(
            f"the training split makes {rows} rows, fewer than one global batch of {global_batch} "
            f"({made_of}): lower them or add data"
        )
    total = training.max_steps or training.epochs * steps_per_epoch
    return global_batch, steps_per_epoch, total


def sample_prompts(directory: str | None, count: int) -> list[list[dict[str, str]]]:
    """The conversations before the first reply of the first ``count`` validation records."""
    if not directory or count == 0:
        return []
    import pyarrow.dataset as ds

    from train.sft_data import opening_turns

    filesystem, local = open_filesystem(directory)
    head = ds.dataset(local, filesystem=filesystem, format="parquet").head(
        count, columns=["system", "messages", "context"]
    )
    return [turns for turns in map(opening_turns, head.to_pylist()) if turns]


def check_cluster(recipe: SFTRecipe) -> None:
    if (
        recipe.scaling.use_gpu
        and ray.cluster_resources().get("GPU", 0) < recipe.scaling.num_workers
    ):
        raise TrainError(
            f"scaling.use_gpu with {recipe.scaling.num_workers} workers needs that many GPUs; "
            f"the cluster has {ray.cluster_resources().get('GPU', 0):g}"
        )


def fit(
    loop: Callable[[dict[str, Any]], None],
    recipe: SFTRecipe,
    plan: TrainPlan,
    train_rows: Any,
    validation_rows: Any,
    stop_errors: tuple[type[BaseException], ...] = (NonFiniteLoss,),
) -> Any:
    """``loop`` (the method's per-worker training loop) on a TorchTrainer; a failure becomes
    a TrainError naming the worker's own exception, with just its message for the
    ``stop_errors`` (a worker's deliberate stop: a NaN, a broken reward)."""
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    datasets = {"train": train_rows}
    if validation_rows is not None:
        datasets["validation"] = validation_rows
    trainer = TorchTrainer(
        loop,
        train_loop_config={"recipe": recipe.to_plain(), "plan": asdict(plan)},
        torch_config=TorchConfig(backend="nccl" if recipe.scaling.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=recipe.scaling.num_workers,
            use_gpu=recipe.scaling.use_gpu,
            resources_per_worker={"CPU": recipe.scaling.cpus_per_worker}
            | ({"GPU": 1} if recipe.scaling.use_gpu else {}),
        ),
        run_config=RunConfig(
            name=RAY_TRAIN_DIR,
            storage_path=recipe.output.path,
            # The best by validation loss, and Ray Train always keeps the latest too.
            checkpoint_config=CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute="score", checkpoint_score_order="min"
            ),
            failure_config=FailureConfig(max_failures=recipe.scaling.max_failures),
        ),
        datasets=datasets,
        # Every worker reads all rows in the same order and takes its slice of each global
        # batch (train.sft.global_batches): deterministic, and resumable at the exact row.
        dataset_config=DataConfig(
            datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True)
        ),
    )
    try:
        return trainer.fit()
    except Exception as error:
        for kind in stop_errors:
            cause = find_cause(error, kind)
            if cause is not None:
                raise TrainError(str(cause)) from None
        raise TrainError(f"training failed: {worker_cause(error)}") from error


def summarize(recipe: SFTRecipe, plan: TrainPlan, result: Any, stats: dict, seconds: float) -> dict:
    def described(checkpoint: Any, metrics: dict) -> dict:
        return {
            "path": uri_of(recipe.output.path, checkpoint.path),
            **{k: v for k, v in metrics.items() if isinstance(v, int | float)},
        }

    best = (
        min(result.best_checkpoints, key=lambda pair: pair[1]["score"])
        if result.best_checkpoints
        else None
    )
    last_metrics = next(
        (
            m
            for c, m in result.best_checkpoints
            if result.checkpoint and c.path == result.checkpoint.path
        ),
        result.metrics or {},
    )
    return {
        "recipe": recipe.name,
        "steps": plan.total_steps,
        "global_batch": plan.global_batch,
        "seconds": round(seconds, 1),
        "best": described(*best) if best else None,
        "last": described(result.checkpoint, last_metrics) if result.checkpoint else None,
        "data": stats,
        "logs": plan.log_dir,
    }


def recipe_yaml(recipe: SFTRecipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.to_plain(), sort_keys=False, allow_unicode=True)


def write_text(directory: str, name: str, text: str) -> None:
    filesystem, root = open_filesystem(directory)
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(posixpath.join(root, name)) as stream:
        stream.write(text.encode("utf-8"))
