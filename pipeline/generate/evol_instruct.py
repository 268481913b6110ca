"""The ``evol_instruct`` stage: instructions rewritten into harder or rarer ones by a model,
each evolved instruction answered, for ``rounds`` rounds (Evol-Instruct, WizardLM, Xu et al.
2023, arXiv:2304.12244).

Parents are live original single-exchange records (one user turn, with or without a reply)
that ``rate`` samples (a seeded hash per record). Each round, every chain head (the parent in
round 1, afterwards its latest evolved survivor, or the parent again when its last evolution
failed: "placed back as they are", as the paper does) is evolved once:

1. **Evolve.** A method is drawn per (parent, round) by a seeded hash over ``methods``'
   weights: the paper's four in-depth prompts (``add_constraints``, ``deepen``,
   ``concretize``, ``increase_reasoning``) or in-breadth (``breadth``). The instruction and
   its context (an alpaca input) are one text, as WizardLM's ``main.py`` joins them; the
   evolved record has no separate context. The reply's "#Rewritten Prompt#:" label (and the
   like) is stripped.
2. **Eliminate** (the paper's four rules, each a fixed reason): 4, the rewrite copies words
   of the evolving prompt ("given prompt", "#Rewritten Prompt#", ...): ``copied_prompt``;
   1, no information gain over the parent: ``no_information_gain``. Rule 1 is the paper's
   "Equal / Not Equal" question to the model with ``equality_check: llm``, which costs one
   more request per evolution; the default ``text`` judges the normalised texts identical or
   near-identical (word-level similarity >= ``text_similarity``), free; ``off`` skips it.
3. **Answer** (greedy by default), then rules 2 and 3 on the answer: "sorry" in fewer than
   ``sorry_max_words`` words (``answer_failed``), or nothing but punctuation and stop words
   (``answer_only_stopwords``).

Every evolution makes one created row, kept or rejected with one of ``DROP_REASONS``; a
failed request, a blank reply or a reply cut off at ``max_tokens`` is ``backend_error``,
``empty_generation`` or ``truncated`` (the detail names the step). Created rows keep their
root's file, line and labels, take ``parent_id`` = the root (so a split keeps a chain
together, ``pipeline.generate.created``), and carry ``augmentation`` = ``{"stage", "round",
"method", "model", "from_id", "from_key", "root_id"}`` and ``meta["generation"]``.

Simplified against the paper: the "complicate input" in-depth method (for inputs with code,
tables or formulas) is left out, as WizardLM's released ``depth.py`` leaves it out; a
multi-turn record is not a parent; the pool is not refilled with new seeds.

Config keys: ``backend``; ``rounds`` (2; the paper runs 4); ``methods`` (name -> weight,
every method 1.0); ``rate`` (1.0); ``evolution`` and ``answer`` sampling blocks
(``max_tokens``, ``temperature``, ``top_p``, ``stop``); ``equality_check``
(text | llm | off), ``text_similarity`` (0.9), ``copied_phrases``, ``sorry_max_words`` (80),
``stopwords``; ``batch_size``. Findings per round: ``round_<r>.kept`` and
``round_<r>.dropped.<reason>``.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from collections import Counter
from functools import partial
from typing import Any, ClassVar, Literal, cast

import pyarrow as pa
from pydantic import Field, field_validator

from pipeline.dedup_keys import normalize_key
from pipeline.generate.backend import BackendConfig, Request, decode_completion, encode_request
from pipeline.generate.created import (
    HASH_SPACE,
    RAW_CHARS,
    Sampling,
    created_row,
    draw,
    encode_jobs,
    exchange,
    failed_generation,
    finish,
    finished_jobs,
    generate,
    job_rows,
    job_table,
    lineage_key,
    live_sft_rows,
    reporting_created,
    request_seed,
    root_id,
    sampled,
    summed_counts,
    user_text,
    user_turns,
    without_trailing_empty_replies,
)
from pipeline.schema import FLOW_SCHEMA, rows_to_table
from pipeline.stage import Drop, GlobalContext, GlobalStage, Resources, StageConfig

STAGE = "evol_instruct"
Method = Literal["add_constraints", "deepen", "concretize", "increase_reasoning", "breadth"]
METHODS: tuple[str, ...] = (
    "add_constraints",
    "deepen",
    "concretize",
    "increase_reasoning",
    "breadth",
)

BACKEND_ERROR = "evol_instruct.backend_error"
EMPTY_GENERATION = "evol_instruct.empty_generation"
TRUNCATED = "evol_instruct.truncated"
COPIED_PROMPT = "evol_instruct.copied_prompt"
NO_INFORMATION_GAIN = "evol_instruct.no_information_gain"
EQUALITY_UNPARSED = "evol_instruct.equality_unparsed"
ANSWER_FAILED = "evol_instruct.answer_failed"
ANSWER_ONLY_STOPWORDS = "evol_instruct.answer_only_stopwords"
DROP_REASONS = (
    BACKEND_ERROR,
    EMPTY_GENERATION,
    TRUNCATED,
    COPIED_PROMPT,
    NO_INFORMATION_GAIN,
    EQUALITY_UNPARSED,
    ANSWER_FAILED,
    ANSWER_ONLY_STOPWORDS,
)

# ----- the paper's prompts (WizardLM appendix; Evol_Instruct/depth.py, breadth.py) --------

DEPTH_PROMPT = (
    "I want you act as a Prompt Rewriter.\n"
    "Your objective is to rewrite a given prompt into a more complex version to make those "
    "famous AI systems (e.g., chatgpt and GPT4) a bit harder to handle.\n"
    "But the rewritten prompt must be reasonable and must be understood and responded by "
    "humans.\n"
    "Your rewriting cannot omit the non-text parts such as the table and code in "
    "#The Given Prompt#:. Also, please do not omit the input in #The Given Prompt#.\n"
    "You SHOULD complicate the given prompt using the following method:\n"
    "{method}\n"
    "You should try your best not to make the #Rewritten Prompt# become verbose, "
    "#Rewritten Prompt# can only add 10 to 20 words into #The Given Prompt#.\n"
    "'#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' are not "
    "allowed to appear in #Rewritten Prompt#\n"
    "#The Given Prompt#:\n{instruction}\n"
    "#Rewritten Prompt#:\n"
)
DEPTH_METHODS = {
    "add_constraints": "Please add one more constraints/requirements into #The Given Prompt#.",
    "deepen": (
        "If #The Given Prompt# contains inquiries about certain issues, the depth and breadth "
        "of the inquiry can be increased."
    ),
    "concretize": "Please replace general concepts with more specific concepts.",
    "increase_reasoning": (
        "If #The Given Prompt# can be solved with just a few simple thinking processes, you "
        "can rewrite it to explicitly request multiple-step reasoning."
    ),
}
BREADTH_PROMPT = (
    "I want you act as a Prompt Creator.\n"
    "Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.\n"
    "This new prompt should belong to the same domain as the #Given Prompt# but be even more "
    "rare.\n"
    "The LENGTH and complexity of the #Created Prompt# should be similar to that of the "
    "#Given Prompt#.\n"
    "The #Created Prompt# must be reasonable and must be understood and responded by humans.\n"
    "'#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not allowed "
    "to appear in #Created Prompt#\n"
    "#Given Prompt#:\n{instruction}\n"
    "#Created Prompt#:\n"
)
EQUALITY_PROMPT = (
    "Here are two Instructions to ChatGPT AI, do you think they are equal to each other, "
    "which meet the following requirements:\n"
    "1. They have same constraints and requirements.\n"
    "2. They have same depth and breadth of the inquiry.\n"
    "The First Prompt: {first}\n"
    "The Second Prompt: {second}\n"
    "Your Judgement (Just answer: Equal or Not Equal. No need to explain the reason.):"
)
COPIED_PHRASES = (
    "given prompt",
    "rewritten prompt",
    "created prompt",
    "#the given prompt#",
    "#given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
)
# Function words of English: rule 3's "only punctuation and stop words". Deliberately short
# (stopwordsiso's 1,300-word list holds "sorry", "thanks" and many content words).
STOPWORDS = tuple(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)
# A leading label the model may repeat ("#Rewritten Prompt#:", "**Created Prompt:**").
LABEL = re.compile(
    r"(?:#\s*(?:the\s+)?(?:rewritten|created|new)\s+prompt\s*#\s*:?|"
    r"(?:the\s+)?(?:rewritten|created|new)\s+prompt\s*:)",
    re.IGNORECASE,
)
WORD = re.compile(r"\w+", re.UNICODE)
SORRY = re.compile(r"\bsorry\b", re.IGNORECASE)


class EvolInstructConfig(StageConfig):
    backend: BackendConfig
    rounds: int = Field(2, ge=1)
    methods: dict[Method, float] = dict.fromkeys(METHODS, 1.0)
    rate: float = Field(1.0, gt=0.0, le=1.0)
    evolution: Sampling = Sampling(max_tokens=512, temperature=0.7, top_p=0.95)
    answer: Sampling = Sampling(max_tokens=1024)
    equality_check: Literal["text", "llm", "off"] = "text"
    text_similarity: float = Field(0.9, gt=0.0, le=1.0)
    copied_phrases: tuple[str, ...] = COPIED_PHRASES
    sorry_max_words: int = Field(80, ge=0)
    stopwords: tuple[str, ...] = STOPWORDS
    batch_size: int = Field(64, ge=1)

    @field_validator("methods")
    @classmethod
    def _some_weight(cls, methods: dict[str, float]) -> dict[str, float]:
        negative = {name: weight for name, weight in methods.items() if weight < 0}
        if negative:
            raise ValueError(f"method weights must be >= 0, got {negative}")
        if not any(weight > 0 for weight in methods.values()):
            raise ValueError(f"at least one method needs a weight > 0 (methods: {METHODS})")
        return methods


# ----- pure decisions ---------------------------------------------------------------------


def evolution_prompt(method: str, instruction: str) -> str:
    if method == "breadth":
        return BREADTH_PROMPT.format(instruction=instruction)
    return DEPTH_PROMPT.format(method=DEPTH_METHODS[method], instruction=instruction)


def equality_prompt(first: str, second: str) -> str:
    return EQUALITY_PROMPT.format(first=first, second=second)


def pick_method(methods: dict[str, float], seed: int, parent_key: str, round_number: int) -> str:
    """The method of one (parent, round): a seeded draw over the weights, in METHODS order."""
    weighted = [(name, methods.get(name, 0.0)) for name in METHODS if methods.get(name, 0.0) > 0]
    total = sum(weight for _, weight in weighted)
    point = draw(seed, STAGE, "method", parent_key, round_number) / HASH_SPACE * total
    for name, weight in weighted:
        point -= weight
        if point < 0:
            return name
    return weighted[-1][0]


def rewritten_prompt(reply: str) -> str:
    """The evolved instruction in a reply: after the last "#Rewritten Prompt#:"-like label,
    without markdown bold or wrapping quotes."""
    labels = list(LABEL.finditer(reply))
    text = reply[labels[-1].end() :] if labels else reply
    text = text.strip().strip("*").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def copied_phrase(text: str, phrases: tuple[str, ...]) -> str | None:
    """Rule 4: the first evolving-prompt phrase the evolved instruction repeats."""
    folded = text.casefold()
    return next((phrase for phrase in phrases if phrase.casefold() in folded), None)


def text_similarity(first: str, second: str) -> float:
    """Word-level similarity of the normalised texts (difflib's ratio, 1.0 for identical)."""
    first_words, second_words = normalize_key(first).split(), normalize_key(second).split()
    if first_words == second_words:
        return 1.0
    return difflib.SequenceMatcher(None, first_words, second_words, autojunk=False).ratio()


def parse_equality(reply: str) -> bool | None:
    """The equality question's answer: True for "Equal", False for "Not Equal", else None."""
    words = normalize_key(reply).split()
    if words[:2] == ["not", "equal"]:
        return False
    if words[:1] == ["equal"]:
        return True
    return None


def answer_drop(answer: str, config: EvolInstructConfig) -> Drop | None:
    """Rules 2 and 3 on the evolved instruction's answer."""
    words = WORD.findall(answer.casefold())
    if SORRY.search(answer) and len(answer.split()) < config.sorry_max_words:
        return Drop(ANSWER_FAILED, {"words": len(answer.split())})
    stopwords = {word.casefold() for word in config.stopwords}
    if all(word in stopwords for word in words):
        return Drop(ANSWER_ONLY_STOPWORDS, {"raw": answer[:RAW_CHARS]})
    return None


def evolution_drop(evolved: str, original: str, config: EvolInstructConfig) -> Drop | None:
    """Rule 4, then (with ``equality_check: text``) rule 1, on an evolved instruction."""
    phrase = copied_phrase(evolved, config.copied_phrases)
    if phrase is not None:
        return Drop(COPIED_PROMPT, {"phrase": phrase})
    if config.equality_check == "text":
        similarity = text_similarity(original, evolved)
        if similarity >= config.text_similarity:
            return Drop(NO_INFORMATION_GAIN, {"check": "text", "similarity": round(similarity, 4)})
    return None


def single_exchange(turns: list[dict[str, Any]]) -> str | None:
    """The instruction of a one-exchange conversation (a user turn, maybe a reply), or None."""
    turns = without_trailing_empty_replies(turns)
    roles = [turn["role"] for turn in turns]
    if roles not in (["user"], ["user", "assistant"]) or not turns[0]["content"].strip():
        return None
    return turns[0]["content"]


def parent_rows(batch: pa.Table, *, seed: int, rate: float) -> pa.Table:
    """The round-1 pool: live original single-exchange SFT records that ``rate`` sampled."""
    keep = []
    originals = batch.column("augmentation").is_null().to_pylist()
    rows = batch.to_pylist()
    for row, usable, original in zip(rows, live_sft_rows(batch), originals, strict=True):
        keep.append(
            usable
            and original
            and single_exchange(row["messages"]) is not None
            and sampled(seed, STAGE, row, rate)
        )
    return batch.filter(pa.array(keep, pa.bool_()))


def evolving_text(row: dict[str, Any]) -> str:
    instruction = single_exchange(row["messages"]) or ""
    return user_text(instruction.strip(), row["context"].strip())


# ----- per-batch steps (Ray Data UDFs over pyarrow batches) --------------------------------


def evolve_requests(
    batch: pa.Table, *, seed: int, round_number: int, config: EvolInstructConfig
) -> pa.Table:
    """Pool rows (chain heads) -> jobs with the evolution request of this round."""
    rows, requests = [], []
    for row in batch.to_pylist():
        key = lineage_key(row)
        method = pick_method(config.methods, seed, root_id(row), round_number)
        prompt = evolution_prompt(method, evolving_text(row))
        params = config.evolution.params(request_seed(seed, STAGE, key, round_number, "evolve"))
        request = Request(({"role": "user", "content": prompt},), params)
        rows.append({**row, "_job": {"round": round_number, "method": method, "prompt": prompt}})
        requests.append(encode_request(request))
    return job_table(encode_jobs(rows), requests)


def read_evolutions(batch: pa.Table, *, seed: int, config: EvolInstructConfig) -> pa.Table:
    """Parse each evolution and apply rules 4 and 1 (text); the next request is the equality
    question (``equality_check: llm``) or the answer, null once a job is rejected."""
    rows, completions = job_rows(batch)
    requests: list[str | None] = []
    for row, text in zip(rows, completions, strict=True):
        job = row["_job"]
        completion = decode_completion(text)
        drop = failed_generation(completion, STAGE, "evolve")
        if drop is None:
            job["evolved"] = rewritten_prompt(completion.texts[0])
            drop = (
                Drop(EMPTY_GENERATION, {"step": "evolve"})
                if not job["evolved"]
                else evolution_drop(job["evolved"], evolving_text(row), config)
            )
        else:
            job["raw"] = completion.texts[0][:RAW_CHARS] if completion.texts else None
        job["drop"] = None if drop is None else list(drop)
        requests.append(None if drop else next_request(row, seed, config))
    return job_table(encode_jobs(rows), requests)


def next_request(row: dict[str, Any], seed: int, config: EvolInstructConfig) -> str:
    job = row["_job"]
    if config.equality_check == "llm" and "equal" not in job:
        prompt = equality_prompt(evolving_text(row), job["evolved"])
        params = Sampling(max_tokens=8).params(
            request_seed(seed, STAGE, lineage_key(row), job["round"], "equality")
        )
        return encode_request(Request(({"role": "user", "content": prompt},), params))
    system = row["system"]
    messages = ({"role": "system", "content": system},) if system else ()
    params = config.answer.params(
        request_seed(seed, STAGE, lineage_key(row), job["round"], "answer")
    )
    messages += ({"role": "user", "content": job["evolved"]},)
    return encode_request(Request(messages, params))


def read_equality(batch: pa.Table, *, seed: int, config: EvolInstructConfig) -> pa.Table:
    """Rule 1 by the model's judgement; the answer request for the jobs still live."""
    rows, completions = job_rows(batch)
    requests: list[str | None] = []
    for row, text in zip(rows, completions, strict=True):
        job = row["_job"]
        if text is None:
            requests.append(None)
            continue
        completion = decode_completion(text)
        drop = failed_generation(completion, STAGE, "equality", drop_truncated=False)
        if drop is None:
            job["equal"] = parse_equality(completion.texts[0])
            if job["equal"] is None:
                drop = Drop(EQUALITY_UNPARSED, {"raw": completion.texts[0][:RAW_CHARS]})
            elif job["equal"]:
                drop = Drop(NO_INFORMATION_GAIN, {"check": "llm"})
        job["drop"] = None if drop is None else list(drop)
        requests.append(None if drop else next_request(row, seed, config))
    return job_table(encode_jobs(rows), requests)


def read_answers(batch: pa.Table, *, config: EvolInstructConfig) -> pa.Table:
    """Rules 2 and 3 on each answer; jobs as they end (no request column)."""
    rows, completions = job_rows(batch)
    for row, text in zip(rows, completions, strict=True):
        job = row["_job"]
        if text is None:
            continue
        completion = decode_completion(text)
        drop = failed_generation(completion, STAGE, "answer")
        if drop is None:
            job["answer"] = completion.texts[0].strip()
            drop = answer_drop(job["answer"], config)
        elif completion.texts:
            job["raw"] = completion.texts[0][:RAW_CHARS]
        job["drop"] = None if drop is None else list(drop)
    return finished_jobs(rows)


def evolved_row(job_row: dict[str, Any], model: str) -> dict[str, Any]:
    """The created FLOW row of one finished job (its parent is the job's FLOW part)."""
    parent = {name: job_row[name] for name in FLOW_SCHEMA.names}
    job = json.loads(job_row["_job"])
    drop = None if job.get("drop") is None else Drop(*job["drop"])
    evolved, answer = job.get("evolved"), job.get("answer")
    if answer is not None:
        turns = exchange(evolved, answer)
    else:
        turns = user_turns(evolved or job["prompt"])
    facts = {"round": job["round"], "method": job["method"], "model": model}
    return created_row(
        parent,
        turns=turns,
        system=parent["system"],
        augmentation={"stage": STAGE, **facts},
        generation={**facts, "equal": job.get("equal")},
        drop=drop,
        raw=job.get("raw"),
    )


def evolved_rows(batch: pa.Table, *, model: str) -> pa.Table:
    return rows_to_table([evolved_row(row, model) for row in batch.to_pylist()])


def next_heads(batch: pa.Table, *, model: str) -> pa.Table:
    """The next round's pool: each survivor's created row, or the parent of a failed job."""
    rows = []
    for job_row in batch.to_pylist():
        made = evolved_row(job_row, model)
        if made["drop_reason"] is None:
            rows.append(made)
        else:
            rows.append({name: job_row[name] for name in FLOW_SCHEMA.names})
    return rows_to_table(rows)


# ----- the stage on Ray -------------------------------------------------------------------


class EvolInstruct(GlobalStage):
    """Parents pass through; each round adds one created row per chain (module doc)."""

    name: ClassVar[str] = STAGE
    Config: ClassVar[type[StageConfig]] = EvolInstructConfig
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS
    config: EvolInstructConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        # The model's actors are the backend's; the parsing passes are light CPU tasks.
        return Resources(batch_size=cast(EvolInstructConfig, config).batch_size)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        started = time.perf_counter()
        config, seed = self.config, context.seed
        pool = dataset.map_batches(
            partial(parent_rows, seed=seed, rate=config.rate), batch_format="pyarrow"
        ).materialize()
        findings: Counter = Counter({"parents": pool.count()})
        created = []
        for round_number in range(1, config.rounds + 1):
            if not pool.count():
                break
            judged = self.run_round(pool, round_number, seed)
            made = judged.map_batches(
                reporting_created(
                    partial(evolved_rows, model=config.backend.model),
                    stage=STAGE,
                    tally=context.tally,
                ),
                batch_format="pyarrow",
            ).materialize()
            findings.update(summed_counts(made, f"round_{round_number}"))
            created.append(made)
            pool = judged.map_batches(
                partial(next_heads, model=config.backend.model), batch_format="pyarrow"
            ).materialize()
        finish(context, findings, started)
        return dataset.union(*created) if created else dataset

    def run_round(self, pool: Any, round_number: int, seed: int) -> Any:
        """One round's jobs, evolved, judged and answered (materialized)."""
        config = self.config
        batches = {"batch_size": config.batch_size, "batch_format": "pyarrow"}
        jobs = pool.map_batches(
            partial(evolve_requests, seed=seed, round_number=round_number, config=config),
            **batches,
        )
        jobs = generate(jobs, config.backend, STAGE).map_batches(
            partial(read_evolutions, seed=seed, config=config), **batches
        )
        if config.equality_check == "llm":
            jobs = generate(jobs, config.backend, STAGE).map_batches(
                partial(read_equality, seed=seed, config=config), **batches
            )
        return (
            generate(jobs, config.backend, STAGE)
            .map_batches(partial(read_answers, config=config), **batches)
            .materialize()
        )
