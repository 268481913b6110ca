"""The labelled near-duplicate corpus of ``instructflow bench dedup``.

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
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.corpora.dedup_passages import (
    DEFAULT_CORPORA,
    LANGUAGES,
    UNIT,
    Passage,
    base_passages,
    dedup_text,
    keep_units,
    unit_count,
)
from pipeline.text import CJK_CHARACTERS, PUNCTUATION

VARIANT_COUNT_WEIGHTS = (0.4, 0.3, 0.2, 0.1)  # for 1, 2, 3, 4 variants


TWO_EDIT_PROBABILITY = 0.4


EDIT_KINDS = ("template", "truncation", "word_edits", "boilerplate", "noise")  # applied in order


WORD_EDIT_RATE = (0.03, 0.05)


TRUNCATION_FRACTION = (0.10, 0.15)


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
    output_units = unit_count(record["output"], language)
    total = unit_count(record["instruction"], language) + output_units
    cut = round(context.rng.uniform(*TRUNCATION_FRACTION) * total)
    kept = keep_units(record["output"], max(1, output_units - cut), language)
    return {**record, "output": kept.rstrip()}


def _edit_words(record: Record, context: _EditContext) -> Record:
    """3-5% of the words (Chinese: characters) replaced, deleted or preceded by an insertion."""
    rng, vocabulary = context.rng, context.vocabulary
    pattern = UNIT["en"] if context.language == "en" else _CJK_CHARACTER
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
