"""``instructflow generate``: replies from a trained checkpoint, for one prompt or a Parquet file.

The checkpoint's ``instructflow.json`` says how training rendered prompts (model kind,
prompt format, max length), so the prompt is built the same way (``train.sft_data``). A
LoRA checkpoint names its base model there and is loaded through peft. ``CHECKPOINT`` may
also be an ``instructflow train sft`` output directory, meaning its best checkpoint.

Batch mode reads Parquet through Ray Data: rows with a ``prompt`` column (text), or
canonical records (``messages``: the turns up to the first reply are the prompt). Replies go
to ``OUTPUT`` as Parquet with the input columns plus ``response``, one actor per CPU or GPU
holding the model once.

Sampling mode (``generate_samples``, run by ``instructflow feedback generate``) answers each
prompt ``samples`` times with temperature / top-p sampling and writes one row per prompt
(``sample_schema``): the prompt, its candidates, the reference reply (a canonical record's
first reply, which the ``reference`` rater compares candidates with), the model path and the
settings. Each
prompt's random stream is seeded from the run's seed and the prompt's text alone, so the same
seed gives the same candidates whatever the batch size, the actor or the order of the rows.
On GPUs the vLLM engine is used when ``vllm`` imports (``engine="auto"``); transformers
otherwise, and always for LoRA checkpoints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import posixpath
from dataclasses import asdict, dataclass
from typing import Any, Literal

from train.sft import CHECKPOINT_META, TRAINING_STATE

# Beside a downloaded checkpoint: the objects it was copied from (``local_copy``).
SOURCE_LISTING = ".instructflow-source.json"


class CheckpointError(ValueError):
    """The path is not a checkpoint this command can load; the message says what is there."""


def resolve_checkpoint(path: str) -> str:
    """A checkpoint directory, or the best one of a training output directory. On an object
    store (``s3://``, ``gs://``), a local copy of it: transformers, peft and vLLM load from
    local directories only."""
    if "://" in path:
        from pipeline.discover import storage_problem

        try:
            return local_copy(remote_checkpoint(path))
        except OSError as error:
            raise CheckpointError(f"{path}: {storage_problem(error)}") from None
    if os.path.isfile(os.path.join(path, CHECKPOINT_META)):
        return path
    summary = os.path.join(path, "train_summary.json")
    if os.path.isfile(summary):
        with open(summary, encoding="utf-8") as file:
            best = (json.load(file).get("best") or {}).get("path")
        if best and os.path.isfile(os.path.join(best, CHECKPOINT_META)):
            return best
    raise CheckpointError(
        f"{path}: not a checkpoint (no {CHECKPOINT_META}) nor a training output with a best "
        "checkpoint (train_summary.json)"
    )


def remote_checkpoint(uri: str) -> str:
    """``resolve_checkpoint`` on an object store: the checkpoint's URI."""
    from pipeline.checkpoint import read_json
    from pipeline.discover import uri_of

    if read_json(posixpath.join(uri, CHECKPOINT_META)) is not None:
        return uri
    summary = read_json(posixpath.join(uri, "train_summary.json")) or {}
    best = (summary.get("best") or {}).get("path")
    # uri_of: a summary written before paths were URIs has the bucket's path alone.
    best = uri_of(uri, best) if best else None
    if best and read_json(posixpath.join(best, CHECKPOINT_META)) is not None:
        return best
    raise CheckpointError(
        f"{uri}: not a checkpoint (no {CHECKPOINT_META}) nor a training output with a best "
        "checkpoint (train_summary.json)"
    )


def local_copy(uri: str) -> str:
    """The checkpoint at ``uri`` in the local cache (``$XDG_CACHE_HOME``, else ``~/.cache``,
    under ``instructflow/checkpoints/``), downloaded unless the copy there came from the same
    objects (names, sizes, modification times): an ``--overwrite`` run reuses step names.
    The optimizer state stays behind: generating does not need it."""
    import shutil
    import tempfile
    from pathlib import Path

    import pyarrow.fs as pafs

    from pipeline.read import open_filesystem

    filesystem, root = open_filesystem(uri)
    listing = sorted(
        (info.path[len(root.rstrip("/")) + 1 :], info.size, info.mtime_ns)
        for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        if info.type == pafs.FileType.File and os.path.basename(info.path) != TRAINING_STATE
    )
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    target = cache / "instructflow" / "checkpoints" / uri.split("://", 1)[0] / root.strip("/")
    record = target / SOURCE_LISTING
    if record.is_file() and json.loads(record.read_text()) == [list(row) for row in listing]:
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    for relative, _, _ in listing:
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(
            posixpath.join(root, relative),
            str(staging / relative),
            source_filesystem=filesystem,
            destination_filesystem=pafs.LocalFileSystem(),
        )
    (staging / SOURCE_LISTING).write_text(json.dumps(listing))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return str(target)


def load_for_generation(checkpoint: str, device: str = "cpu") -> tuple[Any, Any, dict]:
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from train.sft_rows import load_tokenizer

    with open(os.path.join(checkpoint, CHECKPOINT_META), encoding="utf-8") as file:
        meta = json.load(file)
    model_class = AutoModelForSeq2SeqLM if meta["kind"] == "seq2seq" else AutoModelForCausalLM
    if meta.get("lora"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model_class.from_pretrained(meta["base_model"]), checkpoint
        )
    else:
        model = model_class.from_pretrained(checkpoint)
    model.to(device).eval()
    return model, load_tokenizer(checkpoint), meta


def generate_replies(
    model: Any,
    tokenizer: Any,
    meta: dict,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int,
) -> list[str]:
    """Greedy replies, one per conversation (each ends with a user turn), batched with left
    padding so every prompt ends where generation starts."""
    import torch

    from train.sft_data import generation_input_ids

    if not conversations:
        return []
    encoded = [
        generation_input_ids(
            turns, tokenizer, meta["prompt_format"], meta["kind"], meta["max_length"]
        )
        for turns in conversations
    ]
    longest = max(len(ids) for ids in encoded)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(encoded), longest), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), longest), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, longest - len(ids) :] = torch.tensor(ids)
        attention_mask[row, longest - len(ids) :] = 1
    device = next(model.parameters()).device
    with torch.no_grad():
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
    new = output if meta["kind"] == "seq2seq" else output[:, longest:]
    return [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in new]


def generate_one(checkpoint: str, prompt: str, system: str = "", max_new_tokens: int = 128) -> str:
    model, tokenizer, meta = load_for_generation(resolve_checkpoint(checkpoint))
    turns = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return generate_replies(model, tokenizer, meta, [turns], max_new_tokens)[0]


def conversations_of(batch: dict[str, Any]) -> list[list[dict[str, str]]]:
    """Prompts of a batch: the ``prompt`` column, or canonical records up to the first reply."""
    from train.sft_data import opening_turns

    if "prompt" in batch:
        return [[{"role": "user", "content": str(text)}] for text in batch["prompt"]]
    return [
        opening_turns({"system": system, "messages": messages, "context": context})
        for system, messages, context in zip(
            batch["system"], batch["messages"], batch["context"], strict=True
        )
    ]


def references_of(batch: dict[str, Any]) -> list[str]:
    """Each prompt's reference reply: the record's first assistant turn, the one that follows
    ``opening_turns``; "" for a record without one and for a ``prompt`` column."""
    if "prompt" in batch:
        return [""] * len(batch["prompt"])
    return [
        next((turn["content"] for turn in messages if turn["role"] == "assistant"), "")
        for messages in batch["messages"]
    ]


class Replier:
    """Ray Data callable class: the model is loaded once per actor."""

    def __init__(self, checkpoint: str, max_new_tokens: int, use_gpu: bool) -> None:
        self.model, self.tokenizer, self.meta = load_for_generation(
            checkpoint, "cuda" if use_gpu else "cpu"
        )
        self.max_new_tokens = max_new_tokens

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        replies = generate_replies(
            self.model,
            self.tokenizer,
            self.meta,
            conversations_of(batch.to_pydict()),
            self.max_new_tokens,
        )
        return batch.append_column("response", pa.array(replies, pa.string()))


def generate_batch(
    checkpoint: str,
    input_path: str,
    output_path: str,
    *,
    max_new_tokens: int = 128,
    batch_size: int = 16,
    workers: int | None = None,
    use_gpu: bool = False,
) -> int:
    """Replies for every row of ``input_path``; returns the rows written."""
    import pyarrow.dataset as ds
    import ray.data

    from pipeline.read import open_filesystem

    checkpoint = resolve_checkpoint(checkpoint)
    check_prompt_columns(input_path)
    rows = ray.data.read_parquet(input_path, file_extensions=["parquet"])
    replies = rows.map_batches(
        Replier,
        fn_constructor_kwargs={
            "checkpoint": checkpoint,
            "max_new_tokens": max_new_tokens,
            "use_gpu": use_gpu,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            min_size=1,
            max_size=workers
            or max(1, int(ray.cluster_resources().get("GPU" if use_gpu else "CPU", 1))),
        ),
        num_gpus=1 if use_gpu else 0,
    )
    replies.write_parquet(output_path)
    filesystem, local = open_filesystem(output_path)
    return ds.dataset(local, filesystem=filesystem, format="parquet").count_rows()


Engine = Literal["auto", "transformers", "vllm"]


@dataclass(frozen=True)
class SamplingSettings:
    """How candidates are sampled; written beside them so a rating knows what it rated."""

    samples: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    max_new_tokens: int = 128

    def __post_init__(self) -> None:
        problems = []
        if self.samples < 1:
            problems.append(f"samples {self.samples}: must be at least 1")
        if self.temperature < 0:
            problems.append(f"temperature {self.temperature}: must be >= 0 (0 is greedy)")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p {self.top_p}: must be in (0, 1]")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens {self.max_new_tokens}: must be at least 1")
        if problems:
            raise CheckpointError("sampling settings: " + "; ".join(problems))


def sample_schema() -> Any:
    """One row per prompt. ``prompt_id`` hashes the conversation; ``prompt`` is its last user
    turn, as shown to a rater; ``conversation`` (JSON) every turn the model was given;
    ``reference`` the record's own reply ("" when there is none); ``model`` the checkpoint
    path; ``settings`` (JSON) SamplingSettings and the engine."""
    import pyarrow as pa

    text, texts = pa.string(), pa.list_(pa.string())
    columns = [("prompt_id", text), ("prompt", text), ("conversation", text), ("reference", text)]
    columns += [("candidates", texts), ("model", text), ("settings", text)]
    return pa.schema([pa.field(name, kind, nullable=False) for name, kind in columns])


def prompt_seed(seed: int, turns: list[dict[str, str]]) -> int:
    """The seed of one prompt's samples: the run's seed and the prompt's text, nothing else."""
    import xxhash

    text = json.dumps(turns, ensure_ascii=False, sort_keys=True)
    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed=seed) & 0x7FFF_FFFF


def conversation_id(turns: list[dict[str, str]]) -> str:
    import xxhash

    text = json.dumps(turns, ensure_ascii=False, sort_keys=True)
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8"))


def sample_replies(
    model: Any,
    tokenizer: Any,
    meta: dict,
    conversations: list[list[dict[str, str]]],
    settings: SamplingSettings,
) -> list[list[str]]:
    """``settings.samples`` replies per conversation. One ``generate`` call per prompt, seeded
    by ``prompt_seed``: batching prompts together would make a prompt's random draws depend
    on its neighbours (padding, batch shape), and the outputs on the batch size."""
    import torch

    from train.sft_data import generation_input_ids

    device = next(model.parameters()).device
    replies = []
    for turns in conversations:
        ids = generation_input_ids(
            turns, tokenizer, meta["prompt_format"], meta["kind"], meta["max_length"]
        )
        torch.manual_seed(prompt_seed(settings.seed, turns))
        sampling = settings.temperature > 0
        with torch.no_grad():
            output = model.generate(
                input_ids=torch.tensor([ids], device=device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
                max_new_tokens=settings.max_new_tokens,
                do_sample=sampling,
                temperature=settings.temperature if sampling else None,
                top_p=settings.top_p if sampling else None,
                # Greedy decoding has one answer: generated once, repeated.
                num_return_sequences=settings.samples if sampling else 1,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = output if meta["kind"] == "seq2seq" else output[:, len(ids) :]
        texts = [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new]
        replies.append(texts if sampling else texts * settings.samples)
    return replies


def sample_rows(
    conversations: list[list[dict[str, str]]],
    candidates: list[list[str]],
    references: list[str],
    checkpoint: str,
    settings: dict[str, Any],
) -> Any:
    """One ``sample_schema`` row per prompt."""
    import pyarrow as pa

    from pipeline.schema import last_content

    rows = [
        {
            "prompt_id": conversation_id(turns),
            "prompt": last_content(turns, "user"),
            "conversation": json.dumps(turns, ensure_ascii=False),
            "reference": reference,
            "candidates": replies,
            "model": checkpoint,
            "settings": json.dumps(settings, sort_keys=True),
        }
        for turns, replies, reference in zip(conversations, candidates, references, strict=True)
    ]
    return pa.Table.from_pylist(rows, schema=sample_schema())


class Sampler:
    """Ray Data callable class: candidates through transformers, the model loaded once."""

    def __init__(self, checkpoint: str, settings: dict[str, Any], use_gpu: bool) -> None:
        self.model, self.tokenizer, self.meta = load_for_generation(
            checkpoint, "cuda" if use_gpu else "cpu"
        )
        self.checkpoint = checkpoint
        self.settings = SamplingSettings(**settings)

    def __call__(self, batch: Any) -> Any:
        columns = batch.to_pydict()
        conversations = conversations_of(columns)
        candidates = sample_replies(
            self.model, self.tokenizer, self.meta, conversations, self.settings
        )
        settings = {**asdict(self.settings), "engine": "transformers"}
        references = references_of(columns)
        return sample_rows(conversations, candidates, references, self.checkpoint, settings)


class VllmSampler:
    """Ray Data callable class: candidates through vLLM on one GPU. Only used when ``vllm``
    imports; the prompt is rendered as training rendered it (``prompt_text``)."""

    def __init__(self, checkpoint: str, settings: dict[str, Any], use_gpu: bool) -> None:
        from vllm import LLM

        from train.sft_rows import load_tokenizer

        self.engine = LLM(model=checkpoint, seed=settings["seed"])
        self.tokenizer = load_tokenizer(checkpoint)
        with open(os.path.join(checkpoint, CHECKPOINT_META), encoding="utf-8") as file:
            self.meta = json.load(file)
        self.checkpoint = checkpoint
        self.settings = SamplingSettings(**settings)

    def __call__(self, batch: Any) -> Any:
        from vllm import SamplingParams

        from train.sft_data import prompt_text

        columns = batch.to_pydict()
        conversations = conversations_of(columns)
        settings = self.settings
        prompts = [
            prompt_text(t, self.tokenizer, self.meta["prompt_format"]) for t in conversations
        ]
        params = [
            SamplingParams(
                n=settings.samples,
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_new_tokens,
                seed=prompt_seed(settings.seed, turns),
            )
            for turns in conversations
        ]
        outputs = self.engine.generate(prompts, params, use_tqdm=False)
        candidates = [[c.text.strip() for c in output.outputs] for output in outputs]
        used = {**asdict(settings), "engine": "vllm"}
        references = references_of(columns)
        return sample_rows(conversations, candidates, references, self.checkpoint, used)


def pick_engine(engine: Engine, use_gpu: bool, checkpoint: str) -> str:
    """The engine that runs: vLLM needs a GPU, a full (not LoRA) causal checkpoint and the
    package; ``auto`` falls back to transformers, an explicit ``vllm`` says what is missing."""
    with open(os.path.join(checkpoint, CHECKPOINT_META), encoding="utf-8") as file:
        meta = json.load(file)
    lacking = {
        "a GPU (--gpu)": not use_gpu,
        "the vllm package": importlib.util.find_spec("vllm") is None,
        "a full causal checkpoint (not LoRA, not seq2seq)": bool(meta.get("lora"))
        or meta["kind"] != "causal",
    }
    missing = [why for why, absent in lacking.items() if absent]
    if engine == "vllm" and missing:
        raise CheckpointError(f"engine vllm needs {', '.join(missing)}")
    return "vllm" if engine == "vllm" or (engine == "auto" and not missing) else "transformers"


def check_prompt_columns(input_path: str) -> None:
    import pyarrow.dataset as ds

    from pipeline.read import open_filesystem

    filesystem, local = open_filesystem(input_path)
    columns = ds.dataset(local, filesystem=filesystem, format="parquet").schema.names
    if "prompt" not in columns and "messages" not in columns:
        raise CheckpointError(
            f"{input_path}: needs a 'prompt' column or canonical records ('messages'); "
            f"it has {', '.join(columns)}"
        )


def generate_samples(
    checkpoint: str,
    input_path: str,
    output_path: str,
    settings: SamplingSettings,
    *,
    batch_size: int = 8,
    workers: int | None = None,
    use_gpu: bool = False,
    engine: Engine = "auto",
) -> int:
    """``settings.samples`` candidates for every prompt of ``input_path``, one Parquet row per
    prompt in ``output_path``; returns the prompts written. Resources are declared here, the
    one place the pool is built: one actor per GPU (``num_gpus=1``) or per CPU."""
    import pyarrow.dataset as ds
    import ray.data

    from pipeline.read import open_filesystem

    checkpoint = resolve_checkpoint(checkpoint)
    check_prompt_columns(input_path)
    sampler = VllmSampler if pick_engine(engine, use_gpu, checkpoint) == "vllm" else Sampler
    rows = ray.data.read_parquet(input_path, file_extensions=["parquet"])
    resource = "GPU" if use_gpu else "CPU"
    candidates = rows.map_batches(
        sampler,
        fn_constructor_kwargs={
            "checkpoint": checkpoint,
            "settings": asdict(settings),
            "use_gpu": use_gpu,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(
            min_size=1,
            max_size=workers or max(1, int(ray.cluster_resources().get(resource, 1))),
        ),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )
    candidates.write_parquet(output_path)
    filesystem, local = open_filesystem(output_path)
    return ds.dataset(local, filesystem=filesystem, format="parquet").count_rows()


__all__ = [
    "CheckpointError",
    "SamplingSettings",
    "generate_batch",
    "generate_one",
    "generate_samples",
    "resolve_checkpoint",
    "sample_replies",
    "sample_schema",
]
