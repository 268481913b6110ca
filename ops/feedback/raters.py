"""Automatic raters: rule-based checks, closeness to a reference reply, and an LLM judge.
Each gives a candidate a 1-5 score with sub-scores, stored as annotator ``rules``,
``reference`` or ``judge:<model>`` beside the people. A rater is called with the item's
conversation, the candidate and the item's reference reply (most raters ignore the last).

Rules reuse the data engine's filters through their public stage classes (no Ray): the
refusal and boilerplate patterns, Gopher's repetition rules, the language identifier. Each
failed check caps the score (``RULE_CAPS``); a candidate that passes all of them gets 5.
Sub-scores are 1 (passed) or 0 (failed), and the detail names the filter's reason.

The reference rater scores how close a candidate is to the item's reference reply (the
source record's own answer) with chrF (Popovic 2015, character n-gram F-score; NLTK's
``sentence_chrf``), binned by ``CHRF_BINS`` into 1-5, then capped by the rules: a reply
that is empty, a refusal or repetitive keeps the rules' score when that is lower. An item
without a reference is a failure, recorded in ``rating_failures``.

The judge asks any OpenAI-compatible ``/v1/chat/completions`` endpoint to grade the reply
and end with ``Score: N``. Requests run ``concurrency`` at a time, each with a timeout;
connection errors, timeouts, 429 and 5xx are retried with exponential backoff. A reply
without exactly such a score (or with one outside 1-5) is a failure, recorded in
``rating_failures``: never a default score.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ops.feedback.items import record_automatic, record_failure
from ops.feedback.store import Candidate, FeedbackError, Item, Rating, Store

# The highest score a candidate keeps when a check fails.
RULE_CAPS = {"empty": 1, "refusal": 1, "repetition": 2, "language": 2, "length": 3}
# chrF thresholds of scores 2, 3, 4, 5 (chrF >= CHRF_BINS[i] scores at least i + 2). They
# double rather than step evenly because chrF is right-skewed: a small model's replies sit
# mostly under 0.2, where even steps of 0.2 would give nearly every candidate 1 and few
# pairs, while a correct paraphrase of a one-sentence reference already lands near 0.4.
CHRF_BINS = (0.05, 0.1, 0.2, 0.4)
RETRY_STATUS = {429, 500, 502, 503, 504}
_SCORE_LINE = re.compile(r"^\W*score\W*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)", re.I | re.M)


class RulesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    # Gopher's repetition rules are not applied to replies under this many words.
    repetition_min_words: int = Field(default=30, ge=0)
    # A reply shorter than this share of a long prompt (over min_prompt_chars) is too short.
    min_length_ratio: float = Field(default=0.05, ge=0.0)
    min_prompt_chars: int = Field(default=200, ge=0)


class JudgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    base_url: str = Field(min_length=1)  # https://host/v1 or https://host
    model: str = Field(min_length=1)
    api_key_env: str | None = "OPENAI_API_KEY"  # the variable's name, never the key itself
    concurrency: int = Field(default=4, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)
    max_tokens: int = Field(default=512, ge=1)


@dataclass(frozen=True)
class Verdict:
    score: int
    detail: dict[str, Any]


class RaterFailure(RuntimeError):
    """A rater could not score a candidate; the message is what gets recorded."""


class RuleRater:
    name = "rules"
    kind = "rules"

    def __init__(self, config: RulesConfig) -> None:
        from pipeline.filters.language import LanguageConfig, LanguageFilter
        from pipeline.filters.refusal import RefusalConfig, RefusalFilter
        from pipeline.filters.repetition import RepetitionConfig, RepetitionFilter

        self.config = config
        self.refusal = RefusalFilter(RefusalConfig())
        self.repetition = RepetitionFilter(RepetitionConfig(min_words=config.repetition_min_words))
        self.language = LanguageFilter(LanguageConfig())

    def __call__(
        self, conversation: list[dict[str, str]], reply: str, reference: str = ""
    ) -> Verdict:
        from pipeline.schema import make_record, message, rows_to_table

        turns = [message(t["role"], t["content"]) for t in conversation if t["role"] != "system"]
        record = make_record(
            messages=[*turns, message("assistant", reply)],
            source_file="feedback",
            source_format="feedback",
            source_line=0,
        )
        table = rows_to_table([record])
        reasons: dict[str, str] = {}
        if not reply.strip():
            reasons["empty"] = "empty reply"
        for check, stage in (("refusal", self.refusal), ("repetition", self.repetition)):
            drop = stage.decide(table)[0]
            if drop is not None:
                reasons[check] = drop.reason
        prompt = turns[-1]["content"] if turns else ""
        mismatch = self._language_mismatch(prompt, reply)
        if mismatch:
            reasons["language"] = mismatch
        if len(prompt) >= self.config.min_prompt_chars and len(reply.strip()) < (
            self.config.min_length_ratio * len(prompt)
        ):
            reasons["length"] = f"{len(reply.strip())} chars for a {len(prompt)}-char prompt"
        score = min([RULE_CAPS[check] for check in reasons] + [5])
        sub_scores = {check: int(check not in reasons) for check in RULE_CAPS}
        return Verdict(score, {"sub_scores": sub_scores, "reasons": reasons})

    def _language_mismatch(self, prompt: str, reply: str) -> str:
        config = self.language.config
        found = self.language.detect_texts([prompt, reply])
        sure = [
            d.language
            and d.chars >= config.min_chars_for_confidence
            and d.probability >= config.min_confidence
            for d in found
        ]
        if all(sure) and found[0].language != found[1].language:
            return f"prompt {found[0].language}, reply {found[1].language}"
        return ""


def chrf_score(chrf: float) -> int:
    """1 plus the number of ``CHRF_BINS`` thresholds the chrF reaches."""
    return 1 + sum(chrf >= threshold for threshold in CHRF_BINS)


class ReferenceRater:
    """chrF against the reference reply, binned (``CHRF_BINS``), capped by the rules."""

    name = "reference"
    kind = "reference"

    def __init__(self, rules: RulesConfig) -> None:
        self.rules = RuleRater(rules)

    def __call__(
        self, conversation: list[dict[str, str]], reply: str, reference: str = ""
    ) -> Verdict:
        from nltk.translate.chrf_score import sentence_chrf

        if not reference.strip():
            raise RaterFailure("the item has no reference reply to compare with")
        checks = self.rules(conversation, reply)
        chrf = sentence_chrf(reference, reply) if reply.strip() else 0.0
        score = min(chrf_score(chrf), checks.score)
        sub_scores = {"chrf": round(chrf, 4), **checks.detail["sub_scores"]}
        return Verdict(score, {"sub_scores": sub_scores, "reasons": checks.detail["reasons"]})


JUDGE_SYSTEM = (
    "You grade an assistant's reply to a user's prompt for helpfulness, correctness and "
    "clarity. Explain briefly, then end with one line: 'Score: N', where N is an integer "
    "from 1 (useless or harmful) to 5 (excellent)."
)


def parse_judge_score(text: str) -> int:
    """The score of a judge's reply: its last ``Score: N`` line, an integer 1-5."""
    found = _SCORE_LINE.findall(text or "")
    if not found:
        raise RaterFailure(f"no 'Score: N' line in the judge's reply: {text[:200]!r}")
    value = found[-1]
    if not re.fullmatch(r"[1-5]", value):
        raise RaterFailure(f"judge score {value!r} is not an integer 1-5")
    return int(value)


def completions_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


class JudgeRater:
    kind = "judge"

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.name = f"judge:{config.model}"
        self.url = completions_url(config.base_url)
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"

    def __call__(
        self, conversation: list[dict[str, str]], reply: str, reference: str = ""
    ) -> Verdict:
        shown = "\n\n".join(f"[{t['role']}]\n{t['content']}" for t in conversation)
        body = {
            "model": self.config.model,
            "temperature": 0,
            "max_tokens": self.config.max_tokens,
            "messages": [
                {"role": "system", "content": JUDGE_SYSTEM},
                {"role": "user", "content": f"Conversation:\n{shown}\n\nReply to grade:\n{reply}"},
            ],
        }
        answer = self._post(body)
        try:
            text = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise RaterFailure(f"no choices[0].message.content in {str(answer)[:200]}") from None
        return Verdict(parse_judge_score(text), {"model": self.config.model, "reply": text[-2000:]})

    def _post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.config.retries + 1):
            request = urllib.request.Request(self.url, data, self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code} from {self.url}"
                if error.code not in RETRY_STATUS:
                    raise RaterFailure(problem) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                problem = f"{self.url}: {getattr(error, 'reason', error)}"
            except json.JSONDecodeError:
                raise RaterFailure(f"{self.url}: the response is not JSON") from None
            if attempt < self.config.retries:
                time.sleep(self.config.backoff_s * 2**attempt)
        raise RaterFailure(f"{problem} after {self.config.retries + 1} attempts")


@dataclass
class RateSummary:
    rated: int = 0
    failed: int = 0


def candidates_to_rate(store: Store, annotator: str, redo: bool) -> list[tuple[Any, ...]]:
    """(item id, position, conversation, text, reference) of every candidate this rater has
    not scored."""
    from sqlalchemy import select

    from ops.feedback.store import Annotator

    with store.read() as session:
        query = select(
            Candidate.item_id, Candidate.position, Item.conversation, Candidate.text, Item.reference
        )
        rows = session.execute(query.join(Item).order_by(Item.id, Candidate.position)).all()
        done = set()
        if not redo:
            query = select(Rating.item_id, Rating.position).join(Annotator)
            done = set(session.execute(query.where(Annotator.name == annotator)).all())
    return [row for row in rows if (row[0], row[1]) not in done]


def rate(store: Store, rater: Callable, concurrency: int = 1, redo: bool = False) -> RateSummary:
    """Scores every candidate not yet scored by ``rater`` (all with ``redo``)."""
    todo = candidates_to_rate(store, rater.name, redo)

    def one(row: tuple[Any, ...]) -> tuple[tuple[Any, ...], Verdict | str]:
        _, _, conversation, text, reference = row
        try:
            return row, rater(json.loads(conversation), text, reference)
        except RaterFailure as failure:
            return row, str(failure)

    summary = RateSummary()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for (item, position, *_), outcome in pool.map(one, todo):
            if isinstance(outcome, Verdict):
                record_automatic(
                    store, rater.name, rater.kind, item, position, outcome.score, outcome.detail
                )
                summary.rated += 1
            else:
                record_failure(store, rater.name, rater.kind, item, position, outcome)
                summary.failed += 1
    return summary


def make_rater(kind: str, judge: JudgeConfig | None, rules: RulesConfig | None = None) -> Any:
    if kind == "rules":
        return RuleRater(rules or RulesConfig())
    if kind == "reference":
        return ReferenceRater(rules or RulesConfig())
    if kind == "judge":
        if judge is None:
            raise FeedbackError("--rater judge needs --judge-url and --judge-model")
        return JudgeRater(judge)
    raise FeedbackError(f"--rater {kind!r}: choose rules, reference or judge")
