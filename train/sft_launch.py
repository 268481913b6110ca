"""SFT's part of launching a run: the recipe checks only SFT needs (model kind, tokenizer and
chat template, packing, LoRA, a sample of records tokenised on the driver) and the run itself,
on the plumbing every method shares (``train.launch``).

Everything that can be wrong with the recipe, the data, the model or the tokenizer is found
before Ray starts (``prepare``): paths, the model's config, the tokenizer's chat template,
and a sample of records tokenised on the driver so an empty loss mask is an error in
milliseconds. After tokenisation (``launch_sft``) the whole training set's counts are checked
again with Ray Data aggregates. ``ops.trainrun`` loads the recipe file, connects to Ray and
calls these two.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Problem, RecipeError
from pipeline.read import open_filesystem
from train.config import SFTRecipe
from train.launch import (
    DATA_STATS,
    RAY_TRAIN_DIR,
    SUMMARY,
    TrainError,
    absolute,
    check_cluster,
    check_output,
    first_line,
    fit,
    plan_steps,
    sample_prompts,
    split_dir,
    summarize,
    tokenized,
    write_text,
)
from train.sft import TrainPlan, train_loop
from train.sft_rows import RECORD_COLUMNS, TokenizeRows

SAMPLE_RECORDS = 64


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


def resolve_paths(recipe: SFTRecipe) -> SFTRecipe:
    """Relative paths become absolute (Ray workers run elsewhere); a model given as a hub id
    stays one unless a directory of that name exists here. A model given as the output
    directory of an earlier training run means that run's best checkpoint (SFT -> DPO)."""

    def local_or_id(name: str | None) -> str | None:
        if name is None:
            return None
        path = Path(name)
        if path.is_dir() and not (path / "config.json").exists() and (path / SUMMARY).exists():
            from train.generate import resolve_checkpoint

            return resolve_checkpoint(str(path.resolve()))
        return str(path.resolve()) if path.is_dir() else name

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


def prepare(
    recipe: SFTRecipe, source: str, *, resume: bool, overwrite: bool, supervised: bool = True
) -> Prepared:
    """Every check that needs no Ray; raises RecipeError listing the problems. ``supervised``
    false (RL, whose records are prompts): no check that the sample has supervised replies."""
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
    if supervised:
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


def launch_sft(prepared: Prepared, *, fault: dict[str, int] | None = None) -> dict[str, Any]:
    """Tokenise, plan and train a prepared run on the Ray this process is connected to;
    returns the summary it writes to the output directory."""
    recipe = prepared.recipe
    check_cluster(recipe)
    started = time.perf_counter()
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True
    undesirable = undesirable_records(prepared.train_dir)
    train_rows, validation_rows, stats = tokenized(
        split_directories(prepared),
        TokenizeRows,
        tokenize_options(prepared),
        columns=[*RECORD_COLUMNS, "feedback"] if undesirable is not None else None,
    )
    if undesirable:
        stats["train"]["undesirable_skipped"] = undesirable
    if stats["train"]["supervised"] == 0:
        raise TrainError(
            f"{prepared.train_dir}: no response token is supervised in any record (every label "
            "is -100); check the records' assistant replies and prompt.max_length"
        )
    plan = training_plan(prepared, stats, fault, method="sft")
    print_plan(recipe, prepared, plan, stats)
    result = fit(train_loop, recipe, plan, train_rows, validation_rows)
    summary = summarize(recipe, plan, result, stats, time.perf_counter() - started)
    write_text(recipe.output.path, SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def undesirable_records(directory: str) -> int | None:
    """Records labelled undesirable by binary feedback (SFT skips them: a reply marked bad is
    not one to imitate), or None for shards without a ``feedback`` column."""
    import pyarrow.dataset as ds

    filesystem, local = open_filesystem(directory)
    dataset = ds.dataset(local, filesystem=filesystem, format="parquet")
    if "feedback" not in dataset.schema.names:
        return None
    return dataset.count_rows(filter=ds.field("feedback") == False)  # noqa: E712


def training_plan(
    prepared: Prepared,
    stats: dict[str, Any],
    fault: dict[str, int] | None,
    method: str,
    global_batch: int | None = None,
) -> TrainPlan:
    """The plan every method's workers start from, once the rows are counted; writes the
    data statistics beside the run. ``global_batch``: rows per step when the method does not
    take it from the micro-batches (RL: prompts per step)."""
    recipe = prepared.recipe
    write_text(recipe.output.path, DATA_STATS, json.dumps(stats, indent=2) + "\n")
    global_batch, steps_per_epoch, total_steps = plan_steps(
        recipe, stats["train"]["rows"], global_batch
    )
    return TrainPlan(
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
        method=method,
    )


def split_directories(prepared: Prepared) -> dict[str, str]:
    directories = {"train": prepared.train_dir}
    if prepared.validation_dir:
        directories["validation"] = prepared.validation_dir
    return directories


def tokenize_options(prepared: Prepared) -> dict[str, Any]:
    """``TokenizeRows``' arguments, plain data for the Ray Data actors."""
    recipe = prepared.recipe
    return {
        "tokenizer_path": prepared.tokenizer_path,
        "prompt_format": recipe.prompt.format,
        "max_length": recipe.prompt.max_length,
        "kind": prepared.kind,
        "packing": prepared.packing,
        "trust_remote_code": recipe.model.trust_remote_code,
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
        + (
            f" ({train['undesirable_skipped']} marked undesirable)"
            if train.get("undesirable_skipped")
            else ""
        )
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
