"""Rule checks, closeness to a reference, the judge's score parsing, and the judge against a
real loopback server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops.feedback.items import failures, ratings
from ops.feedback.raters import (
    JudgeConfig,
    JudgeRater,
    RaterFailure,
    ReferenceRater,
    RuleRater,
    RulesConfig,
    chrf_score,
    completions_url,
    parse_judge_score,
    rate,
)

QUESTION = [{"role": "user", "content": "What is the capital of Peru? Answer in one sentence."}]


@pytest.fixture(scope="module")
def rules() -> RuleRater:
    return RuleRater(RulesConfig())


def test_rules_score_a_plain_answer_five(rules):
    verdict = rules(QUESTION, "The capital of Peru is Lima, on the Pacific coast.")
    assert verdict.score == 5
    assert set(verdict.detail["sub_scores"].values()) == {1}


@pytest.mark.parametrize(
    "reply, check, score",
    [
        ("   ", "empty", 1),
        ("I'm sorry, but I cannot help with that request.", "refusal", 1),
        ("N/A", "refusal", 1),
        (" ".join(["the same words again"] * 30), "repetition", 2),
        ("La capitale du Pérou est Lima, une grande ville sur la côte.", "language", 2),
    ],
)
def test_each_failed_check_caps_the_score_and_is_named(rules, reply, check, score):
    verdict = rules(QUESTION, reply)
    assert verdict.score == score
    assert verdict.detail["sub_scores"][check] == 0
    assert check in verdict.detail["reasons"]


def test_a_reply_too_short_for_a_long_prompt(rules):
    long_prompt = [{"role": "user", "content": "Explain in detail. " * 30}]
    verdict = rules(long_prompt, "Yes.")
    assert verdict.score == 3 and "length" in verdict.detail["reasons"]


@pytest.mark.parametrize(
    "text, score",
    [
        ("Clear and right.\nScore: 4", 4),
        ("**Score:** 5", 5),
        ("score = 2", 2),
        ("First Score: 1\nOn reflection...\nScore: 3", 3),
    ],
)
def test_judge_scores_parse(text, score):
    assert parse_judge_score(text) == score


@pytest.mark.parametrize("text", ["Looks good, 4/5", "Score: 7", "Score: 4.5", "Score: 10", ""])
def test_judge_replies_without_a_score_are_rejected(text):
    with pytest.raises(RaterFailure):
        parse_judge_score(text)


def test_completions_url_accepts_a_v1_base_or_a_host():
    assert completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert completions_url("http://h:1") == "http://h:1/v1/chat/completions"


class FakeOpenAI(BaseHTTPRequestHandler):
    """Deterministic replies keyed by the reply under review: a score, a reply with no
    score, one 500 before a score, and an endpoint that always fails."""

    failed_once: set = set()
    seen_keys: list = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen_keys.append(self.headers.get("Authorization"))
        graded = body["messages"][-1]["content"]
        if "Red." in graded or "Blue" in graded:
            content = "Correct.\nScore: 4"
        elif "Lima." in graded:
            if "lima" not in FakeOpenAI.failed_once:
                FakeOpenAI.failed_once.add("lima")
                self._send(500, b'{"error": "overloaded"}')
                return
            content = "Right.\nScore: 5"
        elif "Bonjour" in graded:
            content = "I would rate this highly."  # no score: a failure
        elif "sorry" in graded:
            self._send(500, b"{}")  # always: a failure after the retries
            return
        else:
            content = "Score: 1"
        reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        self._send(200, json.dumps(reply).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_openai():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_rates_through_an_openai_compatible_server(store, fake_openai, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    config = JudgeConfig(
        base_url=fake_openai,
        model="fake-judge",
        api_key_env="JUDGE_KEY",
        retries=1,
        backoff_s=0.01,
        concurrency=3,
        timeout_s=5,
    )
    summary = rate(store, JudgeRater(config), concurrency=3)
    # Lima (5, after one 500), Red/Blue (4, 4), Hello. and "" (1, 1); Bonjour has no score
    # and the refusal always gets a 500: two failures, recorded, not scored.
    assert summary.rated == 5 and summary.failed == 2
    assert sorted(r["score"] for r in ratings(store)) == [1, 1, 4, 4, 5]
    errors = sorted(f["error"] for f in failures(store))
    assert "HTTP 500" in errors[0] and "after 2 attempts" in errors[0]
    assert "no 'Score: N' line" in errors[1]
    assert {r["annotator"] for r in ratings(store)} == {"judge:fake-judge"}
    assert set(FakeOpenAI.seen_keys) == {"Bearer sk-test"}
    again = rate(store, JudgeRater(config))  # only the two failures are tried again
    assert again.rated + again.failed == 2


def test_rules_rate_every_candidate_once(store):
    first = rate(store, RuleRater(RulesConfig()))
    assert (first.rated, first.failed) == (7, 0)
    assert rate(store, RuleRater(RulesConfig())).rated == 0
    by_text = {r["score"] for r in ratings(store)}
    assert 1 in by_text and 5 in by_text


@pytest.fixture(scope="module")
def by_reference() -> ReferenceRater:
    return ReferenceRater(RulesConfig())


LIMA = "The capital of Peru is Lima, a large city on the Pacific coast."


def test_the_reference_itself_scores_five_and_an_unrelated_reply_low(by_reference):
    same = by_reference(QUESTION, LIMA, LIMA)
    assert same.score == 5 and same.detail["sub_scores"]["chrf"] == pytest.approx(1.0)
    close = by_reference(QUESTION, "Lima is the capital of Peru, on the coast.", LIMA)
    unrelated = by_reference(QUESTION, "Bake the bread for forty minutes at 200 C.", LIMA)
    assert unrelated.score <= 2 < close.score
    assert unrelated.detail["sub_scores"]["chrf"] < close.detail["sub_scores"]["chrf"]
    assert unrelated.detail["sub_scores"]["refusal"] == 1  # the rules' checks ride along


@pytest.mark.parametrize(
    "chrf, score", [(0.0, 1), (0.049, 1), (0.05, 2), (0.15, 3), (0.2, 4), (0.39, 4), (1.0, 5)]
)
def test_chrf_bins(chrf, score):
    assert chrf_score(chrf) == score


def test_a_failed_rule_caps_a_close_reply(by_reference):
    refusal = "I'm sorry, but I cannot help with that request."
    verdict = by_reference(QUESTION, refusal, refusal)  # identical, yet a refusal
    assert verdict.detail["sub_scores"]["chrf"] == pytest.approx(1.0)
    assert verdict.score == 1 and "refusal" in verdict.detail["reasons"]
    empty = by_reference(QUESTION, "  ", LIMA)
    assert empty.score == 1 and empty.detail["sub_scores"]["chrf"] == 0.0


def test_an_item_without_a_reference_is_a_recorded_failure(store, by_reference):
    with pytest.raises(RaterFailure, match="no reference"):
        by_reference(QUESTION, LIMA, "")
    summary = rate(store, by_reference)  # the fixture's items carry no reference
    assert (summary.rated, summary.failed) == (0, 7)
    assert ratings(store) == []
    assert {f["annotator"] for f in failures(store)} == {"reference"}
