"""Preference optimisation (DPO and its family): the loop every Ray Train worker runs.

    instructflow train dpo examples/preference/dpo.yaml [--address ray://head:10001]

``train.dpo_launch`` checks the recipe (the SFT recipe's keys plus ``preference``), turns the
data engine's preference records into pair rows in Ray Data (``train.dpo_rows``), computes
the reference model's log-probabilities once, in the same Ray Data pass, and stores them with
the rows (``preference.reference: precomputed``, the default), and starts ``TorchTrainer``
with ``train_loop`` below. Each worker, reusing SFT's parts (``train.sft``):

1. loads the policy (or the latest committed checkpoint), LoRA, gradient checkpointing,
   DDP or FSDP, AdamW with warmup and cosine decay, exactly as SFT does; with
   ``reference: in_process`` also a frozen reference copy;
2. reads every global batch in the same seeded order as SFT and takes its own slice;
3. steps: both replies of each pair in one forward pass; summed reply log-probabilities;
   the loss of ``preference.loss`` (``train.preference_loss``: DPO, cDPO, IPO, SimPO, ORPO,
   KTO), each micro-batch contributing its examples' loss sum over all examples of the global
   step, so accumulation and DDP averaging give the true mean;
4. logs loss, reward accuracy (the implied rewards rank the pair right), likelihood
   accuracy (the policy's per-token likelihood does, which means something at step 0, where
   every implied reward is 0), the chosen and rejected rewards and their margin, and
   ``log_ratio``, the mean per-token log(policy / reference) on the pairs' replies: how far
   the policy moved from the reference on the data. It is not KL(policy || reference), which
   needs samples from the policy, and it goes negative as rejected replies lose probability;
   every ``eval.every_steps`` the same on the
   validation pairs, a few greedy generations, and a checkpoint in SFT's format (the
   best by validation loss and the latest are kept; ``--resume`` and worker restarts
   continue from it at the exact row).

Simplifies versus TRL's DPOTrainer: no prompt/completion truncation modes beyond keeping the
reply, no reference-model syncing (TR-DPO), no padding-free batches, and KTO's reference point
is the batch's mean implied reward rather than a KL on mismatched pairs.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import numpy as np

from train.config import DPORecipe, PreferenceConfig
from train.dpo_rows import REFERENCE_COLUMNS, load_reference, side_logps
from train.preference_loss import (
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    simpo_loss,
)
from train.sft import (
    TrainLog,
    TrainPlan,
    ValidationRows,
    clip_and_step,
    global_batches,
    maybe_fault,
    no_sync,
    sample_generations,
    save_and_report,
    start_worker,
)
from train.sft_rows import load_tokenizer

# Sums kept per step and per evaluation (one all-reduce each): see PreferenceTotals.
TOTALS = (
    "loss",
    "examples",
    "pairs",
    "correct",
    "likelier",
    "margin",
    "chosen_reward",
    "chosen",
    "rejected_reward",
    "rejected",
    "log_ratio",
    "reply_tokens",
)


def train_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch

    recipe = DPORecipe.model_validate(config["recipe"])
    plan = TrainPlan(**config["plan"])
    preference = recipe.preference
    # SFT's start: rank, device, model (DDP/FSDP, LoRA), optimizer, schedule, checkpoint.
    worker = start_worker(recipe, plan)
    rank, world, device, autocast = worker.rank, worker.world, worker.device, worker.autocast
    model, unwrapped = worker.model, worker.unwrapped
    scheduler = worker.scheduler
    progress, resumed_from = worker.progress, worker.resumed_from
    training = recipe.training
    reference = None
    if preference.reference_mode == "in_process":
        reference = load_reference(
            preference.reference_model or plan.model_path,
            plan.kind,
            recipe.model.trust_remote_code,
            recipe.model.attn_implementation,
            device,
        )
    tokenizer = load_tokenizer(plan.tokenizer_path, recipe.model.trust_remote_code)
    log = TrainLog(plan.log_dir, rank, resumed_from, plan.total_steps)
    validation = None
    if plan.validation_rows:
        validation = ValidationRows(ray.train.get_dataset_shard("validation"), recipe, plan)
    if validation is not None and resumed_from is None:  # the starting point of the curves
        start = evaluate(model, unwrapped, reference, validation, recipe, plan, rank, world, device)
        log.scalars(0, prefixed("validation/", start))

    train_shard = ray.train.get_dataset_shard("train")
    per_rank = training.micro_batch_size * training.gradient_accumulation
    window_start = time.perf_counter()
    window_tokens = 0
    for step, global_rows in global_batches(train_shard, plan, recipe, progress.step):
        if step >= plan.total_steps:
            break
        maybe_fault(plan.fault, step, resumed_from, rank)
        torch.manual_seed(recipe.seed * 1_000_003 + step * 1009 + rank)  # dropout masks
        model.train()
        step_examples = examples_in(global_rows, preference)
        mine = {
            name: column[rank * per_rank : (rank + 1) * per_rank]
            for name, column in global_rows.items()
        }
        totals = PreferenceTotals(device)
        for index in range(training.gradient_accumulation):
            micro = {
                name: column[
                    index * training.micro_batch_size : (index + 1) * training.micro_batch_size
                ]
                for name, column in mine.items()
            }
            last = index == training.gradient_accumulation - 1
            with nullcontext() if last or world == 1 else no_sync(model), autocast:
                logps, tokens = side_logps(model, unwrapped, micro, plan.pad_id, plan.kind, device)
                ref = reference_logps(micro, reference, plan, device)
                losses, rewards = example_losses(preference, logps, tokens, ref, world)
                loss = losses.sum() * world / step_examples
                if plan.fault.get("nan_at_step") == step:
                    loss = loss * float("nan")
            loss.backward()  # outside autocast, as torch advises
            totals.add(losses, rewards, logps, tokens, ref)
        grad_norm = clip_and_step(
            worker, training.max_grad_norm, step, f"loss {totals.mean_loss(world):.4g}"
        )
        progress.step = step + 1
        batch_tokens = int(global_rows["tokens"].sum())
        progress.tokens_seen += batch_tokens
        window_tokens += batch_tokens

        at_eval = progress.step % recipe.eval.every_steps == 0 or progress.step == plan.total_steps
        if progress.step % training.log_every_steps == 0 or at_eval:
            step_metrics = totals.reduced(world, preference)
            seconds = time.perf_counter() - window_start
            log.scalars(
                progress.step,
                prefixed("train/", step_metrics)
                | {
                    "train/learning_rate": scheduler.get_last_lr()[0],
                    "train/tokens_per_s": window_tokens / seconds,
                    "train/grad_norm": float(grad_norm),
                },
            )
            window_start, window_tokens = time.perf_counter(), 0
        if at_eval:
            metrics = {"step": progress.step, "train_loss": step_metrics["loss"]}
            metrics |= {f"train_{k}": v for k, v in step_metrics.items() if k != "loss"}
            if validation is not None:
                evaluated = evaluate(
                    model, unwrapped, reference, validation, recipe, plan, rank, world, device
                )
                log.scalars(progress.step, prefixed("validation/", evaluated))
                metrics |= {f"val_{k}": v for k, v in evaluated.items()}
            log.samples(
                progress.step, sample_generations(unwrapped, tokenizer, recipe, plan, device, rank)
            )
            metrics["score"] = metrics.get("val_loss", metrics["train_loss"])
            metrics["tokens_seen"] = progress.tokens_seen
            save_and_report(worker, tokenizer, recipe, plan, metrics)
            window_start = time.perf_counter()
    log.close()


def examples_in(rows: dict[str, np.ndarray], preference: PreferenceConfig) -> int:
    """What the step's loss is a mean over: pairs, or for KTO every reply."""
    if preference.loss != "kto":
        return len(rows["tokens"])
    return sum(
        int(sum(len(ids) > 0 for ids in rows[f"{side}_input_ids"]))
        for side in ("chosen", "rejected")
    )


def reference_logps(rows: dict[str, Any], reference: Any, plan: TrainPlan, device: Any) -> Any:
    """The reference's ``[2, rows]`` log-probabilities: stored with the rows, computed by the
    in-process frozen copy, or zeros for reference-free losses (never read by them)."""
    import torch

    if REFERENCE_COLUMNS[0] in rows:
        stored = np.stack([np.asarray(rows[name], dtype=np.float32) for name in REFERENCE_COLUMNS])
        return torch.as_tensor(stored, device=device)
    if reference is not None:
        with torch.no_grad():
            return side_logps(reference, reference, rows, plan.pad_id, plan.kind, device)[0]
    return torch.zeros(2, len(rows["tokens"]), device=device)


def example_losses(
    preference: PreferenceConfig, logps: Any, tokens: Any, ref: Any, world: int
) -> tuple[Any, Any]:
    """(each example's loss, each side's implied reward ``[2, rows]``) for the recipe's loss.
    Rewards are beta times the log-ratio to the reference, or for the reference-free losses
    beta times the length-normalised log-probability (as TRL reports them)."""
    import torch

    beta = preference.beta
    average = logps / tokens.clamp(min=1)
    if preference.loss in ("simpo", "orpo"):
        rewards = beta * average
        if preference.loss == "simpo":
            return simpo_loss(average[0], average[1], beta, preference.simpo_gamma), rewards
        return orpo_loss(average[0], average[1], preference.orpo_lambda), rewards
    rewards = beta * (logps - ref)
    if preference.loss == "sigmoid":
        return dpo_loss(
            logps[0], logps[1], ref[0], ref[1], beta, preference.label_smoothing
        ), rewards
    if preference.loss == "ipo":
        return ipo_loss(logps[0], logps[1], ref[0], ref[1], beta), rewards
    present = tokens > 0
    desirable = torch.zeros_like(present)
    desirable[0] = True
    point = kto_reference_point(logps[present], ref[present], world)
    losses = kto_loss(
        logps[present],
        ref[present],
        desirable[present],
        point,
        beta,
        preference.kto_desirable_weight,
        preference.kto_undesirable_weight,
    )
    return losses, rewards


class PreferenceTotals:
    """Summable totals of a step or an evaluation (``TOTALS``), reduced over ranks once."""

    def __init__(self, device: Any) -> None:
        import torch

        self.sums = torch.zeros(len(TOTALS), dtype=torch.float64, device=device)

    def add(self, losses: Any, rewards: Any, logps: Any, tokens: Any, ref: Any) -> None:
        import torch

        present = tokens > 0
        both = present[0] & present[1]
        rewards, logps, ref = rewards.detach(), logps.detach(), ref.detach()
        margin = (rewards[0] - rewards[1])[both]
        average = logps / tokens.clamp(min=1)
        values = [
            losses.detach().sum(),
            torch.tensor(float(len(losses))),
            both.sum(),
            (margin > 0).sum(),
            (average[0] > average[1])[both].sum(),
            margin.sum(),
            rewards[0][present[0]].sum(),
            present[0].sum(),
            rewards[1][present[1]].sum(),
            present[1].sum(),
            (logps - ref)[present].sum(),
            tokens[present].sum(),
        ]
        self.sums += torch.stack([torch.as_tensor(v).double().to(self.sums.device) for v in values])

    def mean_loss(self, world: int) -> float:
        """This rank's mean example loss (for an error message: no collective)."""
        return float(self.sums[0] / self.sums[1].clamp(min=1))

    def reduced(self, world: int, preference: PreferenceConfig) -> dict[str, float]:
        import torch.distributed as dist

        sums = self.sums.clone()
        if world > 1:
            dist.all_reduce(sums)
        total = dict(zip(TOTALS, sums.tolist(), strict=True))

        def ratio(top: str, bottom: str) -> float:
            return total[top] / total[bottom] if total[bottom] else float("nan")

        metrics = {
            "loss": ratio("loss", "examples"),
            "chosen_reward": ratio("chosen_reward", "chosen"),
            "rejected_reward": ratio("rejected_reward", "rejected"),
        }
        if total["pairs"]:
            metrics["reward_accuracy"] = ratio("correct", "pairs")
            # The model's own ranking (per-token likelihood), meaningful before training too.
            metrics["likelihood_accuracy"] = ratio("likelier", "pairs")
            metrics["reward_margin"] = ratio("margin", "pairs")
        if preference.reference_mode != "none":
            metrics["log_ratio"] = ratio("log_ratio", "reply_tokens")
        return metrics


def evaluate(
    model, unwrapped, reference, rows, recipe, plan, rank, world, device
) -> dict[str, float]:
    """The preference metrics over the validation pairs. Under DDP each rank takes every
    world-th micro-batch and the totals are all-reduced; under FSDP, whose forward passes are
    collective, every rank runs every micro-batch."""
    import torch

    shared = world > 1 and recipe.training.strategy == "fsdp"
    model = model if shared else unwrapped  # DDP's wrapper would sync buffers per forward
    model.eval()
    totals = PreferenceTotals(device)
    seen = 0
    with torch.no_grad():
        for index, micro in enumerate(rows.batches()):
            if recipe.eval.max_rows is not None and seen >= recipe.eval.max_rows:
                break
            seen += len(micro["tokens"])
            if not shared and index % world != rank:
                continue
            logps, tokens = side_logps(model, unwrapped, micro, plan.pad_id, plan.kind, device)
            ref = reference_logps(micro, reference, plan, device)
            # KTO's reference point from this micro-batch alone: ranks see different counts.
            losses, rewards = example_losses(recipe.preference, logps, tokens, ref, world=1)
            totals.add(losses, rewards, logps, tokens, ref)
    return totals.reduced(world if not shared else 1, recipe.preference)


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in metrics.items()}


__all__ = ["example_losses", "examples_in", "train_loop"]
