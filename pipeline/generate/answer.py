"""The ``answer`` stage: responses generated for instructions that have none (the output of
``describe_to_instruction``, an instructions-only corpus), ``n`` per instruction.

A record is answered when its conversation, blank trailing replies left out (an alpaca
``output: ""``), ends with a user turn; with ``overwrite: true`` also when it ends with a
reply, which is then generated anew. The model sees the record's system prompt (or
``system_prompt`` when the record has none), its turns and its context after the last user
turn. ``system_prompt`` is a generation aid and is not written into the data: the created
records keep their own system prompt, so training does not teach a prompt users never send.

**Replace, not edit.** An answered record is dropped as ``answer.replaced_by_answers`` and
its ``n`` answers are created rows (sample 0..n-1), each the record's turns up to the last
user turn plus the answer. Editing the record in place for the first sample and creating
siblings for the rest was the alternative; replacing treats every sample alike (each has
``augmentation``, ``meta["generation"]`` and a row key of its own), keeps the record as it
was read in rejects, and keeps conservation a plain count: input + created = output +
rejects. A failed request, a blank answer, or one cut off at ``max_tokens`` (with
``drop_truncated``) is a created row rejected as ``answer.backend_error``,
``answer.empty_generation`` or ``answer.truncated``; its record is still replaced, so an
instruction all of whose answers failed is in rejects, never silently gone.

Each sample is its own request with its own seed (recipe seed, record, sample), so samples
differ under sampling, each is cached on its own, and any backend serves them; ``n > 1``
therefore needs ``temperature > 0``. Created rows keep the record's labels and constraints,
take ``parent_id`` = the root record and carry ``augmentation`` = ``{"stage", "model",
"sample", "from_id", "from_key", "root_id"}`` (``pipeline.generate.created``).

Config keys: ``backend``; ``n`` (1); ``overwrite`` (false); ``system_prompt`` ("");
``max_tokens`` (1024), ``temperature`` (0.0), ``top_p`` (1.0), ``stop``; ``drop_truncated``
(true); ``batch_size`` (64). Findings: ``answers.kept``, ``answers.dropped.<reason>``.
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any, ClassVar, cast

import pyarrow as pa
from pydantic import Field, model_validator

from pipeline.generate.backend import BackendConfig, Request, decode_completion, encode_request
from pipeline.generate.created import (
    Sampling,
    created_by_backend,
    created_row,
    encode_jobs,
    failed_generation,
    finish,
    job_rows,
    job_table,
    lineage_key,
    live_sft_rows,
    request_messages,
    request_seed,
    summed_counts,
    without_trailing_empty_replies,
)
from pipeline.schema import FLOW_SCHEMA, message, rows_to_table
from pipeline.stage import GlobalContext, GlobalStage, Resources, StageConfig, with_drops

STAGE = "answer"
REPLACED = "answer.replaced_by_answers"
BACKEND_ERROR = "answer.backend_error"
EMPTY_GENERATION = "answer.empty_generation"
TRUNCATED = "answer.truncated"
DROP_REASONS = (REPLACED, BACKEND_ERROR, EMPTY_GENERATION, TRUNCATED)


class AnswerConfig(StageConfig):
    backend: BackendConfig
    n: int = Field(1, ge=1)
    overwrite: bool = False
    system_prompt: str = ""
    max_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    drop_truncated: bool = True
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _samples_differ(self) -> AnswerConfig:
        if self.n > 1 and self.temperature == 0:
            raise ValueError(
                f"n {self.n} with temperature 0 gives {self.n} copies of one greedy answer; "
                "set temperature > 0 (e.g. 0.7) or n 1"
            )
        return self

    def sampling(self) -> Sampling:
        return Sampling(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
        )


def prompt_to_answer(turns: list[dict[str, Any]], overwrite: bool) -> list[dict[str, Any]] | None:
    """The turns a reply is generated for: all of them when the conversation (blank trailing
    replies left out) ends with a user turn; with ``overwrite``, those before its last reply
    when that follows a user turn. None: nothing to answer."""
    turns = without_trailing_empty_replies(turns)
    if turns and turns[-1]["role"] == "user" and turns[-1]["content"].strip():
        return turns
    if overwrite and len(turns) >= 2 and turns[-1]["role"] == "assistant":
        before = turns[:-1]
        if before[-1]["role"] == "user" and before[-1]["content"].strip():
            return before
    return None


def to_answer(batch: pa.Table, overwrite: bool) -> list[list[dict[str, Any]] | None]:
    """Per row, the prompt turns of a live SFT record this stage answers, else None."""
    conversations = batch.column("messages").to_pylist()
    return [
        prompt_to_answer(turns, overwrite) if usable else None
        for turns, usable in zip(conversations, live_sft_rows(batch), strict=True)
    ]


def answer_jobs(batch: pa.Table, *, seed: int, config: AnswerConfig) -> pa.Table:
    """One job per (record to answer, sample), with its request."""
    rows, requests = [], []
    sampling = config.sampling()
    for row, turns in zip(batch.to_pylist(), to_answer(batch, config.overwrite), strict=True):
        if turns is None:
            continue
        system = row["system"] or config.system_prompt
        for sample in range(config.n):
            params = sampling.params(request_seed(seed, STAGE, lineage_key(row), sample))
            request = Request(request_messages(system, turns, row["context"]), params)
            rows.append({**row, "_job": {"sample": sample}})
            requests.append(encode_request(request))
    return job_table(encode_jobs(rows), requests)


def answered_row(row: dict[str, Any], completion_text: str, config: AnswerConfig) -> dict[str, Any]:
    """The created FLOW row of one job: the record's prompt turns and the answer (or the
    prompt alone, rejected, when the generation failed)."""
    parent = {name: row[name] for name in FLOW_SCHEMA.names}
    sample = row["_job"]["sample"]
    completion = decode_completion(completion_text)
    turns = prompt_to_answer(parent["messages"], config.overwrite) or []
    drop = failed_generation(completion, STAGE, "answer", drop_truncated=config.drop_truncated)
    raw = None
    if drop is None:
        turns = [*turns, message("assistant", completion.texts[0].strip())]
    elif completion.texts:
        raw = completion.texts[0]
    finish_reason = completion.finish_reasons[0] if completion.finish_reasons else None
    model = config.backend.model
    return created_row(
        parent,
        turns=turns,
        system=parent["system"],
        context=parent["context"],
        constraints=parent["constraints"],
        augmentation={"stage": STAGE, "model": model, "sample": sample},
        generation={
            "model": model,
            "sample": sample,
            "n": config.n,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_tokens": config.max_tokens,
            "finish_reason": finish_reason,
            "system_prompt": bool(config.system_prompt and not parent["system"]),
        },
        drop=drop,
        raw=raw,
    )


def answered_rows(batch: pa.Table, *, config: AnswerConfig) -> pa.Table:
    rows, completions = job_rows(batch)
    return rows_to_table(
        [answered_row(row, text, config) for row, text in zip(rows, completions, strict=True)]
    )


def replaced_by_answers(batch: pa.Table, *, config: AnswerConfig) -> pa.Table:
    """The corpus with each record this stage answers dropped as replaced by its answers."""
    targets = to_answer(batch, config.overwrite)
    if not any(turns is not None for turns in targets):
        return batch
    reasons = batch.column("drop_reason").to_pylist()
    details = batch.column("drop_detail").to_pylist()
    detail = json.dumps({"answers": config.n}, sort_keys=True)
    for row, turns in enumerate(targets):
        if turns is not None:
            reasons[row], details[row] = REPLACED, detail
    return with_drops(batch, reasons, details).cast(FLOW_SCHEMA)


class Answer(GlobalStage):
    """Records to answer are replaced by their answers; the rest pass through (module doc)."""

    name: ClassVar[str] = STAGE
    Config: ClassVar[type[StageConfig]] = AnswerConfig
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS
    config: AnswerConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        # The model's actors are the backend's; the other passes are light CPU tasks.
        return Resources(batch_size=cast(AnswerConfig, config).batch_size)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        started = time.perf_counter()
        config = self.config
        batches = {"batch_size": config.batch_size, "batch_format": "pyarrow"}
        jobs = dataset.map_batches(
            partial(answer_jobs, seed=context.seed, config=config), **batches
        )
        created = created_by_backend(
            jobs,
            config.backend,
            partial(answered_rows, config=config),
            stage=STAGE,
            tally=context.tally,
            batch_size=config.batch_size,
        )
        finish(context, summed_counts(created, "answers"), started)
        records = dataset.map_batches(
            partial(replaced_by_answers, config=config), batch_format="pyarrow"
        )
        return records.union(created)
