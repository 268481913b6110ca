"""The one interface every generation backend implements, and the recipe block that picks one.

A generating stage (``self_instruct``, ``evol_instruct``, ``answer``, ``describe_to_instruction``)
builds ``Request``s (a chat conversation plus sampling ``Params``) and hands them to a
``Backend``; it gets one ``Completion`` per request back, in order. Backends are chosen in the
recipe by ``backend.kind``:

- ``transformers``: a local checkpoint (directory or hub id) in a Ray Data actor pool, CPU or
  GPU as ``num_gpus`` declares;
- ``vllm``: vLLM through ``ray.data.llm`` when it is installed (GPU only);
- ``openai``: any OpenAI-compatible chat-completions endpoint (a vLLM server, a hosted API,
  ``instructflow serve``), with a concurrency limit, retries with backoff and timeouts.

Contract every backend keeps:

- **Deterministic.** A completion depends only on (model, messages, params), ``params.seed``
  included, never on which other requests share its batch or on the worker that runs it.
- **No silent failure.** A request that fails for good (retries spent, an empty choice list,
  a refused prompt) comes back as a ``Completion`` with ``error`` set and no texts; the stage
  turns it into a reject with a reason. Only a setup failure (no such model, bad URL) raises.
- **Cached.** With ``cache`` set, a completion is stored under ``request_key(model, request)``
  and a rerun (after a crash, or the same recipe again) reads it back instead of paying again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from pipeline.stage import FilePath

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}


@dataclass(frozen=True)
class Params:
    """Sampling settings of one request (OpenAI chat-completions names)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class Request:
    messages: tuple[Message, ...]
    params: Params = field(default_factory=Params)


@dataclass(frozen=True)
class Completion:
    """``texts`` has ``params.n`` entries when ``error`` is None, none otherwise."""

    texts: tuple[str, ...] = ()
    finish_reasons: tuple[str, ...] = ()
    error: str | None = None
    cached: bool = False
    # Attempts the backend made (1 without retries); 0 when served from the cache.
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


class Backend(Protocol):
    """Built once per Ray actor (models load in ``__init__``), then called batch by batch."""

    # The model's name as provenance records it: the checkpoint path, hub id or served name.
    model: str

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """One completion per request, same order."""
        ...


def request_key(model: str, request: Request) -> str:
    """The cache key of a request: sha256 of (model, messages, params) as canonical JSON."""
    payload = {
        "model": model,
        "messages": [dict(message) for message in request.messages],
        "params": asdict(request.params),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


BackendKind = Literal["transformers", "vllm", "openai"]
TRAIN_SUMMARY = "train_summary.json"


def resolve_training_output(path: str) -> str:
    """A local ``instructflow train`` output directory stands for its best checkpoint (its
    last without validation), as ``instructflow generate`` takes it; anything else (a
    checkpoint directory, a hub id, an s3:// path) is returned as it is."""
    summary = os.path.join(path, TRAIN_SUMMARY)
    if "://" in path or not os.path.isfile(summary):
        return path
    with open(summary, encoding="utf-8") as file:
        facts = json.load(file)
    for which in ("best", "last"):
        chosen = (facts.get(which) or {}).get("path")
        if chosen and os.path.isdir(chosen):
            return chosen
    return path


class BackendConfig(BaseModel):
    """``backend:`` in a generating stage's config."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    kind: BackendKind = "transformers"
    # transformers/vllm: a checkpoint directory, a training output directory (its best
    # checkpoint) or hub id; openai: the served model name.
    model: str
    # Directory (local, s3://, gs://) of cached completions; None: no cache.
    cache: str | None = None
    # --- transformers / vllm ---
    num_gpus: float = Field(0.0, ge=0.0)
    concurrency: int = Field(1, ge=1)  # actors in the pool
    batch_size: int = Field(16, ge=1)  # requests per Ray Data batch
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # --- openai ---
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    api_key_env: str | None = None  # the environment variable holding the key, never the key
    max_concurrency: int = Field(8, ge=1)  # requests in flight per actor
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)  # first wait; doubles per retry, Retry-After wins
    # --- vllm ---
    vllm_engine_kwargs: dict[str, Any] = {}

    @field_validator("model")
    @classmethod
    def _checkpoint_of_training_output(cls, model: str, info: ValidationInfo) -> str:
        if info.data.get("kind") == "openai":
            return model
        return resolve_training_output(model)

    @model_validator(mode="after")
    def _kind_needs(self) -> BackendConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError(
                "backend.kind openai needs backend.base_url (e.g. http://host:8000/v1)"
            )
        if self.kind == "vllm" and self.num_gpus <= 0:
            raise ValueError("backend.kind vllm runs on GPUs: set backend.num_gpus > 0")
        return self


# Re-exported for stage configs that name a local checkpoint.
__all__ = [
    "Backend",
    "BackendConfig",
    "BackendKind",
    "Completion",
    "FilePath",
    "Message",
    "Params",
    "Request",
    "request_key",
    "resolve_training_output",
]


def completions_or_raise(backend: Backend, requests: Sequence[Request]) -> list[Completion]:
    """``backend.generate`` with its length checked: a backend bug must not shift rows."""
    completions = backend.generate(requests)
    if len(completions) != len(requests):
        raise RuntimeError(
            f"backend {backend.model!r} returned {len(completions)} completions "
            f"for {len(requests)} requests"
        )
    return completions


# Requests and completions travel through Ray Data as JSON strings in one column each, so a
# stage's dataset keeps a flat Arrow schema whatever the backend.
def encode_request(request: Request) -> str:
    return json.dumps(
        {"messages": [dict(m) for m in request.messages], "params": asdict(request.params)},
        sort_keys=True,
        ensure_ascii=False,
    )


def decode_request(text: str) -> Request:
    data = json.loads(text)
    params = dict(data.get("params") or {})
    params["stop"] = tuple(params.get("stop") or ())
    return Request(messages=tuple(data["messages"]), params=Params(**params))


def encode_completion(completion: Completion) -> str:
    return json.dumps(asdict(completion), sort_keys=True, ensure_ascii=False)


def decode_completion(text: str) -> Completion:
    data = json.loads(text)
    return Completion(
        texts=tuple(data["texts"]),
        finish_reasons=tuple(data["finish_reasons"]),
        error=data["error"],
        cached=data["cached"],
        attempts=data["attempts"],
    )
