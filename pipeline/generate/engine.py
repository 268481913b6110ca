"""Running a backend over a Ray dataset, and the backends themselves.

``generate_column(dataset, backend, stage=...)`` is what every generating stage calls: each row
whose ``request`` column holds an ``encode_request`` JSON string gets an ``encode_completion``
JSON string in ``completion`` (a null request gets a null completion). Rows keep their order
within a batch and every other column. ``transformers`` and ``openai`` run as a Ray Data
actor pool of ``backend.concurrency`` actors, each building its backend once (a model loaded,
an HTTP client opened), declaring ``backend.num_gpus`` per actor; ``vllm`` is refused up front
unless vLLM imports (it needs ``ray.data.llm`` and GPUs; see ``VLLM_NOTE``).

Backends (``build_backend``):

- ``TransformersBackend``: a causal or seq2seq checkpoint (``config.is_encoder_decoder``). The
  prompt is the tokenizer's chat template when it has one, otherwise the turns' contents
  joined by blank lines. Each request is generated on its own, right after
  ``torch.manual_seed(params.seed)``, with its ``n`` samples in one call
  (``num_return_sequences``): so a completion never depends on its batch neighbours. Stop
  strings cut the text (``finish_reason`` "stop"); reaching ``max_tokens`` gives "length".
- ``OpenAIBackend``: POSTs ``{base_url}/chat/completions`` with up to ``max_concurrency``
  requests in flight per actor. 429, 5xx, timeouts and connection errors are retried up to
  ``max_retries`` times, waiting ``backoff_s * 2**attempt`` (a ``Retry-After`` header wins) plus a
  jitter drawn from the request's own key, so reruns wait the same. Other 4xx are final. A
  request that fails for good comes back as ``Completion(error=...)``: the stage makes it a
  reject, nothing is dropped silently.

With ``backend.cache`` set (a local directory or an ``s3://``/``gs://`` URI), every backend
first looks each request up under ``<cache>/<key[:2]>/<key>.json`` (``request_key``) and
stores the successful completions it paid for, so a rerun after a crash pays only for what
is missing.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import xxhash

from pipeline.generate.backend import (
    Backend,
    BackendConfig,
    Completion,
    Request,
    completions_or_raise,
    decode_request,
    encode_completion,
    request_key,
)

VLLM_NOTE = (
    "backend.kind vllm needs the vllm package (pip install vllm on a GPU machine) and runs "
    "through ray.data.llm; use kind transformers or openai (a `vllm serve` endpoint) otherwise"
)
# Columns the vLLM processor adds to a row; everything else is the stage's own.
VLLM_ADDED = frozenset(
    {
        "messages",
        "sampling_params",
        "generated_text",
        "generated_tokens",
        "prompt",
        "prompt_token_ids",
        "num_generated_tokens",
        "num_input_tokens",
        "time_taken_llm",
        "params",
        "request_id",
        "batch_uuid",
        "metrics",
    }
)
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class BackendSetupError(RuntimeError):
    """A backend cannot start (no such model, a missing API key variable, vLLM absent)."""


# --------------------------------------------------------------------------- the cache


class CompletionCache:
    """Completions by request key, one small JSON file each, through pyarrow filesystems."""

    def __init__(self, uri: str) -> None:
        from pipeline.discover import open_filesystem

        self.filesystem, self.root = open_filesystem(uri)
        self.filesystem.create_dir(self.root, recursive=True)

    def path(self, key: str) -> str:
        return posixpath.join(self.root, key[:2], f"{key}.json")

    def get(self, key: str) -> Completion | None:
        try:
            with self.filesystem.open_input_stream(self.path(key)) as stream:
                data = json.loads(stream.read())
        except (FileNotFoundError, OSError):
            return None
        return Completion(
            texts=tuple(data["texts"]),
            finish_reasons=tuple(data["finish_reasons"]),
            cached=True,
            attempts=0,
        )

    def put(self, key: str, completion: Completion) -> None:
        if not completion.ok:
            return
        final = self.path(key)
        self.filesystem.create_dir(posixpath.dirname(final), recursive=True)
        body = json.dumps(
            {"texts": list(completion.texts), "finish_reasons": list(completion.finish_reasons)},
            ensure_ascii=False,
        ).encode("utf-8")
        # A temp name then a move: a reader never sees half a file (object stores put whole).
        temporary = f"{final}.{uuid.uuid4().hex}.tmp"
        with self.filesystem.open_output_stream(temporary) as stream:
            stream.write(body)
        self.filesystem.move(temporary, final)


class CachedBackend:
    """Any backend behind the cache: only the misses reach it."""

    def __init__(self, inner: Backend, cache: CompletionCache) -> None:
        self.inner = inner
        self.cache = cache
        self.model = inner.model

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        keys = [request_key(self.model, request) for request in requests]
        found: list[Completion | None] = [self.cache.get(key) for key in keys]
        missing = [index for index, hit in enumerate(found) if hit is None]
        if missing:
            fresh = completions_or_raise(self.inner, [requests[index] for index in missing])
            for index, completion in zip(missing, fresh, strict=True):
                self.cache.put(keys[index], completion)
                found[index] = completion
        return [completion for completion in found if completion is not None]


# --------------------------------------------------------------------------- transformers


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [dict(message) for message in messages], tokenize=False, add_generation_prompt=True
        )
    return "\n\n".join(message["content"] for message in messages)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to its first stop string, and whether one was found."""
    cuts = [text.index(stop) for stop in stops if stop and stop in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


class TransformersBackend:
    def __init__(self, config: BackendConfig) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        self.torch = torch
        self.model = config.model
        try:
            model_config = AutoConfig.from_pretrained(config.model)
            self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        except (OSError, ValueError) as error:
            raise BackendSetupError(
                f"backend.model {config.model!r} is not a loadable checkpoint: "
                f"{' '.join(str(error).split())[:300]}"
            ) from None
        self.seq2seq = bool(getattr(model_config, "is_encoder_decoder", False))
        self.device = "cuda" if config.num_gpus > 0 and torch.cuda.is_available() else "cpu"
        dtype = torch.float32
        if self.device == "cuda" and config.dtype != "float32":
            dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
        loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.network = loader.from_pretrained(config.model, dtype=dtype).to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self.one(request) for request in requests]

    def one(self, request: Request) -> Completion:
        params = request.params
        if self.seq2seq:
            prompt = "\n\n".join(message["content"] for message in request.messages)
        else:
            prompt = render_prompt(self.tokenizer, request.messages)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=self.seq2seq).to(
            self.device
        )
        options: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "num_return_sequences": params.n,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            options.update(do_sample=False)
        self.torch.manual_seed(params.seed)
        with self.torch.inference_mode():
            output = self.network.generate(**inputs, **options)
        start = 0 if self.seq2seq else inputs["input_ids"].shape[1]
        texts, reasons = [], []
        eos = self.tokenizer.eos_token_id
        for row in output:
            tokens = row[start:]
            ended = eos is not None and bool((tokens == eos).any())
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, params.stop)
            full = len(tokens) >= params.max_tokens
            reasons.append("length" if full and not (ended or stopped) else "stop")
            texts.append(text)
        return Completion(texts=tuple(texts), finish_reasons=tuple(reasons))


# --------------------------------------------------------------------------- OpenAI HTTP


class OpenAIBackend:
    def __init__(self, config: BackendConfig) -> None:
        self.model = config.model
        self.config = config
        self.url = str(config.base_url).rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise BackendSetupError(
                    f"backend.api_key_env names {config.api_key_env!r}, which is not set in "
                    "the environment of the Ray workers"
                )
            self.headers["Authorization"] = f"Bearer {key}"
        self.pool = ThreadPoolExecutor(config.max_concurrency, thread_name_prefix="openai")
        self.sleep = time.sleep

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return list(self.pool.map(self.one, requests))

    def body(self, request: Request, n: int) -> bytes:
        params = request.params
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in request.messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": n,
            "seed": params.seed,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")

    def one(self, request: Request) -> Completion:
        key = request_key(self.model, request)
        attempts = 0
        last_error = ""
        while attempts <= self.config.max_retries:
            attempts += 1
            wait: float | None = None
            try:
                http_request = urllib.request.Request(
                    self.url, data=self.body(request, request.params.n), headers=self.headers
                )
                with urllib.request.urlopen(http_request, timeout=self.config.timeout_s) as reply:
                    data = json.loads(reply.read())
                return self.parse(data, request, attempts)
            except urllib.error.HTTPError as error:
                message = error_message(error)
                last_error = f"HTTP {error.code}: {message}"
                if error.code not in RETRY_STATUSES:
                    return Completion(error=last_error, attempts=attempts)
                wait = retry_after(error.headers.get("Retry-After"))
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as error:
                last_error = f"{type(error).__name__}: {' '.join(str(error).split())}"
            except (ValueError, KeyError, TypeError) as error:
                return Completion(error=f"bad response: {error}", attempts=attempts)
            if attempts <= self.config.max_retries:
                self.sleep(self.backoff(key, attempts, wait))
        return Completion(
            error=f"gave up after {attempts} attempts: {last_error}", attempts=attempts
        )

    def backoff(self, key: str, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return retry_after_s
        base = self.config.backoff_s * 2 ** (attempt - 1)
        jitter = xxhash.xxh64_intdigest(f"{key}:{attempt}".encode()) / 2**64  # [0, 1), per request
        return base * (0.5 + jitter)

    def parse(self, data: dict[str, Any], request: Request, attempts: int) -> Completion:
        choices = sorted(data["choices"], key=lambda choice: choice.get("index", 0))
        if len(choices) != request.params.n:
            return Completion(
                error=f"the server returned {len(choices)} choices for n={request.params.n}",
                attempts=attempts,
            )
        texts = tuple(str(choice["message"].get("content") or "") for choice in choices)
        reasons = tuple(str(choice.get("finish_reason") or "stop") for choice in choices)
        return Completion(texts=texts, finish_reasons=reasons, attempts=attempts)


def error_message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        return str(body.get("error", {}).get("message") or body)[:300]
    except (ValueError, AttributeError, OSError):
        return str(error.reason)[:300]


def retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


# --------------------------------------------------------------------------- wiring


def build_backend(config: BackendConfig) -> Backend:
    """The backend a config names, behind its cache when it has one (in-process)."""
    backend: Backend
    if config.kind == "transformers":
        backend = TransformersBackend(config)
    elif config.kind == "openai":
        backend = OpenAIBackend(config)
    else:
        raise BackendSetupError(
            "backend.kind vllm runs through ray.data.llm on the dataset (generate_column), "
            "not in-process"
        )
    if config.cache:
        return CachedBackend(backend, CompletionCache(config.cache))
    return backend


def check_backend(config: BackendConfig, where: str) -> None:
    """What can be checked on the driver before Ray starts: vLLM present, a local path."""
    if config.kind == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise BackendSetupError(f"{where}: {VLLM_NOTE}") from None


class GenerateBatches:
    """The Ray Data callable: one backend per actor, requests of a batch in, completions out."""

    _lock = threading.Lock()

    def __init__(self, options: dict[str, Any], stage: str, request_column: str, column: str):
        from pipeline.stage_failure import StageFailure, one_line

        self.stage, self.request_column, self.column = stage, request_column, column
        try:
            self.backend = build_backend(BackendConfig(**options))
        except Exception as error:
            raise StageFailure(
                f"stage {stage!r}: backend setup failed: {one_line(error)}"
            ) from None

    def __call__(self, batch: pa.Table) -> pa.Table:
        from pipeline.stage_failure import StageFailure, one_line

        texts = batch.column(self.request_column).to_pylist()
        wanted = [index for index, text in enumerate(texts) if text is not None]
        out: list[str | None] = [None] * len(texts)
        try:
            completions = completions_or_raise(
                self.backend, [decode_request(texts[index]) for index in wanted]
            )
        except Exception as error:
            raise StageFailure(
                f"stage {self.stage!r}: backend {self.backend.model!r} failed: {one_line(error)}"
            ) from None
        for index, completion in zip(wanted, completions, strict=True):
            out[index] = encode_completion(completion)
        values = pa.array(out, pa.string())
        if self.column in batch.column_names:
            return batch.set_column(batch.schema.get_field_index(self.column), self.column, values)
        return batch.append_column(self.column, values)


def generate_column(
    dataset: Any,
    backend: BackendConfig,
    *,
    stage: str,
    request_column: str = "request",
    completion_column: str = "completion",
) -> Any:
    """``dataset`` with ``completion_column`` filled for each non-null ``request_column``."""
    import ray

    check_backend(backend, f"stage {stage!r}")
    if backend.kind == "vllm":
        return vllm_generate_column(dataset, backend, request_column, completion_column)
    return dataset.map_batches(
        GenerateBatches,
        fn_constructor_kwargs={
            "options": backend.model_dump(mode="json"),
            "stage": stage,
            "request_column": request_column,
            "column": completion_column,
        },
        batch_size=backend.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=backend.concurrency),
        num_gpus=backend.num_gpus or None,
    )


def vllm_request_row(row: dict[str, Any], request_column: str) -> dict[str, Any]:
    """A row's request as ``ray.data.llm``'s vLLM processor takes it (messages, sampling)."""
    request = decode_request(row[request_column])
    params = request.params
    return {
        **row,
        "messages": [dict(message) for message in request.messages],
        "sampling_params": {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
            "stop": list(params.stop) or None,
            "seed": params.seed,
        },
    }


def vllm_completion_row(
    row: dict[str, Any], request_column: str, completion_column: str
) -> dict[str, Any]:
    """The processor's output row back in our shape (its text in ``generated_text``)."""
    text = row.get("generated_text")
    kept = {key: value for key, value in row.items() if key not in VLLM_ADDED}
    completion = (
        Completion(error="vLLM returned no text")
        if text is None
        else Completion(texts=(str(text),), finish_reasons=("stop",))
    )
    kept[completion_column] = encode_completion(completion)
    return kept


def vllm_generate_column(
    dataset: Any, backend: BackendConfig, request_column: str, completion_column: str
) -> Any:  # pragma: no cover - needs vLLM and a GPU; unverified until run on one
    from ray.data.llm import build_llm_processor, vLLMEngineProcessorConfig

    processor = build_llm_processor(
        vLLMEngineProcessorConfig(
            model_source=backend.model,
            engine_kwargs=dict(backend.vllm_engine_kwargs),
            concurrency=backend.concurrency,
            batch_size=backend.batch_size,
        ),
        preprocess=lambda row: vllm_request_row(row, request_column),
        postprocess=lambda row: vllm_completion_row(row, request_column, completion_column),
    )
    return processor(dataset)
