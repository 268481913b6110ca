"""``instructflow bench dpo``: the DPO step's tokens/s under Ray Train against a plain PyTorch
loop in the same process, and a stored (precomputed) reference against an in-process one;
every figure a ratio against a baseline of the same run, the absolutes beside it. The
machinery is ``bench.sft``'s (word list, steady windows, thread counts, ``TableShard``).

1. **Data and model.** ``records`` pair records (a prompt, a chosen and a rejected reply of
   independent log-uniform lengths from the word list) written as a pipeline output, the
   chosen reply the last assistant turn of ``messages``, the rejected one in ``rejected``; a
   tokenizer trained on them and a Llama of ``size`` with random weights. Pair rows
   (``train.dpo_rows.pair_rows``) and their reference log-probabilities (``ReferenceLogps``,
   the Ray Data callable, called in the driver) are made once.
2. **Ray Train overhead.** Tokens/s (both replies, no padding) (a) of a plain loop in the
   driver doing what ``train.dpo.train_loop`` does per step on one worker, with its functions
   (``load_model``, ``build_optimizer``, ``build_scheduler``, ``global_batches``,
   ``side_logps``, ``reference_logps``, ``example_losses``, ``PreferenceTotals``, clipping,
   the non-finite check) on the stored-reference rows, and (b) of ``instructflow train dpo``
   (``ops.trainrun.run_dpo``, one worker of ``cpus`` CPUs), from its ``metrics.jsonl``.
   Beside them the wall seconds of ``run_dpo`` and the largest difference of the two sides'
   logged losses (float noise when they trained the same batches).
3. **Stored vs in-process reference.** The plain loop with a frozen reference model instead:
   tokens/s of each; memory as the peak RSS of a fresh subprocess per variant that loads the
   rows and models and runs ``memory_steps`` steps, and the models' parameter + buffer bytes;
   the one-off Ray Data reference pass (seconds, rows/s) against what the in-process
   reference adds per epoch: the epochs after which precomputing pays off.
4. **GPU** (``device="cuda"`` and torch sees one): both plain loops in bf16 autocast, with
   peak CUDA memory. Skipped with a note otherwise.

    instructflow bench dpo --records 2000 --size small --steps 120 --cpus 2 --json-out dpo.json
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import sft
from pipeline.schema import make_record, message
from train.config import DPORecipe

DEFAULT_WORKDIR = ".bench/dpo"
REFERENCE_LOSSES = ("sigmoid", "ipo", "kto")  # the reference-free ones have nothing to compare
VARIANTS = ("precomputed", "in_process")


@dataclass(frozen=True)
class DPOBenchSettings:
    workdir: Path = Path(DEFAULT_WORKDIR)
    records: int = 2_000
    size: str = "small"  # train.tiny.SIZES
    vocab_size: int = 2048
    max_length: int = 512
    prompt_format: str = "chat"
    micro_batch_size: int = 4  # pairs: each micro-batch is twice as many sequences
    steps: int = 120  # per loop, warm-up included
    log_every_steps: int = 10  # the tokens/s window
    warmup_steps: int = 20  # not timed, on every side; a multiple of log_every_steps
    learning_rate: float = 5e-4
    loss: str = "sigmoid"
    beta: float = 0.1
    min_words: int = 10  # per reply
    max_words: int = 200
    cpus: int = 2  # the Ray worker's CPUs and the plain loop's torch threads
    ray: bool = True  # False: the plain loops only
    memory_steps: int = 10  # steps of each memory subprocess
    device: str = "cpu"  # cuda: also the GPU section
    seed: int = 0


def check_settings(settings: DPOBenchSettings) -> None:
    """Every argument checked before anything is generated or started."""
    problems = sft.shared_problems(settings, {"--steps": settings.steps})
    problems += [
        (
            settings.loss not in REFERENCE_LOSSES,
            f"--loss must be one of {', '.join(REFERENCE_LOSSES)} (a loss with a reference)",
        ),
        (settings.beta <= 0, "--beta must be positive"),
        (settings.memory_steps < 1, "--memory-steps must be at least 1"),
    ]
    bad = [text for failed, text in problems if failed]
    if bad:
        raise ValueError("; ".join(bad))


# ---------------------------------------------------------------------------------------
# Data and recipe


def pair_bench_records(settings: DPOBenchSettings) -> list[dict[str, Any]]:
    """Canonical pair records, chosen and rejected replies of independent log-uniform
    lengths, so a micro-batch mixes short and long sequences. Seeded."""
    rng = np.random.default_rng(settings.seed)
    lengths = sft.log_uniform_lengths(
        rng, 2 * settings.records, settings.min_words, settings.max_words
    )
    records = []
    for line in range(settings.records):
        chosen, rejected = (int(n) for n in lengths[2 * line : 2 * line + 2])
        topic = sft.TOPICS[line % len(sft.TOPICS)]
        records.append(
            make_record(
                messages=[
                    message("user", f"Write about {topic} in about {chosen} words."),
                    message("assistant", sft.reply_text(rng, chosen)),
                ],
                rejected=[message("assistant", sft.reply_text(rng, rejected))],
                source_file="bench-dpo.jsonl",
                source_format="pairwise",
                source_line=line,
                task="generation",
                language="en",
            )
        )
    return records


def dpo_recipe_dict(
    settings: DPOBenchSettings, data: Path, model: str, output: Path
) -> dict[str, Any]:
    """SFT's bench recipe, unpacked, with the preference loss and a stored reference."""
    recipe = sft.recipe_dict(settings, data, model, output)  # type: ignore[arg-type]: same fields
    recipe["name"] = "bench-dpo"
    recipe["prompt"] = {k: v for k, v in recipe["prompt"].items() if k != "packing"}
    recipe["preference"] = {
        "loss": settings.loss,
        "beta": settings.beta,
        "reference": "precomputed",
    }
    return recipe


def with_steps(recipe: dict[str, Any], steps: int, every: int) -> DPORecipe:
    training = {**recipe["training"], "max_steps": steps, "log_every_steps": every}
    return DPORecipe.model_validate({**recipe, "training": training})


def pair_summary(rows: pa.Table) -> dict[str, Any]:
    """Row count and summed counts, as ``train.launch.tokenized`` reports them."""
    from train.sft_rows import COUNT_COLUMNS

    sums = {name: int(pc.sum(rows.column(name)).as_py() or 0) for name in COUNT_COLUMNS}
    return {"rows": rows.num_rows, **sums}


def model_bytes(model: Any) -> int:
    """Parameter and buffer bytes of a model as held in memory."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


# ---------------------------------------------------------------------------------------
# The plain loop


def padded_slots(rows: dict[str, np.ndarray]) -> int:
    """Token slots ``side_logps`` runs for these rows: every non-empty side, padded to the
    longest of them (both sides go through one forward pass)."""
    lengths = [len(ids) for side in ("chosen", "rejected") for ids in rows[f"{side}_input_ids"]]
    lengths = [length for length in lengths if length]
    return len(lengths) * max(lengths, default=0)


def plain_loop(
    model: Any, reference: Any, rows: pa.Table, recipe: DPORecipe, plan: Any, device: Any
) -> list[dict[str, Any]]:
    """``train.dpo.train_loop``'s steps on one worker (no DDP, no evaluation, no checkpoint);
    per window of ``log_every_steps``: real tokens, padded slots, seconds and the window's
    last step's loss (what the worker logs), timed like the worker's windows."""
    import torch

    from train.dpo import PreferenceTotals, example_losses, examples_in, reference_logps
    from train.dpo_rows import side_logps
    from train.sft import (
        NonFiniteLoss,
        build_optimizer,
        build_scheduler,
        global_batches,
        wants_bf16,
    )

    training, preference = recipe.training, recipe.preference
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if wants_bf16(training.precision, device)
        else nullcontext()
    )
    optimizer = build_optimizer(model, recipe, device)
    scheduler = build_scheduler(optimizer, recipe, plan.total_steps)
    size = training.micro_batch_size
    windows: list[dict[str, Any]] = []
    tokens = slots = 0
    started = time.perf_counter()
    for step, global_rows in global_batches(sft.TableShard(rows), plan, recipe, 0):
        if step >= plan.total_steps:
            break
        torch.manual_seed(recipe.seed * 1_000_003 + step * 1009)  # dropout masks, as a worker
        model.train()
        step_examples = examples_in(global_rows, preference)
        totals = PreferenceTotals(device)
        for index in range(training.gradient_accumulation):
            micro = {
                k: column[index * size : (index + 1) * size] for k, column in global_rows.items()
            }
            with autocast:
                logps, counts = side_logps(model, model, micro, plan.pad_id, plan.kind, device)
                ref = reference_logps(micro, reference, plan, device)
                losses, rewards = example_losses(preference, logps, counts, ref, 1)
                loss = losses.sum() / step_examples
            loss.backward()
            totals.add(losses, rewards, logps, counts, ref)
            slots += padded_slots(micro)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), training.max_grad_norm)
        if not torch.isfinite(grad_norm):
            raise NonFiniteLoss(f"plain loop, step {step + 1}: gradient norm {float(grad_norm)}")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(global_rows["tokens"].sum())
        if (step + 1) % training.log_every_steps == 0:
            loss = totals.reduced(1, preference)["loss"]  # waits for the device, as a worker
            seconds = time.perf_counter() - started
            windows.append(
                {"step": step + 1, "tokens": tokens, "slots": slots, "seconds": seconds}
                | {"loss": round(loss, 6)}
            )
            tokens = slots = 0
            started = time.perf_counter()
    return windows


def variant_rows(rows: pa.Table, variant: str) -> pa.Table:
    """The stored-reference rows, or for ``in_process`` the same rows without them."""
    from train.dpo_rows import REFERENCE_COLUMNS

    return rows if variant == "precomputed" else rows.drop_columns(list(REFERENCE_COLUMNS))


def load_models(recipe: DPORecipe, plan: Any, variant: str, device: Any) -> tuple[Any, Any]:
    """(policy, frozen reference or None) as a worker loads them."""
    from train.dpo_rows import load_reference
    from train.sft import load_model

    model = load_model(recipe, plan, None, device)
    reference = None
    if variant == "in_process":
        model_options = (recipe.model.trust_remote_code, recipe.model.attn_implementation)
        reference = load_reference(plan.model_path, plan.kind, *model_options, device)
    return model, reference


def timed_plain_run(
    recipe: DPORecipe,
    rows: pa.Table,
    pad_id: int,
    model_path: str,
    variant: str,
    device: Any,
    warmup_steps: int,
) -> dict[str, Any]:
    """Load the models as a worker does and run the plain loop; its steady report, with the
    wall seconds of loading and every step."""
    started = time.perf_counter()
    rows = variant_rows(rows, variant)
    plan = sft.train_plan(recipe, rows, pad_id, model_path)
    model, reference = load_models(recipe, plan, variant, device)
    windows = plain_loop(model, reference, rows, recipe, plan, device)
    result = sft.steady(windows, warmup_steps)
    return {**result, "wall_seconds": round(time.perf_counter() - started, 2)}


# ---------------------------------------------------------------------------------------
# Memory: a fresh interpreter per variant


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def memory_probe(spec_path: str) -> dict[str, Any]:
    """Run in a fresh interpreter (``memory_run``): load the rows and models of one variant,
    run the steps; peak RSS after loading and after the steps, and the models' bytes."""
    import torch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    recipe = DPORecipe.model_validate(spec["recipe"])
    rows = variant_rows(pq.read_table(spec["rows"]), spec["variant"])
    plan = sft.train_plan(recipe, rows, spec["pad_id"], recipe.model.name_or_path)
    device = torch.device("cpu")
    model, reference = load_models(recipe, plan, spec["variant"], device)
    loaded = peak_rss()
    plain_loop(model, reference, rows, recipe, plan, device)
    return {
        "peak_rss_loaded": loaded,
        "peak_rss": peak_rss(),
        "policy_bytes": model_bytes(model),
        "reference_bytes": model_bytes(reference) if reference is not None else 0,
    }


def memory_run(settings: DPOBenchSettings, recipe: dict, rows_path: Path, pad_id: int) -> dict:
    """Both variants' memory probes, each in its own subprocess, and their ratios."""
    steps = settings.memory_steps
    spec = {
        "recipe": with_steps(recipe, steps, steps).to_plain(),
        "rows": str(rows_path),
        "pad_id": pad_id,
        "threads": settings.cpus,
    }
    code = "import json, sys; from bench.dpo import memory_probe as probe; "
    code += "print(json.dumps(probe(sys.argv[1])))"
    result: dict[str, Any] = {"steps": steps}
    for variant in VARIANTS:
        spec_path = rows_path.parent / f"memory-{variant}.json"
        spec_path.write_text(json.dumps({**spec, "variant": variant}))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        done = subprocess.run(
            [sys.executable, "-c", code, str(spec_path)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        result[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    stored, in_process = result["precomputed"], result["in_process"]
    result["in_process_over_precomputed"] = round(in_process["peak_rss"] / stored["peak_rss"], 3)
    result["extra_peak_rss"] = in_process["peak_rss"] - stored["peak_rss"]
    return result


# ---------------------------------------------------------------------------------------
# The benchmark


def bench_dpo(settings: DPOBenchSettings, json_out: str | None = None) -> dict[str, Any]:
    """Every section; prints the table and returns (and optionally writes) the report."""
    import torch

    check_settings(settings)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("ray").setLevel(logging.WARNING)
    workdir = settings.workdir.resolve()
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "workdir": str(workdir)},
        "machine": {"cpu_count": os.cpu_count(), "load_average_start": sft.load_average()},
    }
    recipe, model_path, rows, pad_id = prepare_inputs(settings, workdir, report)
    rows_path = workdir / "pair-rows.parquet"
    pq.write_table(rows, rows_path)
    recipe_path = workdir / "dpo.yaml"
    recipe_path.write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    parsed, cpu = DPORecipe.model_validate(recipe), torch.device("cpu")
    with sft.torch_threads(settings.cpus) as threads:
        report["machine"]["plain_torch_threads"] = threads
        report["plain"] = {
            variant: timed_plain_run(
                parsed, rows, pad_id, model_path, variant, cpu, settings.warmup_steps
            )
            for variant in VARIANTS
        }
    plain = report["plain"]
    report["in_process_over_precomputed"] = ratio(plain["in_process"], plain["precomputed"])
    report["plain_same_losses"] = loss_difference(plain["precomputed"], plain["in_process"])
    report["memory"] = memory_run(settings, recipe, rows_path, pad_id)
    if settings.ray:
        report["ray"] = dpo_ray_run(settings, recipe_path, rows, report)
        report["ray_over_plain"] = ratio(report["ray"], plain["precomputed"])
    report["break_even"] = break_even(report)
    report["gpu"] = gpu_section(settings, parsed, rows, pad_id, model_path)
    report["machine"]["load_average_end"] = sft.load_average()
    print_report(report)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def prepare_inputs(
    settings: DPOBenchSettings, workdir: Path, report: dict[str, Any]
) -> tuple[dict[str, Any], str, pa.Table, int]:
    """Records written as a pipeline output, tokenizer and model saved, pair rows made and
    the reference pass run in this process (timed); (recipe, model path, rows, pad id)."""
    from train.dpo_rows import PAIR_RECORD_COLUMNS, ReferenceLogps, pair_rows
    from train.sft_rows import load_tokenizer
    from train.tiny import save_tiny_model

    started = time.perf_counter()
    root = sft.write_pipeline_output(workdir / "data", pair_bench_records(settings))
    model_path = str(workdir / f"model-{settings.size}")
    save_tiny_model(str(root), model_path, size=settings.size, vocab_size=settings.vocab_size)
    tokenizer = load_tokenizer(model_path)
    recipe = dpo_recipe_dict(settings, root, model_path, workdir / "ray-dpo")
    records = sft.read_records(root, PAIR_RECORD_COLUMNS)
    pad_id = tokenizer.pad_token_id
    rows = pair_rows(
        records, tokenizer, settings.prompt_format, settings.max_length, "causal", True
    )
    report["prepare_seconds"] = round(time.perf_counter() - started, 2)
    with sft.torch_threads(settings.cpus):
        started = time.perf_counter()
        # The Ray Data callable, called in this process: the stored reference's log-probs.
        rows = ReferenceLogps(model_path, "causal", pad_id, settings.micro_batch_size)(rows)
        seconds = time.perf_counter() - started
    report["data"] = pair_summary(rows) | {"pad_id": pad_id}
    report["data"]["plain_reference"] = {
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows.num_rows / seconds, 1),
    }
    report["model"] = {"size": settings.size, "params": sft.model_params(model_path)}
    return recipe, model_path, rows, pad_id


def dpo_ray_run(
    settings: DPOBenchSettings, recipe_path: Path, rows: pa.Table, report: dict
) -> dict[str, Any]:
    """``run_dpo`` on a local Ray of ``cpus`` CPUs, the worker's losses against the plain
    loop's, and a Ray Data reference pass over the same rows timed on its own (``run_dpo``'s
    data stats give only the seconds of its passes, however it composes them)."""
    import ray

    from ops.cluster import connect
    from ops.trainrun import run_dpo
    from train.launch import DATA_STATS

    recipe = json.loads(recipe_path.read_text())
    started_ray, started = not ray.is_initialized(), time.perf_counter()
    connect(None, progress_bars=False, num_cpus=settings.cpus)
    connect_seconds = round(time.perf_counter() - started, 2)
    try:
        result = sft.ray_run(settings, recipe_path, run=run_dpo) | {
            "connect_seconds": connect_seconds
        }
        model_path = recipe["model"]["name_or_path"]
        result["reference"] = ray_data_reference(settings, rows, model_path, report["data"])
    finally:
        if started_ray:
            ray.shutdown()
    output = Path(recipe["output"]["path"])
    stats = json.loads((output / DATA_STATS).read_text())
    result["data_pass_seconds"] = {k: v for k, v in stats.items() if k.endswith("_seconds")}
    result["same_rows"] = sft.same_rows(result["data"], report["data"])
    # A local output's logs are output/logs (train.sft_launch.prepare).
    logged = worker_losses(output / "logs" / "metrics.jsonl")
    result["loss_difference"] = loss_difference(report["plain"]["precomputed"], logged)
    return result


def ray_data_reference(
    settings: DPOBenchSettings, rows: pa.Table, model_path: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The reference log-probabilities of ``rows`` by ``ReferenceLogps`` actors (one per CPU,
    as ``train.launch`` sizes its pools), materialised: seconds and rows/s."""
    import ray.data

    from train.dpo_rows import ReferenceLogps

    rows = variant_rows(rows, "in_process")
    blocks = 4 * settings.cpus
    step = -(-rows.num_rows // blocks)
    started = time.perf_counter()
    ray.data.from_arrow([rows.slice(i, step) for i in range(0, rows.num_rows, step)]).map_batches(
        ReferenceLogps,
        fn_constructor_kwargs={
            "model_path": model_path,
            "kind": "causal",
            "pad_id": data["pad_id"],
            "batch_size": settings.micro_batch_size,
        },
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=settings.cpus),
    ).materialize()
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "rows_per_s": round(rows.num_rows / seconds, 1)}


def worker_losses(metrics_path: Path) -> dict[str, Any]:
    """The worker's logged training losses, one per window, as ``plain_loop`` keeps them."""
    entries = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    losses = [{"step": e["step"], "loss": e["train/loss"]} for e in entries if "train/loss" in e]
    return {"windows": losses}


def ratio(top: dict[str, Any], bottom: dict[str, Any]) -> float:
    return round(top["tokens_per_s"] / bottom["tokens_per_s"], 3)


def loss_difference(first: dict[str, Any], second: dict[str, Any]) -> float:
    """The largest difference of two runs' logged losses at the same steps: zero (to float
    noise) when both trained the same batches from the same model."""
    losses = {window["step"]: window["loss"] for window in second["windows"]}
    steps = [window["step"] for window in first["windows"]]
    if not steps or any(step not in losses for step in steps):
        raise ValueError(f"the runs logged different steps: {steps} and {sorted(losses)}")
    return max(abs(w["loss"] - losses[w["step"]]) for w in first["windows"])


def break_even(report: dict[str, Any]) -> dict[str, Any]:
    """Seconds the in-process reference adds per epoch of these rows, against the one-off
    reference pass (Ray Data's when Ray ran, else this process's): the epochs to pay off."""
    plain, tokens = report["plain"], report["data"]["tokens"]
    extra = (
        tokens / plain["in_process"]["tokens_per_s"] - tokens / plain["precomputed"]["tokens_per_s"]
    )
    source = report["ray"]["reference"] if "ray" in report else report["data"]["plain_reference"]
    return {
        "reference_pass_seconds": source["seconds"],
        "in_process_extra_seconds_per_epoch": round(extra, 2),
        "epochs": round(source["seconds"] / extra, 3) if extra > 0 else None,
    }


# ---------------------------------------------------------------------------------------
# GPU


def gpu_section(
    settings: DPOBenchSettings, recipe: DPORecipe, rows: pa.Table, pad_id: int, model_path: str
) -> dict[str, Any]:
    """Both plain loops on CUDA in bf16 autocast; tokens/s and peak CUDA memory of each. A note
    instead when not asked or no GPU."""
    import torch

    if settings.device != "cuda":
        return {"skipped": "not asked for (--device cuda runs it)"}
    if not torch.cuda.is_available():
        return {"skipped": f"--device cuda, but torch {torch.__version__} sees no CUDA device"}
    bf16 = recipe.model_copy(
        update={"training": recipe.training.model_copy(update={"precision": "bf16"})}
    )
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0)}
    for variant in VARIANTS:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        cuda = torch.device("cuda")
        run = timed_plain_run(bf16, rows, pad_id, model_path, variant, cuda, settings.warmup_steps)
        result[variant] = {**run, "peak_cuda_bytes": torch.cuda.max_memory_allocated()}
    result["in_process_over_precomputed"] = ratio(result["in_process"], result["precomputed"])
    return result


# ---------------------------------------------------------------------------------------
# Printing


def mib(count: int) -> str:
    return f"{count / 2**20:,.1f}"


def print_report(report: dict[str, Any]) -> None:
    settings, machine, data = report["settings"], report["machine"], report["data"]
    print(
        f"\ndata: {settings['records']:,} pair records, replies {settings['min_words']}-"
        f"{settings['max_words']} words each (log-uniform), {settings['prompt_format']}, "
        f"max_length {settings['max_length']}: {data['rows']:,} rows, {data['tokens']:,} "
        f"tokens ({data['supervised']:,} in replies), {data['truncated']} truncated"
    )
    print(
        f"model: {report['model']['size']} Llama, {report['model']['params'] / 1e6:.2f}M "
        f"parameters; {settings['loss']} loss, beta {settings['beta']:g}; micro-batch "
        f"{settings['micro_batch_size']} pairs; cpu_count {machine['cpu_count']}, plain loop "
        f"torch threads {machine['plain_torch_threads']}"
    )
    print_ray(report)
    print_reference(report)
    print_gpu(report["gpu"])
    start, end = machine["load_average_start"][0], machine["load_average_end"][0]
    print(f"load average (1 min) {start:.2f} at the start, {end:.2f} at the end")


def print_ray(report: dict[str, Any]) -> None:
    settings, plain = report["settings"], report["plain"]["precomputed"]
    warmup = settings["warmup_steps"]
    print(
        f"\n1. Ray Train overhead: stored reference, tokens/s over steps {warmup + 1}-"
        f"{plain['steps']} (the first {warmup} are warm-up)"
    )
    print(f"  {'':<36}{'tokens/s':>10}{'x plain':>9}{'wall s':>9}")
    print(
        f"  {'plain loop, driver process':<36}{plain['tokens_per_s']:>10,.0f}{1.0:>9.2f}"
        f"{plain['wall_seconds']:>9.1f}  load, {plain['steps']} steps"
    )
    print(f"  {'':<4}windows: {sft.window_rates(plain['windows'])}")
    if "ray" not in report:
        print("  Ray Train: not run (ray=False)")
        return
    ray, threads = report["ray"], report["ray"]["worker"]
    label = f"Ray Train, 1 worker x {settings['cpus']} CPUs"
    print(
        f"  {label:<36}{ray['tokens_per_s']:>10,.0f}{report['ray_over_plain']:>9.2f}"
        f"{ray['wall_seconds']:>9.1f}  run_dpo: pair rows, reference, steps, checkpoint"
    )
    passes = ", ".join(f"{k} {v:.1f}" for k, v in ray["data_pass_seconds"].items())
    print(f"  {'':<4}its Ray Data passes: {passes}")
    print(f"  {'':<4}windows: {sft.window_rates(ray['windows'])}")
    print(
        f"  overhead {1 - report['ray_over_plain']:.1%} (goal <= 10%); Ray start "
        f"{ray['connect_seconds']:.1f} s, not in the wall; torch threads: plain "
        f"{report['machine']['plain_torch_threads']}, Ray worker {threads['torch_threads']} "
        f"(OMP_NUM_THREADS={threads['OMP_NUM_THREADS']}); same rows: "
        f"{'yes' if ray['same_rows'] else 'NO'}; largest loss difference "
        f"{ray['loss_difference']:.2g}"
    )


def print_reference(report: dict[str, Any]) -> None:
    plain, memory = report["plain"], report["memory"]
    base = plain["precomputed"]["tokens_per_s"]
    print(f"\n2. Stored vs in-process reference, plain loop ({memory['steps']} steps for memory)")
    header = f"  {'':<24}{'tokens/s':>10}{'x stored':>10}{'peak RSS MiB':>14}{'models MiB':>12}"
    print(header + f"{'padding':>9}{'last loss':>11}")
    for variant in VARIANTS:
        row, held = plain[variant], memory[variant]
        models = held["policy_bytes"] + held["reference_bytes"]
        print(
            f"  {variant:<24}{row['tokens_per_s']:>10,.0f}{row['tokens_per_s'] / base:>10.2f}"
            f"{mib(held['peak_rss']):>14}{mib(models):>12}{row['padding_fraction']:>9.1%}"
            f"{row['loss_last_window']:>11.4f}"
        )
    print(
        f"  in-process peak RSS {memory['in_process_over_precomputed']:.3f}x stored "
        f"(+{mib(memory['extra_peak_rss'])} MiB); largest loss difference "
        f"{report['plain_same_losses']:.2g}"
    )
    data, even = report["data"], report["break_even"]
    line = f"  reference pass: this process {data['plain_reference']['seconds']:.1f} s "
    line += f"({data['plain_reference']['rows_per_s']:,.0f} rows/s)"
    if "ray" in report:
        ray_pass = report["ray"]["reference"]
        line += f", Ray Data {ray_pass['seconds']:.1f} s ({ray_pass['rows_per_s']:,.0f} rows/s)"
    print(line)
    epochs = even["epochs"]
    print(
        f"  in-process adds {even['in_process_extra_seconds_per_epoch']:.1f} s per epoch: "
        + (f"precomputing pays off after {epochs:.2f} epochs" if epochs else "never slower")
    )


def print_gpu(gpu: dict[str, Any]) -> None:
    if "skipped" in gpu:
        print(f"\n3. GPU: skipped: {gpu['skipped']}")
        return
    ratio_text = f"in-process / stored {gpu['in_process_over_precomputed']:.2f}"
    print(f"\n3. GPU {gpu['device']}, bf16: {ratio_text}")
    for variant in VARIANTS:
        row, peak = gpu[variant], mib(gpu[variant]["peak_cuda_bytes"])
        print(f"  {variant:<16}{row['tokens_per_s']:>10,.0f} tokens/s, peak CUDA {peak} MiB")


__all__ = ["DPOBenchSettings", "bench_dpo", "check_settings", "memory_probe"]
