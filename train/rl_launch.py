"""RL's part of launching a run: SFT's checks (``train.sft_launch.prepare``: paths, model,
tokenizer, LoRA, output directory) plus RL's own, then prompt rows in Ray Data and the
TorchTrainer fit, on the plumbing every method shares (``train.launch``).

Before Ray starts (``prepare_rl``): a causal model; every reward builds (a Python reward
imports, a reward model loads) and scores the first records' own replies without failing on
all of them; an ``ifeval`` reward finds constraints in the data (the data engine's
``constrain`` stage); the vLLM engine imports when asked for. ``ops.trainrun`` loads the
recipe file, connects to Ray and calls ``prepare_rl`` and ``launch_rl``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pipeline.config import Problem, RecipeError
from pipeline.read import open_filesystem
from train.config import RLRecipe
from train.launch import (
    SUMMARY,
    TrainError,
    check_cluster,
    fit,
    summarize,
    tokenized,
    write_text,
)
from train.rewards.builtin import RewardSetupError
from train.rewards.runner import RewardFailure, RewardSet, check_batch
from train.rl import train_loop
from train.rl_rows import PROMPT_RECORD_COLUMNS, PromptRows, prompt_rows, samples_of
from train.sft import NonFiniteLoss, TrainPlan
from train.sft_launch import Prepared, prepare, split_directories, training_plan
from train.sft_rows import load_tokenizer

SAMPLE_RECORDS = 16


def prepare_rl(recipe: RLRecipe, source: str, *, resume: bool, overwrite: bool) -> Prepared:
    """Every check that needs no Ray; raises RecipeError listing the problems."""
    prepared = prepare(recipe, source, resume=resume, overwrite=overwrite, supervised=False)
    if prepared.kind != "causal":
        raise RecipeError(
            [
                Problem(
                    path="model.name_or_path",
                    message="RL trains causal language models; this one is seq2seq",
                    value=recipe.model.name_or_path,
                )
            ],
            source,
        )
    if recipe.rollout.engine == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise RecipeError(
                [
                    Problem(
                        path="rollout.engine",
                        message="vllm is not installed here: pip install vllm (on GPU "
                        "machines), or use the transformers engine",
                        value="vllm",
                    )
                ],
                source,
            )
    check_rewards(prepared, source)
    return prepared


def record_columns(directory: str) -> list[str]:
    """The record columns prompt rows read; ``constraints`` only where the shards have it."""
    import pyarrow.dataset as ds

    filesystem, local = open_filesystem(directory)
    names = ds.dataset(local, filesystem=filesystem, format="parquet").schema.names
    return [name for name in PROMPT_RECORD_COLUMNS if name in names]


def check_rewards(prepared: Prepared, source: str) -> None:
    """Build every reward and score the first records' own replies as if they were
    completions: a reward that cannot load, or fails on all of them, is a recipe error
    naming it, in seconds rather than after Ray Train has started."""
    import pyarrow.dataset as ds

    recipe: RLRecipe = prepared.recipe
    filesystem, local = open_filesystem(prepared.train_dir)
    columns = record_columns(prepared.train_dir)
    head = (
        ds.dataset(local, filesystem=filesystem, format="parquet")
        .head(SAMPLE_RECORDS, columns=columns)
        .to_pylist()
    )
    tokenizer = load_tokenizer(prepared.tokenizer_path, recipe.model.trust_remote_code)
    rows = prompt_rows(head, tokenizer, recipe.prompt.format, recipe.prompt.max_length)
    if head and rows.num_rows == 0:
        raise RecipeError(
            [
                Problem(
                    path="data.path",
                    message=f"none of the first {len(head)} records ends its opening turns "
                    "with a user turn: RL needs prompts to answer",
                    value=recipe.data.path,
                )
            ],
            source,
        )
    plain = rows.to_pydict()
    constrained = sum(text != "[]" for text in plain["constraints"])
    problems = []
    for index, spec in enumerate(recipe.rewards):
        if spec.kind == "ifeval" and rows.num_rows and not constrained:
            problems.append(
                Problem(
                    path=f"rewards[{index}]",
                    message=f"none of the first {rows.num_rows} prompts has constraints: add "
                    "the `constrain` stage to the data recipe (it attaches IFEval-style "
                    "constraints to instructions), or use another reward",
                    value=spec.kind,
                )
            )
            continue
        try:
            rewards = RewardSet([spec])
        except RewardSetupError as error:
            problems.append(
                Problem(path=f"rewards[{index}].options", message=str(error), value=spec.options)
            )
            continue
        try:
            batch = rewards.score(samples_of(plain, plain["reference"], 1))
            check_batch(batch, f"the first {rows.num_rows} records' own replies")
        except RewardFailure as error:
            problems.append(Problem(path=f"rewards[{index}]", message=str(error), value=spec.kind))
        finally:
            rewards.close()
    if problems:
        raise RecipeError(problems, source)


def launch_rl(prepared: Prepared, *, fault: dict[str, int] | None = None) -> dict[str, Any]:
    """Prompt rows, plan and training on the Ray this process is connected to; returns the
    summary it writes to the output directory."""
    recipe: RLRecipe = prepared.recipe
    check_cluster(recipe)
    check_engine_gpus(recipe)
    started = time.perf_counter()
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True
    started_rows = time.perf_counter()
    train_rows, validation_rows, stats = tokenized(
        split_directories(prepared),
        PromptRows,
        {
            "tokenizer_path": prepared.tokenizer_path,
            "prompt_format": recipe.prompt.format,
            "max_length": recipe.prompt.max_length,
            "trust_remote_code": recipe.model.trust_remote_code,
        },
        columns=record_columns(prepared.train_dir),
    )
    stats["rows_seconds"] = round(time.perf_counter() - started_rows, 2)
    if stats["train"]["rows"] == 0:
        raise TrainError(f"{prepared.train_dir}: no record is a prompt (ends with a user turn)")
    plan = training_plan(
        prepared, stats, fault, method="rl", global_batch=recipe.rollout.prompts_per_step
    )
    print_plan(recipe, prepared, plan, stats)
    result = fit(
        train_loop,
        recipe,
        plan,
        train_rows,
        validation_rows,
        stop_errors=(NonFiniteLoss, RewardFailure),
    )
    summary = summarize(recipe, plan, result, stats, time.perf_counter() - started)
    write_text(recipe.output.path, SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def check_engine_gpus(recipe: RLRecipe) -> None:
    """vLLM engines take GPUs of their own, beside the training workers'."""
    import ray

    if recipe.rollout.engine != "vllm":
        return
    workers = recipe.scaling.num_workers
    needed = workers * (1 + recipe.rollout.vllm_tensor_parallel_size)
    have = ray.cluster_resources().get("GPU", 0)
    if have < needed:
        raise TrainError(
            f"rollout.engine vllm: {workers} training worker(s) and one engine each of "
            f"rollout.vllm_tensor_parallel_size {recipe.rollout.vllm_tensor_parallel_size} "
            f"GPU(s) need {needed} GPUs; the cluster has {have:g}"
        )


def print_plan(recipe: RLRecipe, prepared: Prepared, plan: TrainPlan, stats: dict) -> None:
    rl, rollout = recipe.rl, recipe.rollout
    train = stats["train"]
    rewards = ", ".join(
        f"{spec.label} x{spec.weight:g}" if spec.weight != 1 else spec.label
        for spec in recipe.rewards
    )
    lines = [
        f"{recipe.name}: {rl.algorithm} ({rl.aggregation}), KL {rl.kl_estimator} x "
        f"{rl.kl_coef:g}; model {prepared.model_path}, prompt format {recipe.prompt.format}",
        f"rollouts: {rollout.prompts_per_step} prompts x {rollout.samples_per_prompt} samples "
        f"per step, up to {rollout.max_new_tokens} new tokens, temperature "
        f"{rollout.temperature:g}, engine {rollout.engine}; rewards: {rewards}",
        f"train: {train['records_in']} records -> {train['rows']} prompts "
        f"({train['truncated']} cut to prompt.max_length)",
    ]
    if "validation" in stats:
        lines.append(f"validation: {stats['validation']['rows']} prompts (greedy, rewarded)")
    else:
        lines.append("validation: none (checkpoints are ranked by the training reward)")
    lines.append(
        f"{plan.total_steps} steps ({plan.steps_per_epoch} per epoch) on "
        f"{recipe.scaling.num_workers} worker(s), {recipe.training.strategy}; logs: {plan.log_dir}"
    )
    print("\n".join(lines), flush=True)


__all__ = ["check_rewards", "launch_rl", "prepare_rl"]
