"""The synthetic corpus generator: determinism, language mix, dirt, formats, writers."""

from __future__ import annotations

import csv
import gc
import gzip
import importlib.util
import json
import os
import re
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import ftfy
import py3langid
import pytest

from bench.corpora import (
    DIRT_KINDS,
    FORMAT_COLUMNS,
    FORMATS,
    DirtConfig,
    generate_paragraphs,
    generate_qa,
    generate_records,
    to_format,
    write_corpus,
    write_records,
)

REPO = Path(__file__).resolve().parents[3]
QUICKSTART = REPO / "examples" / "quickstart"

# Digit lookarounds, not \b: in Chinese text a digit touches a CJK letter, which \b sees as \w.
CARD = re.compile(r"(?<!\d)(?:\d{4}[ -]?){3}\d{4}(?!\d)")
CN_ID = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")
CN_MOBILE = re.compile(r"(?<!\d)1[3-9]\d(?: ?\d{4}){2}(?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
US_PHONE = re.compile(r"(?<!\d)\(?\d{3}\)?[ -]\d{3}[ -]\d{4}(?!\d)")
END_MARKERS = ("<|endoftext|>", "<|im_end|>", "</s>")


def language_of(record: dict) -> str:
    return py3langid.classify(f"{record['instruction']}\n{record['output']}")[0]


def luhn_valid(number: str) -> bool:
    digits = [int(char) for char in re.sub(r"\D", "", number)]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def resident_id_valid(number: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    checksum = sum(int(char) * weight for char, weight in zip(number, weights, strict=False))
    return "10X98765432"[checksum % 11] == number[17]


def all_text(record: dict) -> str:
    history = " ".join(" ".join(turn) for turn in record.get("history", []))
    return " ".join((record["instruction"], record["input"], record["output"], history))


def without_dirt(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "_dirt"}


# -- determinism and diversity ------------------------------------------------------------


def test_same_seed_gives_same_records() -> None:
    dirt = DirtConfig.typical(mark_dirt=True)
    first = list(generate_records(400, seed=5, dirt=dirt))
    assert first == list(generate_records(400, seed=5, dirt=dirt))
    assert first != list(generate_records(400, seed=6, dirt=dirt))


def test_clean_content_does_not_depend_on_dirt_rates() -> None:
    clean = list(generate_records(600, seed=9))
    dirty = list(generate_records(600, seed=9, dirt=DirtConfig.typical(mark_dirt=True)))
    untouched = [i for i, record in enumerate(dirty) if not record["_dirt"]]
    assert len(untouched) > 400
    assert all(without_dirt(dirty[i]) == clean[i] for i in untouched)


def test_generation_is_lazy() -> None:
    records = generate_records(10**12, seed=0)
    assert isinstance(records, Iterator)
    assert set(next(records)) >= {"instruction", "input", "output"}


def test_instructions_are_diverse() -> None:
    records = list(generate_records(2000, seed=0))
    assert len({record["instruction"] for record in records}) >= 0.95 * len(records)
    many = [json.dumps(r, sort_keys=True) for r in generate_records(20_000, seed=1)]
    assert len(set(many)) >= 0.995 * len(many)


def test_records_look_like_prose() -> None:
    english = list(generate_records(300, seed=2, language_mix={"en": 1.0}))
    stop_words = {"the", "be", "to", "of", "and", "that", "have", "with", "a", "is", "you", "it"}
    with_stop_words = [
        record
        for record in english
        if len(stop_words & set(record["output"].lower().split())) >= 2
        or len(record["output"].split()) < 8
    ]
    assert len(with_stop_words) >= 0.9 * len(english)
    assert all(record["output"].strip() and record["instruction"].strip() for record in english)


# -- language -----------------------------------------------------------------------------


def test_language_mix_is_roughly_honoured() -> None:
    records = list(generate_records(1000, seed=3, language_mix={"en": 0.7, "zh": 0.3}))
    languages = Counter(language_of(record) for record in records)
    assert languages["en"] + languages["zh"] >= 0.98 * len(records)
    assert 0.25 <= languages["zh"] / len(records) <= 0.35


@pytest.mark.parametrize("code", ["en", "zh"])
def test_single_language_is_recognised(code: str) -> None:
    records = list(generate_records(300, seed=4, language_mix={code: 1.0}))
    recognised = sum(language_of(record) == code for record in records)
    assert recognised >= 0.98 * len(records)


# -- dirt ---------------------------------------------------------------------------------


def test_dirt_is_unmarked_by_default() -> None:
    dirt = DirtConfig(pii=0.5, refusal=0.5)
    assert all("_dirt" not in record for record in generate_records(200, seed=1, dirt=dirt))


def test_dirt_rates_are_roughly_honoured() -> None:
    dirt = DirtConfig(**{kind: 0.05 for kind in DIRT_KINDS}, mark_dirt=True)
    records = list(generate_records(6000, seed=11, dirt=dirt))
    counts = Counter(kind for record in records for kind in record["_dirt"])
    for kind in DIRT_KINDS:
        assert counts[kind] / len(records) == pytest.approx(0.05, abs=0.015), kind
    clean = sum(not record["_dirt"] for record in records)
    assert clean / len(records) == pytest.approx(0.95**4 * 0.9 * 0.7, abs=0.03)


@pytest.fixture(scope="module")
def dirty_records() -> list[dict]:
    dirt = DirtConfig(**{kind: 0.06 for kind in DIRT_KINDS}, mark_dirt=True)
    return list(generate_records(3000, seed=12, dirt=dirt))


def only(records: list[dict], kind: str) -> list[dict]:
    selected = [record for record in records if record["_dirt"] == [kind]]
    assert len(selected) >= 10, kind
    return selected


def looks_repeated(text: str) -> bool:
    """Some sentence or line three times, or some short n-gram four times."""
    segments = Counter(part.strip() for part in re.split(r"[.!?。！？\n]", text) if part.strip())
    units = text.split() if text.isascii() else list(text)
    size = 3 if text.isascii() else 6
    grams = Counter(tuple(units[i : i + size]) for i in range(len(units) - size + 1))
    return max(segments.values()) >= 3 or max(grams.values(), default=0) >= 4


def test_response_dirt_looks_like_its_label(dirty_records: list[dict]) -> None:
    for record in only(dirty_records, "empty_response"):
        assert not record["output"].strip()
    for record in only(dirty_records, "refusal"):
        assert re.search(r"AI|sorry|apologize|抱歉|对不起|不能|无法", record["output"])
    for record in only(dirty_records, "wrong_language"):
        assert language_of(record) not in ("en", "zh")
    for record in only(dirty_records, "repetition"):
        assert looks_repeated(record["output"])
    for record in only(dirty_records, "copied_instruction"):
        assert record["output"].startswith(record["instruction"])
    for record in only(dirty_records, "too_long"):
        assert len(record["output"]) >= 8000


def test_decoration_dirt_looks_like_its_label(dirty_records: list[dict]) -> None:
    for record in only(dirty_records, "html"):
        assert re.search(r"<[a-z]+[ >]|&\w+;|&#\d+;", all_text(record))
    for record in only(dirty_records, "endoftext"):
        assert any(marker in record["output"] for marker in END_MARKERS)
    for record in only(dirty_records, "mojibake"):
        text = all_text(record)
        assert ftfy.fix_text(text) != text
    for record in only(dirty_records, "pii"):
        text = all_text(record)
        assert any(p.search(text) for p in (CARD, CN_ID, CN_MOBILE, EMAIL, IPV4, US_PHONE))


def differs_in_one_place(edited: str, original: str) -> bool:
    """True when the two texts differ only in one span of at most a few characters."""
    prefix = len(os.path.commonprefix([edited, original]))
    suffix = len(os.path.commonprefix([edited[prefix:][::-1], original[prefix:][::-1]]))
    return 0 < max(len(edited), len(original)) - prefix - suffix <= 20


def test_duplicates_repeat_an_earlier_record(dirty_records: list[dict]) -> None:
    seen: list[dict] = []
    by_input_instruction: dict[tuple[str, str], list[str]] = {}
    by_input_output: dict[tuple[str, str], list[str]] = {}
    for record in dirty_records:
        body = without_dirt(record)
        if "exact_duplicate" in record["_dirt"]:
            assert body in seen
        elif "near_duplicate" in record["_dirt"] and body not in seen:
            # (When it is in seen, an earlier near duplicate made the very same edit.)
            outputs = by_input_instruction.get((record["input"], record["instruction"]), [])
            instructions = by_input_output.get((record["input"], record["output"]), [])
            edited, originals = (
                (record["output"], outputs) if outputs else (record["instruction"], instructions)
            )
            assert originals, "a near duplicate keeps all but one field of its original"
            assert any(differs_in_one_place(edited, original) for original in originals)
        seen.append(body)
        key = (record["input"], record["instruction"])
        by_input_instruction.setdefault(key, []).append(record["output"])
        by_input_output.setdefault((record["input"], record["output"]), []).append(
            record["instruction"]
        )


def test_injected_pii_is_valid() -> None:
    dirt = DirtConfig(pii=1.0)
    texts = [all_text(record) for record in generate_records(1500, seed=13, dirt=dirt)]
    cards = [match for text in texts for match in CARD.findall(text)]
    ids = [match for text in texts for match in CN_ID.findall(text)]
    mobiles = [match for text in texts for match in CN_MOBILE.findall(text)]
    assert len(cards) >= 20 and len(ids) >= 10 and len(mobiles) >= 10
    assert all(luhn_valid(card) for card in cards)
    assert all(resident_id_valid(number) for number in ids)


def test_dirt_config_rejects_bad_rates() -> None:
    with pytest.raises(ValueError, match="DirtConfig.pii"):
        DirtConfig(pii=1.5)
    with pytest.raises(ValueError, match="at most 1"):
        DirtConfig(refusal=0.6, empty_response=0.6)


# -- formats ------------------------------------------------------------------------------

RICH = {
    "instruction": "Summarize this.",
    "input": "A short text.",
    "output": "A summary.",
    "system": "You are terse.",
    "history": [["Hi", "Hello!"]],
    "_dirt": ["pii"],
}


def test_sharegpt_and_messages_keep_every_turn() -> None:
    sharegpt = to_format(RICH, "sharegpt")
    assert sharegpt["conversations"] == [
        {"from": "system", "value": "You are terse."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello!"},
        {"from": "human", "value": "Summarize this.\n\nA short text."},
        {"from": "gpt", "value": "A summary."},
    ]
    messages = to_format(RICH, "messages")["messages"]
    assert [turn["role"] for turn in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert [turn["content"] for turn in messages] == [
        turn["value"] for turn in sharegpt["conversations"]
    ]
    assert sharegpt["_dirt"] == ["pii"]


def test_flat_formats() -> None:
    assert to_format(RICH, "prompt_completion") == {
        "prompt": "Summarize this.\n\nA short text.",
        "completion": "A summary.",
        "_dirt": ["pii"],
    }
    dolly = to_format(RICH, "dolly")
    assert dolly == {
        "instruction": "Summarize this.",
        "context": "A short text.",
        "response": "A summary.",
        "category": "summarization",
        "_dirt": ["pii"],
    }
    assert to_format(RICH, "alpaca") == RICH
    with pytest.raises(ValueError, match="sharegpt"):
        to_format(RICH, "openai")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_generated_record_converts(fmt: str) -> None:
    for record in generate_records(200, seed=14, system_rate=0.5, history_rate=0.5):
        shaped = to_format(record, fmt)
        assert set(shaped) <= set(FORMAT_COLUMNS[fmt])


# -- writers ------------------------------------------------------------------------------


def read_back(path: Path, file_type: str) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if file_type == "jsonl":
            return [json.loads(line) for line in handle]
        if file_type == "json":
            return json.load(handle)
        rows = list(csv.DictReader(handle))
    return [{k: v for k, v in row.items() if v != ""} for row in rows]


def csv_expected(record: dict) -> dict:
    return {
        key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for key, value in record.items()
        if value != ""
    }


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "dolly"])
@pytest.mark.parametrize(
    ("file_type", "name"),
    [("jsonl", "c.jsonl"), ("jsonl", "c.jsonl.gz"), ("json", "c.json"), ("csv", "c.csv")],
)
def test_write_corpus_round_trips(tmp_path: Path, fmt: str, file_type: str, name: str) -> None:
    dirt = DirtConfig.typical(mark_dirt=True)
    path = tmp_path / "sub" / name
    assert write_corpus(path, 120, seed=15, fmt=fmt, file_type=file_type, dirt=dirt) == 120
    expected = [to_format(r, fmt) for r in generate_records(120, seed=15, dirt=dirt)]
    if file_type == "csv":
        expected = [csv_expected(record) for record in expected]
    assert read_back(path, file_type) == expected
    first_bytes = path.read_bytes()
    write_corpus(path, 120, seed=15, fmt=fmt, file_type=file_type, dirt=dirt)
    assert path.read_bytes() == first_bytes


class Record(dict):
    """A dict that can be weakly referenced, to see whether the writer keeps it."""


@pytest.mark.parametrize(
    ("file_type", "name"), [("jsonl", "s.jsonl.gz"), ("json", "s.json"), ("csv", "s.csv")]
)
def test_writers_stream(tmp_path: Path, file_type: str, name: str) -> None:
    alive: list[weakref.ref] = []

    def records() -> Iterator[Record]:
        for record in generate_records(300, seed=16, system_rate=0, history_rate=0):
            gc.collect()
            # Two back: the writer may still hold the one it is writing.
            assert len(alive) < 2 or alive[-2]() is None, "the writer keeps old records"
            shaped = Record(record)
            alive.append(weakref.ref(shaped))
            yield shaped

    # Everything older than this test is frozen out of the collector: a full collection
    # per record over a heap that holds torch and Ray (earlier tests) took 85 s a test.
    gc.collect()
    gc.freeze()
    try:
        written = write_records(tmp_path / name, records(), file_type=file_type)
    finally:
        gc.unfreeze()
    assert written == 300


def test_write_records_rejects_unknown_columns(tmp_path: Path) -> None:
    rows = [{"a": "1"}, {"a": "2", "b": "3"}]
    with pytest.raises(ValueError, match=r"\['b'\]"):
        write_records(tmp_path / "x.csv", rows, file_type="csv")
    with pytest.raises(ValueError, match="file_type"):
        write_records(tmp_path / "x.parquet", rows, file_type="parquet")


def test_argument_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="language_mix"):
        generate_records(10, seed=0, language_mix={"fr": 1.0})
    with pytest.raises(ValueError, match="n must be"):
        generate_records(-1, seed=0)
    with pytest.raises(ValueError, match="fmt"):
        write_corpus("unused.jsonl", 1, seed=0, fmt="openai")


# -- other shapes and the quickstart ------------------------------------------------------


def test_qa_answers_are_spans_of_their_context() -> None:
    rows = list(generate_qa(200, seed=17))
    assert all(row["answers"][0] in row["context"] for row in rows)
    assert len({(row["question"], row["context"]) for row in rows}) >= 190


def test_paragraphs_are_within_bounds() -> None:
    paragraphs = list(generate_paragraphs(100, seed=18, min_chars=250, max_chars=600))
    assert all(250 <= len(paragraph) <= 600 for paragraph in paragraphs)
    assert all(language_of({"instruction": p, "output": ""}) == "en" for p in paragraphs)


def load_make_corpus():
    spec = importlib.util.spec_from_file_location("make_corpus", QUICKSTART / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_data_is_current_and_small(tmp_path: Path) -> None:
    make_corpus = load_make_corpus()
    written = make_corpus.write_all(tmp_path)
    for path in written:
        committed = QUICKSTART / "data" / path.name
        # gzip bytes vary with the zlib build, so compare what is inside.
        unpack = gzip.decompress if path.suffix == ".gz" else bytes
        assert unpack(committed.read_bytes()) == unpack(path.read_bytes()), (
            f"examples/quickstart/data/{path.name} is stale: rerun make_corpus.py"
        )
    assert sum(path.stat().st_size for path in written) < 300_000


def test_quickstart_contains_the_blocklisted_terms() -> None:
    lines = (QUICKSTART / "blocklist.txt").read_text(encoding="utf-8").splitlines()
    terms = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    corpus = "".join(
        (gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
        .decode("utf-8", errors="replace")
        .lower()
        for path in (QUICKSTART / "data").iterdir()
    )
    assert terms and all(term.lower() in corpus for term in terms)
