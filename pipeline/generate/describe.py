"""The ``describe_to_instruction`` stage: instructions generated from task descriptions by a
seq2seq model trained for it (``instructflow train sft`` on description -> instruction pairs,
BART or T5), ``n`` per description.

A description is a live SFT record's ``field``: ``instruction`` (its last user turn, as a
description corpus read in alpaca or messages format gives it), ``context``, or
``meta.<key>`` (a source key no converter consumed, e.g. ``meta.description``). Records
without one pass through untouched. Each description is asked ``n`` times, each sample its
own request and seed (``n > 1`` needs ``temperature > 0``), and each answer is one created
row holding the instruction as its only (user) turn: no response. Answers come from the
``answer`` stage placed after this one, which may use another model (a chat model answers
better than the seq2seq generator would), rather than from an option here.

The description record is not instruction data: with ``keep_descriptions: false`` (the
default) it is dropped as ``describe_to_instruction.description_consumed``, counted in the
funnel and kept in rejects; ``true`` keeps it. A failed request, a blank instruction or one
cut off at ``max_tokens`` is a created row rejected as ``backend_error``,
``empty_generation`` or ``truncated``. Created rows keep the description's file, line and
labels (``task`` unless ``task`` is set), take ``parent_id`` = the root record and carry
``augmentation`` = ``{"stage", "model", "sample", "from_id", "from_key", "root_id"}``.

**Prompt format.** The request is one user turn holding the description rendered as SFT
rendered its sources, because the ``transformers`` backend hands a seq2seq model its turns'
text verbatim. ``prompt_format: checkpoint`` (the default) reads the checkpoint's
``instructflow.json`` (``instructflow train sft`` writes it): a seq2seq checkpoint trained
with ``chat`` gets the tokenizer's chat template with the generation prompt, one trained with
``instruction_output`` or ``alpaca`` that plain template (``train.sft_data.prompt_text``); a
causal checkpoint, or one without the file, gets the description as it is (``raw``), the
backend applying its chat template. Name a format to override it; use ``raw`` behind an
OpenAI-compatible server (``instructflow serve`` renders the turn itself).

Config keys: ``backend`` (kind ``transformers``, ``model`` the checkpoint); ``field``
(instruction); ``n`` (1); ``max_tokens`` (128), ``temperature`` (0.0), ``top_p`` (1.0),
``stop``; ``prompt_format`` (checkpoint | raw | chat | instruction_output | alpaca);
``keep_descriptions`` (false); ``task`` (the description's); ``drop_truncated`` (true);
``batch_size`` (64). Findings: ``descriptions``, ``instructions.kept``,
``instructions.dropped.<reason>``.
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import pyarrow as pa
from pydantic import Field, field_validator, model_validator

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
    request_seed,
    summed_counts,
    user_turns,
)
from pipeline.schema import FLOW_SCHEMA, last_content, rows_to_table
from pipeline.stage import GlobalContext, GlobalStage, Resources, StageConfig, with_drops

STAGE = "describe_to_instruction"
CONSUMED = "describe_to_instruction.description_consumed"
BACKEND_ERROR = "describe_to_instruction.backend_error"
EMPTY_GENERATION = "describe_to_instruction.empty_generation"
TRUNCATED = "describe_to_instruction.truncated"
DROP_REASONS = (CONSUMED, BACKEND_ERROR, EMPTY_GENERATION, TRUNCATED)
FIELD = re.compile(r"^(instruction|context|meta\.[^.\s]+)$")
PromptFormat = Literal["checkpoint", "raw", "chat", "instruction_output", "alpaca"]
# ``train.sft.CHECKPOINT_META``: what an SFT checkpoint says about its training.
CHECKPOINT_META = "instructflow.json"
# ``train.sft_data.PLAIN_TEMPLATES`` (the pipeline never imports train; a test holds the two
# equal), so a named format renders exactly what SFT trained on.
PLAIN_TEMPLATES = {
    "instruction_output": "Instruction: {instruction}\n\nOutput: ",
    "alpaca": (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
    ),
}


class DescribeConfig(StageConfig):
    backend: BackendConfig
    field: str = "instruction"
    n: int = Field(1, ge=1)
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: tuple[str, ...] = ()
    prompt_format: PromptFormat = "checkpoint"
    keep_descriptions: bool = False
    task: str | None = None
    drop_truncated: bool = True
    batch_size: int = Field(64, ge=1)

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if not FIELD.match(value):
            raise ValueError(
                f"field {value!r}: use instruction (the last user turn), context, or "
                "meta.<key> (a source key kept in meta)"
            )
        return value

    @model_validator(mode="after")
    def _samples_differ(self) -> DescribeConfig:
        if self.n > 1 and self.temperature == 0:
            raise ValueError(
                f"n {self.n} with temperature 0 gives {self.n} copies of one greedy "
                "instruction; set temperature > 0 (e.g. 0.7) or n 1"
            )
        return self

    def sampling(self) -> Sampling:
        return Sampling(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
        )


def description_of(row: dict[str, Any], field: str) -> str:
    """The description a record holds in ``field`` (stripped; "" when it has none)."""
    if field == "instruction":
        text = last_content(row["messages"], "user")
    elif field == "context":
        text = row["context"]
    else:
        value = json.loads(row["meta"]).get(field.removeprefix("meta."))
        text = value if isinstance(value, str) else ""
    return text.strip()


def descriptions(batch: pa.Table, field: str) -> list[str | None]:
    """Per row, the description of a live SFT record, else None."""
    return [
        (description_of(row, field) or None) if usable else None
        for row, usable in zip(batch.to_pylist(), live_sft_rows(batch), strict=True)
    ]


def trained_format(config: DescribeConfig) -> str:
    """The format a description is rendered in: the named one, or (``checkpoint``) the one
    the checkpoint's seq2seq SFT used, ``raw`` when it says none. Read on the driver: one
    small JSON file, no model."""
    if config.prompt_format != "checkpoint":
        return config.prompt_format
    path = Path(config.backend.model) / CHECKPOINT_META
    if config.backend.kind != "transformers" or not path.is_file():
        return "raw"
    meta = json.loads(path.read_text(encoding="utf-8"))
    trained = meta.get("prompt_format")
    if meta.get("kind") != "seq2seq" or trained not in ("chat", *PLAIN_TEMPLATES):
        return "raw"
    return trained


@lru_cache(maxsize=4)
def chat_tokenizer(checkpoint: str) -> Any:
    """The checkpoint's tokenizer, once per worker process, for its chat template."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


def prompt_turn(description: str, prompt_format: str, checkpoint: str) -> str:
    """The user turn sent for a description, rendered in ``prompt_format``."""
    if prompt_format == "raw":
        return description
    if prompt_format == "chat":
        return chat_tokenizer(checkpoint).apply_chat_template(
            [{"role": "user", "content": description}], tokenize=False, add_generation_prompt=True
        )
    return PLAIN_TEMPLATES[prompt_format].replace("{instruction}", description)


def describe_jobs(
    batch: pa.Table, *, seed: int, config: DescribeConfig, prompt_format: str
) -> pa.Table:
    """One job per (description, sample), with its request."""
    rows, requests = [], []
    sampling = config.sampling()
    for row, description in zip(batch.to_pylist(), descriptions(batch, config.field), strict=True):
        if description is None:
            continue
        content = prompt_turn(description, prompt_format, config.backend.model)
        for sample in range(config.n):
            params = sampling.params(request_seed(seed, STAGE, lineage_key(row), sample))
            request = Request(({"role": "user", "content": content},), params)
            job = {"sample": sample, "description": description, "format": prompt_format}
            rows.append({**row, "_job": job})
            requests.append(encode_request(request))
    return job_table(encode_jobs(rows), requests)


def instruction_row(
    row: dict[str, Any], completion_text: str, config: DescribeConfig
) -> dict[str, Any]:
    """The created FLOW row of one job: the generated instruction as a user turn (the
    description, rejected, when the generation failed)."""
    parent = {name: row[name] for name in FLOW_SCHEMA.names}
    job = row["_job"]
    completion = decode_completion(completion_text)
    drop = failed_generation(completion, STAGE, "describe", drop_truncated=config.drop_truncated)
    text = job["description"] if drop is not None else completion.texts[0].strip()
    model = config.backend.model
    return created_row(
        parent,
        turns=user_turns(text),
        task=config.task,
        augmentation={"stage": STAGE, "model": model, "sample": job["sample"]},
        generation={
            "model": model,
            "sample": job["sample"],
            "n": config.n,
            "description": job["description"],
            "prompt_format": job["format"],
            "temperature": config.temperature,
        },
        drop=drop,
        raw=completion.texts[0] if drop is not None and completion.texts else None,
    )


def instruction_rows(batch: pa.Table, *, config: DescribeConfig) -> pa.Table:
    rows, completions = job_rows(batch)
    return rows_to_table(
        [instruction_row(row, text, config) for row, text in zip(rows, completions, strict=True)]
    )


def consumed_descriptions(batch: pa.Table, *, config: DescribeConfig) -> pa.Table:
    """The corpus with every description record dropped as consumed (kept with
    ``keep_descriptions``)."""
    found = descriptions(batch, config.field)
    if config.keep_descriptions or all(text is None for text in found):
        return batch
    reasons = batch.column("drop_reason").to_pylist()
    details = batch.column("drop_detail").to_pylist()
    detail = json.dumps({"instructions": config.n}, sort_keys=True)
    for row, text in enumerate(found):
        if text is not None:
            reasons[row], details[row] = CONSUMED, detail
    return with_drops(batch, reasons, details).cast(FLOW_SCHEMA)


class DescribeToInstruction(GlobalStage):
    """Descriptions become generated instructions (module doc)."""

    name: ClassVar[str] = STAGE
    Config: ClassVar[type[StageConfig]] = DescribeConfig
    drop_reasons: ClassVar[tuple[str, ...]] = DROP_REASONS
    config: DescribeConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        # The model's actors are the backend's; the other passes are light CPU tasks.
        return Resources(batch_size=cast(DescribeConfig, config).batch_size)

    def apply(self, dataset: Any, context: GlobalContext) -> Any:
        started = time.perf_counter()
        config = self.config
        batches = {"batch_size": config.batch_size, "batch_format": "pyarrow"}
        jobs = dataset.map_batches(
            partial(
                describe_jobs,
                seed=context.seed,
                config=config,
                prompt_format=trained_format(config),
            ),
            **batches,
        ).materialize()
        created = created_by_backend(
            jobs,
            config.backend,
            partial(instruction_rows, config=config),
            stage=STAGE,
            tally=context.tally,
            batch_size=config.batch_size,
        )
        findings = summed_counts(created, "instructions")
        findings["descriptions"] = jobs.count() // config.n
        finish(context, findings, started)
        records = dataset.map_batches(
            partial(consumed_descriptions, config=config), batch_format="pyarrow"
        )
        return records.union(created)
