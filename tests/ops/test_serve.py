"""``instructflow serve``: OpenAI's chat and completion API over real HTTP on loopback, for a
tiny model saved to a temporary directory (random weights, so texts are noise: the tests
compare texts with each other and with ``model.generate``, never with expected words)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http import HTTPStatus
from pathlib import Path

import pytest

from ops.serve import ApiError, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = [
    "What is the capital of Peru? The capital of Peru is Lima.",
    "Name three primary colours: red, yellow and blue.",
    "How do I boil an egg? Put it in boiling water for eight minutes.",
] * 8
QUESTION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of Peru?"},
]


def save_checkpoint(directory: Path, kind: str) -> str:
    from train.tiny import build_model, train_tokenizer

    tokenizer = train_tokenizer(iter(SENTENCES), vocab_size=300, seq2seq=kind == "seq2seq")
    build_model(tokenizer, kind, "tiny", seed=0).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("serve")
    return {kind: save_checkpoint(root / f"tiny-{kind}", kind) for kind in ("causal", "seq2seq")}


@pytest.fixture(scope="module")
def server(checkpoints):
    with serve_in_thread(checkpoints["causal"], max_tokens_limit=64) as handle:
        yield handle


def call(url: str, path: str, body: object = None, headers: dict | None = None) -> tuple:
    """(status, parsed JSON or raw text) of a GET, or of a POST when ``body`` is given."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data, {"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def chat(url: str, **fields) -> dict:
    status, body = call(url, "/chat/completions", {"messages": QUESTION, **fields})
    assert status == 200, body
    return body


def texts(body: dict) -> list[str]:
    return [choice["message"]["content"] for choice in body["choices"]]


def test_a_chat_completion_has_openai_shape_and_counts_its_tokens(server):
    from transformers import AutoTokenizer

    body = chat(server.url, model="tiny-causal", max_tokens=6, seed=1)
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "tiny-causal" and isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in ("stop", "length")
    tokenizer = AutoTokenizer.from_pretrained(server.server.model.tokenizer.name_or_path)
    rendered = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(tokenizer(rendered, add_special_tokens=False).input_ids)
    assert 1 <= usage["completion_tokens"] <= 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_n_gives_that_many_choices_and_seeds_decide_the_text(server):
    two = chat(server.url, n=2, max_tokens=12, temperature=1.0, seed=7)
    assert [choice["index"] for choice in two["choices"]] == [0, 1]
    assert len(set(texts(two))) == 2
    assert texts(chat(server.url, n=2, max_tokens=12, temperature=1.0, seed=7)) == texts(two)
    other = chat(server.url, n=2, max_tokens=12, temperature=1.0, seed=8)
    assert texts(other) != texts(two)
    greedy = chat(server.url, n=3, max_tokens=5, temperature=0)
    assert len(set(texts(greedy))) == 1 and len(greedy["choices"]) == 3


def test_a_seeded_request_gives_its_text_while_others_are_served(server):
    alone = texts(chat(server.url, max_tokens=10, seed=3))
    results: list[list[str]] = []
    others = [
        threading.Thread(target=lambda: chat(server.url, max_tokens=10, n=2)) for _ in range(3)
    ]
    seeded = [
        threading.Thread(
            target=lambda: results.append(texts(chat(server.url, max_tokens=10, seed=3)))
        )
        for _ in range(2)
    ]
    for thread in others + seeded:
        thread.start()
    for thread in others + seeded:
        thread.join(timeout=60)
    assert results == [alone, alone]


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_greedy_equals_model_generate_on_the_rendered_prompt(checkpoints, kind):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    path = checkpoints[kind]
    tokenizer = AutoTokenizer.from_pretrained(path)
    rendered = tokenizer.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(rendered, add_special_tokens=kind == "seq2seq").input_ids
    model_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    model = model_class.from_pretrained(path).eval()
    with torch.no_grad():
        output = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    start = 1 if kind == "seq2seq" else len(ids)  # the decoder start token, or the prompt
    expected = tokenizer.decode(output[0, start:], skip_special_tokens=True)
    with serve_in_thread(path, device="cpu") as handle:
        body = chat(handle.url, max_tokens=8, temperature=0)
    assert texts(body) == [expected]
    assert body["usage"]["prompt_tokens"] == len(ids)


def test_stop_strings_cut_the_text_and_finish_with_stop(server):
    full = texts(chat(server.url, max_tokens=16, seed=5))[0]
    stop = next(char for char in full[len(full) // 2 :] if char != "\ufffd")
    expected = full[: full.find(stop)]
    for given in (stop, [stop, "never-generated"]):
        body = chat(server.url, max_tokens=16, seed=5, stop=given)
        assert texts(body) == [expected]
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["completion_tokens"] < 16


def test_max_tokens_ends_a_choice_with_length(server):
    for field in ("max_tokens", "max_completion_tokens"):
        body = chat(server.url, seed=2, **{field: 3})
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 3


def test_max_tokens_fits_the_context_window_unless_the_client_chose_it(server, monkeypatch):
    prompt_tokens = chat(server.url, max_tokens=1)["usage"]["prompt_tokens"]
    monkeypatch.setattr(server.server.model, "context_length", prompt_tokens + 5)
    body = chat(server.url, seed=2)  # no max_tokens: what the window leaves
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"
    status, answer = call(server.url, "/chat/completions", {"messages": QUESTION, "max_tokens": 6})
    assert status == 400 and answer["error"]["param"] == "max_tokens"
    assert f"context is {prompt_tokens + 5} tokens" in answer["error"]["message"]


def test_completions_answer_each_prompt(server):
    status, body = call(
        server.url, "/completions", {"prompt": ["Peru", "Lima is"], "max_tokens": 4}
    )
    assert status == 200, body
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert [choice["index"] for choice in body["choices"]] == [0, 1]
    assert all(isinstance(choice["text"], str) for choice in body["choices"])
    assert body["usage"]["completion_tokens"] <= 8


def sse_events(url: str, path: str, body: dict) -> list:
    request = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        lines = response.read().decode().split("\n\n")
    assert lines[-1] == "" and all(line.startswith("data: ") for line in lines[:-1])
    events = [line.removeprefix("data: ") for line in lines[:-1]]
    assert events[-1] == "[DONE]"
    return [json.loads(event) for event in events[:-1]]


@pytest.mark.parametrize("stop", [None, ["\n"], ["ima", "e"]])
def test_streamed_chunks_join_to_the_same_text(server, stop):
    request = {"messages": QUESTION, "max_tokens": 16, "seed": 4, "n": 2, "stop": stop}
    whole = chat(server.url, **{key: value for key, value in request.items() if key != "messages"})
    request |= {"stream": True, "stream_options": {"include_usage": True}}
    chunks = sse_events(server.url, "/chat/completions", request)
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    joined, finished = ["", ""], [None, None]
    for chunk in chunks[:-1]:
        [piece] = chunk["choices"]
        joined[piece["index"]] += piece["delta"].get("content", "")
        finished[piece["index"]] = piece["finish_reason"] or finished[piece["index"]]
    assert joined == texts(whole)
    assert finished == [choice["finish_reason"] for choice in whole["choices"]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]


def test_a_streamed_completion_uses_text_completion_chunks(server):
    chunks = sse_events(
        server.url, "/completions", {"prompt": "Peru", "max_tokens": 5, "stream": True}
    )
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        ({"model": "tiny-causal"}, "messages"),
        ({"messages": [{"content": "hi"}]}, "messages[0]"),
        ({"messages": QUESTION, "temperature": "hot"}, "temperature"),
        ({"messages": QUESTION, "top_p": 1.5}, "top_p"),
        ({"messages": QUESTION, "n": 0}, "n"),
        ({"messages": QUESTION, "max_tokens": 65}, "max_tokens"),
        ({"messages": QUESTION, "max_tokens": True}, "max_tokens"),
        ({"messages": QUESTION, "stop": [""]}, "stop"),
        ({"messages": QUESTION, "seed": 1.5}, "seed"),
        ({"messages": QUESTION, "logprobs": True}, "logprobs"),
    ],
)
def test_a_bad_request_is_400_naming_the_field(server, body, param):
    status, answer = call(server.url, "/chat/completions", body)
    assert status == HTTPStatus.BAD_REQUEST
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["param"] == param
    if param:
        assert param.split("[")[0] in answer["error"]["message"]


def test_unknown_paths_and_models_are_404(server):
    status, answer = call(server.url, "/embeddings", {"input": "x"})
    assert status == 404 and "Invalid URL (POST /v1/embeddings)" in answer["error"]["message"]
    status, answer = call(
        server.url, "/chat/completions", {"model": "gpt-4o", "messages": QUESTION}
    )
    assert status == 404 and answer["error"]["code"] == "model_not_found"
    assert answer["error"]["param"] == "model" and "gpt-4o" in answer["error"]["message"]


def test_models_lists_the_served_name(server, checkpoints):
    status, models = call(server.url, "/models")
    assert status == 200 and models["object"] == "list"
    assert [model["id"] for model in models["data"]] == ["tiny-causal"]
    assert call(server.url, "/models/tiny-causal")[1]["object"] == "model"
    with serve_in_thread(checkpoints["causal"], served_model_name="house-model") as handle:
        assert call(handle.url, "/models")[1]["data"][0]["id"] == "house-model"
        assert chat(handle.url, model="house-model", max_tokens=2)["model"] == "house-model"


def test_an_api_key_is_required_when_set(checkpoints):
    with serve_in_thread(checkpoints["causal"], api_key="sesame") as handle:
        body = {"messages": QUESTION, "max_tokens": 2}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sesame"}):
            status, answer = call(handle.url, "/chat/completions", body, headers)
            assert status == 401 and answer["error"]["code"] == "invalid_api_key"
        assert call(handle.url, "/models", None, {})[0] == 401
        ok = {"Authorization": "Bearer sesame"}
        assert call(handle.url, "/chat/completions", body, ok)[0] == 200
        health = handle.url.removesuffix("/v1") + "/health"
        assert call(health, "")[0] == 200


def test_a_generation_failure_is_500_with_its_message(server, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("CUDA out of memory (pretend)")

    monkeypatch.setattr(server.server.model.model, "generate", broken)
    status, answer = call(server.url, "/chat/completions", {"messages": QUESTION})
    assert status == 500 and answer["error"]["type"] == "server_error"
    assert "CUDA out of memory (pretend)" in answer["error"]["message"]
    assert "Traceback" not in answer["error"]["message"]


def test_intercept_stands_in_for_a_busy_server(server, monkeypatch):
    def busy(method: str, path: str) -> None:
        if path == "/v1/chat/completions":
            raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, "slow down", code="rate_limit_exceeded")

    monkeypatch.setattr(server.server, "intercept", busy)
    status, answer = call(server.url, "/chat/completions", {"messages": QUESTION})
    assert status == 429 and answer["error"]["code"] == "rate_limit_exceeded"
    assert call(server.url, "/models")[0] == 200


def cli(*arguments: str, **options) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "ops.cli", "serve", *arguments]
    return subprocess.Popen(command, cwd=ROOT, env=env, text=True, **options)


@pytest.mark.timeout(120)
def test_the_cli_serves_until_interrupted(checkpoints, tmp_path):
    log = (tmp_path / "stderr.txt").open("w")
    process = cli(
        checkpoints["causal"], "--port", "0", "--quiet", stdout=subprocess.PIPE, stderr=log
    )
    try:
        first = process.stdout.readline()
        assert " at http://127.0.0.1:" in first, (tmp_path / "stderr.txt").read_text()
        url = first.split(" at ")[1].strip()
        status, health = call(url.removesuffix("/v1"), "/health")
        assert status == 200 and health["model"] == "tiny-causal"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, (tmp_path / "stderr.txt").read_text()
        assert "stopped" in (tmp_path / "stderr.txt").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_cli_names_a_missing_checkpoint_and_exits_2(tmp_path):
    missing = str(tmp_path / "no-such-checkpoint")
    process = cli(missing, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert missing in err and len(err.strip().splitlines()) == 1
