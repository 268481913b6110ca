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
   batch) over the plain loop's, after ``warmup_steps``. Before it, Ray started and idle, the
   plain loop once more: the part of the overhead that is Ray's own processes sharing the
   CPUs. Sampling is seeded by (seed, step, rank) on every side, so they train the same
   batches; the report gives the largest difference of their per-step mean rewards (0 while
   they sample the same completions).
4. **GPU** (``device`` auto or cuda, and torch sees one): the plain loop on the GPU in bf16,
   with peak CUDA memory. A note instead otherwise.
5. **vLLM rollouts** (a GPU and ``vllm`` imports): the same GPU loop with
   ``train.rollout_vllm.VllmSampler`` (an engine actor on the GPU, weights pushed after every
   step) instead of the policy's generate(); its ratio to the GPU loop. A note otherwise.

    instructflow bench rl --prompts 64 --steps 40 --warmup-steps 10 --cpus 2 --json-out rl.json
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench import sft
from train.tiny import SIZES

DEFAULT_WORKDIR = ".bench/rl"
KINDS = ("change_case:english_lowercase", "punctuation:no_comma", "startend:end_checker")
TIMES = ("generation", "reward", "update")
DEVICES = ("auto", "cpu", "cuda")
SIDES = {  # the report's rows, as printed
    "plain": "plain",
    "ray": "Ray Train",
    "plain_beside_ray": "plain, Ray up",
    "gpu": "plain, GPU",
    "vllm": "vLLM, GPU",
}


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
    device: str = "auto"  # auto: the GPU sections when torch sees CUDA; cuda: insist
    seed: int = 0


def check_settings(settings: RLBenchSettings) -> None:
    """Every argument checked before anything is generated or started."""
    problems = [
        (settings.prompts < settings.prompts_per_step, "--prompts must fill one step"),
        (settings.prompts_per_step < 1, "--prompts-per-step must be at least 1"),
        (settings.samples_per_prompt < 2, "--samples-per-prompt must be at least 2 (GRPO)"),
        (settings.max_new_tokens < 1, "--max-new-tokens must be at least 1"),
        (settings.micro_batch_size < 1, "--micro-batch-size must be at least 1"),
        (settings.steps <= settings.warmup_steps, "--steps must exceed --warmup-steps"),
        (settings.warmup_steps < 0, "--warmup-steps must be >= 0"),
        (settings.cpus < 1, "--cpus must be at least 1"),
        (settings.size not in SIZES, f"--size must be one of {', '.join(SIZES)}"),
        (settings.device not in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
        (not 1 <= settings.min_words <= settings.max_words, "need 1 <= --min-words <= --max-words"),
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
    """Mean seconds per step (wall; the read of its batch, the wall less the step; generation
    / reward / update with their shares of the step) and completion tokens/s, over the steps
    after ``warmup_steps``."""
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
        "read_s_per_step": round((wall - inside) / len(kept), 4),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "reward_first": round(steps[0]["reward"], 4),
        "reward_last": round(float(np.mean([e["reward"] for e in steps[-5:]])), 4),
    }
    for name in TIMES:
        seconds = sum(entry[f"{name}_s"] for entry in kept)
        out[f"{name}_s_per_step"] = round(seconds / len(kept), 4)
        out[f"{name}_share"] = round(seconds / inside, 3)
    return out


def rl_plan(recipe: Any, rows: Any, pad_id: int, model: str) -> Any:
    """The ``TrainPlan`` ``train.rl_launch`` makes for these rows on one worker: a global
    batch of ``rollout.prompts_per_step`` prompts."""
    from train.launch import plan_steps
    from train.sft import TrainPlan

    global_batch, steps_per_epoch, total_steps = plan_steps(
        recipe, rows.num_rows, global_batch=recipe.rollout.prompts_per_step
    )
    return TrainPlan(
        kind="causal",
        packing=False,
        pad_id=pad_id,
        model_path=model,
        tokenizer_path=model,
        train_rows=rows.num_rows,
        validation_rows=0,
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        log_dir="",
        method="rl",
    )


def plain_worker(recipe: Any, plan: Any, device: Any) -> Any:
    """Rank 0 of 1, its model and optimizer as ``train.sft.start_worker`` builds them."""
    import torch

    from train.sft import (
        Progress,
        Worker,
        build_optimizer,
        build_scheduler,
        load_model,
        wants_bf16,
        wrap_model,
    )

    model, unwrapped = wrap_model(load_model(recipe, plan, None, device), recipe, device)
    optimizer = build_optimizer(model, recipe, device)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if wants_bf16(recipe.training.precision, device)
        else nullcontext()
    )
    scheduler = build_scheduler(optimizer, recipe, plan.total_steps)
    return Worker(0, 1, device, autocast, model, unwrapped, optimizer, scheduler, Progress(), None)


def plain_loop(
    recipe: Any, plan: Any, rows: Any, device: Any, vllm: bool = False
) -> list[dict[str, float]]:
    """``rl_step`` over the global batches in this process, as one Ray Train worker runs it
    (``vllm``: with the worker's ``VllmSampler``, which needs Ray started); each step's
    times, completion tokens and mean reward."""
    from train.rewards.runner import RewardSet
    from train.rl import load_policy_reference, rl_step, step_means
    from train.sft import global_batches
    from train.sft_rows import load_tokenizer

    worker = plain_worker(recipe, plan, device)
    reference = load_policy_reference(recipe, plan, device)
    rewards = RewardSet(recipe.rewards, device)
    tokenizer = load_tokenizer(plan.tokenizer_path)
    sampler = None
    if vllm:
        from train.rollout_vllm import VllmSampler

        sampler = VllmSampler(recipe, plan, worker)
    steps = []
    finished = time.perf_counter()
    try:
        for step, batch in global_batches(sft.TableShard(rows), plan, recipe, 0):
            if step >= plan.total_steps:
                break
            sums, _ = rl_step(
                worker, reference, rewards, tokenizer, recipe, plan, batch, step, sampler
            )
            wall = time.perf_counter() - finished
            steps.append(step_entry(step + 1, step_means(sums), wall, sums["completion_tokens"]))
            finished = time.perf_counter()
    finally:
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


def compared(
    top: dict[str, Any],
    bottom: dict[str, Any],
    top_steps: list[dict[str, float]],
    bottom_steps: list[dict[str, float]],
) -> dict[str, Any]:
    """``top`` over ``bottom`` (``step_summary``s): seconds per step, each part and tokens/s,
    and the largest difference of the two runs' per-step mean rewards (0 when both sampled
    the same completions). Raises when they did not log the same steps."""
    rewards = {entry["step"]: entry["reward"] for entry in top_steps}
    steps = [entry["step"] for entry in bottom_steps]
    if sorted(rewards) != steps:
        raise ValueError(f"the runs logged different steps: {sorted(rewards)} and {steps}")
    keys = ("wall_s_per_step", *(f"{name}_s_per_step" for name in TIMES))
    out = {key: round(top[key] / bottom[key], 3) if bottom[key] else None for key in keys}
    out["completion_tokens_per_s"] = round(
        top["completion_tokens_per_s"] / bottom["completion_tokens_per_s"], 3
    )
    out["overhead"] = round(top["wall_s_per_step"] / bottom["wall_s_per_step"] - 1, 3)
    differences = [abs(entry["reward"] - rewards[entry["step"]]) for entry in bottom_steps]
    out["max_reward_difference"] = round(max(differences), 6)
    out["steps_compared"] = len(steps)
    return out


def bench_rl(settings: RLBenchSettings, json_out: str | None = None) -> dict[str, Any]:
    """Every section; prints the table and returns (and optionally writes) the report."""
    import torch

    from train.config import parse_rl_recipe
    from train.rl_rows import prompt_rows
    from train.sft_rows import load_tokenizer
    from train.tiny import save_tiny_model

    check_settings(settings)
    workdir = settings.workdir.resolve()
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "workdir": str(workdir)},
        "machine": {"cpu_count": os.cpu_count(), "load_average_start": sft.load_average()},
    }
    records = rl_bench_records(settings)
    data = sft.write_pipeline_output(workdir / "data", records)
    model = save_tiny_model(
        str(data), str(workdir / "model"), size=settings.size, vocab_size=settings.vocab_size
    )
    recipe_data = rl_recipe_dict(settings, data, model, workdir / "run")
    recipe = parse_rl_recipe(recipe_data, "bench")
    tokenizer = load_tokenizer(model)
    rows = prompt_rows(records, tokenizer, "chat", recipe.prompt.max_length)
    plan = rl_plan(recipe, rows, tokenizer.pad_token_id, model)
    report["data"] = {
        "prompts": rows.num_rows,
        "prompt_tokens": int(sum(rows.column("tokens").to_pylist())),
    }
    report["model"] = {"size": settings.size, "params": sft.model_params(model)}
    with sft.torch_threads(settings.cpus) as threads:
        report["machine"]["plain_torch_threads"] = threads
        started = time.perf_counter()
        plain = plain_loop(recipe, plan, rows, torch.device("cpu"))
        report["plain"] = step_summary(plain, settings.warmup_steps) | {
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
    if settings.ray:
        report["ray"], logged, beside = rl_ray_run(settings, recipe, plan, rows, recipe_data)
        report["ray_over_plain"] = compared(report["ray"], report["plain"], logged, plain)
        beside_steps = beside.pop("steps")
        report["plain_beside_ray"] = beside
        report["plain_beside_ray_over_plain"] = compared(
            beside, report["plain"], beside_steps, plain
        )
    report["gpu"], report["vllm"] = gpu_sections(settings, recipe, plan, rows)
    report["machine"]["load_average_end"] = sft.load_average()
    print_report(report)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def rl_ray_run(
    settings: RLBenchSettings, recipe: Any, plan: Any, rows: Any, recipe_data: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, float]], dict[str, Any]]:
    """``run_rl`` on a local Ray of ``cpus`` CPUs (``sft.ray_run``): its steady summary with
    Ray's start and wall seconds and the worker's torch threads, and its logged steps; and,
    run first, Ray started and nothing scheduled, the plain loop again in this process (how
    much of the overhead is Ray's own processes sharing the CPUs, not the Train worker)."""
    import ray
    import torch

    from ops.cluster import connect
    from ops.trainrun import run_rl

    recipe_path = Path(recipe_data["output"]["path"]).parent / "rl.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe_data))
    started_ray, started = not ray.is_initialized(), time.perf_counter()
    connect(None, progress_bars=False, num_cpus=settings.cpus)
    connect_seconds = round(time.perf_counter() - started, 2)
    try:
        # Before the run: once it ends, its controller and actors still wind down for seconds.
        with sft.torch_threads(settings.cpus):
            beside = plain_loop(recipe, plan, rows, torch.device("cpu"))
        ran = sft.ray_run(settings, recipe_path, run=run_rl)
    finally:
        if started_ray:
            ray.shutdown()
    # A local output's logs are output/logs (train.sft_launch.prepare).
    logged = logged_steps(Path(recipe_data["output"]["path"]) / "logs" / "metrics.jsonl")
    summary = step_summary(logged, settings.warmup_steps) | {
        "wall_seconds": ran["wall_seconds"],
        "connect_seconds": connect_seconds,
        "worker": ran["worker"],
    }
    beside_summary = step_summary(beside, settings.warmup_steps) | {"steps": beside}
    return summary, logged, beside_summary


def gpu_sections(
    settings: RLBenchSettings, recipe: Any, plan: Any, rows: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plain loop on CUDA in bf16, then with vLLM rollouts; a note in place of either
    when it cannot run."""
    import torch

    if settings.device == "cpu":
        skipped = {"skipped": "not asked for (--device cpu)"}
        return skipped, skipped
    if not torch.cuda.is_available():
        skipped = {"skipped": f"torch {torch.__version__} sees no CUDA device"}
        return skipped, skipped
    gpu_recipe = recipe.model_copy(
        update={"training": recipe.training.model_copy(update={"precision": "bf16"})}
    )
    gpu_steps = gpu_run(settings, gpu_recipe, plan, rows, vllm=False)
    gpu = step_summary(gpu_steps, settings.warmup_steps)
    gpu |= {"device": torch.cuda.get_device_name(), **peak_cuda_mib()}
    try:  # imported, not only found: a broken install is skipped too
        import vllm  # noqa: F401
    except ImportError as error:
        return gpu, {"skipped": f"vllm does not import ({error})"}
    vllm_recipe = gpu_recipe.model_copy(
        update={
            "rollout": gpu_recipe.rollout.model_copy(update={"engine": "vllm"}),
            "scaling": gpu_recipe.scaling.model_copy(update={"use_gpu": True}),
        }
    )
    vllm_steps = gpu_run(settings, vllm_recipe, plan, rows, vllm=True)
    sampled = step_summary(vllm_steps, settings.warmup_steps) | peak_cuda_mib()
    # vLLM samples its own completions: the rewards need not agree with generate()'s.
    sampled["over_gpu"] = compared(sampled, gpu, vllm_steps, gpu_steps)
    return gpu, sampled


def gpu_run(settings: RLBenchSettings, recipe: Any, plan: Any, rows: Any, vllm: bool) -> list:
    """The plain loop on the GPU, peak memory counted from here; with vLLM inside a local
    Ray, which the engine actor needs."""
    import ray
    import torch

    from ops.cluster import connect

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    if not vllm:
        return plain_loop(recipe, plan, rows, torch.device("cuda"))
    started_ray = not ray.is_initialized()
    connect(None, progress_bars=False, num_cpus=settings.cpus)
    try:
        return plain_loop(recipe, plan, rows, torch.device("cuda"), vllm=True)
    finally:
        if started_ray:
            ray.shutdown()


def peak_cuda_mib() -> dict[str, float]:
    import torch

    return {"peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}


# ---------------------------------------------------------------------------------------
# Printing


def print_report(report: dict[str, Any]) -> None:
    settings, machine = report["settings"], report["machine"]
    print(
        f"\nRL step, {settings['size']} Llama ({report['model']['params'] / 1e6:.2f}M "
        f"parameters): {settings['prompts_per_step']} prompts x "
        f"{settings['samples_per_prompt']} samples, up to {settings['max_new_tokens']} new "
        f"tokens; {report['data']['prompts']} prompts; cpu_count {machine['cpu_count']}, "
        f"plain loop torch threads {machine['plain_torch_threads']}"
    )
    print(
        f"seconds per step over steps {settings['warmup_steps'] + 1}-{settings['steps']} "
        f"(the first {settings['warmup_steps']} are warm-up): wall, the read of its batch, and the "
        "step's parts with their shares of it"
    )
    print(
        f"  {'':14}{'s/step':>8}{'read':>8}{'generation':>18}{'reward':>16}{'update':>16}"
        f"{'tok/s':>9}"
    )
    for side in ("plain", "ray", "plain_beside_ray", "gpu", "vllm"):
        row = report.get(side, {})
        if row and "skipped" not in row:
            print_side(SIDES[side], row)
    if "ray_over_plain" in report:
        print_ray(report)
    else:
        print("  Ray Train: not run (ray=False)")
    for side in ("gpu", "vllm"):
        if "skipped" in report[side]:
            print(f"{side}: skipped: {report[side]['skipped']}")
    if "over_gpu" in report["vllm"]:
        over = report["vllm"]["over_gpu"]
        print(
            f"vLLM rollouts / generate(), GPU: {over['wall_s_per_step']:.3f}x seconds per "
            f"step, {over['generation_s_per_step']:.3f}x generation seconds"
        )
    start, end = machine["load_average_start"][0], machine["load_average_end"][0]
    print(f"load average (1 min) {start:.2f} at the start, {end:.2f} at the end", flush=True)


def print_side(side: str, row: dict[str, Any]) -> None:
    split = "".join(
        f"{row[f'{name}_s_per_step']:>10.4f} ({row[f'{name}_share']:4.0%})" for name in TIMES
    )
    print(
        f"  {side:14}{row['wall_s_per_step']:>8.4f}{row['read_s_per_step']:>8.4f}{split}"
        f"{row['completion_tokens_per_s']:>9,.0f}"
    )


def print_ray(report: dict[str, Any]) -> None:
    ray, ratio = report["ray"], report["ray_over_plain"]
    parts = ", ".join(f"{name} {ratio[f'{name}_s_per_step']:.3f}x" for name in TIMES)
    print(
        f"  Ray Train / plain: {ratio['wall_s_per_step']:.3f}x seconds per step (overhead "
        f"{ratio['overhead']:+.1%}, goal <= 10%), {ratio['completion_tokens_per_s']:.3f}x "
        f"tokens/s; {parts}"
    )
    threads, steps = ray["worker"], report["settings"]["steps"]
    print(
        f"  Ray: run_rl {ray['wall_seconds']:.1f} s wall (data, worker start, {steps} steps, "
        f"checkpoint), Ray start {ray['connect_seconds']:.1f} s; plain loop "
        f"{report['plain']['wall_seconds']:.1f} s; Ray worker torch threads "
        f"{threads['torch_threads']} (OMP_NUM_THREADS={threads['OMP_NUM_THREADS']})"
    )
    beside = report["plain_beside_ray_over_plain"]
    print(
        f"  the plain loop again with Ray started, idle (its processes on the same CPUs): "
        f"{beside['wall_s_per_step']:.3f}x plain ({beside['overhead']:+.1%}); Ray Train / that: "
        f"{ratio['wall_s_per_step'] / beside['wall_s_per_step']:.3f}x"
    )
    largest = max(ratio["max_reward_difference"], beside["max_reward_difference"])
    print(
        f"  same batches: largest per-step mean reward difference from the plain loop "
        f"{largest:.3g} over {ratio['steps_compared']} steps (Ray Train and plain with Ray up)"
    )


__all__ = ["RLBenchSettings", "bench_rl", "check_settings", "compared", "step_summary"]
