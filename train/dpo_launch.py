"""DPO's part of launching a run: SFT's checks (``train.sft_launch.prepare``: paths, model,
tokenizer, chat template, LoRA, output directory), then the checks only preference data
needs, on the plumbing every method shares (``train.launch``): pair rows and the reference's
log-probabilities in one Ray Data pass, the step plan, the TorchTrainer fit.
``ops.trainrun`` loads the recipe file, connects to Ray and calls ``prepare_dpo`` and
``launch_dpo``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pipeline.config import Problem, RecipeError
from pipeline.read import open_filesystem
from train.config import DPORecipe
from train.dpo import train_loop
from train.dpo_rows import PAIR_RECORD_COLUMNS, PairRows, pair_rows
from train.launch import (
    SUMMARY,
    TrainError,
    check_cluster,
    fit,
    summarize,
    tokenized,
    write_text,
)
from train.sft import TrainPlan
from train.sft_launch import (
    SAMPLE_RECORDS,
    Prepared,
    prepare,
    split_directories,
    training_plan,
)
from train.sft_rows import load_tokenizer


def prepare_dpo(recipe: DPORecipe, source: str, *, resume: bool, overwrite: bool) -> Prepared:
    """Every check that needs no Ray; raises RecipeError listing the problems."""
    unpacked = recipe.model_copy(
        update={"prompt": recipe.prompt.model_copy(update={"packing": False})}
    )
    prepared = prepare(unpacked, source, resume=resume, overwrite=overwrite)
    check_pairs(prepared, source)
    return prepared


def check_pairs(prepared: Prepared, source: str) -> None:
    """The first training records must give rows for the recipe's loss: a run of plain SFT
    records, or of binary feedback under a pair loss, is an error before Ray starts."""
    import pyarrow.dataset as ds

    recipe = prepared.recipe
    filesystem, local = open_filesystem(prepared.train_dir)
    dataset = ds.dataset(local, filesystem=filesystem, format="parquet")
    missing = [name for name in PAIR_RECORD_COLUMNS if name not in dataset.schema.names]
    if missing:
        raise RecipeError(
            [
                Problem(
                    path="data.path",
                    message=f"the shards have no {', '.join(missing)} column: written by an "
                    "instructflow before preference data; run the data recipe again",
                    value=recipe.data.path,
                )
            ],
            source,
        )
    head = dataset.head(SAMPLE_RECORDS, columns=PAIR_RECORD_COLUMNS).to_pylist()
    tokenizer = load_tokenizer(prepared.tokenizer_path, recipe.model.trust_remote_code)
    rows = pair_rows(
        head,
        tokenizer,
        recipe.prompt.format,
        recipe.prompt.max_length,
        prepared.kind,
        need_both=recipe.preference.loss != "kto",
    )
    if head and rows.num_rows == 0:
        wanted = (
            "binary feedback or pairs"
            if recipe.preference.loss == "kto"
            else "pairs (records with `rejected`); binary feedback needs preference.loss kto"
        )
        raise RecipeError(
            [
                Problem(
                    path="data.path",
                    message=f"none of the first {len(head)} training records is usable: the "
                    f"loss {recipe.preference.loss} trains on {wanted}, with non-empty replies "
                    "that fit prompt.max_length",
                    value=recipe.data.path,
                )
            ],
            source,
        )


def launch_dpo(prepared: Prepared, *, fault: dict[str, int] | None = None) -> dict[str, Any]:
    """Pair rows, reference log-probabilities, plan and training on the Ray this process is
    connected to; returns the summary it writes to the output directory."""
    recipe: DPORecipe = prepared.recipe
    check_cluster(recipe)
    started = time.perf_counter()
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True
    precompute = recipe.preference.reference_mode == "precomputed"
    started_rows = time.perf_counter()
    train_rows, validation_rows, stats = tokenized(
        split_directories(prepared),
        PairRows,
        pair_options(prepared, with_reference=precompute),
        columns=PAIR_RECORD_COLUMNS,
        num_gpus=1 if precompute and recipe.scaling.use_gpu else 0,
    )
    stats["rows_seconds"] = round(time.perf_counter() - started_rows, 2)
    if stats["train"]["rows"] == 0:
        raise TrainError(
            f"{prepared.train_dir}: no record gives a training row for loss "
            f"{recipe.preference.loss} (pairs with two non-empty replies, or binary feedback "
            "for kto)"
        )
    plan = training_plan(prepared, stats, fault, method="dpo")
    print_plan(recipe, prepared, plan, stats)
    result = fit(train_loop, recipe, plan, train_rows, validation_rows)
    summary = summarize(recipe, plan, result, stats, time.perf_counter() - started)
    write_text(recipe.output.path, SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def pair_options(prepared: Prepared, with_reference: bool) -> dict[str, Any]:
    """``PairRows``' arguments, plain data for the Ray Data actors; with the reference's
    (``ReferenceLogps``') when its log-probabilities are stored with the rows, so the one
    pass that tokenises also scores, each actor holding the reference once (one GPU each
    when the run uses GPUs)."""
    recipe: DPORecipe = prepared.recipe
    options: dict[str, Any] = {
        "tokenizer_path": prepared.tokenizer_path,
        "prompt_format": recipe.prompt.format,
        "max_length": recipe.prompt.max_length,
        "kind": prepared.kind,
        "need_both": recipe.preference.loss != "kto",
        "trust_remote_code": recipe.model.trust_remote_code,
    }
    if with_reference:
        options["reference"] = {
            "model_path": recipe.preference.reference_model or prepared.model_path,
            "kind": prepared.kind,
            "pad_id": prepared.pad_id,
            "batch_size": recipe.training.micro_batch_size,
            "trust_remote_code": recipe.model.trust_remote_code,
            "attn_implementation": recipe.model.attn_implementation,
            "use_gpu": recipe.scaling.use_gpu,
        }
    return options


def print_plan(recipe: DPORecipe, prepared: Prepared, plan: TrainPlan, stats: dict) -> None:
    train = stats["train"]
    preference = recipe.preference
    lines = [
        f"{recipe.name}: {preference.loss} loss (beta {preference.beta:g}), reference "
        f"{preference.reference_mode}; {prepared.kind} model {prepared.model_path}, "
        f"prompt format {recipe.prompt.format}",
        f"train: {train['records_in']} records -> {train['rows']} rows, {train['tokens']:,} "
        f"tokens ({train['supervised']:,} in replies), {train['truncated']} truncated, "
        f"{train['records_without_supervised_tokens']} records without a usable "
        f"{'reply' if preference.loss == 'kto' else 'pair'}",
    ]
    if "validation" in stats:
        validation = stats["validation"]
        lines.append(f"validation: {validation['records_in']} records -> {validation['rows']} rows")
    else:
        lines.append("validation: none (checkpoints are ranked by training loss)")
    lines.append(
        f"pair rows in Ray Data: {stats['rows_seconds']} s"
        + (
            ", with the reference's log-probabilities"
            if preference.reference_mode == "precomputed"
            else ""
        )
    )
    lines.append(
        f"{plan.total_steps} steps of {plan.global_batch} rows ({plan.steps_per_epoch} per epoch) "
        f"on {recipe.scaling.num_workers} worker(s), {recipe.training.strategy}; "
        f"logs: {plan.log_dir}"
    )
    print("\n".join(lines), flush=True)
