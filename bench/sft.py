"""``instructflow bench sft``: SFT training throughput, each number a ratio against a plain
PyTorch loop in the same process, with the absolute numbers beside it.

One process runs everything, so only same-run ratios are compared on a shared machine:

1. **Data and model.** ``records`` instruction/reply records whose replies are drawn from a
   word list with log-uniform lengths (``min_words`` .. ``max_words``), so that padding
   matters, written as a pipeline output (``data/train``); a tokenizer trained on them and a
   Llama of ``size`` with random weights (``train.tiny.save_tiny_model``).
2. **Ray Train overhead.** Training tokens per second on the packed rows, (a) in a plain
   single-process loop in the driver and (b) by ``instructflow train sft`` with one Ray Train
   worker of ``cpus`` CPUs (``ops.trainrun.run_sft``). The plain loop does the work of
   ``train.sft.train_loop`` per step with the same functions: ``load_model``,
   ``build_optimizer``, ``build_scheduler``, ``global_batches`` (so both sides train the same
   batches in the same order), ``collate``, ``forward`` and ``micro_batch_loss``, gradient
   clipping and a non-finite check. Steady state on both sides: tokens/s is measured over
   windows of ``log_every_steps`` steps, as the worker logs it to ``metrics.jsonl``, and the
   windows of the first ``warmup_steps`` (first allocations, Ray Data's first fetch, Ray's
   own start-up work still running beside the worker) are dropped. The worker's windows give
   only rates, so its steady rate is their harmonic mean: tokens over time when windows
   carry equal tokens, and packed windows do to within ``window_token_spread`` (a few per
   cent, so the error is far smaller). The end-to-end wall seconds of ``run_sft`` (Ray Data
   tokenisation, worker start, every step, checkpoint) are reported beside it, and the plain
   loop's own (tokenisation, model load, every step).
3. **Packed vs unpacked.** The same plain loop, records and micro-batch size in rows on
   unpacked rows (each record its own row, right-padded to the longest of its micro-batch).
   Real (non-padding) tokens per second on both sides, and the padding fraction of each.
4. **GPU** (``device="cuda"`` and torch sees one): the plain loop in bf16 autocast with a
   ``gpu_size`` model, packed and unpacked, with MFU = 6 x parameters x tokens/s / peak
   FLOP/s (attention FLOPs not counted, so MFU is a lower bound). Skipped with a note
   otherwise.

Threads: Ray sets ``OMP_NUM_THREADS`` to a worker's CPU count, so torch in the worker uses
``cpus`` threads (the report shows what a Ray task of that size sees); the driver's torch is
set to the same count for the plain loops.

    instructflow bench sft --records 2000 --size small --steps 120 --cpus 2 --json-out sft.json
    instructflow bench sft --device cuda --gpu-size 0.5b --peak-flops 989e12
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.schema import make_record, message, rows_to_table
from train.config import SFTRecipe
from train.sft_data import PROMPT_FORMATS
from train.tiny import SIZES

DEFAULT_WORKDIR = ".bench/sft"
MIN_RECORDS = 32
H100_BF16_DENSE_FLOPS = 989e12
DEVICES = ("cpu", "cuda")
SHARD = "part-00000-of-00001.parquet"
# Reply words: common English, so the byte-level BPE learns whole words.
WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "if so no what can out other time more these two may first then do any like my now "
    "over such our man me even most made after also did many before must through back "
    "years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both "
    "life being under never day same another know while last might us great old year off "
    "come since against go came right used take three water light river garden house "
    "table window morning evening music story letter city road field paper bread stone"
).split()
TOPICS = (
    "rivers",
    "gardens",
    "old houses",
    "city roads",
    "morning light",
    "letters",
    "bread",
    "music",
    "stone walls",
    "open fields",
)


@dataclass(frozen=True)
class SFTBenchSettings:
    workdir: Path = Path(DEFAULT_WORKDIR)
    records: int = 2_000
    size: str = "small"  # train.tiny.SIZES: tiny, small, 0.5b
    vocab_size: int = 2048
    max_length: int = 512
    prompt_format: str = "instruction_output"
    micro_batch_size: int = 4
    steps: int = 120  # per CPU loop, warm-up included
    log_every_steps: int = 10  # the tokens/s window
    warmup_steps: int = 20  # not timed, on every side; a multiple of log_every_steps
    learning_rate: float = 1e-3
    min_words: int = 10
    max_words: int = 400
    cpus: int = 2  # the Ray worker's CPUs and the plain loop's torch threads
    ray: bool = True  # False: the plain loops only
    device: str = "cpu"  # cuda: also the GPU section
    gpu_size: str = "0.5b"
    gpu_micro_batch_size: int = 16
    gpu_steps: int = 60
    peak_flops: float = H100_BF16_DENSE_FLOPS
    seed: int = 0


def check_settings(settings: SFTBenchSettings) -> None:
    """Every argument checked before anything is generated or started."""
    problems = shared_problems(
        settings, {"--steps": settings.steps, "--gpu-steps": settings.gpu_steps}
    )
    problems += [
        (settings.gpu_size not in SIZES, f"--gpu-size must be one of {', '.join(SIZES)}"),
        (settings.gpu_micro_batch_size < 1, "--gpu-micro-batch-size must be at least 1"),
        (settings.peak_flops <= 0, "--peak-flops must be positive"),
    ]
    bad = [text for failed, text in problems if failed]
    if bad:
        raise ValueError("; ".join(bad))


def shared_problems(settings: Any, step_counts: dict[str, int]) -> list[tuple[bool, str]]:
    """(failed, message) for the settings every training benchmark has (``bench.sft``'s and
    ``bench.dpo``'s, by name), and for each of ``step_counts`` (option name: steps) against
    the tokens/s windows."""
    problems = [
        (settings.records < MIN_RECORDS, f"--records must be at least {MIN_RECORDS}"),
        (settings.size not in SIZES, f"--size must be one of {', '.join(SIZES)}"),
        (settings.prompt_format not in PROMPT_FORMATS, "--prompt-format: unknown format"),
        (not 16 <= settings.max_length <= 4096, "--max-length must be in 16..4096"),
        (settings.vocab_size < 512, "--vocab-size must be at least 512"),
        (settings.micro_batch_size < 1, "--micro-batch-size must be at least 1"),
        (settings.log_every_steps < 1, "--log-every-steps must be at least 1"),
        (settings.cpus < 1, "--cpus must be at least 1"),
        (settings.learning_rate <= 0, "--learning-rate must be positive"),
        (not 1 <= settings.min_words <= settings.max_words, "need 1 <= --min-words <= --max-words"),
        (settings.device not in DEVICES, f"--device must be one of {', '.join(DEVICES)}"),
    ]
    every, warmup = settings.log_every_steps, settings.warmup_steps
    if every >= 1:
        problems.append(
            (
                warmup < every or warmup % every != 0,
                f"--warmup-steps must be a positive multiple of --log-every-steps ({every}): "
                "the first window holds the warm-up",
            )
        )
        for name, steps in step_counts.items():
            problems.append(
                (
                    steps < warmup + every or steps % every != 0,
                    f"{name} must be a multiple of --log-every-steps ({every}) and at least "
                    f"--warmup-steps + {every}",
                )
            )
    return problems


# ---------------------------------------------------------------------------------------
# Data, model and recipe


def bench_records(settings: SFTBenchSettings) -> list[dict[str, Any]]:
    """Canonical records, one user turn and one reply each; reply lengths log-uniform in
    words, so micro-batches of unpacked rows mix short and long examples. Seeded."""
    rng = np.random.default_rng(settings.seed)
    lengths = log_uniform_lengths(rng, settings.records, settings.min_words, settings.max_words)
    records = []
    for line, length in enumerate(lengths):
        reply = reply_text(rng, int(length))
        topic = TOPICS[line % len(TOPICS)]
        records.append(
            make_record(
                messages=[
                    message("user", f"Write about {topic} in about {length} words."),
                    message("assistant", reply),
                ],
                source_file="bench-sft.jsonl",
                source_format="messages",
                source_line=line,
                task="generation",
                language="en",
            )
        )
    return records


def log_uniform_lengths(rng: Any, count: int, low: int, high: int) -> np.ndarray:
    """``count`` word counts in ``low`` .. ``high``, log-uniform."""
    return np.rint(np.exp(rng.uniform(np.log(low), np.log(high), count))).astype(int)


def reply_text(rng: Any, length: int) -> str:
    """``length`` words drawn from ``WORDS``, in capitalised sentences of 12."""
    words = [str(word) for word in rng.choice(WORDS, size=length)]
    sentences = [words[i : i + 12] for i in range(0, len(words), 12)]
    return " ".join(" ".join(s).capitalize() + "." for s in sentences)


def write_pipeline_output(root: Path, records: list[dict[str, Any]]) -> Path:
    """``root/data/train/`` as ``instructflow data run`` with a split stage writes it, with
    the ``manifest.json`` that marks a finished run (training refuses a run without one)."""
    shutil.rmtree(root, ignore_errors=True)
    directory = root / "data" / "train"
    directory.mkdir(parents=True)
    pq.write_table(rows_to_table(records), directory / SHARD)
    shards = [{"fate": "output", "path": f"data/train/{SHARD}"}]
    (root / "manifest.json").write_text(json.dumps({"shards": shards}))
    return root


def read_records(root: Path, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The records as the Ray Data stage reads them back: ``columns`` (default SFT's three)."""
    from train.sft_rows import RECORD_COLUMNS

    path = root / "data" / "train" / SHARD
    return pq.read_table(path, columns=columns or RECORD_COLUMNS).to_pylist()


def recipe_dict(settings: SFTBenchSettings, data: Path, model: str, output: Path) -> dict[str, Any]:
    """The SFT recipe both sides train with: no validation, no samples, one worker."""
    return {
        "name": "bench-sft",
        "seed": settings.seed,
        "data": {"path": str(data), "validation_split": None},
        "model": {"name_or_path": model},
        "prompt": {
            "format": settings.prompt_format,
            "max_length": settings.max_length,
            "packing": True,
        },
        "training": {
            "max_steps": settings.steps,
            "micro_batch_size": settings.micro_batch_size,
            "gradient_accumulation": 1,
            "learning_rate": settings.learning_rate,
            "log_every_steps": settings.log_every_steps,
        },
        "eval": {"every_steps": settings.steps, "samples": 0},
        "scaling": {"num_workers": 1, "cpus_per_worker": settings.cpus},
        "output": {"path": str(output)},
    }


def data_summary(rows: pa.Table, max_length: int) -> dict[str, Any]:
    """Row count, summed counts, and the padding of the rows as stored (packed rows are
    ``max_length`` long; unpacked rows are stored unpadded, so theirs is 0 here and depends
    on the micro-batch in training)."""
    from train.sft_rows import COUNT_COLUMNS

    sums = {name: int(pc.sum(rows.column(name)).as_py() or 0) for name in COUNT_COLUMNS}
    stored = int(pc.sum(pc.list_value_length(rows.column("input_ids"))).as_py())
    return {"rows": rows.num_rows, **sums, "stored_padding": round(1 - sums["tokens"] / stored, 4)}


# ---------------------------------------------------------------------------------------
# The plain loop


class TableShard:
    """A ``ray.train.get_dataset_shard`` stand-in over a pyarrow table, for
    ``train.sft.global_batches``: ``iter_batches`` gives numpy columns as Ray does, so the
    plain loop trains exactly the global batches a worker would, in the same order."""

    def __init__(self, table: pa.Table) -> None:
        self.columns = {
            name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names
        }
        self.rows = table.num_rows

    def iter_batches(self, batch_size: int, **_: Any) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, self.rows, batch_size):
            yield {
                name: column[start : start + batch_size] for name, column in self.columns.items()
            }


def train_plan(recipe: SFTRecipe, rows: pa.Table, pad_id: int, model: str) -> Any:
    """The ``TrainPlan`` ``train.sft_launch`` would make for these rows on one worker."""
    from train.launch import plan_steps
    from train.sft import TrainPlan

    global_batch, steps_per_epoch, total_steps = plan_steps(recipe, rows.num_rows)
    return TrainPlan(
        kind="causal",
        packing=bool(recipe.prompt.packing),
        pad_id=pad_id,
        model_path=model,
        tokenizer_path=model,
        train_rows=rows.num_rows,
        validation_rows=0,
        global_batch=global_batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        log_dir="",
    )


def train_step(
    model: Any, rows: dict[str, np.ndarray], recipe: SFTRecipe, plan: Any, device: Any
) -> tuple[Any, int]:
    """Forward and backward over the step's micro-batches as ``train_loop`` does on one
    worker; (summed loss tensor, padded token slots the model saw)."""
    import torch

    from train.loss import micro_batch_loss
    from train.sft import forward, wants_bf16
    from train.sft_rows import collate

    use_bf16 = device.type == "cuda" and wants_bf16(recipe.training.precision, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else nullcontext()
    size = recipe.training.micro_batch_size
    step_tokens = int(rows["supervised"].sum())
    loss_sum, slots = torch.zeros((), device=device), 0
    for index in range(recipe.training.gradient_accumulation):
        micro = {name: column[index * size : (index + 1) * size] for name, column in rows.items()}
        batch = {k: v.to(device) for k, v in collate(micro, plan.pad_id, plan.kind).items()}
        slots += batch["input_ids"].numel()
        with autocast:
            labels = batch.pop("labels")
            logits = forward(model, model, batch, labels, plan.kind)
            loss = micro_batch_loss(logits, labels, step_tokens, world_size=1, shift=True)
        loss.backward()
        loss_sum += loss.detach()
    return loss_sum, slots


def plain_loop(
    model: Any, rows: pa.Table, recipe: SFTRecipe, plan: Any, device: Any
) -> list[dict[str, Any]]:
    """``plan.total_steps`` steps; per window of ``log_every_steps``: real tokens, padded
    slots, seconds and loss, timed like the worker's windows (fetching included)."""
    import torch

    from train.sft import NonFiniteLoss, build_optimizer, build_scheduler, global_batches

    optimizer = build_optimizer(model, recipe, device)
    scheduler = build_scheduler(optimizer, recipe, plan.total_steps)
    windows: list[dict[str, Any]] = []
    tokens = slots = 0
    started = time.perf_counter()
    for step, global_rows in global_batches(TableShard(rows), plan, recipe, 0):
        if step >= plan.total_steps:
            break
        torch.manual_seed(recipe.seed * 1_000_003 + step * 1009)  # dropout masks, as a worker
        model.train()
        loss_sum, step_slots = train_step(model, global_rows, recipe, plan, device)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), recipe.training.max_grad_norm
        )
        if not torch.isfinite(grad_norm):
            raise NonFiniteLoss(f"plain loop, step {step + 1}: gradient norm {float(grad_norm)}")
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(global_rows["tokens"].sum())
        slots += step_slots
        if (step + 1) % recipe.training.log_every_steps == 0:
            loss = float(loss_sum)  # waits for the device, as the worker's logging does
            seconds = time.perf_counter() - started
            windows.append(
                {
                    "step": step + 1,
                    "tokens": tokens,
                    "slots": slots,
                    "seconds": seconds,
                    "loss": round(loss, 4),
                }
            )
            tokens = slots = 0
            started = time.perf_counter()
    return windows


def steady(windows: list[dict[str, Any]], warmup_steps: int) -> dict[str, Any]:
    """Totals over the windows after ``warmup_steps``, and every window's numbers."""
    kept = [window for window in windows if window["step"] > warmup_steps]
    tokens = sum(w["tokens"] for w in kept)
    seconds = sum(w["seconds"] for w in kept)
    slots = sum(w["slots"] for w in kept)
    window_tokens = [w["tokens"] for w in kept]
    return {
        "steps": windows[-1]["step"],
        "timed_steps": windows[-1]["step"] - warmup_steps,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(tokens / seconds, 1),
        "padding_fraction": round(1 - tokens / slots, 4),
        "window_token_spread": round((max(window_tokens) - min(window_tokens)) / tokens, 4),
        "loss_first_window": windows[0]["loss"],
        "loss_last_window": windows[-1]["loss"],
        "windows": [
            {
                **w,
                "seconds": round(w["seconds"], 3),
                "tokens_per_s": round(w["tokens"] / w["seconds"], 1),
            }
            for w in windows
        ],
    }


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """torch's intra-op threads set to ``count`` for the block, then restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def timed_plain_run(
    recipe: SFTRecipe,
    records: list[dict[str, Any]],
    tokenizer: Any,
    model_path: str,
    warmup_steps: int,
) -> tuple[dict[str, Any], pa.Table]:
    """Tokenise (and pack, per the recipe), load the model as a worker does, run the loop on
    CPU; the loop's report with the end-to-end seconds, and the rows."""
    import torch

    from train.sft import load_model
    from train.sft_rows import training_rows

    started = time.perf_counter()
    prompt = recipe.prompt
    rows = training_rows(
        records, tokenizer, prompt.format, prompt.max_length, "causal", bool(prompt.packing)
    )
    plan = train_plan(recipe, rows, tokenizer.pad_token_id, model_path)
    device = torch.device("cpu")
    model = load_model(recipe, plan, None, device)
    result = steady(plain_loop(model, rows, recipe, plan, device), warmup_steps)
    return {**result, "wall_seconds": round(time.perf_counter() - started, 2)}, rows


# ---------------------------------------------------------------------------------------
# Ray Train


def worker_torch_threads() -> dict[str, Any]:
    """What torch sees in a Ray process (run as a task with the worker's CPUs)."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def ray_windows(metrics_path: Path, warmup_steps: int) -> dict[str, Any]:
    """The worker's logged tokens/s windows; steady state is the harmonic mean of those after
    ``warmup_steps``."""
    windows = []
    for line in metrics_path.read_text().splitlines():
        entry = json.loads(line)
        if "train/tokens_per_s" in entry:
            windows.append(
                {"step": entry["step"], "tokens_per_s": round(entry["train/tokens_per_s"], 1)}
            )
    rates = [w["tokens_per_s"] for w in windows if w["step"] > warmup_steps]
    if not rates:
        raise ValueError(f"{metrics_path}: no tokens/s window after step {warmup_steps}")
    return {
        "steps": windows[-1]["step"],
        "timed_steps": windows[-1]["step"] - warmup_steps,
        "tokens_per_s": round(len(rates) / sum(1 / rate for rate in rates), 1),
        "windows": windows,
    }


def ray_run(
    settings: Any, recipe_path: Path, run: Callable[..., dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``run`` (default ``run_sft``; ``bench.dpo`` passes ``run_dpo``) on a local Ray of
    ``cpus`` CPUs (started here unless one runs); the worker's steady tokens/s and the wall
    seconds of Ray's start and of the whole run."""
    import ray

    from ops.cluster import connect
    from ops.trainrun import run_sft

    run = run or run_sft

    started_ray = not ray.is_initialized()
    started = time.perf_counter()
    connect(None, progress_bars=False, num_cpus=settings.cpus)
    connect_seconds = time.perf_counter() - started
    try:
        probe = ray.remote(num_cpus=settings.cpus)(worker_torch_threads)
        threads = ray.get(probe.remote())
        started = time.perf_counter()
        summary = run(str(recipe_path), overwrite=True)
        wall = time.perf_counter() - started
    finally:
        if started_ray:
            ray.shutdown()
    return {
        **ray_windows(Path(summary["logs"]) / "metrics.jsonl", settings.warmup_steps),
        "connect_seconds": round(connect_seconds, 2),
        "wall_seconds": round(wall, 2),
        "run_seconds": summary["seconds"],
        "worker": threads,
        "data": summary["data"]["train"],
    }


# ---------------------------------------------------------------------------------------
# GPU


def gpu_section(
    settings: SFTBenchSettings, recipe: dict[str, Any], tokenizer: Any, tables: dict[str, pa.Table]
) -> dict[str, Any]:
    """The plain loop on CUDA (bf16 autocast) with a ``gpu_size`` model built from config,
    packed and unpacked; tokens/s and MFU. A note instead when not asked or no GPU."""
    import torch

    if settings.device != "cuda":
        return {"skipped": "not asked for (--device cuda runs it)"}
    if not torch.cuda.is_available():
        return {"skipped": f"--device cuda, but torch {torch.__version__} sees no CUDA device"}
    training = {"max_steps": settings.gpu_steps, "micro_batch_size": settings.gpu_micro_batch_size}
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "size": settings.gpu_size}
    for layout, rows in tables.items():
        packing = layout == "packed"
        plain = {**recipe, "training": {**recipe["training"], **training}}
        plain["prompt"] = {**plain["prompt"], "packing": packing}
        run = gpu_run(settings, SFTRecipe.model_validate(plain), tokenizer, rows)
        result["params"] = run.pop("params")
        result[layout] = run
    result["packed_over_unpacked"] = round(
        result["packed"]["tokens_per_s"] / result["unpacked"]["tokens_per_s"], 3
    )
    return result


def gpu_run(settings: SFTBenchSettings, recipe: SFTRecipe, tokenizer: Any, rows: pa.Table) -> dict:
    import torch

    from train.tiny import build_model

    device = torch.device("cuda")
    model = build_model(tokenizer, "causal", settings.gpu_size, settings.seed).to(device)
    model.config.use_cache = False
    params = sum(parameter.numel() for parameter in model.parameters())
    plan = train_plan(recipe, rows, tokenizer.pad_token_id, "")
    result = steady(plain_loop(model, rows, recipe, plan, device), settings.warmup_steps)
    mfu = 6 * params * result["tokens_per_s"] / settings.peak_flops
    del model
    torch.cuda.empty_cache()
    return {**result, "params": params, "mfu": round(mfu, 4)}


# ---------------------------------------------------------------------------------------
# The benchmark


def bench_sft(settings: SFTBenchSettings, json_out: str | None = None) -> dict[str, Any]:
    """Every section; prints the table and returns (and optionally writes) the report."""
    check_settings(settings)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("ray").setLevel(logging.WARNING)
    workdir = settings.workdir.resolve()
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "workdir": str(workdir)},
        "machine": {"cpu_count": os.cpu_count(), "load_average_start": load_average()},
    }
    records, model_path, tokenizer = prepare_inputs(settings, workdir, report)
    recipe = recipe_dict(settings, workdir / "data", model_path, workdir / "ray-sft")
    recipe_path = workdir / "sft.yaml"
    recipe_path.write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    tables = plain_section(settings, recipe, records, tokenizer, model_path, report)
    if settings.ray:
        report["ray"] = ray_run(settings, recipe_path)
        report["ray"]["same_rows"] = same_rows(report["ray"]["data"], report["data"]["packed"])
        report["ray_over_plain"] = round(
            report["ray"]["tokens_per_s"] / report["plain"]["packed"]["tokens_per_s"], 3
        )
    report["gpu"] = gpu_section(settings, recipe, tokenizer, tables)
    report["machine"]["load_average_end"] = load_average()
    print_report(report)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(report, indent=2))
    return report


def prepare_inputs(
    settings: SFTBenchSettings, workdir: Path, report: dict[str, Any]
) -> tuple[list[dict[str, Any]], str, Any]:
    """Records written as a pipeline output, the tokenizer and model saved; the records as
    read back, the model's path and the tokenizer."""
    from train.sft_rows import load_tokenizer
    from train.tiny import save_tiny_model

    started = time.perf_counter()
    root = write_pipeline_output(workdir / "data", bench_records(settings))
    model_path = str(workdir / f"model-{settings.size}")
    shutil.rmtree(model_path, ignore_errors=True)
    save_tiny_model(str(root), model_path, size=settings.size, vocab_size=settings.vocab_size)
    tokenizer = load_tokenizer(model_path)
    report["prepare_seconds"] = round(time.perf_counter() - started, 2)
    return read_records(root), model_path, tokenizer


def plain_section(
    settings: SFTBenchSettings,
    recipe: dict[str, Any],
    records: list[dict[str, Any]],
    tokenizer: Any,
    model_path: str,
    report: dict[str, Any],
) -> dict[str, pa.Table]:
    """Both plain CPU loops (packed, then unpacked) on ``cpus`` torch threads, each on a fresh
    copy of the saved model; their rows, for the GPU section."""
    report["plain"], report["data"], tables = {}, {}, {}
    with torch_threads(settings.cpus) as threads:
        report["machine"]["plain_torch_threads"] = threads
        for layout in ("packed", "unpacked"):
            layout_recipe = {
                **recipe,
                "prompt": {**recipe["prompt"], "packing": layout == "packed"},
            }
            parsed = SFTRecipe.model_validate(layout_recipe)
            result, rows = timed_plain_run(
                parsed, records, tokenizer, model_path, settings.warmup_steps
            )
            report["plain"][layout] = result
            report["data"][layout] = data_summary(rows, settings.max_length)
            tables[layout] = rows
    report["model"] = {"size": settings.size, "params": model_params(model_path)}
    report["packed_over_unpacked"] = round(
        report["plain"]["packed"]["tokens_per_s"] / report["plain"]["unpacked"]["tokens_per_s"], 3
    )
    return tables


def model_params(model_path: str) -> int:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path)
    return sum(parameter.numel() for parameter in model.parameters())


def same_rows(ray_data: dict[str, Any], packed: dict[str, Any]) -> bool:
    """Whether Ray Data's tokenisation made the rows the plain loop trained on (counts)."""
    keys = ("rows", "tokens", "supervised", "records", "truncated")
    return all(ray_data.get(key) == packed.get(key) for key in keys)


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# ---------------------------------------------------------------------------------------
# Printing


def print_report(report: dict[str, Any]) -> None:
    settings, machine = report["settings"], report["machine"]
    packed, unpacked = report["data"]["packed"], report["data"]["unpacked"]
    print(
        f"\ndata: {settings['records']:,} records, replies {settings['min_words']}-"
        f"{settings['max_words']} words (log-uniform), {settings['prompt_format']}, "
        f"max_length {settings['max_length']}: {packed['records']:,} examples, "
        f"{packed['tokens']:,} tokens ({packed['supervised']:,} supervised), "
        f"{packed['truncated']} truncated -> {packed['rows']:,} packed rows "
        f"({packed['stored_padding']:.1%} padding) or {unpacked['rows']:,} unpacked"
    )
    print(
        f"model: {report['model']['size']} Llama, {report['model']['params'] / 1e6:.2f}M "
        f"parameters; micro-batch {settings['micro_batch_size']} rows; cpu_count "
        f"{machine['cpu_count']}, plain loop torch threads {machine['plain_torch_threads']}"
    )
    print_ray(report)
    print_packing(report)
    print_gpu(report["gpu"])
    start, end = machine["load_average_start"][0], machine["load_average_end"][0]
    print(f"load average (1 min) {start:.2f} at the start, {end:.2f} at the end")


def print_ray(report: dict[str, Any]) -> None:
    settings, plain = report["settings"], report["plain"]["packed"]
    warmup = settings["warmup_steps"]
    print(
        f"\n1. Ray Train overhead: packed rows, tokens/s over steps {warmup + 1}-"
        f"{plain['steps']} (the first {warmup} are warm-up)"
    )
    print(f"  {'':<36}{'tokens/s':>10}{'x plain':>9}{'wall s':>9}")
    print(
        f"  {'plain loop, driver process':<36}{plain['tokens_per_s']:>10,.0f}{1.0:>9.2f}"
        f"{plain['wall_seconds']:>9.1f}  tokenise, load, {plain['steps']} steps"
    )
    print(f"  {'':<4}windows: {window_rates(plain['windows'])}")
    if "ray" not in report:
        print("  Ray Train: not run (ray=False)")
        return
    ray, threads = report["ray"], report["ray"]["worker"]
    label = f"Ray Train, 1 worker x {settings['cpus']} CPUs"
    print(
        f"  {label:<36}{ray['tokens_per_s']:>10,.0f}{report['ray_over_plain']:>9.2f}"
        f"{ray['wall_seconds']:>9.1f}  run_sft: Ray Data, workers, steps, checkpoint"
    )
    print(f"  {'':<4}windows: {window_rates(ray['windows'])}")
    print(
        f"  overhead {1 - report['ray_over_plain']:.1%} (goal <= 10%); Ray start "
        f"{ray['connect_seconds']:.1f} s, not in the wall; torch threads: plain "
        f"{report['machine']['plain_torch_threads']}, Ray worker {threads['torch_threads']} "
        f"(OMP_NUM_THREADS={threads['OMP_NUM_THREADS']}); same rows: "
        f"{'yes' if ray['same_rows'] else 'NO'}"
    )


def window_rates(windows: list[dict[str, Any]]) -> str:
    return " ".join(f"{window['tokens_per_s']:,.0f}" for window in windows)


def print_packing(report: dict[str, Any]) -> None:
    print("\n2. Packed vs unpacked, plain loop, real (non-padding) tokens")
    print(f"  {'':<36}{'tokens/s':>10}{'x unpacked':>12}{'padding':>9}{'last loss':>11}")
    base = report["plain"]["unpacked"]["tokens_per_s"]
    for layout in ("unpacked", "packed"):
        row = report["plain"][layout]
        print(
            f"  {layout:<36}{row['tokens_per_s']:>10,.0f}{row['tokens_per_s'] / base:>12.2f}"
            f"{row['padding_fraction']:>9.1%}{row['loss_last_window']:>11.3f}"
        )
    print(f"  packed / unpacked {report['packed_over_unpacked']:.2f} (goal >= 2)")


def print_gpu(gpu: dict[str, Any]) -> None:
    if "skipped" in gpu:
        print(f"\n3. GPU: skipped: {gpu['skipped']}")
        return
    print(f"\n3. GPU {gpu['device']}, {gpu['size']} ({gpu['params'] / 1e6:.0f}M parameters), bf16")
    print(f"  {'':<36}{'tokens/s':>10}{'MFU':>8}{'padding':>9}")
    for layout in ("unpacked", "packed"):
        row = gpu[layout]
        print(
            f"  {layout:<36}{row['tokens_per_s']:>10,.0f}{row['mfu']:>8.1%}"
            f"{row['padding_fraction']:>9.1%}"
        )
    print(f"  packed / unpacked {gpu['packed_over_unpacked']:.2f}")


__all__ = ["SFTBenchSettings", "bench_sft", "check_settings"]
