"""Base passages of the labelled near-duplicate corpus (``bench.corpora.labelled_dedup``):
real prompt/response pairs from ``shared/corpora``, fitted to the length bounds and made
distinct, topped up with generated records; and the shingles that both the corpus and the
baselines of ``bench.dedup_baselines`` compare texts by."""

from __future__ import annotations

import itertools
import json
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasketch import MinHash, MinHashLSH

from bench.corpora.records import generate_records
from pipeline.text import PUNCTUATION, is_cjk

DEFAULT_CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"


LANGUAGES = ("en", "zh")


# Passage length bounds, in words (English) or non-space characters (Chinese).
MIN_UNITS = {"en": 40, "zh": 80}


MAX_UNITS = {"en": 300, "zh": 500}


# Base passages whose shingle sets overlap this much count as one and only the first is kept.
DISTINCT_JACCARD = 0.5


def dedup_text(record: Mapping[str, Any]) -> str:
    """The text that near-duplicate detection compares: ``instruction + "\\n" + output``."""
    return f"{record['instruction']}\n{record['output']}"


_PUNCTUATION_TO_SPACE = str.maketrans(dict.fromkeys(PUNCTUATION, " "))


def normalise_for_shingles(text: str) -> str:
    """NFKC, casefolded, punctuation turned into spaces, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.translate(_PUNCTUATION_TO_SPACE).split())


def is_mostly_cjk(text: str) -> bool:
    """More than half of the non-space characters are Han, kana or hangul."""
    characters = [char for char in text if not char.isspace()]
    return sum(map(is_cjk, characters)) * 2 > len(characters)


def reference_shingles(text: str, word_ngram: int = 5, char_ngram: int = 5) -> list[str]:
    """The distinct shingles of ``text``, in order of first appearance.

    Word ``word_ngram``-grams of the normalised text, or character ``char_ngram``-grams of it
    with spaces removed when the text is mostly CJK (which has no spaces between words). A
    text shorter than one n-gram is its own only shingle.
    """
    normal = normalise_for_shingles(text)
    if is_mostly_cjk(normal):
        units: list[str] = list(normal.replace(" ", ""))
        size, joiner = char_ngram, ""
    else:
        units, size, joiner = normal.split(), word_ngram, " "
    if len(units) < size:
        return [joiner.join(units)] if units else []
    grams = (joiner.join(units[start : start + size]) for start in range(len(units) - size + 1))
    return list(dict.fromkeys(grams))


def reference_minhash(shingles: list[str], num_perm: int) -> MinHash:
    minhash = MinHash(num_perm=num_perm)
    minhash.update_batch([shingle.encode("utf-8") for shingle in shingles])
    return minhash


def _jaccard(left: set[str], right: set[str]) -> float:
    union = len(left | right)
    return len(left & right) / union if union else 1.0


@dataclass(frozen=True)
class Passage:
    """A prompt and its response; ``style`` names the template family ("task" or "text")."""

    prompt: str
    response: str
    style: str
    source: str

    def text(self) -> str:
        return f"{self.prompt}\n{self.response}"


def _load_json(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8"))


def _load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _joined(instruction: str, input_text: str) -> str:
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


def _alpaca_passages(path: Path) -> Iterator[Passage]:
    for row in _load_json(path):
        prompt = _joined(row["instruction"], row.get("input", ""))
        yield Passage(prompt, row["output"], "task", path.name)


def _preference_passages(path: Path) -> Iterator[Passage]:
    """The last human turn with the chosen and, as another passage, the rejected answer."""
    for row in _load_json(path):
        humans = [turn["value"] for turn in row["conversations"] if turn["from"] == "human"]
        for answer in (row["chosen"], row["rejected"]):
            yield Passage(humans[-1], answer["value"], "task", path.name)


def _messages_passages(path: Path) -> Iterator[Passage]:
    for row in _load_json(path):
        by_role = {message["role"]: message["content"] for message in row["messages"]}
        if "user" in by_role and "assistant" in by_role:
            yield Passage(by_role["user"], by_role["assistant"], "task", path.name)


def _toolcall_passages(path: Path) -> Iterator[Passage]:
    """The first human turn and the reply to it, where the reply is prose, not a call."""
    for row in _load_json(path):
        turns = row["conversations"]
        if len(turns) > 1 and turns[0]["from"] == "human" and turns[1]["from"] == "gpt":
            yield Passage(turns[0]["value"], turns[1]["value"], "task", path.name)


def _seed_task_passages(path: Path) -> Iterator[Passage]:
    for row in _load_jsonl(path):
        instance = row["instances"][0]
        prompt = _joined(row["instruction"], instance["input"])
        yield Passage(prompt, instance["output"], "task", path.name)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _web_text_passages(path: Path, max_words: int) -> Iterator[Passage]:
    """Raw web text as continuation records: paragraphs grouped into chunks of at most
    ``max_words`` words; the first sentence is the prompt, the rest the response."""
    for row in _load_jsonl(path):
        for chunk in _paragraph_chunks(row["text"], max_words):
            sentences = _SENTENCE_END.split(chunk, maxsplit=1)
            if len(sentences) == 2:
                yield Passage(sentences[0], sentences[1], "text", path.name)


def _paragraph_chunks(text: str, max_words: int) -> Iterator[str]:
    chunk: list[str] = []
    chunk_words = 0
    for paragraph in (part.strip() for part in text.split("\n")):
        words = len(paragraph.split())
        if chunk and chunk_words + words > max_words:
            yield "\n".join(chunk)
            chunk, chunk_words = [], 0
        if paragraph:
            chunk.append(paragraph)
            chunk_words += words
    if chunk:
        yield "\n".join(chunk)


def _english_passages(corpora: Path) -> Iterator[Passage]:
    yield from _alpaca_passages(corpora / "alpaca_en_demo.json")
    yield from _preference_passages(corpora / "dpo_en_demo.json")
    yield from _messages_passages(corpora / "kto_en_demo.json")
    yield from _toolcall_passages(corpora / "glaive_toolcall_en_demo.json")
    yield from _seed_task_passages(corpora / "self_instruct_seed_tasks.jsonl")
    yield from _web_text_passages(corpora / "c4_demo.jsonl", max_words=200)


def _chinese_passages(corpora: Path) -> Iterator[Passage]:
    yield from _alpaca_passages(corpora / "alpaca_zh_demo.json")
    yield from _preference_passages(corpora / "dpo_zh_demo.json")


_SOURCES: Mapping[str, Callable[[Path], Iterator[Passage]]] = {
    "en": _english_passages,
    "zh": _chinese_passages,
}


def _synthetic_passages(language: str, seed: int) -> Iterator[Passage]:
    """The project's generator, for when the real passages run out (it is lazy and long)."""
    for record in generate_records(10_000_000, seed=seed, language_mix={language: 1.0}):
        prompt = _joined(record["instruction"], record["input"])
        yield Passage(prompt, record["output"], "task", "bench.corpora")


UNIT = {"en": re.compile(r"\S+"), "zh": re.compile(r"\S")}


_CLAUSE_END = re.compile(r"[.!?。！？\n]")


def unit_count(text: str, language: str) -> int:
    return sum(1 for _ in UNIT[language].finditer(text))


def keep_units(text: str, count: int, language: str) -> str:
    """The first ``count`` words (characters) of ``text``, whitespace inside kept as it was."""
    if count <= 0:
        return ""
    for seen, match in enumerate(UNIT[language].finditer(text), start=1):
        if seen == count:
            return text[: match.end()]
    return text


def _fitted(passage: Passage, language: str) -> Passage | None:
    """The passage if long enough and in ``language``'s script, its response cut (at a
    sentence end where one is near) to keep it within ``MAX_UNITS``; else None."""
    text = passage.text()
    if is_mostly_cjk(text) != (language == "zh"):
        return None
    prompt_units = unit_count(passage.prompt, language)
    total = prompt_units + unit_count(passage.response, language)
    if total < MIN_UNITS[language]:
        return None
    if total <= MAX_UNITS[language]:
        return passage
    budget = MAX_UNITS[language] - prompt_units
    if budget < MIN_UNITS[language] // 2:
        return None  # the prompt alone is most of the length: not a passage we can cut well
    response = keep_units(passage.response, budget, language)
    ends = [match.end() for match in _CLAUSE_END.finditer(response)]
    if ends and ends[-1] >= 0.7 * len(response):
        response = response[: ends[-1]]
    return Passage(passage.prompt, response.rstrip(), passage.style, passage.source)


def _distinct_passages(candidates: Iterable[Passage], wanted: int) -> list[Passage]:
    """The first ``wanted`` candidates that are neither equal after normalisation nor a
    near-duplicate (shingle Jaccard >= ``DISTINCT_JACCARD``) of one kept before.

    The index's threshold sits well below ``DISTINCT_JACCARD`` so that it misses almost no
    pair at the bound; the exact Jaccard of each candidate pair decides.
    """
    index = MinHashLSH(threshold=0.3, num_perm=128)
    kept: list[Passage] = []
    kept_shingles: list[set[str]] = []
    seen_texts: set[str] = set()
    for passage in candidates:
        normal = normalise_for_shingles(passage.text())
        if normal in seen_texts:
            continue
        seen_texts.add(normal)
        shingles = reference_shingles(passage.text())
        shingle_set = set(shingles)
        minhash = reference_minhash(shingles, 128)
        matches = index.query(minhash)
        if any(_jaccard(shingle_set, kept_shingles[key]) >= DISTINCT_JACCARD for key in matches):
            continue
        index.insert(len(kept), minhash)
        kept.append(passage)
        kept_shingles.append(shingle_set)
        if len(kept) == wanted:
            break
    return kept


def base_passages(language: str, wanted: int, seed: int, corpora: Path) -> list[Passage]:
    """``wanted`` distinct passages: the real ones in a seeded order, then generated ones
    (``bench.corpora``) only if the real ones run out; shuffled so both kinds spread evenly
    over clusters and uniques."""
    rng = random.Random(seed)
    fitted = (_fitted(passage, language) for passage in _SOURCES[language](corpora))
    real = [passage for passage in fitted if passage is not None]
    rng.shuffle(real)
    # A bounded supply, so that a generator that stops giving new passages ends in an error.
    synthetic_budget = 20 * wanted
    generated = (_fitted(p, language) for p in _synthetic_passages(language, seed))
    synthetic = (p for _, p in zip(range(synthetic_budget), generated, strict=False) if p)
    chosen = _distinct_passages(itertools.chain(real, synthetic), wanted)
    if len(chosen) < wanted:
        raise ValueError(
            f"only {len(chosen)} distinct {language} passages could be made ({len(real)} real "
            f"ones fit the length bounds, plus {synthetic_budget} generated); asked for {wanted}"
        )
    rng.shuffle(chosen)
    return chosen
