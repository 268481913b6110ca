"""Instruction learning by RL: the loop every Ray Train worker runs, top to bottom.

    instructflow train rl examples/rl/rl.yaml [--address ray://head:10001]

The model is a policy pi(Y|X); a reward R(Y, X) says whether a completion follows its
instruction; the loop climbs grad J = E[grad log pi(Y|X) (R(Y, X) - b)]. ``train.rl_launch``
checks the recipe (SFT's keys plus ``rl``, ``rollout`` and ``rewards``), turns the data
engine's records into prompt rows in Ray Data (``train.rl_rows``), tries every reward on a
sample of records before Ray starts, and starts ``TorchTrainer`` with ``train_loop`` below.
Each worker, reusing SFT's parts (``train.sft``):

1. loads the policy (or the latest committed checkpoint), LoRA, gradient checkpointing, DDP
   or FSDP, AdamW with warmup and cosine decay, exactly as SFT does; a frozen reference copy
   when ``rl.kl_coef`` > 0; the rewards (``train.rewards``), a reward model included;
2. reads every global batch of ``rollout.prompts_per_step`` prompts in the same seeded
   order as SFT and takes its own slice (whole prompt groups per worker);
3. steps (``rl_step``): **generate** G = ``rollout.samples_per_prompt`` completions per
   prompt (sampling seeded by (seed, step, rank), so a resumed run samples the same);
   **reward** them, every reward under its timeout, failures counted by name and the
   failed samples left out; **advantages** by ``rl.algorithm`` (``train.rl_loss``: GRPO,
   RLOO or REINFORCE with a baseline); **update**: the clipped surrogate plus
   ``kl_coef`` x the k3 estimate of KL(policy || reference) per completion token,
   aggregated by ``rl.loss_aggregation`` over the whole global step (so accumulation and DDP
   averaging give the true mean), one optimizer step;
4. logs the reward (mean, per reward, failures, per constraint kind), the KL to the
   reference, the clipped fraction, completion lengths and the step's time split into
   generation, reward and update; every ``eval.every_steps`` greedy completions of the
   validation prompts are rewarded (the checkpoint score is minus their mean reward), and a
   checkpoint in SFT's format is kept (best and latest; ``--resume`` and worker restarts
   continue from it at the exact prompt).

Simplifies versus TRL's GRPOTrainer and OpenRLHF: one policy update per rollout batch (the
ratio is 1 and clipping only matters when the sampler differs from the policy, e.g. vLLM's
kernels), causal models only, no reward normalisation across steps, no dynamic sampling
(DAPO's filtering of all-equal groups: their advantage is 0, so they only add the KL term).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import numpy as np

from train.config import RLRecipe
from train.rewards.runner import RewardSet, check_batch, failure_lines
from train.rl_loss import advantages, clipped_surrogate, kl_penalty, normaliser, sequence_terms
from train.rl_rows import Rollouts, samples_of
from train.sft import (
    TrainLog,
    TrainPlan,
    ValidationRows,
    Worker,
    clip_and_step,
    global_batches,
    maybe_fault,
    no_sync,
    sample_generations,
    save_and_report,
    say,
    start_worker,
)
from train.sft_rows import load_tokenizer

CONSOLE = (
    "train/loss",
    "train/reward",
    "train/kl",
    "train/completion_tokens",
    "time/generation_s",
    "time/reward_s",
    "time/update_s",
    "validation/reward",
)


def train_loop(config: dict[str, Any]) -> None:
    import ray.train

    recipe = RLRecipe.model_validate(config["recipe"])
    plan = TrainPlan(**config["plan"])
    worker = start_worker(recipe, plan)
    rank, world = worker.rank, worker.world
    progress, resumed_from = worker.progress, worker.resumed_from
    reference = load_policy_reference(recipe, plan, worker.device)
    tokenizer = load_tokenizer(plan.tokenizer_path, recipe.model.trust_remote_code)
    rewards = RewardSet(recipe.rewards, worker.device)
    sampler = None
    if recipe.rollout.engine == "vllm":
        from train.rollout_vllm import VllmSampler

        sampler = VllmSampler(recipe, plan, worker)
    log = TrainLog(plan.log_dir, rank, resumed_from, plan.total_steps)
    validation = None
    if plan.validation_rows:
        validation = ValidationRows(ray.train.get_dataset_shard("validation"), recipe, plan)
    if validation is not None and resumed_from is None:  # the starting point of the curves
        start = evaluate(worker, rewards, tokenizer, validation, recipe, plan)
        log.scalars(0, prefixed("validation/", start), CONSOLE)

    per_rank = recipe.rollout.prompts_per_step // world
    finished = time.perf_counter()
    for step, global_rows in global_batches(
        ray.train.get_dataset_shard("train"), plan, recipe, progress.step
    ):
        if step >= plan.total_steps:
            break
        maybe_fault(plan.fault, step, resumed_from, rank)
        mine = {
            name: column[rank * per_rank : (rank + 1) * per_rank]
            for name, column in global_rows.items()
        }
        sums, batch = rl_step(
            worker, reference, rewards, tokenizer, recipe, plan, mine, step, sampler
        )
        # The step's wall time with reading its batch (logging and evaluations left out).
        sums["time/wall_s"] = time.perf_counter() - finished
        progress.step = step + 1
        progress.tokens_seen += int(sums["completion_tokens"])
        for line in failure_lines(batch):
            say(f"step {progress.step}, rank {rank}: {line}")

        at_eval = progress.step % recipe.eval.every_steps == 0 or progress.step == plan.total_steps
        if progress.step % recipe.training.log_every_steps == 0 or at_eval:
            step_metrics = step_means(reduced(sums, world))
            step_metrics["train/learning_rate"] = worker.scheduler.get_last_lr()[0]
            log.scalars(progress.step, step_metrics, CONSOLE)
        if at_eval:
            metrics = {"step": progress.step, "train_reward": step_metrics["train/reward"]}
            if validation is not None:
                evaluated = evaluate(worker, rewards, tokenizer, validation, recipe, plan)
                log.scalars(progress.step, prefixed("validation/", evaluated), CONSOLE)
                metrics |= {f"val_{k.replace('/', '_')}": v for k, v in evaluated.items()}
            log.samples(
                progress.step,
                sample_generations(worker.unwrapped, tokenizer, recipe, plan, worker.device, rank),
            )
            # Checkpoints are ranked by the lowest score: minus the mean reward.
            metrics["score"] = -metrics.get("val_reward", metrics["train_reward"])
            metrics["tokens_seen"] = progress.tokens_seen
            save_and_report(worker, tokenizer, recipe, plan, metrics)
        finished = time.perf_counter()
    rewards.close()
    log.close()


def load_policy_reference(recipe: RLRecipe, plan: TrainPlan, device: Any) -> Any:
    """The frozen reference the KL penalty is measured against, or None when kl_coef is 0."""
    from train.dpo_rows import load_reference

    if recipe.rl.kl_coef == 0:
        return None
    return load_reference(
        recipe.rl.reference_model or plan.model_path,
        plan.kind,
        recipe.model.trust_remote_code,
        recipe.model.attn_implementation,
        device,
    )


def rl_step(
    worker: Worker,
    reference: Any,
    rewards: RewardSet,
    tokenizer: Any,
    recipe: RLRecipe,
    plan: TrainPlan,
    rows: dict[str, np.ndarray],
    step: int,
    sampler: Any = None,
) -> tuple[dict[str, float], Any]:
    """One step on this worker's prompts: generate, reward, advantages, one optimizer step.
    Returns this rank's summable metrics (``reduced`` adds them over ranks) and the rewards'
    batch. Raises ``RewardFailure`` when a reward failed on every completion. ``sampler``:
    a vLLM engine (``train.rollout_vllm``) instead of the policy's own generate()."""
    import torch

    rollout, settings = recipe.rollout, recipe.rl
    world, device = worker.world, worker.device
    group = rollout.samples_per_prompt
    started = time.perf_counter()
    # One stream per (seed, step, rank): sampling and dropout repeat exactly after a resume.
    torch.manual_seed(recipe.seed * 1_000_003 + step * 1009 + worker.rank)
    if sampler is not None:
        rollouts = sampler.sample(rows, tokenizer, plan.pad_id, step)
    else:
        rollouts = generate_rollouts(
            worker.unwrapped,
            tokenizer,
            rows,
            recipe,
            plan,
            device,
            samples=group,
            synced=world > 1 and recipe.training.strategy == "fsdp",
        )
    generated = time.perf_counter()

    batch = rewards.score(samples_of(rows, rollouts.texts, group))
    check_batch(batch, f"step {step + 1}")
    rewarded = time.perf_counter()

    scores = torch.as_tensor(np.nan_to_num(batch.total), dtype=torch.float32, device=device)
    valid = torch.as_tensor(batch.valid, device=device)
    totals = global_sums(torch.stack([scores[valid].sum().double(), valid.sum().double()]), world)
    baseline = float(totals[0] / totals[1].clamp(min=1))
    advantage = advantages(
        settings.algorithm,
        scores.view(-1, group),
        valid.view(-1, group),
        baseline=baseline,
        scale=settings.scale_rewards,
    ).reshape(-1)
    loss_mask = rollouts.completion_mask * valid.unsqueeze(-1)
    aggregation = settings.aggregation
    denominator = global_sums(normaliser(loss_mask, aggregation).double().reshape(1), world)[0]
    denominator = float(denominator.clamp(min=1))

    worker.model.train()
    sums = {"loss": 0.0, "kl": 0.0, "log_ratio": 0.0, "clipped": 0.0}
    size = recipe.training.micro_batch_size
    count = rollouts.sequences.shape[0]
    for start in range(0, count, size):
        part = slice(start, start + size)
        last = start + size >= count
        with nullcontext() if last or world == 1 else no_sync(worker.model), worker.autocast:
            logps = completion_logps(worker.model, rollouts, part, rollout.temperature)
            mask = loss_mask[part]
            token_losses, clipped = clipped_surrogate(
                logps, logps.detach(), advantage[part], settings.clip_low, settings.clip_high
            )
            if reference is not None:
                with torch.no_grad():
                    ref_logps = completion_logps(reference, rollouts, part, rollout.temperature)
                kl = kl_penalty(logps, ref_logps, settings.kl_estimator)
                token_losses = token_losses + settings.kl_coef * kl
                detached = logps.detach()
                sums["kl"] += float((kl_penalty(detached, ref_logps, "k3") * mask).sum())
                sums["log_ratio"] += float(((detached - ref_logps) * mask).sum())
            terms = sequence_terms(token_losses, mask, aggregation, rollout.max_new_tokens)
            loss = terms.sum() * world / denominator
            if plan.fault.get("nan_at_step") == step:
                loss = loss * float("nan")
        loss.backward()  # outside autocast, as torch advises
        sums["loss"] += float(loss.detach()) / world
        sums["clipped"] += float((clipped * mask).sum())
    grad_norm = clip_and_step(worker, recipe.training.max_grad_norm, step, "RL step")
    if sampler is not None:
        sampler.sync()  # the next rollouts come from the updated policy
    updated = time.perf_counter()

    tokens = float(loss_mask.sum())
    sums |= {
        "completion_tokens": float(rollouts.completion_tokens),
        "completions": float(count),
        "finished": float(rollouts.finished.sum()),
        "valid_tokens": tokens,
        "grad_norm": float(grad_norm),
        "ranks": 1.0,
        "time/generation_s": generated - started,
        "time/reward_s": rewarded - generated,
        "time/update_s": updated - rewarded,
        "time/step_s": updated - started,
    }
    sums |= {f"reward/{name}": value for name, value in batch.metrics().items()}
    return sums, batch


def generate_rollouts(
    model: Any,
    tokenizer: Any,
    rows: dict[str, np.ndarray],
    recipe: RLRecipe,
    plan: TrainPlan,
    device: Any,
    *,
    samples: int,
    greedy: bool = False,
    synced: bool = False,
) -> Rollouts:
    """``samples`` completions of every prompt row with ``model.generate`` (left padding, so
    each prompt ends where generation starts); ``greedy`` for evaluation. ``synced``: FSDP,
    whose forward passes are collective, keeps every rank generating until all are done."""
    import torch

    rollout = recipe.rollout
    prompts = [np.asarray(ids, dtype=np.int64) for ids in rows["input_ids"]]
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), plan.pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for index, ids in enumerate(prompts):
        input_ids[index, width - len(ids) :] = torch.as_tensor(ids)
        attention[index, width - len(ids) :] = 1
    options: dict[str, Any] = {"do_sample": False}
    if not greedy:
        options = {
            "do_sample": True,
            "temperature": rollout.temperature,
            "top_p": rollout.top_p,
            "top_k": rollout.top_k or None,
            "num_return_sequences": samples,
        }
    was_training = model.training
    model.eval()
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=rollout.max_new_tokens,
            pad_token_id=plan.pad_id,
            eos_token_id=tokenizer.eos_token_id,
            synced_gpus=synced,
            **options,
        )
    model.train(was_training)
    completions = output[:, width:]
    repeats = 1 if greedy else samples
    prompt_mask = attention.to(device).repeat_interleave(repeats, dim=0)
    is_end = completions == tokenizer.eos_token_id
    finished = is_end.any(dim=1)
    positions = torch.arange(completions.shape[1], device=completions.device)
    first_end = torch.where(finished, is_end.int().argmax(dim=1), completions.shape[1])
    completion_mask = (positions.unsqueeze(0) <= first_end.unsqueeze(1)).float()
    completion_mask = completion_mask[:, : completions.shape[1]]
    texts = [
        tokenizer.decode(ids[: int(end)], skip_special_tokens=True).strip()
        for ids, end in zip(completions.tolist(), first_end.tolist(), strict=True)
    ]
    return Rollouts(
        sequences=output,
        attention_mask=torch.cat([prompt_mask, completion_mask.long()], dim=1),
        prompt_width=width,
        completion_mask=completion_mask,
        texts=texts,
        finished=finished,
    )


def completion_logps(model: Any, rollouts: Rollouts, part: slice, temperature: float) -> Any:
    """Per-token log-probabilities ``[n, T]`` of the completions in ``part`` under ``model``,
    from logits divided by the sampling temperature (the distribution that sampled them).
    Position ids count real tokens only, as generate() counted them under left padding."""
    import torch

    sequences = rollouts.sequences[part]
    attention = rollouts.attention_mask[part]
    positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(
        input_ids=sequences, attention_mask=attention, position_ids=positions, use_cache=False
    ).logits
    width = rollouts.prompt_width
    logits = logits[:, width - 1 : -1, :].float() / temperature
    targets = sequences[:, width:]
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def global_sums(values: Any, world: int) -> Any:
    import torch.distributed as dist

    if world > 1:
        values = values.clone()
        dist.all_reduce(values)
    return values


def reduced(sums: dict[str, float], world: int) -> dict[str, float]:
    """Every rank's sums added up. Ranks may hold different keys (the constraint kinds their
    prompts had), so the dicts are gathered as objects: a few hundred numbers per log line."""
    if world == 1:
        return dict(sums)
    import torch.distributed as dist

    gathered: list[dict[str, float]] = [{} for _ in range(world)]
    dist.all_gather_object(gathered, sums)
    total: dict[str, float] = {}
    for part in gathered:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total


def step_means(total: dict[str, float]) -> dict[str, float]:
    """Summed step metrics -> the logged means, under ``train/``, ``reward/`` and ``time/``."""
    ranks = total["ranks"]
    tokens = max(total["valid_tokens"], 1.0)
    out = {
        "train/loss": total["loss"],
        "train/reward": ratio(total["reward/reward_sum"], total["reward/reward_valid"]),
        "train/valid_fraction": total["reward/reward_valid"] / total["completions"],
        "train/completion_tokens": total["completion_tokens"] / total["completions"],
        "train/finished_fraction": total["finished"] / total["completions"],
        "train/kl": total["kl"] / tokens,
        "train/log_ratio": total["log_ratio"] / tokens,
        "train/clip_fraction": total["clipped"] / tokens,
        "train/grad_norm": total["grad_norm"] / ranks,
    }
    # The slowest rank sets the pace: times are per rank, shown as their mean.
    for key in ("time/generation_s", "time/reward_s", "time/update_s", "time/step_s"):
        out[key] = total[key] / ranks
    if "time/wall_s" in total:
        out["time/wall_s"] = total["time/wall_s"] / ranks
    out["train/tokens_per_s"] = total["completion_tokens"] / max(out["time/step_s"], 1e-9) / ranks
    out |= reward_means(total, prefix="reward/")
    return out


def reward_means(total: dict[str, float], prefix: str) -> dict[str, float]:
    """Per reward: mean score, failures, timeouts, not applicable; per sub-score (a
    constraint kind for ifeval): its mean."""
    out = {}
    for key in sorted(total):
        if not key.startswith(prefix) or key.startswith(f"{prefix}reward_"):
            continue
        name = key[len(prefix) :]
        if name.endswith("/sum") and name.count("/") == 1:
            reward = name[: -len("/sum")]
            out[f"{prefix}{reward}"] = ratio(total[key], total[f"{prefix}{reward}/scored"])
        elif name.endswith(("/failures", "/timeouts", "/not_applicable")):
            out[key] = total[key]
        elif name.endswith("/sum"):
            base = name[: -len("/sum")]
            out[f"{prefix}{base}"] = ratio(total[key], total[f"{prefix}{base}/count"])
    return out


def ratio(top: float, bottom: float) -> float:
    return top / bottom if bottom else float("nan")


def evaluate(
    worker: Worker, rewards: RewardSet, tokenizer: Any, rows: ValidationRows, recipe, plan
) -> dict[str, float]:
    """Greedy completions of the validation prompts, rewarded: the mean reward, each
    reward's and each constraint kind's. Under DDP each rank takes every world-th
    micro-batch and the sums are gathered; under FSDP every rank runs every micro-batch."""
    rank, world = worker.rank, worker.world
    shared = world > 1 and recipe.training.strategy == "fsdp"
    sums: dict[str, float] = {}
    seen = 0
    tokens = 0
    for index, micro in enumerate(rows.batches()):
        if recipe.eval.max_rows is not None and seen >= recipe.eval.max_rows:
            break
        seen += len(micro["input_ids"])
        if not shared and index % world != rank:
            continue
        rollouts = generate_rollouts(
            worker.unwrapped,
            tokenizer,
            micro,
            recipe,
            plan,
            worker.device,
            samples=1,
            greedy=True,
            synced=shared,
        )
        tokens += rollouts.completion_tokens
        batch = rewards.score(samples_of(micro, rollouts.texts, 1))
        for key, value in batch.metrics().items():
            sums[key] = sums.get(key, 0.0) + value
    sums["completion_tokens"] = float(tokens)
    total = reduced(sums, 1 if shared else world)
    out = {
        "reward": ratio(total.get("reward_sum", 0.0), total.get("reward_valid", 0.0)),
        "completion_tokens": ratio(total["completion_tokens"], total.get("reward_samples", 0.0)),
    }
    return out | reward_means(total, prefix="")


def prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{name}": value for name, value in metrics.items()}


__all__ = ["Rollouts", "completion_logps", "generate_rollouts", "rl_step", "train_loop"]
