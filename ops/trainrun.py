"""``instructflow train sft``: recipe -> pre-flight -> tokenise and pack in Ray Data ->
TorchTrainer -> best and last checkpoints.

Everything that can be wrong with the recipe, the data, the model or the tokenizer is found
before Ray starts (``prepare``): paths, the model's config, the tokenizer's chat template,
and a sample of records tokenised on the driver so an empty loss mask is an error in
milliseconds. After tokenisation the whole training set's counts are checked again with
Ray Data aggregates.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray

from ops.recipe import apply_overrides, clear_named_artefacts, load_yaml
from pipeline.checkpoint import unfinished_run_problem
from pipeline.config import Problem, RecipeError
from pipeline.read import open_filesystem
from train.config import SFTRecipe, parse_sft_recipe
from train.sft import NonFiniteLoss, TrainPlan, train_loop
from train.sft_rows import COUNT_COLUMNS

SAMPLE_RECORDS = 64
RAY_TRAIN_DIR = "ray_train"
SUMMARY = "train_summary.json"
DATA_STATS = "data_stats.json"
TRAIN_ARTEFACTS = (RAY_TRAIN_DIR, "logs", SUMMARY, DATA_STATS, "recipe.yaml")


class TrainError(RuntimeError):
    """Training failed; the message says why in one line, not as a worker traceback."""


@dataclass
class Prepared:
    recipe: SFTRecipe
    kind: str
    packing: bool
    pad_id: int
    model_path: str
    tokenizer_path: str
    train_dir: str
    validation_dir: str | None
    log_dir: str


def load_sft_recipe(path: str, overrides: list[str] | None = None) -> SFTRecipe:
    recipe = parse_sft_recipe(apply_overrides(load_yaml(path), overrides or [], path), path)
    return resolve_paths(recipe)


def absolute(path: str) -> str:
    return path if "://" in path or path.startswith("/") else str(Path(path).resolve())


def resolve_paths(recipe: SFTRecipe) -> SFTRecipe:
    """Relative paths become absolute (Ray workers run elsewhere); a model given as a hub id
    stays one unless a directory of that name exists here."""

    def local_or_id(name: str | None) -> str | None:
        if name is None:
            return None
        return str(Path(name).resolve()) if Path(name).is_dir() else name

    return recipe.model_copy(
        update={
            "data": recipe.data.model_copy(update={"path": absolute(recipe.data.path)}),
            "output": recipe.output.model_copy(update={"path": absolute(recipe.output.path)}),
            "model": recipe.model.model_copy(
                update={
                    "name_or_path": local_or_id(recipe.model.name_or_path),
                    "tokenizer": local_or_id(recipe.model.tokenizer),
                }
            ),
        }
    )


def prepare(recipe: SFTRecipe, source: str, *, resume: bool, overwrite: bool) -> Prepared:
    """Every check that needs no Ray; raises RecipeError listing the problems."""
    problems: list[Problem] = []
    train_dir = split_dir(recipe, recipe.data.train_split, "data.train_split", problems)
    validation_dir = (
        split_dir(recipe, recipe.data.validation_split, "data.validation_split", problems)
        if recipe.data.validation_split
        else None
    )
    kind, config_problem = model_kind(recipe)
    if config_problem:
        problems.append(config_problem)
    tokenizer_path = recipe.model.tokenizer or recipe.model.name_or_path
    tokenizer = None
    try:
        from train.sft_rows import load_tokenizer

        tokenizer = load_tokenizer(tokenizer_path, recipe.model.trust_remote_code)
    except (OSError, ValueError) as error:
        problems.append(
            Problem(
                path="model.tokenizer",
                message=f"cannot load: {first_line(error)}",
                value=tokenizer_path,
            )
        )
    if tokenizer is not None and recipe.prompt.format == "chat" and not tokenizer.chat_template:
        problems.append(
            Problem(
                path="prompt.format",
                message="the tokenizer has no chat template; use instruction_output or alpaca",
                value="chat",
            )
        )
    packing = recipe.prompt.packing if recipe.prompt.packing is not None else kind == "causal"
    if packing and kind == "seq2seq":
        problems.append(
            Problem(
                path="prompt.packing", message="packing applies to causal models only", value=True
            )
        )
    if recipe.training.lora is not None:
        try:
            import peft  # noqa: F401
        except ImportError:
            problems.append(
                Problem(
                    path="training.lora", message="needs peft: pip install 'instructflow[lora]'"
                )
            )
    problems.extend(check_output(recipe.output.path, resume=resume, overwrite=overwrite))
    if problems:
        raise RecipeError(problems, source)
    check_sample(recipe, tokenizer, kind, train_dir, source)
    output = recipe.output.path
    log_dir = (
        posixpath.join(output, "logs")
        if "://" not in output
        else str(Path.home() / ".instructflow" / "logs" / recipe.name)
    )
    return Prepared(
        recipe,
        kind,
        packing,
        tokenizer.pad_token_id,
        recipe.model.name_or_path,
        tokenizer_path,
        train_dir,
        validation_dir,
        log_dir,
    )


def split_dir(recipe: SFTRecipe, split: str | None, key: str, problems: list[Problem]) -> str:
    """data/<split>/ of the pipeline run (data/ itself when the split is null)."""
    path = posixpath.join(recipe.data.path, "data", *([split] if split else []))
    unfinished = unfinished_run_problem(recipe.data.path)
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
        problems.append(Problem(path=key, message=f"unreadable: {first_line(error)}", value=path))
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


def model_kind(recipe: SFTRecipe) -> tuple[str, Problem | None]:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            recipe.model.name_or_path, trust_remote_code=recipe.model.trust_remote_code
        )
    except (OSError, ValueError) as error:
        return "causal", Problem(
            path="model.name_or_path",
            message=f"no model config here or in the local cache: {first_line(error)}",
            value=recipe.model.name_or_path,
        )
    if recipe.model.kind != "auto":
        return recipe.model.kind, None
    return ("seq2seq" if config.is_encoder_decoder else "causal"), None


def check_output(path: str, *, resume: bool, overwrite: bool) -> list[Problem]:
    filesystem, root = open_filesystem(path)
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


def check_sample(recipe: SFTRecipe, tokenizer: Any, kind: str, train_dir: str, source: str) -> None:
    """Tokenise the first records on the driver: a template that breaks or a mask that is
    empty shows here, before Ray, with the record's id."""
    import pyarrow.dataset as ds

    from train.sft_data import seq2seq_examples, tokenize_record

    filesystem, local = open_filesystem(train_dir)
    dataset = ds.dataset(local, filesystem=filesystem, format="parquet")
    head = dataset.head(SAMPLE_RECORDS, columns=["id", "system", "messages", "context"]).to_pylist()
    supervised = 0
    for record in head:
        try:
            if kind == "seq2seq":
                examples = seq2seq_examples(
                    record, tokenizer, recipe.prompt.format, recipe.prompt.max_length
                )
            else:
                examples = [
                    tokenize_record(
                        record, tokenizer, recipe.prompt.format, recipe.prompt.max_length
                    )
                ]
        except ValueError as error:
            raise RecipeError(
                [
                    Problem(
                        path="prompt.format",
                        message=f"record {record['id']}: {error}",
                        value=recipe.prompt.format,
                    )
                ],
                source,
            ) from None
        supervised += sum(example.supervised for example in examples)
    if head and supervised == 0:
        raise RecipeError(
            [
                Problem(
                    path="prompt.max_length",
                    message=f"the first {len(head)} training records have no supervised token "
                    "(every label is -100): they have no assistant reply, or max_length cuts "
                    "before it",
                    value=recipe.prompt.max_length,
                )
            ],
            source,
        )


def worker_cause(error: BaseException) -> str:
    """The worker's own exception line out of Ray Train's error report (which starts with
    "Training failed due to worker errors:" and then quotes each rank's traceback tail)."""
    import re

    text = str(error)
    found = re.search(r"^\s*(\w+(?:\.\w+)*(?:Error|Exception|Exit)\b.*)$", text, flags=re.M)
    if found:
        return found.group(1).strip()[:500]
    return first_line(error)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def tokenized(prepared: Prepared) -> tuple[Any, Any, dict[str, Any]]:
    """(train rows, validation rows or None, data stats): both splits tokenised (and packed)
    by Ray Data actors in one pass, materialised once so every worker and every epoch reads
    the same rows without tokenising again. Each row keeps the path of its shard; one small
    task per block then files its rows under their split and sums their counts, so the
    statistics cost no second pass over the data."""
    import ray.data

    from train.sft_rows import RECORD_COLUMNS, TokenizeRows

    recipe = prepared.recipe
    directories = {"train": prepared.train_dir}
    if prepared.validation_dir:
        directories["validation"] = prepared.validation_dir
    records = ray.data.read_parquet(
        list(directories.values()), file_extensions=["parquet"], include_paths=True
    ).select_columns([*RECORD_COLUMNS, "path"])
    rows = records.map_batches(
        TokenizeRows,
        fn_constructor_kwargs={
            "tokenizer_path": prepared.tokenizer_path,
            "prompt_format": recipe.prompt.format,
            "max_length": recipe.prompt.max_length,
            "kind": prepared.kind,
            "packing": prepared.packing,
            "trust_remote_code": recipe.model.trust_remote_code,
        },
        batch_size=None,  # one block at a time: blocks follow the files, so packing is stable
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(ray_cpus()))),
    ).materialize()
    prefixes = [directory.split("://")[-1].rstrip("/") + "/" for directory in directories.values()]
    filed = [
        file_block.options(num_returns=len(prefixes) + 1).remote(bundle_block, prefixes)
        for bundle in rows.iter_internal_ref_bundles()
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


def plan_steps(recipe: SFTRecipe, rows: int) -> tuple[int, int, int]:
    training = recipe.training
    global_batch = (
        training.micro_batch_size * training.gradient_accumulation * recipe.scaling.num_workers
    )
    steps_per_epoch = rows // global_batch
    if steps_per_epoch == 0:
        raise TrainError(
            f"the training split makes {rows} rows, fewer than one global batch of {global_batch} "
            "(training.micro_batch_size x training.gradient_accumulation x scaling.num_workers): "
            "lower them or add data"
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


def run_sft(
    recipe_path: str,
    overrides: list[str] | None = None,
    *,
    address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    fault: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The whole ``train sft`` command; returns the summary it writes."""
    from ops.cluster import connect

    recipe = load_sft_recipe(recipe_path, overrides)
    prepared = prepare(recipe, recipe_path, resume=resume, overwrite=overwrite)
    if overwrite and not resume:
        clear_named_artefacts(recipe.output.path, TRAIN_ARTEFACTS)
    write_text(recipe.output.path, "recipe.yaml", recipe_yaml(recipe))
    connect(address, progress_bars=False)
    check_cluster(recipe)
    started = time.perf_counter()
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True
    train_rows, validation_rows, stats = tokenized(prepared)
    if stats["train"]["supervised"] == 0:
        raise TrainError(
            f"{prepared.train_dir}: no response token is supervised in any record (every label "
            "is -100); check the records' assistant replies and prompt.max_length"
        )
    write_text(recipe.output.path, DATA_STATS, json.dumps(stats, indent=2) + "\n")
    global_batch, steps_per_epoch, total_steps = plan_steps(recipe, stats["train"]["rows"])
    plan = TrainPlan(
        kind=prepared.kind,
        packing=prepared.packing,
        pad_id=prepared.pad_id,
        model_path=prepared.model_path,
        tokenizer_path=prepared.tokenizer_path,
        train_rows=stats["train"]["rows"],
        validation_rows=stats.get("validation", {}).get("rows", 0),
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        log_dir=prepared.log_dir,
        checkpoint_root=posixpath.join(recipe.output.path, RAY_TRAIN_DIR),
        sample_prompts=sample_prompts(prepared.validation_dir, recipe.eval.samples),
        fault=fault or {},
    )
    print_plan(recipe, prepared, plan, stats)
    result = fit(recipe, plan, train_rows, validation_rows)
    summary = summarize(recipe, plan, result, stats, time.perf_counter() - started)
    write_text(recipe.output.path, SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def check_cluster(recipe: SFTRecipe) -> None:
    if (
        recipe.scaling.use_gpu
        and ray.cluster_resources().get("GPU", 0) < recipe.scaling.num_workers
    ):
        raise TrainError(
            f"scaling.use_gpu with {recipe.scaling.num_workers} workers needs that many GPUs; "
            f"the cluster has {ray.cluster_resources().get('GPU', 0):g}"
        )


def fit(recipe: SFTRecipe, plan: TrainPlan, train_rows: Any, validation_rows: Any) -> Any:
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    datasets = {"train": train_rows}
    if validation_rows is not None:
        datasets["validation"] = validation_rows
    trainer = TorchTrainer(
        train_loop,
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
        from ops.datarun import _find_cause

        cause = _find_cause(error, NonFiniteLoss)
        if cause is not None:
            raise TrainError(str(cause)) from None
        raise TrainError(f"training failed: {worker_cause(error)}") from error


def summarize(recipe: SFTRecipe, plan: TrainPlan, result: Any, stats: dict, seconds: float) -> dict:
    def described(checkpoint: Any, metrics: dict) -> dict:
        return {
            "path": checkpoint.path,
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


def print_plan(recipe: SFTRecipe, prepared: Prepared, plan: TrainPlan, stats: dict) -> None:
    train = stats["train"]
    padding = 1 - train["tokens"] / max(1, train["rows"] * recipe.prompt.max_length)
    layout = "packed" if prepared.packing else "unpacked"
    lines = [
        f"{recipe.name}: {prepared.kind} model {prepared.model_path}, "
        f"prompt format {recipe.prompt.format}, {layout}",
        f"train: {train['records_in']} records -> {train['rows']} rows, "
        f"{train['tokens']:,} tokens ({train['supervised']:,} supervised), "
        f"{train['truncated']} truncated, "
        f"{train['records_without_supervised_tokens']} without a supervised token"
        + (f", padding {padding:.1%}" if prepared.packing else ""),
    ]
    if "validation" in stats:
        validation = stats["validation"]
        lines.append(f"validation: {validation['records_in']} records -> {validation['rows']} rows")
    else:
        lines.append("validation: none (checkpoints are ranked by training loss)")
    lines.append(
        f"{plan.total_steps} steps of {plan.global_batch} rows ({plan.steps_per_epoch} per epoch) "
        f"on {recipe.scaling.num_workers} worker(s), {recipe.training.strategy}; "
        f"logs: {plan.log_dir}"
    )
    print("\n".join(lines), flush=True)


def recipe_yaml(recipe: SFTRecipe) -> str:
    import yaml

    return yaml.safe_dump(recipe.to_plain(), sort_keys=False, allow_unicode=True)


def write_text(directory: str, name: str, text: str) -> None:
    filesystem, root = open_filesystem(directory)
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(posixpath.join(root, name)) as stream:
        stream.write(text.encode("utf-8"))


__all__ = ["TrainError", "load_sft_recipe", "prepare", "run_sft"]
