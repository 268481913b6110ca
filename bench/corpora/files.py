"""The synthetic records in the formats and files the pipeline reads: ``to_format``,
``write_records``, ``write_corpus`` and the labelled ``write_quality_corpus``."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TextIO

from bench.corpora.dirt import QUALITY_BAD_KINDS, DirtConfig, copy_record
from bench.corpora.records import DEFAULT_LANGUAGE_MIX, generate_records

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "dolly")


FILE_TYPES = ("jsonl", "json", "csv")


# CSV columns per format; nested values (history, conversations, messages) are JSON strings.
FORMAT_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "alpaca": ("instruction", "input", "output", "system", "history"),
        "sharegpt": ("conversations",),
        "messages": ("messages",),
        "prompt_completion": ("prompt", "completion"),
        "dolly": ("instruction", "context", "response", "category"),
    }
)


def to_format(record: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """Re-shape an alpaca record into ``fmt`` (one of ``FORMATS``); ``_dirt`` is kept.

    ``input`` joins the instruction as ``instruction + "\\n\\n" + input`` where a format has
    no place for it; prompt/completion has no place for ``system`` or ``history`` and drops
    them. The dolly ``category`` is guessed from the instruction's wording.
    """
    if fmt not in _FORMATTERS:
        raise ValueError(f"fmt={fmt!r} is not a known format; choose one of {', '.join(FORMATS)}")
    shaped = _FORMATTERS[fmt](record)
    if "_dirt" in record:
        shaped["_dirt"] = record["_dirt"]
    return shaped


def write_records(
    path: str | Path,
    records: Iterable[Mapping[str, Any]],
    *,
    file_type: str = "jsonl",
    columns: tuple[str, ...] | None = None,
    indent: int | None = None,
) -> int:
    """Stream ``records`` to ``path`` as JSON lines, a JSON array or CSV; returns the count.

    A path ending in ``.gz`` is gzip-compressed with a zero timestamp, so the same records
    give the same bytes. CSV columns default to the first record's keys; nested values are
    written as JSON strings and a key outside ``columns`` is an error, never silently lost.
    """
    if file_type not in _WRITERS:
        raise ValueError(
            f"file_type={file_type!r} is not supported; choose one of {', '.join(FILE_TYPES)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_text(path) as handle:
        if file_type == "csv":
            return _write_csv(handle, records, columns)
        return _WRITERS[file_type](handle, records, indent)


def write_corpus(
    path: str | Path,
    n: int,
    *,
    seed: int,
    fmt: str = "alpaca",
    file_type: str = "jsonl",
    dirt: DirtConfig | None = None,
    language_mix: Mapping[str, float] = DEFAULT_LANGUAGE_MIX,
) -> int:
    """Generate ``n`` records in ``fmt`` and stream them to ``path`` (see ``write_records``)."""
    if fmt not in _FORMATTERS:
        raise ValueError(f"fmt={fmt!r} is not a known format; choose one of {', '.join(FORMATS)}")
    records = generate_records(n, seed=seed, language_mix=language_mix, dirt=dirt)
    columns = FORMAT_COLUMNS[fmt] + (("_dirt",) if dirt is not None and dirt.mark_dirt else ())
    shaped = (to_format(record, fmt) for record in records)
    return write_records(path, shaped, file_type=file_type, columns=columns)


def write_quality_corpus(directory: str | Path, records: int, *, seed: int) -> tuple[Path, Path]:
    """Labelled records for a quality classifier: ``good.jsonl`` (clean) and ``bad.jsonl``
    (records with a kind of ``QUALITY_BAD_KINDS``), alpaca, under ``directory``; about half
    bad (``DirtConfig.low_quality``)."""
    good, bad = [], []
    for record in generate_records(records, seed=seed, dirt=DirtConfig.low_quality(mark_dirt=True)):
        kinds = set(record.pop("_dirt"))
        (bad if kinds & QUALITY_BAD_KINDS else good).append(record)
    directory = Path(directory)
    write_records(directory / "good.jsonl", good)
    write_records(directory / "bad.jsonl", bad)
    return directory / "good.jsonl", directory / "bad.jsonl"


def _prompt(record: Mapping[str, Any]) -> str:
    extra = record.get("input", "")
    return f"{record['instruction']}\n\n{extra}" if extra else record["instruction"]


def _turn_pairs(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(user, assistant) for user, assistant in record.get("history", [])] + [
        (_prompt(record), record["output"])
    ]


def _to_alpaca(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in copy_record(record).items() if key != "_dirt"}


def _to_sharegpt(record: Mapping[str, Any]) -> dict[str, Any]:
    turns = [{"from": "system", "value": record["system"]}] if record.get("system") else []
    for user, assistant in _turn_pairs(record):
        turns += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    return {"conversations": turns}


def _to_messages(record: Mapping[str, Any]) -> dict[str, Any]:
    turns = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    for user, assistant in _turn_pairs(record):
        turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": turns}


def _to_prompt_completion(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"prompt": _prompt(record), "completion": record["output"]}


# First matching cue wins; the cues are the wording our own instructions (and most
# human-written ones) use for each dolly category.
_DOLLY_CUES = (
    (("summar", "sum up", "main idea", "概括", "总结", "要点", "核心意思"), "summarization"),
    (
        ("sentiment", "positive or negative", "happy or unhappy", "正面还是负面", "情感", "积极"),
        "classification",
    ),
    (("story", "poem", "email", "message to", "故事", "邮件"), "creative_writing"),
    (("title", "headline", "ideas", "标题"), "brainstorming"),
    (("correct", "fix", "proofread", "extract"), "information_extraction"),
)


def _dolly_category(record: Mapping[str, Any]) -> str:
    instruction = record["instruction"].lower()
    for cues, category in _DOLLY_CUES:
        if any(cue in instruction for cue in cues):
            return category
    if record.get("input"):
        return "closed_qa"
    return "open_qa" if instruction.rstrip().endswith(("?", "？")) else "general_qa"


def _to_dolly(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "instruction": record["instruction"],
        "context": record.get("input", ""),
        "response": record["output"],
        "category": _dolly_category(record),
    }


_FORMATTERS = {
    "alpaca": _to_alpaca,
    "sharegpt": _to_sharegpt,
    "messages": _to_messages,
    "prompt_completion": _to_prompt_completion,
    "dolly": _to_dolly,
}


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    if path.suffix != ".gz":
        with open(path, "w", encoding="utf-8", newline="") as handle:
            yield handle
        return
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="") as handle,
    ):
        yield handle


def _write_jsonl(handle: TextIO, records: Iterable[Mapping[str, Any]], indent: int | None) -> int:
    count = 0
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _write_json_array(
    handle: TextIO, records: Iterable[Mapping[str, Any]], indent: int | None
) -> int:
    count = 0
    handle.write("[")
    pad = "\n" + " " * (indent or 0)
    for record in records:
        text = json.dumps(record, ensure_ascii=False, indent=indent)
        handle.write(("," if count else "") + pad + text.replace("\n", pad))
        count += 1
    handle.write("\n]\n")
    return count


def _write_csv(
    handle: TextIO, records: Iterable[Mapping[str, Any]], columns: tuple[str, ...] | None
) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    count = 0
    for record in records:
        if columns is None:
            columns = tuple(record)
        if count == 0:
            writer.writerow(columns)
        unknown = set(record) - set(columns)
        if unknown:
            raise ValueError(
                f"record {count} has keys {sorted(unknown)} outside the CSV columns {list(columns)}"
            )
        writer.writerow([_csv_cell(record.get(column, "")) for column in columns])
        count += 1
    if count == 0 and columns:
        writer.writerow(columns)
    return count


def _csv_cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


_WRITERS = {"jsonl": _write_jsonl, "json": _write_json_array, "csv": _write_csv}
