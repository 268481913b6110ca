"""The ``self_instruct`` stage: new instruction data bootstrapped from seed tasks with a model
(Self-Instruct, Wang et al. 2022, arXiv:2212.10560), as Ray Data passes.

The recipe's records are the seed pool (the 175 seed tasks through the ``self_instruct``
input format, or any instruction corpus); they pass through unchanged. Then:

1. **Rounds of instruction generation.** Each round builds ``prompts_per_round`` prompts of
   ``num_seed + num_machine`` tasks: ``num_machine`` instructions this stage kept in earlier
   rounds (fewer while there are fewer) and seed instructions for the rest, in the paper's
   numbered ``Task k:`` list with the next number left open. Samples are the smallest seeded
   hashes of ``(recipe seed, round, record)``, drawn per block and merged, so the driver holds
   one round's prompts and never the pool. A reply's list is parsed and each task filtered
   as the paper does (length in words, blocklisted words, "Write a program", a leading
   punctuation mark or non-ASCII letter); survivors whose ROUGE-L with a pool instruction or
   an earlier survivor of the round reaches ``novelty_threshold`` are dropped
   (``drop_similar``: ``pipeline.novelty``'s MinHash-LSH candidates and exact ROUGE-L, not
   the paper's scan of the whole pool), and the novel ones join the pool. ``target`` stops
   the rounds once that many instructions were kept.
2. **Classification.** Each kept instruction is asked the paper's "Is it classification?"
   question; the answer must start with Yes or No.
3. **Instances.** Output-first (class label, then input) for classification tasks,
   input-first for the others; each parsed instance is one record: the instruction as the
   user turn, the instance input as ``context``, the output as the assistant turn. Instances
   are filtered as the paper's ``prepare_for_finetuning.py`` does.

Nothing is skipped silently: a failed request, an empty or unparsable reply, a filtered task
and a filtered instance each become one created row, rejected with one of ``DROP_REASONS``.
Created rows name their parent (the first seed record the prompt showed, an original record,
so a split keeps them with it), take its ``source_file``/``source_line`` and carry
``augmentation`` = ``{"stage", "step", "model", "round", "prompt", "choice", "item",
"instance"}``, unique per row, and ``meta["generation"]`` (the seed record ids and earlier
instructions the prompt showed, and the classification answer).

Simplified against the paper: it capitalizes a task's first letter only (``str.capitalize``
lowercased the rest); a truncated reply loses only its last task (as Alpaca's variant does)
instead of all of them; every prompt is sent as one chat user turn.

Config keys (all but ``backend`` have defaults):

- ``backend``: the ``BackendConfig`` block (``pipeline.generate.backend``).
- ``rounds`` (1), ``target`` (none), ``prompts_per_round`` (8), ``num_seed`` (6),
  ``num_machine`` (2), ``max_new_per_prompt`` (7: the reply is stopped at the task after).
- Instruction sampling: ``temperature`` (0.7), ``top_p`` (0.5), ``max_tokens`` (1024),
  ``stop`` (a blank line), ``n`` (1). Each request's seed comes from (recipe seed, round,
  prompt), so a deterministic backend gives the same bytes again.
- Filters: ``min_words`` (4), ``max_words`` (150), ``blocklist``, ``english_only`` (true),
  ``novelty_threshold`` (0.7), ``novelty_num_perm`` (128), ``novelty_recall`` (0.995).
- ``classify_max_tokens`` (3), ``instance_max_tokens`` (350), ``max_instances`` (5),
  ``max_instance_words`` (1000), both steps greedy as in the paper.
- ``task`` ("self_instruct"): the created records' ``task``; ``batch_size`` (64) rows per
  parsing batch.

Counts per round (``round_<r>.prompts``; ``.rows``, the created rows and survivors of its
candidates; ``.listed``, the tasks its replies listed; ``.kept``; ``.dropped.<reason>``) and
of the instance steps (``instances.tasks``, ``.rows``, ``.kept``, ``.dropped.<reason>``) go to
the stage's findings in stats.json.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any, ClassVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import xxhash
from pydantic import Field, field_validator, model_validator

from pipeline.dedup_keys import RANK_COLUMN, UID_COLUMN
from pipeline.distributed import report_counts, report_findings
from pipeline.generate.backend import (
    BackendConfig,
    Completion,
    Params,
    Request,
    decode_completion,
    encode_request,
)
from pipeline.generate.created import (
    COMPLETION_COLUMN,
    REQUEST_COLUMN,
    created_by_backend,
    drop_fields,
    generate,
    reporting_created,
    summed_counts,
)
from pipeline.generate.self_instruct_prompts import (
    Instance,
    classify_prompt,
    instance_prompt,
    instruction_prompt,
    one_line,
    parse_classification_answer,
    parse_input_first,
    parse_output_first,
    parse_task_list,
)
from pipeline.novelty import FIXED_COLUMN, PROBE_SCHEMA, TEXT_COLUMN, similar_losers
from pipeline.schema import (
    UNSET_LATER,
    feedback_rows,
    last_content,
    message,
    record_id,
    rows_to_table,
)
from pipeline.stage import Drop, GlobalContext, GlobalStage, Resources, StageConfig

STAGE = "self_instruct"
# The paper's list plus Alpaca's additions: tasks a text-only model cannot do.
BLOCKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
)

BACKEND_ERROR = "self_instruct.backend_error"
EMPTY_GENERATION = "self_instruct.empty_generation"
PARSE_FAILED = "self_instruct.parse_failed"
TRUNCATED = "self_instruct.truncated"
TOO_SHORT = "self_instruct.too_short"
TOO_LONG = "self_instruct.too_long"
BLOCKLISTED = "self_instruct.blocklisted_word"
WRITE_A_PROGRAM = "self_instruct.write_a_program"
PUNCTUATION_START = "self_instruct.starts_with_punctuation"
NON_ENGLISH_START = "self_instruct.non_english_start"
NOT_NOVEL = "self_instruct.not_novel"
CLASSIFICATION_UNPARSED = "self_instruct.classification_unparsed"
INSTANCES_UNPARSED = "self_instruct.instances_unparsed"
EMPTY_OUTPUT = "self_instruct.empty_output"
INPUT_EQUALS_OUTPUT = "self_instruct.input_equals_output"
INCOMPLETE_INSTANCE = "self_instruct.incomplete_instance"
CONFLICTING_INSTANCES = "self_instruct.conflicting_instances"
DUPLICATE_INSTANCE = "self_instruct.duplicate_instance"
INSTANCE_TOO_LONG = "self_instruct.instance_too_long"
INSTANCE_OVER_LIMIT = "self_instruct.instance_over_limit"
DROP_REASONS = (
    BACKEND_ERROR,
    EMPTY_GENERATION,
    PARSE_FAILED,
    TRUNCATED,
    TOO_SHORT,
    TOO_LONG,
    BLOCKLISTED,
    WRITE_A_PROGRAM,
    PUNCTUATION_START,
    NON_ENGLISH_START,
    NOT_NOVEL,
    CLASSIFICATION_UNPARSED,
    INSTANCES_UNPARSED,
    EMPTY_OUTPUT,
    INPUT_EQUALS_OUTPUT,
    INCOMPLETE_INSTANCE,
    CONFLICTING_INSTANCES,
    DUPLICATE_INSTANCE,
    INSTANCE_TOO_LONG,
    INSTANCE_OVER_LIMIT,
)
# Raw replies kept in a reject's detail: enough to see what went wrong.
RAW_CHARS = 2000
# OpenAI-compatible servers take a 31-bit non-negative seed.
SEED_MASK = 0x7FFF_FFFF

PARENT_FIELDS = (
    pa.field("parent_id", pa.string()),
    pa.field("source_file", pa.string()),
    pa.field("source_format", pa.string()),
    pa.field("source_line", pa.int64()),
    pa.field("domain", pa.string()),
    pa.field("language", pa.string()),
    pa.field("split", pa.string()),
)
PARENT_NAMES = tuple(item.name for item in PARENT_FIELDS)
# An instruction the prompts may show: a seed record's or one this stage kept. ``ident`` is
# the seed's record id or the kept task's ``r<round>.p<prompt>.c<choice>.i<item>``.
POOL_SCHEMA = pa.schema(
    [
        pa.field("ident", pa.string()),
        pa.field("instruction", pa.string()),
        pa.field("origin", pa.string()),
        *PARENT_FIELDS,
    ]
)
# One prompt of a round, before and after generation.
PROMPT_SCHEMA = pa.schema(
    [
        pa.field("round", pa.int64()),
        pa.field("prompt", pa.int64()),
        pa.field("shown", pa.int64()),
        pa.field("prompt_seeds", pa.list_(pa.string())),
        pa.field("prompt_machine", pa.list_(pa.string())),
        pa.field("prompt_text", pa.string()),
        pa.field("request", pa.string()),
        *PARENT_FIELDS,
    ]
)
# One task a reply listed, or one reply that listed none. For the latter ``instruction`` is
# the prompt it answered and ``choice``/``item`` say which part failed (null: all of it).
# ``is_classification`` is set by the classification step.
CANDIDATE_SCHEMA = pa.schema(
    [
        pa.field("ident", pa.string()),
        pa.field("round", pa.int64()),
        pa.field("prompt", pa.int64()),
        pa.field("choice", pa.int64()),
        pa.field("item", pa.int64()),
        pa.field("instruction", pa.string()),
        pa.field("prompt_seeds", pa.list_(pa.string())),
        pa.field("prompt_machine", pa.list_(pa.string())),
        pa.field("is_classification", pa.bool_()),
        *PARENT_FIELDS,
        pa.field("drop_reason", pa.string()),
        pa.field("drop_detail", pa.string()),
        pa.field("raw", pa.string()),
    ]
)


class SelfInstructConfig(StageConfig):
    backend: BackendConfig
    rounds: int = Field(1, ge=1)
    target: int | None = Field(None, ge=1)
    prompts_per_round: int = Field(8, ge=1)
    num_seed: int = Field(6, ge=1)
    num_machine: int = Field(2, ge=0)
    max_new_per_prompt: int = Field(7, ge=1)
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.5, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    stop: tuple[str, ...] = ("\n\n",)
    n: int = Field(1, ge=1)
    min_words: int = Field(4, ge=1)
    max_words: int = Field(150, ge=1)
    blocklist: tuple[str, ...] = BLOCKLIST
    english_only: bool = True
    novelty_threshold: float = Field(0.7, gt=0.0, le=1.0)
    novelty_num_perm: int = Field(128, ge=16, le=1024)
    novelty_recall: float = Field(0.995, gt=0.0, lt=1.0)
    classify_max_tokens: int = Field(3, ge=1)
    instance_max_tokens: int = Field(350, ge=1)
    max_instances: int = Field(5, ge=1)
    max_instance_words: int = Field(1000, ge=1)
    task: str = STAGE
    batch_size: int = Field(64, ge=1)

    @field_validator("blocklist")
    @classmethod
    def _words_not_blank(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        blank = [word for word in words if not word.strip()]
        if blank:
            raise ValueError(f"blocklist holds blank entries {blank!r}; list words or phrases")
        return words

    @model_validator(mode="after")
    def _word_bounds(self) -> SelfInstructConfig:
        if self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        return self


# ----- pure decisions ---------------------------------------------------------------------


def draw(seed: int, *parts: object) -> int:
    """A seeded 64-bit hash: every sample and order here comes from one, never from ``random``."""
    key = "\x1f".join(str(part) for part in (seed, STAGE, *parts))
    return xxhash.xxh3_64_intdigest(key.encode("utf-8"))


def request_seed(seed: int, *parts: object) -> int:
    return draw(seed, "request", *parts) & SEED_MASK


@lru_cache(maxsize=16)
def blocklist_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(word.strip()) for word in words)
    return re.compile(rf"\b({alternatives})\b", re.IGNORECASE)


def tidy_instruction(text: str) -> str:
    text = one_line(text)
    return text[:1].upper() + text[1:]


def instruction_drop(text: str, config: SelfInstructConfig) -> Drop | None:
    """The paper's filters on one generated task (``tidy_instruction`` applied), in its order."""
    words = len(text.split())
    if words < config.min_words:
        return Drop(TOO_SHORT, {"words": words})
    if words > config.max_words:
        return Drop(TOO_LONG, {"words": words})
    found = blocklist_pattern(config.blocklist).search(text)
    if found:
        return Drop(BLOCKLISTED, {"word": found.group(1).lower()})
    # The model tends to turn any task into "Write a program to ...", which leaves open
    # whether to answer or to write code; the paper drops them.
    if text.casefold().startswith("write a program"):
        return Drop(WRITE_A_PROGRAM)
    if text[0] in string.punctuation:
        return Drop(PUNCTUATION_START, {"character": text[0]})
    if config.english_only and not text[0].isascii():
        return Drop(NON_ENGLISH_START, {"character": text[0]})
    return None


def instance_drops(
    instances: Sequence[Instance], config: SelfInstructConfig, truncated: bool
) -> list[Drop | None]:
    """One decision per parsed instance of one task, as ``prepare_for_finetuning.py`` filters:
    the cut-off last one of a truncated reply, empty output, input equal to output, a field
    ending in a colon (an unfinished generation), too long, the same pair again; then, when
    one input of the rest has two different outputs, all of them (which one is right is
    unknowable). At most ``max_instances`` survive."""
    decisions = [
        single_instance_drop(instance, config, truncated and index == len(instances) - 1)
        for index, instance in enumerate(instances)
    ]
    seen: set[Instance] = set()
    for index, instance in enumerate(instances):
        if decisions[index] is None and instance in seen:
            decisions[index] = Drop(DUPLICATE_INSTANCE)
        seen.add(instance)
    outputs_per_input: dict[str, set[str]] = {}
    for instance, decision in zip(instances, decisions, strict=True):
        if decision is None and instance.input:
            outputs_per_input.setdefault(instance.input, set()).add(instance.output)
    if any(len(outputs) > 1 for outputs in outputs_per_input.values()):
        return [decision or Drop(CONFLICTING_INSTANCES) for decision in decisions]
    kept = 0
    for index, decision in enumerate(decisions):
        if decision is None:
            kept += 1
            if kept > config.max_instances:
                decisions[index] = Drop(
                    INSTANCE_OVER_LIMIT, {"max_instances": config.max_instances}
                )
    return decisions


def single_instance_drop(
    instance: Instance, config: SelfInstructConfig, cut_off: bool
) -> Drop | None:
    words = len(instance.input.split()) + len(instance.output.split())
    if cut_off:
        return Drop(TRUNCATED)
    if not instance.output:
        return Drop(EMPTY_OUTPUT)
    if instance.input == instance.output:
        return Drop(INPUT_EQUALS_OUTPUT)
    if instance.input.endswith(":") or instance.output.endswith(":"):
        return Drop(INCOMPLETE_INSTANCE)
    if words > config.max_instance_words:
        return Drop(INSTANCE_TOO_LONG, {"words": words})
    return None


def failed_reply(completion: Completion) -> tuple[Drop, str | None] | None:
    """Why a whole reply is unusable (the request failed, or every text is blank), or None."""
    if not completion.ok:
        detail = {"error": completion.error, "attempts": completion.attempts}
        return Drop(BACKEND_ERROR, detail), None
    if not any(text.strip() for text in completion.texts):
        return Drop(EMPTY_GENERATION, {"finish_reasons": list(completion.finish_reasons)}), ""
    return None


def raw_detail(raw: str, finish_reason: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"raw": raw[:RAW_CHARS]}
    if finish_reason is not None:
        detail["finish_reason"] = finish_reason
    return detail


# ----- prompts of a round -----------------------------------------------------------------


def window(rows: Sequence[dict[str, Any]], start: int, size: int) -> list[dict[str, Any]]:
    """``size`` rows from ``start`` on, wrapping: a pool smaller than a round's need is
    reused across prompts but never twice in one prompt."""
    if not rows:
        return []
    size = min(size, len(rows))
    return [rows[(start + offset) % len(rows)] for offset in range(size)]


def round_prompts(
    seeds: Sequence[dict[str, Any]],
    machine: Sequence[dict[str, Any]],
    config: SelfInstructConfig,
    seed: int,
    round_number: int,
) -> list[dict[str, Any]]:
    """The round's prompts (PROMPT_SCHEMA rows) from its seed and machine samples, each
    sample in draw order. A prompt shows ``num_seed + num_machine`` tasks, seeds filling in
    for machine tasks not generated yet, in a seeded order; its parent is its first seed."""
    shown = config.num_seed + config.num_machine
    prompts = []
    for index in range(config.prompts_per_round):
        picked_machine = window(machine, index * config.num_machine, config.num_machine)
        picked_seeds = window(seeds, index * shown, shown - len(picked_machine))
        tasks = sorted(
            picked_seeds + picked_machine,
            key=lambda row: draw(seed, "order", round_number, index, row["ident"]),
        )
        parent = next(row for row in tasks if row["origin"] == "seed")
        text = instruction_prompt([row["instruction"] for row in tasks])
        # The reply stops at the task after the last one wanted.
        stop = (*config.stop, f"Task {len(tasks) + config.max_new_per_prompt + 1}:")
        params = Params(
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            top_p=config.top_p,
            n=config.n,
            stop=stop,
            seed=request_seed(seed, round_number, index),
        )
        request = Request(messages=({"role": "user", "content": text},), params=params)
        prompts.append(
            {
                "round": round_number,
                "prompt": index,
                "shown": len(tasks),
                "prompt_seeds": [row["ident"] for row in tasks if row["origin"] == "seed"],
                "prompt_machine": [row["ident"] for row in tasks if row["origin"] != "seed"],
                "prompt_text": text,
                "request": encode_request(request),
                **{name: parent[name] for name in PARENT_NAMES},
            }
        )
    return prompts


# ----- per-batch functions (Ray Data UDFs over pyarrow batches) ----------------------------


def seed_pool_rows(batch: pa.Table) -> pa.Table:
    """POOL_SCHEMA rows of the batch's seeds: live original SFT records with an instruction.
    Pairs and binary records are left out, as the augmentation stages leave them out as
    parents: a created row's parent must be a record a split may group it with."""
    live = pc.is_null(batch.column("drop_reason")).to_pylist()
    original = pc.is_null(batch.column("augmentation")).to_pylist()
    feedback = feedback_rows(batch)
    columns = {
        name: batch.column(name).to_pylist()
        for name in ("id", "messages", "source_file", "source_format", "source_line")
    }
    domains, languages = batch.column("domain").to_pylist(), batch.column("language").to_pylist()
    splits = batch.column("split").to_pylist()
    rows = []
    for row in range(batch.num_rows):
        instruction = last_content(columns["messages"][row], "user").strip()
        if not (live[row] and original[row] and not feedback[row] and instruction):
            continue
        rows.append(
            {
                "ident": columns["id"][row],
                "instruction": instruction,
                "origin": "seed",
                "parent_id": columns["id"][row],
                "source_file": columns["source_file"][row],
                "source_format": columns["source_format"][row],
                "source_line": columns["source_line"][row],
                "domain": domains[row],
                "language": languages[row],
                "split": splits[row],
            }
        )
    return pa.Table.from_pylist(rows, schema=POOL_SCHEMA)


def smallest_draws(batch: pa.Table, *, seed: int, salt: str, count: int) -> pa.Table:
    """The ``count`` pool rows of a block with the smallest draws, with a ``_draw`` column."""
    draws = np.array(
        [
            draw(seed, salt, ident, source_file, line)
            for ident, source_file, line in zip(
                batch.column("ident").to_pylist(),
                batch.column("source_file").to_pylist(),
                batch.column("source_line").to_pylist(),
                strict=True,
            )
        ],
        dtype=np.uint64,
    )
    order = np.argsort(draws, kind="stable")[:count]
    picked = batch.take(pa.array(order, pa.int64()))
    return picked.append_column("_draw", pa.array(draws[order], pa.uint64()))


def parse_replies(batch: pa.Table, *, config: SelfInstructConfig) -> pa.Table:
    """Prompts with completions -> CANDIDATE_SCHEMA rows: one per listed task (rejected when
    a filter fails it) and one per reply or choice that lists none."""
    rows: list[dict[str, Any]] = []
    for prompt in batch.to_pylist():
        completion = decode_completion(prompt[COMPLETION_COLUMN])
        base = candidate_base(prompt)
        failure = failed_reply(completion)
        if failure is not None:
            drop, raw = failure
            rows.append(candidate(base, None, None, prompt["prompt_text"], drop, raw))
            continue
        for choice, text in enumerate(completion.texts):
            finish = completion.finish_reasons[choice] if completion.finish_reasons else None
            rows.extend(choice_candidates(base, choice, text, finish, prompt, config))
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)


def candidate_base(prompt: dict[str, Any]) -> dict[str, Any]:
    names = ("round", "prompt", "prompt_seeds", "prompt_machine", *PARENT_NAMES)
    return {name: prompt[name] for name in names}


def candidate(
    base: dict[str, Any],
    choice: int | None,
    item: int | None,
    instruction: str,
    drop: Drop | None,
    raw: str | None = None,
) -> dict[str, Any]:
    ident = f"r{base['round']}.p{base['prompt']}.c{choice}.i{item}"
    detail = None
    if drop is not None:
        detail = json.dumps(drop.detail or {}, ensure_ascii=False, sort_keys=True)
    return {
        **base,
        "ident": ident,
        "choice": choice,
        "item": item,
        "instruction": instruction,
        "is_classification": None,
        "drop_reason": None if drop is None else drop.reason,
        "drop_detail": detail,
        "raw": raw,
    }


def choice_candidates(
    base: dict[str, Any],
    choice: int,
    text: str,
    finish: str | None,
    prompt: dict[str, Any],
    config: SelfInstructConfig,
) -> list[dict[str, Any]]:
    if not text.strip():
        drop = Drop(EMPTY_GENERATION, {"finish_reason": finish})
        return [candidate(base, choice, None, prompt["prompt_text"], drop, text)]
    tasks = parse_task_list(text, prompt["shown"] + 1)
    if tasks is None:
        drop = Drop(PARSE_FAILED, raw_detail(text, finish))
        return [candidate(base, choice, None, prompt["prompt_text"], drop, text)]
    rows = []
    for item, task in enumerate(tasks):
        instruction = tidy_instruction(task.text)
        if finish == "length" and item == len(tasks) - 1:
            drop: Drop | None = Drop(TRUNCATED, {"finish_reason": finish})
        else:
            drop = instruction_drop(instruction, config)
        rows.append(candidate(base, choice, item, instruction, drop))
    return rows


def kept_pool_rows(batch: pa.Table) -> pa.Table:
    """The live candidates as POOL_SCHEMA rows: the instructions later rounds may show."""
    kept = batch.filter(pc.is_null(batch.column("drop_reason")))
    columns = {name: kept.column(name) for name in ("ident", "instruction", *PARENT_NAMES)}
    origin = pa.array(["machine"] * kept.num_rows, pa.string())
    return pa.table({**columns, "origin": origin}).select(POOL_SCHEMA.names).cast(POOL_SCHEMA)


def classify_requests(batch: pa.Table, *, seed: int, config: SelfInstructConfig) -> pa.Table:
    """A ``request`` column: the classification question for each kept task, greedy."""
    requests = []
    for row in batch.select(["ident", "instruction"]).to_pylist():
        params = Params(
            max_tokens=config.classify_max_tokens,
            temperature=0.0,
            stop=("\n", "Task"),
            seed=request_seed(seed, "classify", row["ident"]),
        )
        content = classify_prompt(row["instruction"])
        requests.append(encode_request(Request(({"role": "user", "content": content},), params)))
    return batch.append_column(REQUEST_COLUMN, pa.array(requests, pa.string()))


def read_classification(batch: pa.Table, *, seed: int, config: SelfInstructConfig) -> pa.Table:
    """Classification answers into ``is_classification`` (a task without one is dropped),
    then the instance request of every task still live (null for the dropped)."""
    rows = batch.drop_columns([REQUEST_COLUMN]).to_pylist()
    completions = [decode_completion(text) for text in batch.column(COMPLETION_COLUMN).to_pylist()]
    requests: list[str | None] = []
    for row, completion in zip(rows, completions, strict=True):
        failure = failed_reply(completion)
        answer = None if failure else parse_classification_answer(completion.texts[0])
        if failure is not None:
            drop, row["raw"] = failure
        elif answer is None:
            row["raw"] = completion.texts[0]
            drop = Drop(CLASSIFICATION_UNPARSED, raw_detail(completion.texts[0]))
        else:
            row["is_classification"] = answer
            requests.append(instance_request(row, seed, config))
            continue
        row.update(drop_fields(drop))
        requests.append(None)
    table = pa.Table.from_pylist(
        [{name: row[name] for name in CANDIDATE_SCHEMA.names} for row in rows],
        schema=CANDIDATE_SCHEMA,
    )
    return table.append_column(REQUEST_COLUMN, pa.array(requests, pa.string()))


def instance_request(row: dict[str, Any], seed: int, config: SelfInstructConfig) -> str:
    params = Params(
        max_tokens=config.instance_max_tokens,
        temperature=0.0,
        stop=(f"Example {config.max_instances + 1}", "Task:"),
        seed=request_seed(seed, "instances", row["ident"]),
    )
    content = instance_prompt(row["instruction"], row["is_classification"])
    return encode_request(Request(({"role": "user", "content": content},), params))


# ----- created rows -----------------------------------------------------------------------


def created_row(
    task: dict[str, Any],
    *,
    step: str,
    model: str,
    label: str,
    instance: int | None = None,
    response: str | None = None,
    context: str = "",
) -> dict[str, Any]:
    """One FLOW_SCHEMA row this stage made from a candidate or task row (its drop, if any)."""
    turns = [message("user", task["instruction"])]
    if response is not None:
        turns.append(message("assistant", response))
    keys = {name: task[name] for name in ("round", "prompt", "choice", "item")}
    generation = {
        "stage": STAGE,
        "step": step,
        "model": model,
        "round": task["round"],
        "prompt_seeds": task["prompt_seeds"],
        "prompt_machine": task["prompt_machine"],
        "is_classification": task["is_classification"],
    }
    return {
        "id": record_id("", turns, context, ""),
        "system": "",
        "messages": turns,
        "context": context,
        "tools": "",
        **UNSET_LATER,
        # The parent's provenance and split: accounting and splits group on them.
        **{name: task[name] for name in PARENT_NAMES},
        "task": label,
        "meta": json.dumps({"generation": generation}, ensure_ascii=False, sort_keys=True),
        "augmentation": json.dumps(
            {"stage": STAGE, "step": step, "model": model, **keys, "instance": instance},
            ensure_ascii=False,
            sort_keys=True,
        ),
        "drop_reason": task["drop_reason"],
        "drop_detail": task["drop_detail"],
        "raw": task["raw"],
    }


def rejected_candidates(batch: pa.Table, *, model: str, label: str) -> pa.Table:
    """The dropped rows of a round's candidates, as created FLOW rows."""
    dropped = batch.filter(pc.is_valid(batch.column("drop_reason"))).to_pylist()
    return rows_to_table(
        [created_row(row, step="instructions", model=model, label=label) for row in dropped]
    )


def instance_rows(batch: pa.Table, *, model: str, config: SelfInstructConfig) -> pa.Table:
    """Tasks with their instance completions -> created FLOW rows: each parsed instance (kept
    or filtered), or one reject for a task dropped earlier or whose instances do not parse."""
    rows = []
    for task in batch.drop_columns([REQUEST_COLUMN]).to_pylist():
        text = task.pop(COMPLETION_COLUMN)
        if task["drop_reason"] is not None:
            rows.append(created_row(task, step="classify", model=model, label=config.task))
            continue
        rows.extend(task_instances(task, decode_completion(text), model, config))
    return rows_to_table(rows)


def task_instances(
    task: dict[str, Any], completion: Completion, model: str, config: SelfInstructConfig
) -> list[dict[str, Any]]:
    failure = failed_reply(completion)
    found = None
    if failure is None:
        reply = completion.texts[0]
        parse = parse_output_first if task["is_classification"] else parse_input_first
        found = parse(reply)
    if found is None:
        if failure is not None:
            drop, raw = failure
        else:
            drop, raw = Drop(INSTANCES_UNPARSED, raw_detail(reply)), reply
        failed = {**task, **drop_fields(drop), "raw": raw}
        return [created_row(failed, step="instances", model=model, label=config.task)]
    finish = completion.finish_reasons[0] if completion.finish_reasons else None
    rows = []
    for index, (instance, drop) in enumerate(
        zip(found, instance_drops(found, config, finish == "length"), strict=True)
    ):
        fields = {**task, **drop_fields(drop)}
        rows.append(
            created_row(
                fields,
                step="instances",
                model=model,
                label=config.task,
                instance=index,
                response=instance.output,
                context=instance.input,
            )
        )
    return rows


def live_rows(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch.column("drop_reason")))


# ----- the stage on Ray -------------------------------------------------------------------


class SelfInstruct(GlobalStage):
    """Seeds pass through; rounds of generation add the created rows (see the module doc)."""

    name: ClassVar[str] = STAGE
    Config: ClassVar[type[StageConfig]] = SelfInstructConfig
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS
    config: SelfInstructConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        # The model's actors are the backend's (``backend.concurrency``/``num_gpus``); the
        # parsing passes are light CPU tasks.
        return Resources(batch_size=cast(SelfInstructConfig, config).batch_size)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        started = time.perf_counter()
        seeds = dataset.map_batches(seed_pool_rows, batch_format="pyarrow").materialize()
        findings: Counter = Counter({"seeds": seeds.count()})
        created: list[Any] = []
        kept_tasks: list[Any] = []
        if findings["seeds"]:
            for round_number in range(1, self.config.rounds + 1):
                live, rejected, counts = self.run_round(seeds, kept_tasks, round_number, context)
                findings.update(counts)
                created.append(rejected)
                if live.count():
                    kept_tasks.append(live)
                kept = sum(part.count() for part in kept_tasks)
                if self.config.target is not None and kept >= self.config.target:
                    break
        if kept_tasks:
            instances, counts = self.run_instances(union(kept_tasks), context)
            findings.update(counts)
            created.append(instances)
        report_findings(context.tally, context.position, findings)
        report_counts(context.tally, context.position, 0, {}, started)
        return union([dataset, *created])

    def run_round(
        self, seeds: Any, kept_tasks: list[Any], round_number: int, context: GlobalContext
    ) -> tuple[Any, Any, Counter]:
        """One round: its prompts, replies and candidates. Returns the live candidates
        (materialized), the created reject rows (materialized) and the round's counts."""
        config, seed = self.config, context.seed
        shown = config.num_seed + config.num_machine
        seed_sample = pool_sample(
            seeds, seed, f"seeds.{round_number}", config.prompts_per_round * shown
        )
        machine_sample: list[dict[str, Any]] = []
        if kept_tasks and config.num_machine:
            machine_pool = union(kept_tasks).map_batches(kept_pool_rows, batch_format="pyarrow")
            need = config.prompts_per_round * config.num_machine
            machine_sample = pool_sample(machine_pool, seed, f"machine.{round_number}", need)
        prompts = round_prompts(seed_sample, machine_sample, config, seed, round_number)
        replies = generate(
            ray.data.from_arrow(pa.Table.from_pylist(prompts, schema=PROMPT_SCHEMA)),
            config.backend,
            STAGE,
        )
        candidates = replies.map_batches(
            partial(parse_replies, config=config),
            batch_size=config.batch_size,
            batch_format="pyarrow",
        ).materialize()
        earlier = [
            seeds,
            *(part.map_batches(kept_pool_rows, batch_format="pyarrow") for part in kept_tasks),
        ]
        candidates = drop_similar(union(earlier), candidates, config, context).materialize()
        prefix = f"round_{round_number}"
        counts = summed_counts(candidates, prefix)
        counts[f"{prefix}.prompts"] = len(prompts)
        live = candidates.map_batches(live_rows, batch_format="pyarrow").materialize()
        rejected = candidates.map_batches(
            reporting_created(
                partial(rejected_candidates, model=config.backend.model, label=config.task),
                stage=STAGE,
                tally=context.tally,
            ),
            batch_format="pyarrow",
        ).materialize()
        return live, rejected, counts

    def run_instances(self, tasks: Any, context: GlobalContext) -> tuple[Any, Counter]:
        """Classification, then instance generation, of every kept task: the created rows
        (materialized) and their counts."""
        config, seed = self.config, context.seed
        asked = tasks.map_batches(
            partial(classify_requests, seed=seed, config=config),
            batch_size=config.batch_size,
            batch_format="pyarrow",
        )
        classified = generate(asked, config.backend, STAGE).map_batches(
            partial(read_classification, seed=seed, config=config),
            batch_size=config.batch_size,
            batch_format="pyarrow",
        )
        made = created_by_backend(
            classified,
            config.backend,
            partial(instance_rows, model=config.backend.model, config=config),
            stage=STAGE,
            tally=context.tally,
            batch_size=config.batch_size,
        )
        counts = summed_counts(made, "instances")
        counts["instances.tasks"] = tasks.count()
        return made, counts


def union(datasets: Sequence[Any]) -> Any:
    first, *rest = datasets
    return first.union(*rest) if rest else first


def pool_sample(pool: Any, seed: int, salt: str, count: int) -> list[dict[str, Any]]:
    """The ``count`` pool rows with the smallest draws for ``salt``, in draw order: per block
    first, then once over those, so only ``count`` rows reach the driver."""
    if count <= 0:
        return []
    smallest = partial(smallest_draws, seed=seed, salt=salt, count=count)
    candidates = pool.map_batches(
        partial(with_draws_removed, pick=smallest), batch_size=None, batch_format="pyarrow"
    )
    rows = (
        candidates.repartition(1)
        .map_batches(smallest, batch_size=None, batch_format="pyarrow")
        .take_all()
    )
    return sorted(rows, key=lambda row: (row["_draw"], row["ident"]))


def with_draws_removed(batch: pa.Table, *, pick: Callable[[pa.Table], pa.Table]) -> pa.Table:
    """A block's smallest draws without the ``_draw`` column, so the second pass draws again
    on POOL_SCHEMA rows alone."""
    return pick(batch).drop_columns(["_draw"])


# ----- novelty ----------------------------------------------------------------------------


def drop_similar(
    pool: Any, candidates: Any, config: SelfInstructConfig, context: GlobalContext
) -> Any:
    """``candidates`` with each live one whose ROUGE-L against a pool instruction, or an
    earlier kept candidate of the round (prompt, choice, item order), reaches
    ``novelty_threshold`` dropped as ``NOT_NOVEL``: the paper's greedy filter, found by
    ``pipeline.novelty`` (MinHash-LSH candidates, exact ROUGE-L, the greedy pass per
    component) instead of comparing each candidate with the whole pool."""
    references = pool.map_batches(pool_probes, batch_format="pyarrow")
    live = candidates.map_batches(live_rows, batch_format="pyarrow").map_batches(
        candidate_probes, batch_format="pyarrow"
    )
    losers = similar_losers(
        references.union(live),
        threshold=config.novelty_threshold,
        num_perm=config.novelty_num_perm,
        recall=config.novelty_recall,
        seed=context.seed,
        num_partitions=max(1, context.workers),
    )
    drops = {
        row["id"]: {"similarity": round(row["similarity"], 4), "similar_to": row["similar_to"]}
        for row in losers.iter_rows()
    }  # at most the round's candidates: prompts times listed tasks
    if not drops:
        return candidates
    return candidates.map_batches(partial(mark_not_novel, drops=drops), batch_format="pyarrow")


def ident_uids(idents: Sequence[str]) -> pa.Array:
    return pa.array([xxhash.xxh3_64_intdigest(ident.encode()) >> 1 for ident in idents], pa.int64())


def pool_probes(batch: pa.Table) -> pa.Table:
    """Pool instructions as novelty references: always kept, never compared together."""
    idents = batch.column("ident").to_pylist()
    return pa.table(
        {
            UID_COLUMN: ident_uids(idents),
            "id": idents,
            RANK_COLUMN: pa.array([0.0] * batch.num_rows, pa.float64()),
            FIXED_COLUMN: pa.array([True] * batch.num_rows),
            TEXT_COLUMN: batch.column("instruction"),
        },
        schema=PROBE_SCHEMA,
    )


def candidate_probes(batch: pa.Table) -> pa.Table:
    """A round's live candidates, ranked in (prompt, choice, item) order."""
    idents = batch.column("ident").to_pylist()
    order = zip(
        batch.column("prompt").to_pylist(),
        batch.column("choice").to_pylist(),
        batch.column("item").to_pylist(),
        strict=True,
    )
    ranks = [float((prompt << 32) | (choice << 16) | item) for prompt, choice, item in order]
    return pa.table(
        {
            UID_COLUMN: ident_uids(idents),
            "id": idents,
            RANK_COLUMN: pa.array(ranks, pa.float64()),
            FIXED_COLUMN: pa.array([False] * batch.num_rows),
            TEXT_COLUMN: batch.column("instruction"),
        },
        schema=PROBE_SCHEMA,
    )


def mark_not_novel(batch: pa.Table, *, drops: dict[str, dict[str, Any]]) -> pa.Table:
    rows = batch.to_pylist()
    for row in rows:
        if row["drop_reason"] is None and row["ident"] in drops:
            row.update(drop_fields(Drop(NOT_NOVEL, drops[row["ident"]])))
    return pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)
