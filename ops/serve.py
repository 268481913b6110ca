"""``instructflow serve CHECKPOINT``: a local transformers checkpoint behind OpenAI's HTTP API,
for a chat UI, an eval harness or the generating stages' ``openai`` backend.

    instructflow serve out/quickstart-sft --port 8000 --served-model-name tiny
    curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\
        -d '{"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 32}'

From Python (tests, scripts): ``with serve_in_thread(path, port=0) as handle:`` gives
``handle.url`` (``http://127.0.0.1:PORT/v1``, what an OpenAI client takes as ``base_url``).

    POST /v1/chat/completions   messages, model, max_tokens | max_completion_tokens, temperature,
                                top_p, n, stop (a string or up to 4), seed, stream (+ stream_options
                                include_usage)
    POST /v1/completions        prompt (a string or a list of them), the same parameters
    GET  /v1/models             the one served model (``--served-model-name``, default the
                                checkpoint directory's name); /v1/models/NAME for one
    GET  /health                200 once the model is loaded (never asks for the key)

The checkpoint is loaded once with ``AutoTokenizer`` and ``AutoModelForCausalLM``, or
``AutoModelForSeq2SeqLM`` when its config is encoder-decoder. A chat is rendered with the
tokenizer's chat template (generation prompt added), or, for a tokenizer without one, as
``role: content`` lines ending with ``assistant:``; an ``instructflow train`` checkpoint that
was trained with a plain prompt format (its ``instructflow.json``) is rendered that way
instead, as ``instructflow generate`` does. A seq2seq model's encoder reads the rendered text.

**Determinism.** Generation runs under one lock, with ``torch.manual_seed(seed)`` set just
before when the request has a ``seed``, so a seeded (or greedy, ``temperature`` 0) request
gives the same text whatever else the server is doing. ``n`` samples are one batch; greedy
decoding has one answer, generated once and repeated.

**Stopping.** A choice ends at the model's end token, at the first ``stop`` string (cut off, not
included) or at ``max_tokens``; only the last gives ``finish_reason`` "length".
``completion_tokens`` counts the tokens generated, the end token included. Streaming sends
OpenAI's ``data: {chunk}`` server-sent events as tokens come, ending with ``data: [DONE]``;
text that could still be the start of a stop string, or half of a character, is held back
until it is settled.

**Errors** are OpenAI's body, ``{"error": {"message", "type", "param", "code"}}``: 400 for bad
JSON or a bad field (``param`` names it), 401 for a missing or wrong key (``--api-key`` or
``INSTRUCTFLOW_SERVE_API_KEY``), 404 for an unknown path or a model that is not served
(``model_not_found``), 413 for a body over 4 MiB, 500 when generation fails (the message; the
traceback goes to the server's log). Fields this server cannot honour (``logprobs``,
``tools``, ``response_format`` other than text, penalties, ``logit_bias``, ``echo``,
``suffix``, ``best_of``) are a 400 naming them rather than a silently different answer;
others (``user``, ``metadata``...) are ignored.

**Limits.** One lock means requests are served one at a time: this is for tests, demos and
small evals, not a throughput server (no batching across requests, no paged KV cache). For
that, vLLM's ``vllm serve`` speaks the same API. A stream is written as it is generated, under
the lock, so a client that reads slowly holds the others up. Requests without ``temperature``
sample at OpenAI's default of 1, not at the checkpoint's ``generation_config.json`` values. No
LoRA adapters (merge them first), no tool calls, no CORS headers for pages on other origins.
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.generate.backend import resolve_training_output

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_CHOICES = 16
MAX_STOP_STRINGS = 4  # OpenAI's limit
DEFAULT_MAX_TOKENS_LIMIT = 1024
DTYPES = ("auto", "float32", "float16", "bfloat16")
API_KEY_ENV = "INSTRUCTFLOW_SERVE_API_KEY"
# Fields whose effect this server cannot give; any value but these neutral ones is a 400.
UNSUPPORTED = (
    "logprobs",
    "top_logprobs",
    "tools",
    "functions",
    "response_format",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "echo",
    "suffix",
    "best_of",
)


class ServeError(ValueError):
    """The checkpoint or device cannot be served; the message names the path or option."""


class ApiError(Exception):
    """An OpenAI-style error answer: status, message, the offending field and a code."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, param, "invalid_value")


def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` cannot be loaded, without importing torch; None when it looks loadable."""
    path = resolve_training_output(path)
    if not os.path.isdir(path):
        return f"{path}: no such checkpoint directory"
    if not os.path.isfile(os.path.join(path, "config.json")):
        if os.path.isfile(os.path.join(path, "adapter_config.json")):
            return f"{path}: a LoRA adapter; merge it into its base model to serve it"
        return f"{path}: not a transformers checkpoint (no config.json)"
    return None


# ---- request parsing -------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """How one request samples; ``max_tokens_given`` says whether the client chose the
    length (then a prompt too long for it is an error, else the length is shortened)."""

    max_tokens: int
    max_tokens_given: bool
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    stream: bool = False
    include_usage: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def integer_field(body: dict, name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name}: {value!r} is not an integer", name)
    if value < low or (high is not None and value > high):
        allowed = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise bad_request(f"{name}: {value} is out of range (allowed: {allowed})", name)
    return value


def number_field(body: dict, name: str, low: float, high: float, default: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{name}: {value!r} is not a number", name)
    if not low <= value <= high:
        raise bad_request(f"{name}: {value} is out of range (allowed: {low} to {high})", name)
    return float(value)


def stop_strings(body: dict) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(stop, str) and stop for stop in stops):
        raise bad_request(f"stop: {value!r} is not a non-empty string or a list of them", "stop")
    if len(stops) > MAX_STOP_STRINGS:
        raise bad_request(f"stop: {len(stops)} strings, at most {MAX_STOP_STRINGS}", "stop")
    return tuple(stops)


def is_neutral(name: str, value: Any) -> bool:
    """Whether an unsupported field's value asks for nothing (as clients send by default)."""
    if value is None or value is False or value in ("", [], {}, {"type": "text"}):
        return True
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and value == (1 if name == "best_of" else 0)


def check_supported(body: dict) -> None:
    for name in UNSUPPORTED:
        if not is_neutral(name, body.get(name)):
            raise bad_request(f"{name}: not supported by instructflow serve", name)


def top_p_field(body: dict) -> float:
    top_p = number_field(body, "top_p", 0.0, 1.0, 1.0)
    if top_p == 0:  # no token would be kept
        raise bad_request("top_p: 0 is out of range (allowed: above 0, up to 1)", "top_p")
    return top_p


def parse_sampling(body: dict, max_tokens_limit: int) -> Sampling:
    """The sampling parameters of a chat or completion request, checked; errors name the field."""
    check_supported(body)
    length_name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    max_tokens = integer_field(body, length_name, 1, max_tokens_limit)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request(f"stream: {stream!r} is not true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request(f"stream_options: {options!r} is not an object", "stream_options")
    seed = integer_field(body, "seed", -(2**63), 2**63 - 1)
    return Sampling(
        max_tokens=max_tokens or max_tokens_limit,
        max_tokens_given=max_tokens is not None,
        temperature=number_field(body, "temperature", 0.0, 2.0, 1.0),
        top_p=top_p_field(body),
        n=integer_field(body, "n", 1, MAX_CHOICES) or 1,
        stop=stop_strings(body),
        seed=seed,
        stream=stream,
        include_usage=stream and bool(options.get("include_usage")),
    )


def message_text(content: Any, where: str) -> str:
    """A message's content: a string, or OpenAI's list of ``{"type": "text", "text"}`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        for part in content
    ):
        return "".join(part["text"] for part in content)
    raise bad_request(f"{where}: a string or a list of text parts is needed", where)


def parse_messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages: a non-empty list of {role, content} is required", "messages")
    turns = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if not isinstance(role, str) or not role:
            raise bad_request(f"messages[{index}].role: a role is required", f"messages[{index}]")
        content = message_text(message.get("content"), f"messages[{index}].content")
        turns.append({"role": role, "content": content})
    return turns


def parse_prompts(body: dict) -> list[str]:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise bad_request("prompt: a string or a non-empty list of strings is required", "prompt")
    return prompts


# ---- generation ------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str
    completion_tokens: int


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str | None:
    """``text`` up to its first stop string, or None when it holds none."""
    found = [at for at in (text.find(stop) for stop in stops) if at >= 0]
    return text[: min(found)] if found else None


def settled_text(text: str, stops: tuple[str, ...]) -> str:
    """The part of a growing text that later tokens cannot change: without a trailing half
    character (decoded as U+FFFD) and without a tail that may be the start of a stop string."""
    text = text.rstrip("\ufffd")
    held = max(
        (size for stop in stops for size in range(1, len(stop)) if text.endswith(stop[:size])),
        default=0,
    )
    return text[: len(text) - held]


class TextWatcher:
    """A stopping criterion ``generate`` calls after every token. It records where each row
    ended (its end token, or the first stop string in its text), stops rows that reached a
    stop string, and passes each row's settled text to ``on_text`` as it grows."""

    def __init__(
        self,
        tokenizer: Any,
        start: int,
        end_ids: set[int],
        stops: tuple[str, ...],
        on_text: Callable[[int, str], None] | None,
    ) -> None:
        self.tokenizer, self.start, self.end_ids = tokenizer, start, end_ids
        self.stops, self.on_text = stops, on_text
        self.lengths: dict[int, int] = {}  # row -> generated tokens, for rows that ended

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = []
        for row, ids in enumerate(input_ids[:, self.start :].tolist()):
            if row in self.lengths:
                done.append(True)
                continue
            if ids[-1] in self.end_ids:
                self.lengths[row] = len(ids)
            elif self.stops or self.on_text:
                self.read(row, ids)
            done.append(row in self.lengths)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def read(self, row: int, ids: list[int]) -> None:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = cut_at_stop(text, self.stops)
        if cut is not None:
            self.lengths[row] = len(ids)
        if self.on_text:
            self.on_text(row, cut if cut is not None else settled_text(text, self.stops))


class ServedModel:
    """The checkpoint's model and tokenizer, loaded once, and the one lock generation runs under."""

    def __init__(self, checkpoint: str, device: str | None = None, dtype: str = "auto") -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        from train.sft_rows import load_tokenizer

        problem = checkpoint_problem(checkpoint)
        if problem:
            raise ServeError(problem)
        if dtype not in DTYPES:
            raise ServeError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
        self.device = pick_device(device)
        config = AutoConfig.from_pretrained(checkpoint)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        model_class = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        loaded_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = model_class.from_pretrained(checkpoint, dtype=loaded_dtype)
        self.model.to(self.device).eval()
        self.tokenizer = load_tokenizer(checkpoint)
        self.dtype = str(self.model.dtype).removeprefix("torch.")
        self.prompt_format = trained_prompt_format(checkpoint)
        # Causal models have a window; T5's relative positions have none.
        self.context_length = (
            None if self.seq2seq else getattr(config, "max_position_embeddings", None)
        )
        self.end_ids = end_token_ids(self.model, self.tokenizer)
        self.lock = threading.Lock()

    def chat_ids(self, turns: list[dict[str, str]]) -> list[int]:
        text = render_chat(turns, self.tokenizer, self.prompt_format)
        # A chat template writes its own special tokens; a seq2seq source ends as training's did.
        return list(self.tokenizer(text, add_special_tokens=self.seq2seq)["input_ids"])

    def prompt_ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def generate(
        self,
        ids: list[int],
        sampling: Sampling,
        on_text: Callable[[int, str], None] | None = None,
    ) -> list[Choice]:
        """``sampling.n`` choices for one prompt; ``on_text(index, settled text)`` as they grow."""
        import torch
        from transformers import StoppingCriteriaList

        rows = 1 if sampling.greedy else sampling.n
        fan_out = on_text
        if on_text and rows < sampling.n:  # the one greedy answer is every choice's

            def fan_out(row: int, text: str) -> None:
                for index in range(sampling.n):
                    on_text(index, text)

        start = 1 if self.seq2seq else len(ids)  # a seq2seq output opens with the decoder start
        watcher = TextWatcher(self.tokenizer, start, self.end_ids, sampling.stop, fan_out)
        inputs = torch.tensor([ids], device=self.device)
        with self.lock, torch.no_grad():
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            output = self.model.generate(
                input_ids=inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=sampling.max_tokens,
                stopping_criteria=StoppingCriteriaList([watcher]),
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling_arguments(sampling, rows),
            )
        choices = [
            self.finished(row, new, watcher, sampling)
            for row, new in enumerate(output[:, start:].tolist())
        ]
        return choices * sampling.n if rows < sampling.n else choices

    def finished(
        self, row: int, new: list[int], watcher: TextWatcher, sampling: Sampling
    ) -> Choice:
        length = watcher.lengths.get(row, len(new))
        text = self.tokenizer.decode(new[:length], skip_special_tokens=True)
        cut = cut_at_stop(text, sampling.stop)
        if cut is not None:
            return Choice(cut, "stop", length)
        ended = row in watcher.lengths or length < sampling.max_tokens
        return Choice(text, "stop" if ended else "length", length)


def sampling_arguments(sampling: Sampling, rows: int) -> dict[str, Any]:
    if sampling.greedy:
        return {"do_sample": False}
    # top_k 0: OpenAI's sampling has no top-k, unlike transformers' default of 50.
    return {
        "do_sample": True,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": 0,
        "num_return_sequences": rows,
    }


def pick_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ServeError(f"--device {device}: torch sees no CUDA device")
    try:
        torch.device(device)
    except RuntimeError as error:
        raise ServeError(f"--device {device}: {error}") from None
    return device


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return {token for token in ids if token is not None}


def trained_prompt_format(checkpoint: str) -> str | None:
    """The plain prompt format an ``instructflow train`` checkpoint was trained with, if any."""
    from train.sft import CHECKPOINT_META
    from train.sft_data import PLAIN_TEMPLATES

    path = os.path.join(checkpoint, CHECKPOINT_META)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        prompt_format = json.load(file).get("prompt_format")
    return prompt_format if prompt_format in PLAIN_TEMPLATES else None


def render_chat(turns: list[dict[str, str]], tokenizer: Any, prompt_format: str | None) -> str:
    from train.sft_data import prompt_text

    if prompt_format:
        return prompt_text(turns, tokenizer, prompt_format)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
    return "".join(f"{turn['role']}: {turn['content']}\n" for turn in turns) + "assistant:"


# ---- responses -------------------------------------------------------------------------


@dataclass
class Job:
    """One validated request: its prompts as token ids and how to sample them."""

    chat: bool
    prompts: list[list[int]]
    sampling: Sampling
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))

    def header(self, model_name: str, chunk: bool = False) -> dict[str, Any]:
        """The fields every response and chunk opens with, in OpenAI's order."""
        if self.chat:
            name, kind = (
                "chatcmpl-" + self.id,
                "chat.completion.chunk" if chunk else "chat.completion",
            )
        else:  # a completion's chunks are text_completion objects too
            name, kind = "cmpl-" + self.id, "text_completion"
        return {"id": name, "object": kind, "created": self.created, "model": model_name}


def choice_body(job: Job, index: int, text: str | None, finish: str | None) -> dict[str, Any]:
    """A choice in a response (``text`` and ``finish`` set) or a streamed chunk's piece."""
    if job.chat and job.sampling.stream:
        delta = {} if text is None else {"content": text}
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
    if job.chat:
        message = {"role": "assistant", "content": text}
        return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
    return {"text": text or "", "index": index, "logprobs": None, "finish_reason": finish}


def usage(job: Job, choices: list[Choice]) -> dict[str, int]:
    prompt = sum(len(ids) for ids in job.prompts)
    completion = sum(choice.completion_tokens for choice in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def response_body(job: Job, model_name: str, choices: list[Choice]) -> dict[str, Any]:
    return {
        **job.header(model_name),
        "choices": [
            choice_body(job, index, choice.text, choice.finish_reason)
            for index, choice in enumerate(choices)
        ],
        "usage": usage(job, choices),
    }


def run_job(
    model: ServedModel, job: Job, on_text: Callable[[int, str], None] | None = None
) -> list[Choice]:
    """Every choice of the job, prompt by prompt: prompt ``p``'s ``n`` choices are indices
    ``p * n`` to ``p * n + n - 1``. A failure in generate is a 500 carrying its message."""
    choices: list[Choice] = []
    for ids in job.prompts:
        offset = len(choices)
        report = (lambda row, text, at=offset: on_text(at + row, text)) if on_text else None
        sampling = fitted(model, ids, job)
        try:
            choices += model.generate(ids, sampling, report)
        except ConnectionError:  # the client left a stream: not a generation failure
            raise
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            raise ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"generation failed: {type(error).__name__}: {error}",
                kind="server_error",
            ) from None
    return choices


def fitted(model: ServedModel, ids: list[int], job: Job) -> Sampling:
    """The job's sampling with ``max_tokens`` inside the model's window: shortened when the
    client did not choose it, an error naming the field when it did."""
    sampling, window = job.sampling, model.context_length
    if window is None or len(ids) + sampling.max_tokens <= window:
        return sampling
    prompt_field = "messages" if job.chat else "prompt"
    if len(ids) >= window or sampling.max_tokens_given:
        field_name = prompt_field if len(ids) >= window else "max_tokens"
        raise bad_request(
            f"this model's context is {window} tokens; the request asks for "
            f"{len(ids) + sampling.max_tokens} ({len(ids)} in the {prompt_field}, "
            f"{sampling.max_tokens} to generate)",
            field_name,
        )
    return replace(sampling, max_tokens=window - len(ids))


class StreamWriter:
    """Sends a job's choices as OpenAI's server-sent chunks, each piece once."""

    def __init__(self, job: Job, model_name: str, send: Callable[[str], None]) -> None:
        self.job, self.model_name, self.send = job, model_name, send
        self.sent: dict[int, str] = {}

    def chunk(self, pieces: list[dict[str, Any]], **extra: Any) -> None:
        body = {**self.job.header(self.model_name, chunk=True), "choices": pieces, **extra}
        if self.job.sampling.include_usage:
            body.setdefault("usage", None)
        self.send("data: " + json.dumps(body, ensure_ascii=False) + "\n\n")

    def text(self, index: int, settled: str) -> None:
        before = self.sent.get(index, "")
        if len(settled) > len(before) and settled.startswith(before):
            self.sent[index] = settled
            self.chunk([choice_body(self.job, index, settled[len(before) :], None)])

    def run(self, model: ServedModel) -> None:
        total = len(self.job.prompts) * self.job.sampling.n
        if self.job.chat:
            for index in range(total):
                piece = choice_body(self.job, index, "", None)
                piece["delta"] = {"role": "assistant", "content": ""}
                self.chunk([piece])
        try:
            choices = run_job(model, self.job, self.text)
        except ApiError as error:  # the status line is sent: the error goes as an event
            self.send("data: " + json.dumps(error.body()) + "\n\n")
            self.send("data: [DONE]\n\n")
            return
        for index, choice in enumerate(choices):
            self.text(index, choice.text)  # what was held back, now settled
            self.chunk([choice_body(self.job, index, None, choice.finish_reason)])
        if self.job.sampling.include_usage:
            self.chunk([], usage=usage(self.job, choices))
        self.send("data: [DONE]\n\n")


# ---- HTTP ------------------------------------------------------------------------------


class ServeHandler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.answer("GET")

    def do_POST(self) -> None:
        self.answer("POST")

    def answer(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            raw = self.read_body() if method == "POST" else b""
            if path != "/health":
                self.check_key()
            if self.server.intercept:
                self.server.intercept(method, path)
            reply = self.server.route(method, path, raw)
        except ApiError as error:
            self.send_json(error.status, error.body())
            return
        if isinstance(reply, Job):
            self.send_stream(reply)
        else:
            self.send_json(HTTPStatus.OK, reply)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            self.close_connection = True
            raise bad_request(f"Content-Length {length!r} is not a number", "Content-Length")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # not read: the connection cannot be reused
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes; the limit is {MAX_BODY_BYTES}",
            )
        return self.rfile.read(int(length))

    def check_key(self) -> None:
        key = self.server.api_key
        if not key:
            return
        given = self.headers.get("Authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), key):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED,
                "missing or incorrect API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    def send_json(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_stream(self, job: Job) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(event: str) -> None:
            data = event.encode("utf-8")
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            StreamWriter(job, self.server.model_name, send).run(self.server.model)
            self.wfile.write(b"0\r\n\r\n")
        except ConnectionError:  # the client left; so does its generation
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class Server(ThreadingHTTPServer):
    """The HTTP server around one ``ServedModel``: a thread per connection, one generation
    at a time. ``intercept(method, path)``, for tests, runs before each authorised request
    and may sleep or raise ``ApiError`` (a 429, say) to stand in for a busy server."""

    daemon_threads = True

    def __init__(
        self,
        model: ServedModel,
        model_name: str,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
        log_requests: bool = False,
        intercept: Callable[[str, str], None] | None = None,
    ) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ServeHandler)
        self.model, self.model_name, self.api_key = model, model_name, api_key
        self.max_tokens_limit, self.log_requests = max_tokens_limit, log_requests
        self.intercept = intercept
        self.models_created = int(time.time())

    @property
    def url(self) -> str:
        """The OpenAI base URL, ``http://HOST:PORT/v1``."""
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/v1"

    def route(self, method: str, path: str, raw: bytes) -> dict[str, Any] | Job:
        """A JSON answer, or a streaming job for the handler to send; ``ApiError`` otherwise."""
        if method == "GET" and path == "/health":
            return {"status": "ok", "model": self.model_name}
        if method == "GET" and path == "/v1/models":
            return {"object": "list", "data": [self.model_card()]}
        if method == "GET" and path.startswith("/v1/models/"):
            self.check_model(path.removeprefix("/v1/models/"), "model")
            return self.model_card()
        if method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            return self.completion(request_body(raw), chat=path == "/v1/chat/completions")
        raise ApiError(HTTPStatus.NOT_FOUND, f"Invalid URL ({method} {path})", code="unknown_url")

    def model_card(self) -> dict[str, Any]:
        return {
            "id": self.model_name,
            "object": "model",
            "created": self.models_created,
            "owned_by": "instructflow",
        }

    def check_model(self, name: Any, param: str) -> None:
        if name is not None and name != self.model_name:
            raise ApiError(
                HTTPStatus.NOT_FOUND,
                f"The model `{name}` does not exist; this server serves `{self.model_name}`",
                param,
                "model_not_found",
            )

    def completion(self, body: dict[str, Any], chat: bool) -> dict[str, Any] | Job:
        self.check_model(body.get("model"), "model")
        sampling = parse_sampling(body, self.max_tokens_limit)
        if chat:
            prompts = [self.model.chat_ids(parse_messages(body))]
        else:
            prompts = [self.model.prompt_ids(prompt) for prompt in parse_prompts(body)]
        if len(prompts) * sampling.n > MAX_CHOICES:
            raise bad_request(
                f"{len(prompts)} prompts x n {sampling.n}: at most {MAX_CHOICES}", "n"
            )
        job = Job(chat, prompts, sampling)
        for ids in prompts:  # a prompt too long is a 400 before any stream starts
            fitted(self.model, ids, job)
        if sampling.stream:
            return job  # generated while it is sent
        return response_body(job, self.model_name, run_job(self.model, job))


def request_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed JSON body: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    return body


# ---- starting it -----------------------------------------------------------------------


@dataclass
class ServeHandle:
    """A server running in a background thread; ``close()`` (or leaving ``with``) stops it."""

    server: Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> ServeHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_server(
    checkpoint: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    device: str | None = None,
    dtype: str = "auto",
    api_key: str | None = None,
    max_tokens_limit: int = DEFAULT_MAX_TOKENS_LIMIT,
    log_requests: bool = False,
    intercept: Callable[[str, str], None] | None = None,
) -> Server:
    """Load ``checkpoint`` and bind the server (``port`` 0: a free one); not yet serving."""
    # The name is the directory given (a training output's, say), the model its checkpoint.
    name = served_model_name or os.path.basename(os.path.normpath(os.path.abspath(checkpoint)))
    model = ServedModel(resolve_training_output(checkpoint), device, dtype)
    return Server(model, name, host, port, api_key, max_tokens_limit, log_requests, intercept)


def serve_in_thread(
    checkpoint: str, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> ServeHandle:
    """``make_server`` serving from a daemon thread; the handle has ``.url`` and ``.close()``."""
    server = make_server(checkpoint, host, port, **options)
    thread = threading.Thread(target=server.serve_forever, name="instructflow-serve", daemon=True)
    thread.start()
    return ServeHandle(server, thread)


__all__ = [
    "API_KEY_ENV",
    "ApiError",
    "DTYPES",
    "Server",
    "ServeError",
    "ServeHandle",
    "ServedModel",
    "checkpoint_problem",
    "make_server",
    "serve_in_thread",
]
