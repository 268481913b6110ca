"""The generation backends: a real tiny model, a real HTTP server on loopback, real Ray."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.generate.backend import (
    BackendConfig,
    Params,
    Request,
    decode_completion,
    encode_request,
)
from pipeline.generate.engine import (
    BackendSetupError,
    OpenAIBackend,
    build_backend,
    check_backend,
    generate_column,
    vllm_completion_row,
    vllm_request_row,
)
from pipeline.stage_failure import StageFailure, find_cause
from tests.pipeline.generate.scripted_server import ScriptedServer

TEXTS = [
    "Write a haiku about autumn leaves.",
    "List three uses of a paper clip.",
    "Explain why the sky is blue in one sentence.",
    "Name a fruit that is yellow.",
] * 20


def ask(text: str, **params) -> Request:
    return Request(messages=({"role": "user", "content": text},), params=Params(**params))


@pytest.fixture(scope="module")
def tiny_causal(tmp_path_factory):
    from train.tiny import build_model, train_tokenizer

    path = tmp_path_factory.mktemp("tiny-causal")
    tokenizer = train_tokenizer(iter(TEXTS), vocab_size=300)
    build_model(tokenizer, "causal", "tiny", 0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_seq2seq(tmp_path_factory):
    from train.tiny import build_model, train_tokenizer

    path = tmp_path_factory.mktemp("tiny-t5")
    tokenizer = train_tokenizer(iter(TEXTS), vocab_size=300, seq2seq=True)
    build_model(tokenizer, "seq2seq", "tiny", 0, "t5").save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_greedy_equals_generate_and_a_request_ignores_its_batch(tiny_causal):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    backend = build_backend(BackendConfig(model=tiny_causal))
    alone = backend.generate([ask(TEXTS[0], max_tokens=8)])[0]
    batch = backend.generate([ask(t, max_tokens=8) for t in TEXTS[:4]])
    assert batch[0] == alone and alone.ok and alone.finish_reasons[0] in ("stop", "length")

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": TEXTS[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    direct = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert alone.texts[0] == direct


def test_sampling_is_seeded_per_request_and_gives_n(tiny_causal):
    backend = build_backend(BackendConfig(model=tiny_causal))
    request = ask(TEXTS[1], max_tokens=12, temperature=1.0, n=3, seed=5)
    first = backend.generate([request])[0]
    again = backend.generate([ask(TEXTS[2], max_tokens=4, temperature=1.0), request])[1]
    assert len(first.texts) == 3 and first == again
    other = backend.generate([ask(TEXTS[1], max_tokens=12, temperature=1.0, n=3, seed=6)])[0]
    assert other.texts != first.texts


def test_stop_strings_cut_the_text(tiny_causal):
    backend = build_backend(BackendConfig(model=tiny_causal))
    full = backend.generate([ask(TEXTS[3], max_tokens=16)])[0].texts[0]
    assert len(full) > 2
    stop = full[len(full) // 2 :][:2]
    cut = backend.generate([ask(TEXTS[3], max_tokens=16, stop=(stop,))])[0]
    assert cut.texts[0] == full[: full.index(stop)] and cut.finish_reasons == ("stop",)


def test_a_seq2seq_checkpoint_generates(tiny_seq2seq):
    backend = build_backend(BackendConfig(model=tiny_seq2seq))
    completion = backend.generate([ask("packing list for a trip", max_tokens=6)])[0]
    assert completion.ok and isinstance(completion.texts[0], str)


def test_a_bad_model_path_is_a_setup_error_naming_it(tmp_path):
    with pytest.raises(BackendSetupError, match="nowhere"):
        build_backend(BackendConfig(model=str(tmp_path / "nowhere")))


def test_generate_column_on_ray_fills_requests_and_names_the_stage_on_failure(
    ray_session, tiny_causal, tmp_path
):
    import ray

    requests = [encode_request(ask(t, max_tokens=4)) for t in TEXTS[:3]] + [None]
    dataset = ray.data.from_arrow(
        pa.table({"row": [0, 1, 2, 3], "request": pa.array(requests, pa.string())})
    )
    out = generate_column(dataset, BackendConfig(model=tiny_causal, batch_size=2), stage="answer")
    rows = sorted(out.take(10), key=lambda row: row["row"])
    assert rows[3]["completion"] is None
    assert all(decode_completion(row["completion"]).ok for row in rows[:3])

    broken = generate_column(
        dataset, BackendConfig(model=str(tmp_path / "missing-model")), stage="answer"
    )
    with pytest.raises(Exception) as raised:
        broken.take(1)
    failure = find_cause(raised.value, StageFailure)
    assert failure is not None and "'answer'" in str(failure) and "missing-model" in str(failure)


def openai(server: ScriptedServer, **options) -> BackendConfig:
    settings = {"backoff_s": 0.01, "timeout_s": 2.0, **options}
    return BackendConfig(kind="openai", model="scripted", base_url=server.url, **settings)


def echo(messages, params):
    return f"{messages[-1]['content']}|{params['seed']}|{params['choice']}"


def test_openai_keeps_order_under_concurrency_and_sends_params():
    with ScriptedServer(echo) as server:
        backend = build_backend(openai(server, max_concurrency=4))
        prompts = [f"prompt {i}" for i in range(12)]
        completions = backend.generate([ask(p, seed=i, n=2) for i, p in enumerate(prompts)])
    assert [c.texts for c in completions] == [
        (f"prompt {i}|{i}|0", f"prompt {i}|{i}|1") for i in range(12)
    ]


def test_openai_retries_429_500_and_timeouts_but_not_400():
    with ScriptedServer(echo, fail_first={429: 1, 500: 2}) as server:
        completion = build_backend(openai(server)).generate([ask("busy")])[0]
        assert completion.ok and completion.attempts == 3 and server.attempts["busy"] == 3
    with ScriptedServer(echo, slow_first=1, delay_s=1.5) as server:
        completion = build_backend(openai(server, timeout_s=0.5)).generate([ask("slow")])[0]
        assert completion.ok and completion.attempts == 2
    with ScriptedServer(echo, fail_first={400: 5}) as server:
        completion = build_backend(openai(server)).generate([ask("bad")])[0]
        assert not completion.ok and "HTTP 400" in completion.error and completion.attempts == 1
    with ScriptedServer(echo, fail_first={503: 99}) as server:
        completion = build_backend(openai(server, max_retries=2)).generate([ask("down")])[0]
        assert not completion.ok and completion.attempts == 3 and "gave up" in completion.error


def test_backoff_doubles_with_a_per_request_jitter_and_retry_after_wins():
    with ScriptedServer(echo) as server:
        backend = OpenAIBackend(openai(server, backoff_s=1.0))
    waits = [backend.backoff("key", attempt, None) for attempt in (1, 2, 3)]
    assert 0.5 <= waits[0] < 1.5 and 1.0 <= waits[1] < 3.0 and 2.0 <= waits[2] < 6.0
    assert waits == [backend.backoff("key", attempt, None) for attempt in (1, 2, 3)]
    assert backend.backoff("key", 1, 7.0) == 7.0


def test_the_cache_makes_a_rerun_free_and_a_crashed_run_pay_only_the_rest(tmp_path):
    cache = str(tmp_path / "cache")
    requests = [ask(f"task {i}") for i in range(6)]
    # "task 4" and "task 5" fail for good the first time (the crash), then the server heals.
    flaky = {"task 4", "task 5"}

    def sometimes(messages, params):
        if messages[-1]["content"] in flaky:
            raise RuntimeError("scripted outage")
        return echo(messages, params)

    with ScriptedServer(sometimes) as server:
        first = build_backend(openai(server, cache=cache, max_retries=0)).generate(requests)
        assert [c.ok for c in first] == [True] * 4 + [False] * 2
        paid = server.total
        flaky.clear()
        second = build_backend(openai(server, cache=cache)).generate(requests)
        assert server.total - paid == 2
        assert all(c.ok for c in second) and [c.cached for c in second] == [True] * 4 + [False] * 2
        third = build_backend(openai(server, cache=cache)).generate(requests)
        assert server.total - paid == 2 and all(c.cached and c.attempts == 0 for c in third)
        assert [c.texts for c in third] == [c.texts for c in second]


def test_a_missing_api_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with ScriptedServer(echo) as server:
        with pytest.raises(BackendSetupError, match="NO_SUCH_KEY_VAR"):
            build_backend(openai(server, api_key_env="NO_SUCH_KEY_VAR"))


def test_vllm_is_refused_without_vllm_and_its_row_mapping_round_trips():
    config = BackendConfig(kind="vllm", model="/models/x", num_gpus=1)
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(BackendSetupError, match="vllm"):
            check_backend(config, "stage 'answer'")
    row = {"row": 1, "request": encode_request(ask("hi", max_tokens=9, seed=3, stop=("\n",)))}
    mapped = vllm_request_row(row, "request")
    assert mapped["messages"] == [{"role": "user", "content": "hi"}]
    assert mapped["sampling_params"]["seed"] == 3 and mapped["sampling_params"]["stop"] == ["\n"]
    back = vllm_completion_row({**mapped, "generated_text": "hello"}, "request", "completion")
    assert back["row"] == 1 and "messages" not in back
    assert decode_completion(back["completion"]).texts == ("hello",)


def test_generating_through_instructflow_serve_with_429s_and_a_timeout(tiny_causal):
    """`instructflow serve` on loopback, a busy spell (429) and a stall (timeout) injected:
    the OpenAI backend retries through both and gets the local backend's greedy text."""
    import threading
    import time
    from http import HTTPStatus

    from ops.serve import ApiError, serve_in_thread

    calls = {"n": 0}
    lock = threading.Lock()

    def intercept(method: str, path: str) -> None:
        if method != "POST":
            return
        with lock:
            calls["n"] += 1
            call = calls["n"]
        if call == 1:
            raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, "busy", code="rate_limit_exceeded")
        if call == 2:
            time.sleep(1.2)

    handle = serve_in_thread(tiny_causal, served_model_name="tiny", intercept=intercept)
    try:
        config = BackendConfig(
            kind="openai", model="tiny", base_url=handle.url, timeout_s=0.8, backoff_s=0.01
        )
        remote = build_backend(config).generate([ask(TEXTS[0], max_tokens=8)])[0]
    finally:
        handle.close()
    local = build_backend(BackendConfig(model=tiny_causal)).generate([ask(TEXTS[0], max_tokens=8)])
    assert remote.ok and remote.attempts == 3 and calls["n"] >= 3
    assert remote.texts == local[0].texts


def test_a_training_output_directory_stands_for_its_best_checkpoint(tmp_path):
    import json

    from pipeline.generate.backend import BackendConfig

    best, last = tmp_path / "run" / "step_2", tmp_path / "run" / "step_3"
    best.mkdir(parents=True)
    last.mkdir()
    summary = {"best": {"path": str(best)}, "last": {"path": str(last)}}
    (tmp_path / "run" / "train_summary.json").write_text(json.dumps(summary))
    assert BackendConfig(model=str(tmp_path / "run")).model == str(best)
    best.rmdir()  # gone: the last one stands in
    assert BackendConfig(model=str(tmp_path / "run")).model == str(last)
    # A hub id, a checkpoint directory and a served name are taken as they are.
    assert BackendConfig(model="org/model").model == "org/model"
    assert BackendConfig(model=str(last)).model == str(last)
    served = BackendConfig(kind="openai", model=str(tmp_path / "run"), base_url="http://x/v1")
    assert served.model == str(tmp_path / "run")
