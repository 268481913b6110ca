"""``instructflow bench rl``: the RL step's cost under Ray Train against a plain PyTorch loop
in the same process: seconds per step split into generation, reward and update, and
completion tokens/s; every figure beside its ratio to the plain loop's. The machinery is
``bench.sft``'s (records as a pipeline output, a tiny Llama, ``TableShard``, thread counts).

1. **Data and model.** ``prompts`` instruction records of log-uniform length from the
   word list, each given one constraint by the data engine's own ``constrain`` stage (all
   lowercase, no commas, or an end phrase), written as a pipeline output; a tokenizer
   trained on them and a Llama of ``size`` with random weights. Prompt rows
   (``train.rl_rows.prompt_rows``) are made once.
2. **Plain loop.** In the driver, a ``Worker`` built by hand (rank 0 of 1, the model and
   optimizer as ``start_worker`` builds them) and ``train.rl.rl_step`` for every global
   batch of ``global_batches`` over the rows: exactly the per-step code a Ray Train worker
   runs, with its frozen reference and its rewards.
3. **Ray Train.** ``instructflow train rl`` (``ops.trainrun.run_rl``) on one worker of
   ``cpus`` CPUs, the same recipe, its per-step times read from ``metrics.jsonl``.
   Overhead = Ray's wall seconds per step (``time/wall_s``: the step and the read of its
   batch) over the plain loop's, after ``warmup_steps``. Sampling is seeded by (seed, step,
   rank) on both sides, so they train the same batches; the report gives the largest
   difference of their per-step mean rewards (0 while both sample the same completions).
4. **GPU** (``device="cuda"`` and torch sees one): the plain loop on the GPU in bf16.
   vLLM rollouts are not benchmarked here: they need a GPU per engine beside the worker's.

    instructflow bench rl --prompts 64 --steps 40 --warmup-steps 10 --cpus 2 --json-out rl.json
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench import sft

DEFAULT_WORKDIR = ".bench/rl"
KINDS = ("change_case:english_lowercase", "punctuation:no_comma", "startend:end_checker")
TIMES = ("generation", "reward", "update")


@dataclass(frozen=True)
class RLBenchSettings:
    workdir: Path = Path(DEFAULT_WORKDIR)
    prompts: int = 64
    size: str = "tiny"  # train.tiny.SIZES
    vocab_size: int = 1024
    prompts_per_step: int = 8
    samples_per_prompt: int = 4
    max_new_tokens: int = 32
    micro_batch_size: int = 16  # completions per forward pass
    steps: int = 40  # per loop, warm-up included
    warmup_steps: int = 10  # not timed, on every side
    learning_rate: float = 5e-4
    kl_coef: float = 0.1
    min_words: int = 5
    max_words: int = 60
    cpus: int = 2  # the Ray worker's CPUs and the plain loop's torch threads
    ray: bool = True  # False: the plain loop only
    device: str = "cpu"  # cuda: also the GPU section
    seed: int = 0


def check_settings(settings: RLBenchSettings) -> None:
    problems = [
        (settings.prompts < settings.prompts_per_step, "--prompts must fill one step"),
        (settings.steps <= settings.warmup_steps, "--steps must exceed --warmup-steps"),
        (settings.warmup_steps < 0, "--warmup-steps must be >= 0"),
        (settings.samples_per_prompt < 2, "--samples-per-prompt must be at least 2 (GRPO)"),
        (settings.cpus < 1, "--cpus must be at least 1"),
        (settings.size not in ("tiny", "small", "0.5b"), "--size: tiny, small or 0.5b"),
    ]
    bad = [text for failed, text in problems if failed]
    if bad:
        raise ValueError("; ".join(bad))


def rl_bench_records(settings: RLBenchSettings) -> list[dict[str, Any]]:
    """Instruction records, each constrained by the ``constrain`` stage itself."""
    from pipeline.constrain import Constrain, ConstrainConfig
    from pipeline.schema import rows_to_table

    base = sft.bench_records(
        sft.SFTBenchSettings(
            records=settings.prompts,
            min_words=settings.min_words,
            max_words=settings.max_words,
            seed=settings.seed,
        )
    )
    stage = Constrain(ConstrainConfig(kinds=KINDS, held_out_kinds=(), per_record_max=1))
    table, _ = stage.run(rows_to_table(base))
    return table.to_pylist()


def rl_recipe_dict(settings: RLBenchSettings, data: Path, model: str, output: Path) -> dict:
    return {
        "name": "bench-rl",
        "seed": settings.seed,
        "data": {"path": str(data), "validation_split": None},
        "model": {"name_or_path": model},
        "prompt": {"format": "chat", "max_length": 256},
        "rl": {"algorithm": "grpo", "kl_coef": settings.kl_coef},
        "rollout": {
            "prompts_per_step": settings.prompts_per_step,
            "samples_per_prompt": settings.samples_per_prompt,
            "max_new_tokens": settings.max_new_tokens,
        },
        "rewards": [{"kind": "ifeval"}],
        "training": {
            "max_steps": settings.steps,
            "epochs": 1000,
            "micro_batch_size": settings.micro_batch_size,
            "learning_rate": settings.learning_rate,
            "log_every_steps": 1,
        },
        "eval": {"every_steps": settings.steps, "samples": 0},
        "scaling": {"num_workers": 1, "cpus_per_worker": settings.cpus},
        "output": {"path": str(output)},
    }


def step_summary(steps: list[dict[str, float]], warmup_steps: int) -> dict[str, Any]:
    """Mean seconds per step (wall, and generation / reward / update with their shares of
    the step) and completion tokens/s, over the steps after ``warmup_steps``."""
    kept = [entry for entry in steps if entry["step"] > warmup_steps]
    if not kept:
        raise ValueError(f"no step after the {warmup_steps} warm-up steps")
    wall = sum(entry["wall_s"] for entry in kept)
    inside = sum(entry["step_s"] for entry in kept)
    tokens = sum(entry["completion_tokens"] for entry in kept)
    out = {
        "timed_steps": len(kept),
        "wall_s_per_step": round(wall / len(kept), 4),
        "step_s_per_step": round(inside / len(kept), 4),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "reward_first": round(steps[0]["reward"], 4),
        "reward_last": round(float(np.mean([e["reward"] for e in steps[-5:]])), 4),
    }
    for name in TIMES:
        seconds = sum(entry[f"{name}_s"] for entry in kept)
        out[f"{name}_s_per_step"] = round(seconds / len(kept), 4)
        out[f"{name}_share"] = round(seconds / inside, 3)
    return out


def plain_loop(settings: RLBenchSettings, recipe: Any, plan: Any, rows: Any, device: Any) -> list:
    """``rl_step`` over the global batches in this process, as one Ray Train worker runs it;
    each step's times, completion tokens and mean reward."""
    import torch

    from train.rewards.runner import RewardSet
    from train.rl import load_policy_reference, rl_step, step_means
    from train.sft import (
        Progress,
        Worker,
        build_optimizer,
        build_scheduler,
        global_batches,
        load_model,
        wants_bf16,
        wrap_model,
    )
    from train.sft_rows import load_tokenizer

    model, unwrapped = wrap_model(load_model(recipe, plan, None, device), recipe, device)
    optimizer = build_optimizer(model, recipe, device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if wants_bf16(recipe.training.precision, device)
        else nullcontext()
    )
    worker = Worker(
        0,
        1,
        device,
        autocast,
        model,
        unwrapped,
        optimizer,
        build_scheduler(optimizer, recipe, plan.total_steps),
        Progress(),
        None,
    )
    reference = load_policy_reference(recipe, plan, device)
    rewards = RewardSet(recipe.rewards, device)
    tokenizer = load_tokenizer(plan.tokenizer_path)
    steps = []
    finished = time.perf_counter()
    for step, batch in global_batches(sft.TableShard(rows), plan, recipe, 0):
        if step >= plan.total_steps:
            break
        sums, _ = rl_step(worker, reference, rewards, tokenizer, recipe, plan, batch, step)
        wall = time.perf_counter() - finished
        steps.append(step_entry(step + 1, step_means(sums), wall, sums["completion_tokens"]))
        finished = time.perf_counter()
    rewards.close()
    return steps


def step_entry(
    step: int, means: dict[str, float], wall: float, completion_tokens: float
) -> dict[str, float]:
    """One step's numbers, the same for both sides (``means`` as ``train.rl.step_means``)."""
    return {
        "step": step,
        "wall_s": wall,
        "step_s": means["time/step_s"],
        **{f"{name}_s": means[f"time/{name}_s"] for name in TIMES},
        "completion_tokens": completion_tokens,
        "reward": means["train/reward"],
    }


def logged_steps(metrics_path: Path) -> list[dict[str, float]]:
    """The Ray worker's per-step entries of ``metrics.jsonl``, in ``step_entry``'s shape."""
    steps = []
    for line in metrics_path.read_text().splitlines():
        entry = json.loads(line)
        if "time/wall_s" not in entry:
            continue
        # One worker: tokens/s is the step's completion tokens over its seconds.
        tokens = entry["train/tokens_per_s"] * entry["time/step_s"]
        steps.append(step_entry(entry["step"], entry, entry["time/wall_s"], tokens))
    return steps


def bench_rl(settings: RLBenchSettings, json_out: str | None = None) -> dict[str, Any]:
    import torch

    from train.config import parse_rl_recipe
    from train.rl_rows import prompt_rows
    from train.sft import TrainPlan
    from train.sft_rows import load_tokenizer
    from train.tiny import save_tiny_model

    check_settings(settings)
    workdir = settings.workdir
    records = rl_bench_records(settings)
    data = sft.write_pipeline_output(workdir / "data", records)
    model = save_tiny_model(
        str(data), str(workdir / "model"), size=settings.size, vocab_size=settings.vocab_size
    )
    recipe_data = rl_recipe_dict(settings, data, model, workdir / "run")
    recipe = parse_rl_recipe(recipe_data, "bench")
    tokenizer = load_tokenizer(model)
    rows = prompt_rows(records, tokenizer, "chat", recipe.prompt.max_length)
    global_batch = settings.prompts_per_step
    plan = TrainPlan(
        kind="causal",
        packing=False,
        pad_id=tokenizer.pad_token_id,
        model_path=model,
        tokenizer_path=model,
        train_rows=rows.num_rows,
        validation_rows=0,
        global_batch=global_batch,
        steps_per_epoch=rows.num_rows // global_batch,
        total_steps=settings.steps,
        log_dir="",
        method="rl",
    )
    report: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "data": {
            "prompts": rows.num_rows,
            "prompt_tokens": int(sum(rows.column("tokens").to_pylist())),
        },
        "load_average": sft.load_average(),
    }
    with sft.torch_threads(settings.cpus) as threads:
        started = time.perf_counter()
        plain = plain_loop(settings, recipe, plan, rows, torch.device("cpu"))
        report["plain"] = step_summary(plain, settings.warmup_steps) | {
            "torch_threads": threads,
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
    if settings.ray:
        from ops.trainrun import run_rl

        recipe_path = workdir / "rl.yaml"
        recipe_path.write_text(yaml.safe_dump(recipe_data))
        ran = sft.ray_run(settings, recipe_path, run=run_rl)
        logged = logged_steps(Path(workdir / "run" / "logs" / "metrics.jsonl"))
        ray_side = step_summary(logged, settings.warmup_steps)
        report["ray"] = ray_side | {
            "wall_seconds": ran["wall_seconds"],
            "connect_seconds": ran["connect_seconds"],
            "worker": ran["worker"],
        }
        plain_side = report["plain"]
        report["ray_vs_plain"] = {
            "wall_s_per_step": round(
                ray_side["wall_s_per_step"] / plain_side["wall_s_per_step"], 3
            ),
            "completion_tokens_per_s": round(
                ray_side["completion_tokens_per_s"] / plain_side["completion_tokens_per_s"], 3
            ),
            "max_reward_difference": round(
                max(abs(a["reward"] - b["reward"]) for a, b in zip(plain, logged, strict=False)), 6
            ),
        }
    if settings.device == "cuda":
        report["gpu"] = gpu_section(settings, recipe, plan, rows)
    report["load_average_after"] = sft.load_average()
    print_report(report)
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def gpu_section(settings: RLBenchSettings, recipe: Any, plan: Any, rows: Any) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA device"}
    gpu_recipe = recipe.model_copy(
        update={"training": recipe.training.model_copy(update={"precision": "bf16"})}
    )
    steps = plain_loop(settings, gpu_recipe, plan, rows, torch.device("cuda"))
    return step_summary(steps, settings.warmup_steps) | {
        "device": torch.cuda.get_device_name(),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
    }


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    lines = [
        f"RL step, {settings['size']} Llama: {settings['prompts_per_step']} prompts x "
        f"{settings['samples_per_prompt']} samples, up to {settings['max_new_tokens']} new "
        f"tokens; {report['data']['prompts']} prompts; load {report['load_average']}",
        f"{'':8} {'s/step':>8} {'generation':>17} {'reward':>15} {'update':>15} {'tok/s':>8}",
    ]
    for side in ("plain", "ray", "gpu"):
        row = report.get(side)
        if not row or "skipped" in row:
            continue
        split = "  ".join(
            f"{row[f'{name}_s_per_step']:7.4f} ({row[f'{name}_share']:4.0%})" for name in TIMES
        )
        lines.append(
            f"{side:8} {row['wall_s_per_step']:8.4f} {split} {row['completion_tokens_per_s']:8.1f}"
        )
    if "ray_vs_plain" in report:
        ratio = report["ray_vs_plain"]
        lines.append(
            f"Ray Train / plain: {ratio['wall_s_per_step']:.3f}x seconds per step "
            f"({(ratio['wall_s_per_step'] - 1):+.1%}), {ratio['completion_tokens_per_s']:.3f}x "
            f"tokens/s; largest per-step reward difference {ratio['max_reward_difference']:.4g}"
        )
    if report.get("gpu", {}).get("skipped"):
        lines.append(f"GPU: skipped ({report['gpu']['skipped']})")
    print("\n".join(lines), flush=True)


__all__ = ["RLBenchSettings", "bench_rl", "check_settings", "step_summary"]
