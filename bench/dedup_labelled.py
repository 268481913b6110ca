"""Labelled near-duplicate benchmark and the two external baselines of ``instructflow bench dedup``.

Dedup compares ``instruction + "\\n" + output`` (``dedup_text``). Base passages are real
prompt/response pairs from ``shared/corpora`` (alpaca, preference and feedback data, raw web text
cut into continuation records), 40-300 words (Chinese: 80-500 characters), topped up with
``bench.corpora`` records only where the real ones run out. No two base passages are equal after
normalisation or have a shingle Jaccard of 0.5 or more, so the labels are clean. Each cluster is
one original plus 1-4 variants (probability 0.4, 0.3, 0.2, 0.1); a variant carries one edit (60%)
or two different edits (40%), of the kinds that scraped and re-templated instruction data
carries, at these rates:

- ``template``: the prompt re-wrapped in another instruction template of its family (e.g.
  ``"Question: {p}\\nAnswer:"`` instead of ``"{p}"``); templates are 0-9 words.
- ``boilerplate``: a chatbot preamble before the response, a footer after it (subscribe links,
  copyright lines, share bars), or both: 2-16 words in all.
- ``word_edits``: 3-5% of the words (Chinese: of the characters) replaced, deleted, or preceded
  by an inserted word (character), each drawn from the corpus's own vocabulary.
- ``noise``: whitespace, case and punctuation changes (line breaks joined, doubled spaces, words
  capitalised, punctuation dropped or turned full-/half-width); invisible after normalisation.
- ``truncation``: the last 10-15% of the words (characters) of the text cut off the response.

Every other base passage is a unique record, used once. These are duplicates a curator wants
gone, neither trivially identical nor so heavy they stop being copies: each edited word spoils
up to five 5-gram shingles, so word edits alone leave a Jaccard near 0.7 with the original, the
other single edits 0.85-1.0. Records are shuffled, so a variant can come before its original.

``score`` counts a cluster of k records as right when exactly k-1 of them go, whichever survives.
Baseline A is datasketch as people use it (``datasketch_dedup``); baseline B is DataTrove's four
MinHash stages, run by ``bench/datatrove_baseline.py`` in a virtual environment of its own
(``ensure_datatrove_venv``, ``datatrove_dedup``); ``compare_baselines`` runs both.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datasketch import MinHash, MinHashLSH

from bench.corpora import generate_records
from pipeline.text import CJK_CHARACTERS, PUNCTUATION, is_cjk

DEFAULT_CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora"
LANGUAGES = ("en", "zh")
# Passage length bounds, in words (English) or non-space characters (Chinese).
MIN_UNITS = {"en": 40, "zh": 80}
MAX_UNITS = {"en": 300, "zh": 500}
# Base passages whose shingle sets overlap this much count as one and only the first is kept.
DISTINCT_JACCARD = 0.5
VARIANT_COUNT_WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # for 1, 2, 3, 4 variants
TWO_EDIT_PROBABILITY = 0.4
EDIT_KINDS = ("template", "truncation", "word_edits", "boilerplate", "noise")  # applied in order
WORD_EDIT_RATE = (0.03, 0.05)
TRUNCATION_FRACTION = (0.10, 0.15)

DATATROVE_VERSION = "0.10.1"
# The MinHash stages import regex and xxhash (extra "processing"), JsonlReader needs orjson
# (extra "io"), and the word tokenizers need spaCy, plus jieba for Chinese. DataTrove's own
# "multilingual" extra would also pull TensorFlow and a dozen tokenizers we do not use. Nothing
# here needs torch.
DATATROVE_REQUIREMENTS = (
    f"datatrove[io,processing]=={DATATROVE_VERSION}",
    "spacy==3.8.18",
    "jieba==0.42.1",
)
DATATROVE_SCRIPT = Path(__file__).with_name("datatrove_baseline.py")


def dedup_text(record: Mapping[str, Any]) -> str:
    """The text that near-duplicate detection compares: ``instruction + "\\n" + output``."""
    return f"{record['instruction']}\n{record['output']}"


# ---------------------------------------------------------------------------------------
# Shingles

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


def _minhash(shingles: list[str], num_perm: int) -> MinHash:
    minhash = MinHash(num_perm=num_perm)
    minhash.update_batch([shingle.encode("utf-8") for shingle in shingles])
    return minhash


def _jaccard(left: set[str], right: set[str]) -> float:
    union = len(left | right)
    return len(left & right) / union if union else 1.0


# ---------------------------------------------------------------------------------------
# Metric


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    removed: int
    correct: int
    expected: int


def score(labels: list[int | None], removed: set[int]) -> Score:
    """Score removed 1-based line numbers against ``labels`` (cluster of each line, or None).

    A cluster of k lines should lose exactly k-1 of them, a unique line none: a removal is
    correct while it is one of the first k-1 from its cluster, so removing all k counts one
    wrong. Precision is 1.0 when nothing is removed; recall is 1.0 when nothing should be.
    """
    outside = sorted(line for line in removed if not 1 <= line <= len(labels))
    if outside:
        raise ValueError(f"removed lines {outside[:5]} are outside 1..{len(labels)}")
    sizes: dict[int, int] = {}
    removed_per_cluster: dict[int, int] = {}
    for line, cluster in enumerate(labels, start=1):
        if cluster is not None:
            sizes[cluster] = sizes.get(cluster, 0) + 1
            if line in removed:
                removed_per_cluster[cluster] = removed_per_cluster.get(cluster, 0) + 1
    expected = sum(size - 1 for size in sizes.values())
    correct = sum(min(count, sizes[cluster] - 1) for cluster, count in removed_per_cluster.items())
    precision = correct / len(removed) if removed else 1.0
    recall = correct / expected if expected else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, len(removed), correct, expected)


# ---------------------------------------------------------------------------------------
# Baseline A: datasketch, single process


def datasketch_dedup(
    texts: list[str],
    threshold: float,
    num_perm: int = 128,
    word_ngram: int = 5,
    char_ngram: int = 5,
) -> set[int]:
    """Removed 1-based line numbers: a text goes when the LSH index already holds a candidate,
    otherwise it joins the index. ``MinHashLSH`` picks its own bands and rows for ``threshold``."""
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed: set[int] = set()
    for line, text in enumerate(texts, start=1):
        minhash = _minhash(reference_shingles(text, word_ngram, char_ngram), num_perm)
        if index.query(minhash):
            removed.add(line)
        else:
            index.insert(line, minhash)
    return removed


def datasketch_bands_rows(threshold: float, num_perm: int = 128) -> tuple[int, int]:
    """The (bands, rows) that ``MinHashLSH`` chooses for ``threshold``."""
    index = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return index.b, index.r


# ---------------------------------------------------------------------------------------
# Baseline B: DataTrove, in its own virtual environment


def ensure_datatrove_venv(venv_dir: Path) -> Path:
    """A virtual environment with ``DATATROVE_REQUIREMENTS`` at ``venv_dir``; its python.

    Kept apart from the project's environment because DataTrove's pins (xxhash<4, spaCy, ...)
    are not the project's. Reuses the environment when it already has the pinned version.
    """
    python = venv_dir / "bin" / "python"
    if python.exists() and _installed_datatrove(python) == DATATROVE_VERSION:
        return python
    if not python.exists():
        base_python = shutil.which("python3") or sys.executable
        _run_checked([base_python, "-m", "venv", str(venv_dir)], "creating the DataTrove venv")
    command = [str(python), "-m", "pip", "install", "--quiet", *DATATROVE_REQUIREMENTS]
    _run_checked(command, "installing DataTrove")
    return python


def _installed_datatrove(python: Path) -> str | None:
    probe = "import importlib.metadata as m, spacy, jieba; print(m.version('datatrove'))"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _run_checked(command: list[str], doing: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{doing} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"stderr tail:\n{result.stderr[-3000:]}"
        )
    return result


def datatrove_dedup(
    corpus: Path,
    threshold: float,
    workdir: Path,
    venv_python: Path,
    workers: int,
    *,
    language: str,
    num_perm: int = 128,
    n_grams: int = 5,
) -> tuple[set[int], float]:
    """Removed 1-based line numbers and the wall seconds of DataTrove's four MinHash stages.

    ``language`` picks DataTrove's word tokenizer ("en": spaCy English, "zh": spaCy Chinese
    with jieba); see ``bench/datatrove_baseline.py`` for the bands and rows it derives.
    """
    if language not in LANGUAGES:
        raise ValueError(f"language={language!r}; choose one of {', '.join(LANGUAGES)}")
    command = [
        str(venv_python),
        str(DATATROVE_SCRIPT),
        *("--input", str(corpus), "--work", str(workdir), "--threshold", str(threshold)),
        *("--num-perm", str(num_perm), "--language", language, "--workers", str(workers)),
        *("--n-grams", str(n_grams)),
    ]
    result = _run_checked(command, "the DataTrove baseline")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"the DataTrove baseline printed no result line; stderr tail:\n{result.stderr[-3000:]}"
        )
    report = json.loads(lines[-1])
    return set(report["removed"]), float(report["seconds"])


# ---------------------------------------------------------------------------------------
# Base passages from the shared corpora


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


_UNIT = {"en": re.compile(r"\S+"), "zh": re.compile(r"\S")}
_CLAUSE_END = re.compile(r"[.!?。！？\n]")


def _unit_count(text: str, language: str) -> int:
    return sum(1 for _ in _UNIT[language].finditer(text))


def _keep_units(text: str, count: int, language: str) -> str:
    """The first ``count`` words (characters) of ``text``, whitespace inside kept as it was."""
    if count <= 0:
        return ""
    for seen, match in enumerate(_UNIT[language].finditer(text), start=1):
        if seen == count:
            return text[: match.end()]
    return text


def _fitted(passage: Passage, language: str) -> Passage | None:
    """The passage if long enough and in ``language``'s script, its response cut (at a
    sentence end where one is near) to keep it within ``MAX_UNITS``; else None."""
    text = passage.text()
    if is_mostly_cjk(text) != (language == "zh"):
        return None
    prompt_units = _unit_count(passage.prompt, language)
    total = prompt_units + _unit_count(passage.response, language)
    if total < MIN_UNITS[language]:
        return None
    if total <= MAX_UNITS[language]:
        return passage
    budget = MAX_UNITS[language] - prompt_units
    if budget < MIN_UNITS[language] // 2:
        return None  # the prompt alone is most of the length: not a passage we can cut well
    response = _keep_units(passage.response, budget, language)
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
        minhash = _minhash(shingles, 128)
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


# ---------------------------------------------------------------------------------------
# Edits that turn an original into a variant

# Instruction templates per (language, passage style); "{p}" is the prompt.
TEMPLATES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("en", "task"): (
        "{p}",
        "Question: {p}\nAnswer:",
        "Instruction: {p}",
        "### Instruction:\n{p}\n\n### Response:",
        "Please help me with this.\n{p}",
        "User: {p}",
        "{p}\n\nAnswer the request above.",
        "Task: {p}",
    ),
    ("en", "text"): (
        "Continue the following text:\n{p}",
        "{p}\n\nContinue this passage.",
        "Here is the beginning of an article. Finish it.\n{p}",
        "Complete the text: {p}",
        "Write the rest of this article:\n{p}",
        "{p}\n\nWhat comes next?",
    ),
    ("zh", "task"): (
        "{p}",
        "问题：{p}\n回答：",
        "指令：{p}",
        "请回答下面的问题。\n{p}",
        "{p}\n请详细回答。",
        "用户：{p}",
        "任务：{p}",
        "### 指令：\n{p}\n\n### 回答：",
    ),
}
BOILERPLATE_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "en": (
        "Sure! Here is the answer:",
        "Sure, here you go:",
        "Certainly! Here's what you asked for.",
        "Great question!",
        "Of course. Here is my response:",
    ),
    "zh": (
        "当然！以下是答案：",
        "好的，下面是我的回答：",
        "没问题！",
        "这是一个很好的问题。",
        "好的，请看：",
    ),
}
BOILERPLATE_SUFFIXES: Mapping[str, tuple[str, ...]] = {
    "en": (
        "Click here to subscribe to our newsletter.",
        "© 2023 All rights reserved.",
        "Copyright © 2021 Example Media Inc.",
        "Share this: Facebook, Twitter, Email",
        "Was this helpful? Let us know in the comments below.",
        "Read more articles like this on our blog.",
    ),
    "zh": (
        "点击这里订阅我们的频道。",
        "版权所有 © 2023，未经许可不得转载。",
        "本文来源于网络，如有侵权请联系删除。",
        "关注我们的公众号，获取更多精彩内容！",
        "喜欢的话请点赞、转发、收藏！",
    ),
}
_FULL_TO_HALF_WIDTH = str.maketrans("，。：；！？（）“”", ',.:;!?()""')
_HALF_TO_FULL_WIDTH = str.maketrans(",:;!?()", "，：；！？（）")
_DROPPABLE_PUNCTUATION = re.compile(r"[,.;:!?，。；：！？、]")
_ENGLISH_WORD = re.compile(r"[a-z]{2,12}")
_CJK_CHARACTER = re.compile(f"[{CJK_CHARACTERS}]")


@dataclass(frozen=True)
class _EditContext:
    passage: Passage
    language: str
    template_index: int
    vocabulary: tuple[str, ...]
    rng: random.Random


Record = dict[str, str]


def _render(passage: Passage, language: str, template_index: int) -> Record:
    template = TEMPLATES[(language, passage.style)][template_index]
    return {
        "instruction": template.replace("{p}", passage.prompt),
        "input": "",
        "output": passage.response,
    }


def _edit_template(record: Record, context: _EditContext) -> Record:
    """The prompt in another template of its family (the response is left as it is)."""
    count = len(TEMPLATES[(context.language, context.passage.style)])
    other = (context.template_index + context.rng.randrange(1, count)) % count
    return {
        **record,
        "instruction": _render(context.passage, context.language, other)["instruction"],
    }


def _edit_truncation(record: Record, context: _EditContext) -> Record:
    """The last 10-15% of the record's words (characters) cut off the end of the response."""
    language = context.language
    output_units = _unit_count(record["output"], language)
    total = _unit_count(record["instruction"], language) + output_units
    cut = round(context.rng.uniform(*TRUNCATION_FRACTION) * total)
    kept = _keep_units(record["output"], max(1, output_units - cut), language)
    return {**record, "output": kept.rstrip()}


def _edit_words(record: Record, context: _EditContext) -> Record:
    """3-5% of the words (Chinese: characters) replaced, deleted or preceded by an insertion."""
    rng, vocabulary = context.rng, context.vocabulary
    pattern = _UNIT["en"] if context.language == "en" else _CJK_CHARACTER
    fields = ("instruction", "output")
    spans = [(field, match) for field in fields for match in pattern.finditer(record[field])]
    count = max(1, round(rng.uniform(*WORD_EDIT_RATE) * len(spans)))
    chosen = sorted(rng.sample(range(len(spans)), min(count, len(spans))), reverse=True)
    texts = {field: record[field] for field in fields}
    for position in chosen:  # right to left, so earlier offsets stay valid
        field, match = spans[position]
        text, start, end = texts[field], match.start(), match.end()
        operation = rng.choice(("replace", "delete", "insert"))
        joiner = " " if context.language == "en" else ""
        if operation == "replace":
            texts[field] = text[:start] + _replacement(match.group(), rng, vocabulary) + text[end:]
        elif operation == "delete":
            texts[field] = (
                text[:start] + text[end:].lstrip(" ") if joiner else text[:start] + text[end:]
            )
        else:
            texts[field] = text[:start] + rng.choice(vocabulary) + joiner + text[start:]
    return {**record, **texts}


def _replacement(word: str, rng: random.Random, vocabulary: tuple[str, ...]) -> str:
    """A vocabulary word in place of ``word``, keeping the punctuation that trailed it."""
    trailing = len(word) - len(word.rstrip(PUNCTUATION))
    return rng.choice(vocabulary) + (word[len(word) - trailing :] if trailing else "")


def _edit_boilerplate(record: Record, context: _EditContext) -> Record:
    """A preamble before the response, a footer after it, or both."""
    rng, language = context.rng, context.language
    where = rng.choice(("prefix", "suffix", "both"))
    output = record["output"]
    if where in ("prefix", "both"):
        output = f"{rng.choice(BOILERPLATE_PREFIXES[language])}\n\n{output}"
    if where in ("suffix", "both"):
        output = f"{output}\n\n{rng.choice(BOILERPLATE_SUFFIXES[language])}"
    return {**record, "output": output}


def _edit_noise(record: Record, context: _EditContext) -> Record:
    """Whitespace always, plus one of: line breaks joined, case changed (English) or
    punctuation width flipped (Chinese), punctuation dropped."""
    rng = context.rng
    noisy = {}
    for field in ("instruction", "output"):
        text = _whitespace_noise(record[field], rng)
        choice = rng.choice(("lines", "case_or_width", "drop"))
        if choice == "lines":
            text = re.sub(r"\s*\n\s*", " " if context.language == "en" else "", text)
        elif choice == "drop":
            text = _DROPPABLE_PUNCTUATION.sub(
                lambda m: "" if rng.random() < 0.3 else m.group(), text
            )
        elif context.language == "en":
            text = _case_noise(text, rng)
        else:
            table = _FULL_TO_HALF_WIDTH if rng.random() < 0.7 else _HALF_TO_FULL_WIDTH
            text = text.translate(table)
        noisy[field] = text
    return {**record, **noisy}


def _whitespace_noise(text: str, rng: random.Random) -> str:
    """Some spaces doubled, some line starts indented, a trailing space or two."""
    text = re.sub(" ", lambda m: "  " if rng.random() < 0.1 else " ", text)
    text = re.sub("\n", lambda m: "\n  " if rng.random() < 0.3 else "\n", text)
    return "  " + text + " " if rng.random() < 0.5 else text + "  "


def _case_noise(text: str, rng: random.Random) -> str:
    if rng.random() < 0.4:
        return text.lower()
    return re.sub(
        r"\b[a-z]\w*", lambda m: m.group().capitalize() if rng.random() < 0.15 else m.group(), text
    )


_EDITS: Mapping[str, Callable[[Record, _EditContext], Record]] = {
    "template": _edit_template,
    "truncation": _edit_truncation,
    "word_edits": _edit_words,
    "boilerplate": _edit_boilerplate,
    "noise": _edit_noise,
}


# ---------------------------------------------------------------------------------------
# The benchmark corpus


@dataclass(frozen=True)
class BenchmarkCorpus:
    corpus_path: Path
    labels_path: Path
    language: str
    records: int
    clusters: int  # true clusters, each an original plus 1-4 variants
    cluster_records: int
    uniques: int
    expected_removals: int  # sum over clusters of (size - 1)
    synthetic_passages: int  # base passages that came from bench.corpora, not the corpora


def build_benchmark(
    out_dir: Path,
    language: str,
    clusters: int,
    uniques: int,
    seed: int,
    corpora: Path = DEFAULT_CORPORA,
) -> BenchmarkCorpus:
    """Write ``out_dir/corpus.jsonl`` (alpaca records) and ``out_dir/labels.jsonl`` (line by
    line: ``{"line", "cluster", "kind"}``, cluster null for unique records). The same
    arguments always give byte-identical files."""
    if language not in LANGUAGES:
        raise ValueError(f"language={language!r}; choose one of {', '.join(LANGUAGES)}")
    if clusters < 0 or uniques < 0:
        raise ValueError(f"clusters and uniques must be >= 0, got {clusters}, {uniques}")
    if not corpora.is_dir():
        raise FileNotFoundError(
            f"the shared corpora are not at {corpora}: pass corpora= the folder that holds "
            "alpaca_en_demo.json and the other files of shared/corpora"
        )
    passages = base_passages(language, clusters + uniques, seed, corpora)
    vocabulary = _vocabulary(passages, language)
    rng = random.Random(seed + 1)
    rows: list[tuple[Record, int | None, str]] = []
    for cluster, passage in enumerate(passages[:clusters]):
        rows.extend(
            (record, cluster, kind) for record, kind in _cluster(passage, language, vocabulary, rng)
        )
    for passage in passages[clusters:]:
        template_index = rng.randrange(len(TEMPLATES[(language, passage.style)]))
        rows.append((_render(passage, language, template_index), None, "unique"))
    rng.shuffle(rows)
    corpus_path, labels_path = _write_benchmark(out_dir, rows)
    return BenchmarkCorpus(
        corpus_path=corpus_path,
        labels_path=labels_path,
        language=language,
        records=len(rows),
        clusters=clusters,
        cluster_records=len(rows) - uniques,
        uniques=uniques,
        expected_removals=len(rows) - uniques - clusters,
        synthetic_passages=sum(passage.source == "bench.corpora" for passage in passages),
    )


def _vocabulary(passages: list[Passage], language: str) -> tuple[str, ...]:
    """Words (Chinese: characters) that edits insert or substitute, from the passages."""
    pattern = _ENGLISH_WORD if language == "en" else _CJK_CHARACTER
    found = {unit for passage in passages for unit in pattern.findall(passage.text().lower())}
    return tuple(sorted(found))


def _cluster(
    passage: Passage, language: str, vocabulary: tuple[str, ...], rng: random.Random
) -> list[tuple[Record, str]]:
    """The original and its 1-4 variants, each with the kind of edit that made it."""
    template_index = rng.randrange(len(TEMPLATES[(language, passage.style)]))
    original = _render(passage, language, template_index)
    context = _EditContext(passage, language, template_index, vocabulary, rng)
    members = [(original, "original")]
    cumulative = list(itertools.accumulate(VARIANT_COUNT_WEIGHTS))
    variant_count = 1 + bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
    for _ in range(variant_count):
        picked = rng.sample(EDIT_KINDS, 2 if rng.random() < TWO_EDIT_PROBABILITY else 1)
        kinds = [kind for kind in EDIT_KINDS if kind in picked]
        variant = dict(original)
        for kind in kinds:
            variant = _EDITS[kind](variant, context)
        members.append((variant, "+".join(kinds)))
    return members


def _write_benchmark(
    out_dir: Path, rows: list[tuple[Record, int | None, str]]
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus_path, labels_path = out_dir / "corpus.jsonl", out_dir / "labels.jsonl"
    with (
        corpus_path.open("w", encoding="utf-8") as corpus,
        labels_path.open("w", encoding="utf-8") as labels,
    ):
        for line, (record, cluster, kind) in enumerate(rows, start=1):
            corpus.write(json.dumps(record, ensure_ascii=False) + "\n")
            labels.write(json.dumps({"line": line, "cluster": cluster, "kind": kind}) + "\n")
    return corpus_path, labels_path


def read_texts(corpus_path: Path) -> list[str]:
    """``dedup_text`` of each record of an alpaca JSONL file, in line order."""
    with corpus_path.open(encoding="utf-8") as handle:
        return [dedup_text(json.loads(line)) for line in handle]


def read_labels(labels_path: Path) -> list[int | None]:
    """The cluster of each line of ``labels.jsonl`` (None for a unique record)."""
    with labels_path.open(encoding="utf-8") as handle:
        return [json.loads(line)["cluster"] for line in handle]


# ---------------------------------------------------------------------------------------
# The comparison


def compare_baselines(
    benchmark: BenchmarkCorpus,
    thresholds: Iterable[float],
    workdir: Path,
    datatrove_python: Path | None,
    workers: int = 1,
    num_perm: int = 128,
    word_ngram: int = 5,
    char_ngram: int = 5,
) -> list[dict[str, Any]]:
    """One row per (baseline, threshold): its score, wall seconds, bands and rows.

    Both baselines shingle as instructflow is told to: datasketch with the same word and
    character n-grams, DataTrove with ``word_ngram`` words of its own tokenizer (jieba's words
    for Chinese: it has no character shingles).

    datasketch runs in this process on one core; DataTrove (when ``datatrove_python`` is
    given) runs its four stages with ``workers`` processes.
    """
    texts, labels = read_texts(benchmark.corpus_path), read_labels(benchmark.labels_path)
    rows = []
    for threshold in thresholds:
        started = time.perf_counter()
        removed = datasketch_dedup(texts, threshold, num_perm, word_ngram, char_ngram)
        seconds = time.perf_counter() - started
        bands, rows_per_band = datasketch_bands_rows(threshold, num_perm)
        rows.append(
            _row("datasketch", threshold, seconds, bands, rows_per_band, score(labels, removed))
        )
        if datatrove_python is not None:
            removed, seconds = datatrove_dedup(
                benchmark.corpus_path,
                threshold,
                workdir / f"datatrove-{benchmark.language}-{threshold}",
                datatrove_python,
                workers,
                language=benchmark.language,
                num_perm=num_perm,
                n_grams=word_ngram,
            )
            bands, rows_per_band = _datatrove_bands_rows(threshold, num_perm)
            rows.append(
                _row("datatrove", threshold, seconds, bands, rows_per_band, score(labels, removed))
            )
    return rows


def _datatrove_bands_rows(threshold: float, num_perm: int) -> tuple[int, int]:
    from bench.datatrove_baseline import optimal_bands_rows  # the script's own choice

    return optimal_bands_rows(threshold, num_perm)


def _row(
    baseline: str, threshold: float, seconds: float, bands: int, rows: int, result: Score
) -> dict[str, Any]:
    return {
        "baseline": baseline,
        "threshold": threshold,
        "seconds": round(seconds, 3),
        "bands": bands,
        "rows": rows,
        **asdict(result),
    }
