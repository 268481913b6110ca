"""Ingest: one input file becomes FLOW_SCHEMA batches, every unit at least one row.

A unit that reads and converts becomes a canonical record; one that does not becomes a
quarantine row naming the reason, the file and the line, with the offending text in ``raw``.
Bad data never raises here. A unit is one row, except an ultrafeedback record under
``preference.pairs: all_pairs``, which is one row per pair it gives (``pipeline.
convert_pairs``); readers count rows, so conservation counts those pairs as the file's input.
A pair that teaches nothing (a tie, identical sides) is a reject row from the start
(``PAIR_REASONS``), not quarantine: the input was well-formed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.convert import CONVERT_REASONS, FORMATS, PAIR_FORMATS, ConversionError, detect_format
from pipeline.convert_pairs import PAIR_REASONS, PreferenceOptions, canonical_rows
from pipeline.read import FILE_TYPES, READ_REASONS, InputFile, Unit, iter_units
from pipeline.schema import ROLES, quarantine_row, rows_to_table
from pipeline.templates import TEMPLATE_TASKS, TemplateBank, TemplateRenderer

INGEST_REASONS = READ_REASONS + CONVERT_REASONS
# Rejects (not quarantine) that conversion itself decides: well-formed pairs that teach nothing.
CONVERSION_REJECTS = PAIR_REASONS
RAW_CHARS = 2000
# Canonical field names a `columns` entry may rename, per format family.
COLUMN_NAMES = (
    "instruction",
    "input",
    "output",
    "system",
    "history",
    "tools",  # alpaca
    "conversations",
    "from",
    "value",  # sharegpt
    "messages",
    "role",
    "content",  # messages
    "prompt",
    "completion",  # prompt_completion
    "context",
    "response",
    "category",  # dolly
    "question",
    "answers",
    "answer",
    "text",
    "label",
    "options",  # qa, classification, text
    "chosen",
    "rejected",
    "completions",
    "kto_tag",
    "score_chosen",
    "score_rejected",
    "chosen_score",
    "rejected_score",  # pairwise, ultrafeedback, hh, kto
)


class InputConfig(BaseModel):
    """One input of a data recipe: where the files are and how to read their records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    format: Literal[("auto", *FORMATS, *PAIR_FORMATS)] = "auto"
    file_type: Literal[("auto", *FILE_TYPES)] = "auto"
    # Canonical field name -> the column name in this input ({"instruction": "prompt_text"}).
    columns: dict[str, str] = {}
    # Source role tag -> canonical role, added to the format's defaults ({"bot": "assistant"}).
    role_tags: dict[str, str] | None = None
    task: str = ""
    domain: str = ""
    language: str = ""
    # Extra template files (qa, classification, text) that extend or override the built-ins.
    templates: tuple[str, ...] = ()
    # Raw text files: what one record is. auto: a paragraph (blank-line separated), or each
    # line where a file runs over 32 KiB without a blank line (pipeline.read).
    text_unit: Literal["auto", "file", "paragraph", "line"] = "auto"
    # A raw text unit longer than this becomes a task on its lead (whole sentences);
    # meta["window"] records where it was cut.
    max_passage_chars: int = Field(default=4000, ge=200)
    csv_delimiter: str = Field(default=",", min_length=1, max_length=1)
    max_record_bytes: int = Field(default=4_000_000, gt=0)
    # Feedback formats: which pairs an ultrafeedback record gives, and the least score margin.
    preference: PreferenceOptions = PreferenceOptions()

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(COLUMN_NAMES))
        if unknown:
            raise ValueError(f"unknown canonical field(s) {unknown}; allowed: {list(COLUMN_NAMES)}")
        return columns

    @field_validator("role_tags")
    @classmethod
    def _known_roles(cls, role_tags: dict[str, str] | None) -> dict[str, str] | None:
        bad = {tag: role for tag, role in (role_tags or {}).items() if role not in ROLES}
        if bad:
            raise ValueError(f"role_tags map to unknown roles {bad}; roles are {list(ROLES)}")
        return role_tags

    @field_validator("templates")
    @classmethod
    def _loadable_templates(cls, templates: tuple[str, ...]) -> tuple[str, ...]:
        missing = [path for path in templates if not os.path.isfile(path)]
        if missing:
            raise ValueError(f"template file(s) not found: {missing}")
        for task in TEMPLATE_TASKS:  # compiles every template now, before any data is read
            TemplateBank.load(task, templates)
        return templates


def ingest_file(
    input_file: InputFile, config: InputConfig, *, seed: int, batch_rows: int = 1000
) -> Iterator[pa.Table]:
    """FLOW_SCHEMA tables of at most ``batch_rows`` rows: every unit of the file as its rows."""
    renderer = TemplateRenderer(
        config.templates, seed=seed, max_passage_chars=config.max_passage_chars
    )
    units = iter_units(
        input_file,
        config.file_type,
        max_record_bytes=config.max_record_bytes,
        text_unit=config.text_unit,
        csv_delimiter=config.csv_delimiter,
    )
    rows: list[dict[str, Any]] = []
    for unit in units:
        rows.extend(unit_rows(unit, input_file.uri, config, renderer))
        if len(rows) >= batch_rows:
            yield rows_to_table(rows)
            rows = []
    if rows:
        yield rows_to_table(rows)


def unit_row(
    unit: Unit, source_file: str, config: InputConfig, renderer: TemplateRenderer
) -> dict[str, Any]:
    """The one row of a unit that makes one (any but ultrafeedback ``all_pairs``)."""
    (row,) = unit_rows(unit, source_file, config, renderer)
    return row


def unit_rows(
    unit: Unit, source_file: str, config: InputConfig, renderer: TemplateRenderer
) -> list[dict[str, Any]]:
    """The canonical records of a unit (one, or one per pair), or the quarantine row that
    says why this unit is none."""
    if unit.error is not None:
        reason, detail = unit.error
        return [_quarantine(source_file, unit.line, config.format, reason, detail, unit.raw)]
    fmt = config.format
    try:
        if fmt == "auto":
            fmt = detect_format(unit.value, config.columns)
        return canonical_rows(
            unit.value,
            fmt,
            preference=config.preference,
            columns=config.columns,
            role_tags=config.role_tags,
            source_file=source_file,
            source_line=unit.line,
            task=config.task,
            domain=config.domain,
            language=config.language,
            templates=renderer,
        )
    except ConversionError as error:
        raw = _raw_text(unit.value)
        return [_quarantine(source_file, unit.line, fmt, error.reason, error.detail, raw)]
    except RecursionError:
        # Readers stop JSON at MAX_NESTING; any value still too deep to convert (a Parquet
        # struct, say) is quarantined too, so that one record cannot abort the run.
        detail = "a value nested too deep to convert"
        return [_quarantine(source_file, unit.line, fmt, "read.nesting_too_deep", detail, "")]


def _quarantine(
    source_file: str, line: int, fmt: str, reason: str, detail: str, raw: str | None
) -> dict[str, Any]:
    return quarantine_row(
        source_file=source_file,
        source_line=line,
        source_format=fmt,
        reason=reason,
        detail=json.dumps({"message": detail}, ensure_ascii=False),
        raw=raw or "",
    )


def _raw_text(value: dict[str, Any] | str | None) -> str:
    if isinstance(value, str):
        return value[:RAW_CHARS]
    try:
        return json.dumps(value, ensure_ascii=False, default=str)[:RAW_CHARS]
    except RecursionError:
        return ""  # too deep to show; the reason says so
