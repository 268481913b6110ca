"""Supervised fine-tuning: the loop every Ray Train worker runs, top to bottom.

    instructflow train sft examples/quickstart/sft.yaml [--address ray://head:10001]

``train.sft_launch`` validates the recipe, tokenises and packs the pipeline's shards in Ray Data
(``train.sft_rows``), and starts ``TorchTrainer`` with ``train_loop`` below. Each worker:

1. loads the model (``from_pretrained``: hub id, cache or directory; or the latest checkpoint
   when resuming), adds LoRA if asked, turns on gradient checkpointing, and wraps it in DDP
   or FSDP (``fully_shard`` per decoder layer);
2. reads the whole tokenised dataset and takes its own slice of every global batch
   (``global_batches``): every rank sees the same seeded order, so the batches do not depend
   on which worker reads what, a resumed run continues at exactly the row it stopped at, and
   the same global batch trains the same way on 1 or 64 workers;
3. steps: the loss of every micro-batch is its sum over supervised tokens divided by all the
   supervised tokens of the global step (``train.loss``), so accumulation and DDP averaging
   give the true token mean; bf16 autocast (by default on GPU); AdamW with linear warmup then cosine
   decay; gradient clipping; a non-finite gradient norm stops the run with the step named;
4. every ``eval.every_steps`` and at the end: validation loss and perplexity, a few greedy
   generations, and a checkpoint in Hugging Face format (model or LoRA adapter, tokenizer,
   ``instructflow.json``) plus ``training_state.pt`` (optimizer, scheduler, step) reported
   to Ray Train, which keeps the best (lowest validation loss) and the latest.

Compared with TRL's SFTTrainer this simplifies: one optimizer (AdamW), greedy samples only,
no per-example loss weighting, no mixed sequence lengths within a packed row beyond next fit.
Dropout draws from a generator seeded by (seed, step, rank), so a resumed run draws the
same masks as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from train.config import SFTRecipe
from train.loss import micro_batch_loss
from train.sft_rows import collate, load_tokenizer

CHECKPOINT_META = "instructflow.json"
TRAINING_STATE = "training_state.pt"


class NonFiniteLoss(RuntimeError):
    """A step produced a NaN or infinite loss or gradient; the message names the step."""


@dataclass
class TrainPlan:
    """What the driver worked out before starting the workers (plain data)."""

    kind: str  # causal | seq2seq
    packing: bool
    pad_id: int
    model_path: str
    tokenizer_path: str
    train_rows: int
    validation_rows: int
    global_batch: int
    steps_per_epoch: int
    total_steps: int
    log_dir: str
    # Where Ray Train stores this run's checkpoints (output.path/ray_train).
    checkpoint_root: str = ""
    sample_prompts: list[list[dict[str, str]]] = field(default_factory=list)
    # Test hooks: {"crash_at_step": k} kills a worker once; {"nan_at_step": k}.
    fault: dict[str, int] = field(default_factory=dict)
    # The training method (sft, dpo), recorded in each checkpoint's instructflow.json.
    method: str = "sft"


COMMITTED = "_COMMITTED"


@dataclass
class Progress:
    step: int = 0
    tokens_seen: int = 0


def train_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch

    recipe = SFTRecipe.model_validate(config["recipe"])
    plan = TrainPlan(**config["plan"])
    worker = start_worker(recipe, plan)
    rank, world, device, autocast = worker.rank, worker.world, worker.device, worker.autocast
    model, unwrapped = worker.model, worker.unwrapped
    scheduler = worker.scheduler
    progress, resumed_from = worker.progress, worker.resumed_from
    training = recipe.training
    tokenizer = load_tokenizer(plan.tokenizer_path, recipe.model.trust_remote_code)
    log = TrainLog(plan.log_dir, rank, resumed_from, plan.total_steps)
    validation_shard = ray.train.get_dataset_shard("validation") if plan.validation_rows else None
    if validation_shard is not None:
        validation_shard = ValidationRows(validation_shard, recipe, plan)
    if validation_shard is not None and resumed_from is None:  # the starting point of the curve
        start = evaluate(
            model, unwrapped, validation_shard, recipe, plan, rank, world, device, autocast
        )
        log.scalars(
            0,
            {
                "validation/loss": start["val_loss"],
                "validation/perplexity": start["val_perplexity"],
            },
        )

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
        step_tokens = int(global_rows["supervised"].sum())
        mine = {
            name: column[rank * per_rank : (rank + 1) * per_rank]
            for name, column in global_rows.items()
        }
        loss_sum = torch.zeros((), device=device)
        for index in range(training.gradient_accumulation):
            micro = {
                name: column[
                    index * training.micro_batch_size : (index + 1) * training.micro_batch_size
                ]
                for name, column in mine.items()
            }
            batch = {k: v.to(device) for k, v in collate(micro, plan.pad_id, plan.kind).items()}
            last = index == training.gradient_accumulation - 1
            with nullcontext() if last or world == 1 else no_sync(model), autocast:
                labels = batch.pop("labels")
                logits = forward(model, unwrapped, batch, labels, plan.kind)
                loss = micro_batch_loss(
                    logits, labels, step_tokens, world_size=world, shift=plan.kind == "causal"
                )
                if plan.fault.get("nan_at_step") == step:
                    loss = loss * float("nan")
            # Outside autocast, as torch advises; DDP decided at the forward, inside no_sync,
            # whether this backward all-reduces.
            loss.backward()
            loss_sum += loss.detach()
        grad_norm = clip_and_step(
            worker, training.max_grad_norm, step, f"loss {float(loss_sum) / world:.4g}"
        )
        progress.step = step + 1
        batch_tokens = int(global_rows["tokens"].sum())
        progress.tokens_seen += batch_tokens
        window_tokens += batch_tokens

        at_eval = progress.step % recipe.eval.every_steps == 0 or progress.step == plan.total_steps
        if progress.step % training.log_every_steps == 0 or at_eval:
            train_loss = all_reduce_mean(loss_sum, world)
            seconds = time.perf_counter() - window_start
            log.scalars(
                progress.step,
                {
                    "train/loss": train_loss,
                    "train/learning_rate": scheduler.get_last_lr()[0],
                    "train/tokens_per_s": window_tokens / seconds,
                    "train/grad_norm": float(grad_norm),
                },
            )
            window_start, window_tokens = time.perf_counter(), 0
        if at_eval:
            metrics = {"step": progress.step, "train_loss": train_loss}
            if validation_shard is not None:
                metrics.update(
                    evaluate(
                        model,
                        unwrapped,
                        validation_shard,
                        recipe,
                        plan,
                        rank,
                        world,
                        device,
                        autocast,
                    )
                )
                log.scalars(
                    progress.step,
                    {
                        "validation/loss": metrics["val_loss"],
                        "validation/perplexity": metrics["val_perplexity"],
                    },
                )
            samples = sample_generations(unwrapped, tokenizer, recipe, plan, device, rank)
            log.samples(progress.step, samples)
            score = metrics.get("val_loss", train_loss)
            metrics["score"] = score
            metrics["tokens_seen"] = progress.tokens_seen
            save_and_report(worker, tokenizer, recipe, plan, metrics)
            window_start = time.perf_counter()
    log.close()


@dataclass
class Worker:
    """What every method's loop starts from on each Ray Train worker (``start_worker``)."""

    rank: int
    world: int
    device: Any
    autocast: Any  # bf16 autocast, or a null context
    model: Any  # to train: wrapped in DDP or sharded by FSDP
    unwrapped: Any  # underneath, for saving and generation
    optimizer: Any
    scheduler: Any
    progress: Progress
    resumed_from: int | None  # the checkpoint's step when resuming, else None


def start_worker(recipe: SFTRecipe, plan: TrainPlan) -> Worker:
    """This worker's rank and device, and the model, optimizer and schedule: fresh, or as
    the newest committed checkpoint left them (Ray Train's restart or ``--resume``)."""
    import ray.train
    import ray.train.torch
    import torch

    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if wants_bf16(recipe.training.precision, device)
        else nullcontext()
    )
    checkpoint = latest_committed(plan.checkpoint_root)
    progress, resumed_from = Progress(), None
    with checkpoint.as_directory() if checkpoint else nullcontext() as checkpoint_dir:
        model = load_model(recipe, plan, checkpoint_dir, device)
        model, unwrapped = wrap_model(model, recipe, device)
        optimizer = build_optimizer(model, recipe, device)
        scheduler = build_scheduler(optimizer, recipe, plan.total_steps)
        if checkpoint_dir:
            progress = restore_training_state(checkpoint_dir, model, optimizer, scheduler)
            resumed_from = progress.step
    return Worker(
        context.get_world_rank(),
        context.get_world_size(),
        device,
        autocast,
        model,
        unwrapped,
        optimizer,
        scheduler,
        progress,
        resumed_from,
    )


def clip_and_step(worker: Worker, max_grad_norm: float, step: int, detail: str) -> Any:
    """Clip the gradients, stop on a non-finite norm (naming the step and ``detail``), then
    step the optimizer and the schedule. Returns the norm before clipping."""
    import torch

    grad_norm = torch.nn.utils.clip_grad_norm_(worker.model.parameters(), max_grad_norm)
    if not torch.isfinite(grad_norm):
        raise NonFiniteLoss(
            f"step {step + 1}: the gradient norm is {float(grad_norm)} ({detail}, learning "
            f"rate {worker.scheduler.get_last_lr()[0]:.3g}); stopping. Lower "
            "training.learning_rate or check the data; the last good checkpoint is kept"
        )
    worker.optimizer.step()
    worker.scheduler.step()
    worker.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def wants_bf16(precision: str, device: Any) -> bool:
    """bf16 autocast when asked for (GPU or CPU), or by default on GPUs that support it."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def load_model(recipe: SFTRecipe, plan: TrainPlan, checkpoint_dir: str | None, device: Any) -> Any:
    """The recipe's model, or the checkpoint's weights when resuming; LoRA and gradient
    checkpointing applied; on ``device``."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    model_class = AutoModelForSeq2SeqLM if plan.kind == "seq2seq" else AutoModelForCausalLM
    lora = recipe.training.lora
    source = checkpoint_dir if checkpoint_dir and lora is None else plan.model_path
    options: dict[str, Any] = {"trust_remote_code": recipe.model.trust_remote_code}
    if recipe.model.attn_implementation and plan.kind == "causal":
        options["attn_implementation"] = recipe.model.attn_implementation
    model = model_class.from_pretrained(source, **options)
    model.config.use_cache = False
    if lora is not None:
        from peft import LoraConfig, PeftModel, TaskType, get_peft_model

        if checkpoint_dir:
            model = PeftModel.from_pretrained(model, checkpoint_dir, is_trainable=True)
        else:
            task = TaskType.SEQ_2_SEQ_LM if plan.kind == "seq2seq" else TaskType.CAUSAL_LM
            targets = lora.target_modules
            model = get_peft_model(
                model,
                LoraConfig(
                    r=lora.r,
                    lora_alpha=lora.alpha,
                    lora_dropout=lora.dropout,
                    target_modules=targets if isinstance(targets, str) else list(targets),
                    task_type=task,
                ),
            )
    if recipe.training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if lora is not None:
            model.enable_input_require_grads()
    return model.to(device)


def wrap_model(model: Any, recipe: SFTRecipe, device: Any) -> tuple[Any, Any]:
    """(the model to train, the model underneath for saving and generation)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return model, model
    if recipe.training.strategy == "fsdp":
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if device.type == "cuda" and wants_bf16(recipe.training.precision, device)
            else MixedPrecisionPolicy()
        )
        for module in decoder_layers(model):
            fully_shard(module, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model, model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids), model


def decoder_layers(model: Any) -> list[Any]:
    """The repeated blocks FSDP shards one by one (transformers names them ``layers``,
    ``block`` or ``h``)."""
    import torch

    found = [
        module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList)
        and name.split(".")[-1] in {"layers", "block", "h"}
    ]
    return [layer for module_list in found for layer in module_list]


def no_sync(model: Any) -> Any:
    """Skip DDP's gradient all-reduce on micro-batches before the last of a step."""
    return model.no_sync() if hasattr(model, "no_sync") else nullcontext()


def build_optimizer(model: Any, recipe: SFTRecipe, device: Any) -> Any:
    import torch

    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (decay if parameter.ndim >= 2 and "norm" not in name else no_decay).append(parameter)
    training = recipe.training
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": training.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=training.learning_rate,
        betas=training.adam_betas,
        fused=device.type == "cuda",
    )


def learning_rate_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1 over ``warmup`` steps, then cosine decay to ``min_ratio`` at
    ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    decay_steps = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: Any, recipe: SFTRecipe, total_steps: int) -> Any:
    from functools import partial

    import torch

    training = recipe.training
    factor = partial(
        learning_rate_factor,
        warmup=training.warmup_steps,
        total=total_steps,
        min_ratio=training.min_lr_ratio,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def global_batches(
    shard: Any, plan: TrainPlan, recipe: SFTRecipe, start_step: int
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(step, the global batch's rows) from ``start_step`` on, epoch after epoch.

    Rows come in windows of whole global batches; each window is permuted by a generator
    seeded with (seed, epoch, window), cut into global batches, and the last partial batch
    of an epoch is dropped. Windows before ``start_step`` are read and skipped unpermuted.
    """
    batch = plan.global_batch
    per_window = max(1, recipe.data.shuffle_window_rows // batch)
    epoch = start_step // plan.steps_per_epoch
    while True:
        first_step = epoch * plan.steps_per_epoch
        windows = shard.iter_batches(
            batch_size=per_window * batch, batch_format="numpy", prefetch_batches=1
        )
        for window_index, window in enumerate(windows):
            window_first = first_step + window_index * per_window
            if window_first + per_window <= start_step:
                continue
            rows = len(window["tokens"])
            order = np.random.default_rng([recipe.seed, epoch, window_index]).permutation(rows)
            for position in range(rows // batch):
                step = window_first + position
                if step >= first_step + plan.steps_per_epoch:
                    break
                if step < start_step:
                    continue
                picked = order[position * batch : (position + 1) * batch]
                yield step, {name: column[picked] for name, column in window.items()}
        epoch += 1


def forward(model: Any, unwrapped: Any, batch: dict[str, Any], labels: Any, kind: str) -> Any:
    if kind == "seq2seq":
        decoder_input_ids = base_model(unwrapped).prepare_decoder_input_ids_from_labels(labels)
        return model(**batch, decoder_input_ids=decoder_input_ids, use_cache=False).logits
    return model(**batch, use_cache=False).logits


def base_model(model: Any) -> Any:
    """The transformers model under a peft wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def all_reduce_mean(value: Any, world: int) -> float:
    import torch.distributed as dist

    total = value.detach().clone()
    if world > 1:
        dist.all_reduce(total)
    return float(total) / world


class ValidationRows:
    """The validation micro-batches, read from the Ray Data shard once and kept when they are
    small (every evaluation would otherwise start a Ray Data execution: seconds each), else
    streamed again at each evaluation."""

    KEEP_BYTES = 256 * 1024 * 1024

    def __init__(self, shard: Any, recipe: SFTRecipe, plan: TrainPlan) -> None:
        self.shard = shard
        self.size = recipe.training.micro_batch_size
        rows = min(plan.validation_rows, recipe.eval.max_rows or plan.validation_rows)
        self.kept = None
        if rows * recipe.prompt.max_length * 3 * 4 <= self.KEEP_BYTES:
            self.kept = list(self.batches())

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        if self.kept is not None:
            yield from self.kept
            return
        yield from self.shard.iter_batches(batch_size=self.size, batch_format="numpy")


def evaluate(
    model, unwrapped, shard, recipe, plan, rank, world, device, autocast
) -> dict[str, float]:
    """Token-mean loss over the validation rows; perplexity is its exponential. Under DDP each
    rank takes every world-th micro-batch and the sums are all-reduced; under FSDP, whose
    forward passes are collective, every rank runs every micro-batch."""
    import torch
    import torch.distributed as dist

    from train.sft_data import IGNORE

    shared = world > 1 and recipe.training.strategy == "fsdp"
    model = model if shared else unwrapped  # DDP's wrapper would sync buffers per forward
    model.eval()
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    seen = 0
    with torch.no_grad():
        for index, rows in enumerate(shard.batches()):
            if recipe.eval.max_rows is not None and seen >= recipe.eval.max_rows:
                break
            seen += len(rows["tokens"])
            if not shared and index % world != rank:
                continue
            batch = {k: v.to(device) for k, v in collate(rows, plan.pad_id, plan.kind).items()}
            labels = batch.pop("labels")
            with autocast:
                logits = forward(model, unwrapped, batch, labels, plan.kind)
            if plan.kind == "causal":
                logits, labels = logits[..., :-1, :], labels[..., 1:]
            totals[0] += torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            ).double()
            totals[1] += (labels != IGNORE).sum()
    if world > 1 and not shared:
        dist.all_reduce(totals)
    loss = float(totals[0] / totals[1]) if totals[1] > 0 else math.nan
    return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}


def sample_generations(unwrapped, tokenizer, recipe, plan, device, rank) -> list[dict[str, str]]:
    """Greedy replies to a few validation prompts (rank 0; every rank under FSDP, whose
    forward passes are collective)."""
    import torch

    from train.sft_data import generation_input_ids

    if rank != 0 and recipe.training.strategy != "fsdp":
        return []
    samples = []
    model = unwrapped
    model.eval()
    for turns in plan.sample_prompts:
        ids = generation_input_ids(
            turns, tokenizer, recipe.prompt.format, plan.kind, recipe.prompt.max_length
        )
        with torch.no_grad():
            output = model.generate(
                input_ids=torch.tensor([ids], device=device),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                max_new_tokens=recipe.eval.max_new_tokens,
                do_sample=False,
                pad_token_id=plan.pad_id,
                eos_token_id=tokenizer.eos_token_id,
                use_cache=True,
            )
        reply = output[0] if plan.kind == "seq2seq" else output[0][len(ids) :]
        samples.append(
            {
                "prompt": turns[-1]["content"],
                "reply": tokenizer.decode(reply, skip_special_tokens=True),
            }
        )
    return samples if rank == 0 else []


def full_state(model: Any, optimizer: Any) -> tuple[dict, dict]:
    """Whole (unsharded) model and optimizer state on CPU; collective under FSDP."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(
        model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def save_and_report(
    worker: Worker, tokenizer: Any, recipe: SFTRecipe, plan: TrainPlan, metrics: dict
) -> None:
    """A checkpoint of ``worker``'s model, optimizer, schedule and progress, reported to Ray
    Train with ``metrics``; collective under FSDP, written by rank 0."""
    import ray.train

    model, unwrapped, optimizer = worker.model, worker.unwrapped, worker.optimizer
    scheduler, progress, rank = worker.scheduler, worker.progress, worker.rank

    model_state, optimizer_state = full_state(model, optimizer)
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="instructflow-ckpt-") as directory:
        # LoRA: the adapter alone (peft's format); otherwise the whole model, gathered.
        if recipe.training.lora is None:
            unwrapped.save_pretrained(directory, state_dict=model_state)
        else:
            unwrapped.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        meta = {
            "method": plan.method,
            "kind": plan.kind,
            "prompt_format": recipe.prompt.format,
            "max_length": recipe.prompt.max_length,
            "base_model": plan.model_path,
            "lora": recipe.training.lora is not None,
            "step": progress.step,
            "metrics": metrics,
            "recipe_sha256": recipe.fingerprint(),
        }
        with open(os.path.join(directory, CHECKPOINT_META), "w", encoding="utf-8") as file:
            json.dump(meta, file, indent=2, sort_keys=True)
        save_training_state(directory, optimizer_state, scheduler, progress)
        from ray.train import Checkpoint

        name = f"step_{progress.step:07d}"
        ray.train.report(
            metrics, checkpoint=Checkpoint.from_directory(directory), checkpoint_dir_name=name
        )
    # The upload is synchronous: the directory is whole once report returns. Only committed
    # directories are resumed from; Ray's own registry of them can lag a crash by seconds.
    from pipeline.read import open_filesystem

    filesystem, root = open_filesystem(os.path.join(plan.checkpoint_root, name, COMMITTED))
    with filesystem.open_output_stream(root) as stream:
        stream.write(str(progress.step).encode())


def latest_committed(checkpoint_root: str) -> Any:
    """The newest committed checkpoint of this run in storage, as a Ray ``Checkpoint``, or
    None. Anything under the run's storage is this run's: a new run starts on an empty one."""
    import pyarrow.fs as pafs
    from ray.train import Checkpoint

    from pipeline.read import open_filesystem

    if not checkpoint_root:
        return None
    filesystem, root = open_filesystem(checkpoint_root)
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        return None
    steps = sorted(
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector(root))
        if info.type == pafs.FileType.Directory and os.path.basename(info.path).startswith("step_")
    )
    for path in reversed(steps):
        if filesystem.get_file_info(f"{path}/{COMMITTED}").type == pafs.FileType.File:
            return Checkpoint(path=path, filesystem=filesystem)
    return None


def save_training_state(
    directory: str, optimizer_state: dict, scheduler: Any, progress: Progress
) -> None:
    """Optimizer, schedule and progress as tensors and plain containers, so that resuming
    loads them with ``weights_only=True`` and never unpickles code."""
    import torch

    torch.save(
        {
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "progress": asdict(progress),
        },
        os.path.join(directory, TRAINING_STATE),
    )


def restore_training_state(directory: str, model: Any, optimizer: Any, scheduler: Any) -> Progress:
    import torch
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    # Tensors and plain containers only: nothing in a checkpoint directory is unpickled.
    state = torch.load(os.path.join(directory, TRAINING_STATE), weights_only=True)
    set_optimizer_state_dict(
        model,
        optimizer,
        optim_state_dict=state["optimizer"],
        options=StateDictOptions(full_state_dict=True),
    )
    scheduler.load_state_dict(state["scheduler"])
    return Progress(**state["progress"])


def maybe_fault(fault: dict[str, int], step: int, resumed_from: int | None, rank: int) -> None:
    """Test hook: kill this worker's process at ``crash_at_step`` on the first attempt."""
    if fault.get("crash_at_step") == step and resumed_from is None:
        if rank == fault.get("crash_rank", 0):
            os._exit(1)


class TrainLog:
    """Rank 0's console lines (each with a progress bar and the time left), TensorBoard
    scalars and text, and metrics.jsonl. Plain lines, not a redrawn bar: they pass through
    Ray's log forwarding from any node intact."""

    def __init__(self, log_dir: str, rank: int, resumed_from: int | None, total_steps: int) -> None:
        self.rank = rank
        self.total_steps = total_steps
        self.first_step = resumed_from or 0
        self.started = time.perf_counter()
        if rank != 0:
            return
        from torch.utils.tensorboard import SummaryWriter

        os.makedirs(log_dir, exist_ok=True)
        self.writer = SummaryWriter(log_dir)
        self.metrics = open(os.path.join(log_dir, "metrics.jsonl"), "a", encoding="utf-8")
        if resumed_from:
            say(f"resumed from the checkpoint at step {resumed_from}")

    def bar(self, step: int) -> str:
        done = step / max(1, self.total_steps)
        filled = int(round(done * 20))
        elapsed = time.perf_counter() - self.started
        rate = (step - self.first_step) / elapsed if elapsed > 0 and step > self.first_step else 0
        left = f"{(self.total_steps - step) / rate:.0f}s left" if rate else ""
        return f"[{'#' * filled}{'.' * (20 - filled)}] {step}/{self.total_steps} {left}"

    def scalars(self, step: int, values: dict[str, float], console: tuple[str, ...] = ()) -> None:
        """Log ``values``; the console line shows those named in ``console`` (default all)."""
        if self.rank != 0:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.metrics.write(json.dumps({"step": step, **values}) + "\n")
        self.metrics.flush()
        shown = "  ".join(
            f"{name.split('/')[-1]} {format_value(value)}"
            for name, value in values.items()
            if not console or name in console
        )
        say(f"{self.bar(step)}  {shown}")

    def samples(self, step: int, samples: list[dict[str, str]]) -> None:
        if self.rank != 0 or not samples:
            return
        text = "\n\n".join(f"**prompt:** {s['prompt']}\n\n**reply:** {s['reply']}" for s in samples)
        self.writer.add_text("samples", text, step)
        for sample in samples:
            say(f"  sample | {sample['prompt'][:60]!r} -> {sample['reply'][:100]!r}")

    def close(self) -> None:
        if self.rank == 0:
            self.writer.close()
            self.metrics.close()


def say(line: str) -> None:
    """One console line. Not print: Ray Train patches print into its logger, which also
    echoes it, so every line would show twice."""
    import sys

    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def format_value(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


__all__ = ["NonFiniteLoss", "TrainPlan", "learning_rate_factor", "train_loop"]
