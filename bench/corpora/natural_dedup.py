"""The natural-duplicate benchmark: one source passage under the prompt templates of several
task datasets, as prompted collections (P3, FLAN, Super-NaturalInstructions) hold it.

The labelled benchmark (``bench.corpora.labelled_dedup``) edits one text into its variants.
Real duplicates in an instruction corpus are mostly something else: the same news article is
a summarisation task in one source dataset, a topic question with an options list in another
and a title task in a third, each wrapped in that dataset's template words, labels and line
breaks. Whole-record Jaccard between two such records is low (the passage is shared, the
wrappers are not), while two different passages under one dataset's long template share all
its words. Truth here is passage identity: records made from one passage are one cluster.

Each source dataset is one file (``sources/<name>.jsonl``), as a collection ships them, with
its own templates (4-6 each) and label set; a passage's copies go to different datasets, or
to one dataset under two of its templates. Copies vary as collections vary: line breaks kept,
flattened or doubled, and some truncated to their first sentences (a dataset that keeps only
the lead). ``corpus.jsonl`` holds every record in one file (alpaca fields: the prompt as
instruction, the completion as output), in the order of ``labels.jsonl``, for the
baselines; ``sources/`` is what instructflow reads.

Passages come from the shared corpora when they are there (C4 paragraphs, the longer alpaca
inputs and replies); otherwise, and to fill up to the size asked, from ``bench.corpora``'s
prose generator. The corpus is seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.corpora.dedup_passages import normalise_for_shingles
from bench.corpora.prose import generate_paragraphs

# How many records a passage becomes: most once, some under two to four templates.
COPIES = ((1, 0.45), (2, 0.30), (3, 0.15), (4, 0.10))
MIN_WORDS, MAX_WORDS = 8, 400
SHORT_WORDS = 30  # a short passage: a sentence or two, as NLI and review datasets hold
SHORT_SHARE = 0.25
TRUNCATE_SHARE = 0.15  # copies cut to their leading sentences
SAME_SOURCE_SHARE = 0.35  # clusters with two copies in one dataset, under two templates
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Task:
    """A rendered record: the prompt and the target the dataset pairs with it."""

    prompt: str
    target: str


Template = Callable[[str, random.Random], Task]


def _sentences(passage: str) -> list[str]:
    return [part for part in SENTENCE_END.split(passage.strip()) if part]


def _lead(passage: str) -> str:
    return _sentences(passage)[0]


def _title(passage: str) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", _lead(passage))
    return " ".join(word.capitalize() for word in words[:6]) or "Untitled"


def _options(labels: tuple[str, ...], style: str) -> str:
    if style == "dash":
        return "\n".join(f"- {label}" for label in labels)
    if style == "letters":
        return " ".join(f"({chr(65 + i)}) {label}" for i, label in enumerate(labels))
    return ", ".join(labels)


def _pick(labels: tuple[str, ...], passage: str) -> str:
    return labels[sum(map(ord, passage[:40])) % len(labels)]


TOPICS = ("World", "Sports", "Business", "Science/Tech")
SENTIMENT = ("negative", "positive")
NLI = ("yes", "it is not possible to tell", "no")
ONTOLOGY = (
    "Company", "Educational Institution", "Artist", "Athlete", "Office Holder",
    "Mean Of Transportation", "Building", "Natural Place", "Village", "Animal", "Plant",
    "Album", "Film", "Written Work",
)  # fmt: skip


def _summarise(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(f"Summarize the following article:\n\n{p}\n\nSummary:", _lead(p)),
        lambda p, r: Task(f"{p}\n\nTL;DR:", _lead(p)),
        lambda p, r: Task(f"Write a one-sentence summary of this text.\n{p}", _lead(p)),
        lambda p, r: Task(
            f"Article: {p}\n\nWhat is a concise summary of the article above?", _lead(p)
        ),
        lambda p, r: Task(f"Condense this into a brief highlight:\n\n{p}", _lead(p)),
    ]


def _topic(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(
            f"{p}\n\nWhich topic is this text about?\nOPTIONS:\n{_options(TOPICS, 'dash')}",
            _pick(TOPICS, p),
        ),
        lambda p, r: Task(
            f"Choose your answer. What is this about?\n{p}\n{_options(TOPICS, 'letters')}",
            _pick(TOPICS, p),
        ),
        lambda p, r: Task(
            f"Classify the news article into one of {_options(TOPICS, 'comma')}.\n\n"
            f"Article: {p}\nCategory:",
            _pick(TOPICS, p),
        ),
        lambda p, r: Task(
            f"Is this a piece of news regarding {_options(TOPICS, 'comma')}?\n\n{p}",
            _pick(TOPICS, p),
        ),
        lambda p, r: Task(
            f"{p}\nGiven a list of categories: {_options(ONTOLOGY, 'comma')}, what category "
            "does the paragraph belong to?",
            _pick(ONTOLOGY, p),
        ),
        lambda p, r: Task(
            f"Pick one category for the following text. The options are - "
            f"{_options(ONTOLOGY, 'comma')}. {p}",
            _pick(ONTOLOGY, p),
        ),
    ]


def _sentiment(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(
            f"Review:\n{p}\nIs this review positive or negative?\nOPTIONS:\n"
            f"{_options(SENTIMENT, 'dash')}",
            _pick(SENTIMENT, p),
        ),
        lambda p, r: Task(
            f'What is the sentiment of the following text?\n"{p}"\n'
            f"Choose from: {_options(SENTIMENT, 'comma')}.",
            _pick(SENTIMENT, p),
        ),
        lambda p, r: Task(
            f"{p}\nDid the writer of this text like what they describe? yes or no?",
            "yes" if _pick(SENTIMENT, p) == "positive" else "no",
        ),
        lambda p, r: Task(f"Rate the tone of this passage, 1 to 5.\n\n{p}\n\nRating:", "3"),
    ]


def _questions(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(
            f"Read the passage and answer the question.\n\nPassage: {p}\n\n"
            "Question: What is the main point of the passage?\nAnswer:",
            _lead(p),
        ),
        lambda p, r: Task(f"{p}\n\nQ: What is the first thing the text states?\nA:", _lead(p)),
        lambda p, r: Task(
            f"Context: {p}\n\nGenerate a question about this context.", f"What about {_title(p)}?"
        ),
        lambda p, r: Task(
            f"Answer based on the text below. If it cannot be answered, say 'unanswerable'.\n\n"
            f"{p}\n\nWhy does this matter?",
            "unanswerable",
        ),
        lambda p, r: Task(
            f"Extract the answer to the question from the passage.\nPassage:\n{p}\n"
            "Question: What is described?",
            _title(p),
        ),
    ]


def _titles(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(f"Generate a title for this text: {p}", _title(p)),
        lambda p, r: Task(f"{p}\n\nWhat would be a good title for this?", _title(p)),
        lambda p, r: Task(
            f"Write a headline for the following paragraph.\n\n{p}\n\nHeadline:", _title(p)
        ),
        lambda p, r: Task(f"Text: {p}\nTitle:", _title(p)),
    ]


def _inference(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(
            f"Premise: {p}\nHypothesis: {_lead(p)}\nDoes the premise entail the hypothesis?\n"
            f"OPTIONS:\n{_options(NLI, 'dash')}",
            "yes",
        ),
        lambda p, r: Task(
            f'{p}\n\nBased on the paragraph above can we conclude that "{_title(p)}"?\n\n'
            f"{_options(NLI, 'letters')}",
            "it is not possible to tell",
        ),
        lambda p, r: Task(
            "Read the text and determine if the sentence is true:\n\n"
            f'{p}\n\nSentence: "{_lead(p)}"',
            "true",
        ),
        lambda p, r: Task(
            f'Given that {p} Therefore, it must be true that "{_lead(p)}"? Yes, no, or maybe?',
            "Yes",
        ),
    ]


def _keywords(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(f"Extract the keywords from this text.\n\n{p}", _title(p).lower()),
        lambda p, r: Task(f"{p}\n\nWhat are the key concepts in this passage?", _title(p)),
        lambda p, r: Task(
            f"List three important words from the paragraph below, separated by commas.\n{p}",
            ", ".join(_title(p).split()[:3]),
        ),
        lambda p, r: Task(f"Tag this document with topics:\n{p}\nTags:", _title(p)),
    ]


def _rewrite(rng: random.Random) -> list[Template]:
    return [
        lambda p, r: Task(f"Rewrite the following text in simpler words:\n\n{p}", _lead(p)),
        lambda p, r: Task(f"Paraphrase this passage.\n{p}\nParaphrase:", _lead(p)),
        lambda p, r: Task(f"Fix any grammar mistakes in this text:\n\n{p}", p),
        lambda p, r: Task(f"Make this paragraph more formal.\n\nParagraph: {p}", _lead(p)),
        lambda p, r: Task(f"{p}\n\nContinue the text with one more sentence.", _lead(p)),
    ]


SOURCES: dict[str, Callable[[random.Random], list[Template]]] = {
    "summarise": _summarise,
    "topic": _topic,
    "sentiment": _sentiment,
    "questions": _questions,
    "titles": _titles,
    "inference": _inference,
    "keywords": _keywords,
    "rewrite": _rewrite,
}


@dataclass(frozen=True)
class NaturalCorpus:
    sources_dir: Path  # one JSONL file per source dataset (prompt / completion)
    corpus_path: Path  # every record in one file, in labels order (for the baselines)
    labels_path: Path  # {"file", "line", "cluster"} per record of corpus.jsonl
    records: int
    passages: int
    clusters: int
    expected_removals: int
    shared_passages: int  # passages from the shared corpora; the rest generated
    language: str = "en"


def shared_passages(shared: Path | None) -> Iterator[str]:
    """Passages from the shared corpora: C4 paragraphs, their leading sentences, and the
    alpaca instructions, inputs and replies."""
    if shared is None or not shared.is_dir():
        return
    c4 = shared / "c4_demo.jsonl"
    if c4.exists():
        for line in c4.read_text(encoding="utf-8").splitlines():
            for paragraph in json.loads(line)["text"].split("\n"):
                yield paragraph.strip()
                sentences = _sentences(paragraph)
                if len(sentences) > 3:  # its lead as a passage of its own, a short one
                    yield " ".join(sentences[len(sentences) // 2 :])
    alpaca = shared / "alpaca_en_demo.json"
    if alpaca.exists():
        for row in json.loads(alpaca.read_text(encoding="utf-8")):
            yield row["instruction"].strip()
            yield row.get("input", "").strip()
            yield row["output"].strip()


def passages(count: int, shared: Path | None, seed: int) -> tuple[list[str], int]:
    """``count`` distinct passages, SHORT_SHARE of them short (up to SHORT_WORDS words),
    distinct by normalised text and by their first 60 characters so that no two are near
    copies of each other; and how many came from ``shared``."""
    short_wanted = int(count * SHORT_SHARE)
    wanted = {True: short_wanted, False: count - short_wanted}
    chosen: dict[bool, list[str]] = {True: [], False: []}
    seen: set[str] = set()
    shared_count = 0

    def take(texts: Iterator[str], from_shared: bool) -> None:
        nonlocal shared_count
        for text in texts:
            words = len(text.split())
            if not MIN_WORDS <= words <= MAX_WORDS:
                continue
            short = words <= SHORT_WORDS
            if len(chosen[short]) >= wanted[short]:
                if all(len(chosen[kind]) >= wanted[kind] for kind in chosen):
                    return
                continue
            normal = normalise_for_shingles(text)
            keys = (normal, normal[:60])
            if any(key in seen for key in keys):
                continue
            seen.update(keys)
            chosen[short].append(text)
            shared_count += from_shared

    take(shared_passages(shared), True)
    missing = sum(wanted.values()) - sum(map(len, chosen.values()))
    if missing:
        long_text = generate_paragraphs(missing * 2 + 10, seed=seed, min_chars=160)
        short_text = generate_paragraphs(
            missing * 2 + 10, seed=seed + 1, min_chars=40, max_chars=150
        )
        take((text for pair in zip(long_text, short_text, strict=True) for text in pair), False)
    rng = random.Random(seed)
    texts = chosen[True] + chosen[False]
    rng.shuffle(texts)
    return texts, shared_count


def _variant(passage: str, rng: random.Random) -> str:
    """The passage as one collection holds it: line breaks as they are, flattened or
    doubled; sometimes only its leading sentences."""
    sentences = _sentences(passage)
    if len(sentences) > 3 and rng.random() < TRUNCATE_SHARE:
        passage = " ".join(sentences[: max(2, int(len(sentences) * rng.uniform(0.6, 0.85)))])
    style = rng.random()
    if style < 0.2:
        return " ".join(passage.split())
    if style < 0.3:
        return passage.replace(". ", ".\n\n")
    return passage


def build_natural_benchmark(
    directory: Path, passages_wanted: int, *, seed: int = 0, shared: Path | None = None
) -> NaturalCorpus:
    """Write the benchmark under ``directory`` and describe it."""
    rng = random.Random(seed)
    texts, from_shared = passages(passages_wanted, shared, seed)
    templates = {name: make(rng) for name, make in SOURCES.items()}
    names = sorted(templates)
    by_source: dict[str, list[tuple[dict[str, str], int | None]]] = {name: [] for name in names}
    clusters = expected = 0
    for index, passage in enumerate(texts):
        copies = rng.choices([n for n, _ in COPIES], [w for _, w in COPIES])[0]
        if copies > 1:
            clusters += 1
            expected += copies - 1
        # Different datasets mostly; now and then two templates of one.
        sources = rng.sample(names, copies)
        if copies > 1 and rng.random() < SAME_SOURCE_SHARE:
            sources[-1] = sources[0]
        used: dict[str, set[int]] = {}
        for source in sources:
            pool = [i for i in range(len(templates[source])) if i not in used.get(source, set())]
            choice = rng.choice(pool)
            used.setdefault(source, set()).add(choice)
            task = templates[source][choice](_variant(passage, rng), rng)
            record = {"prompt": task.prompt, "completion": task.target}
            by_source[source].append((record, index if copies > 1 else None))
    sources_dir = directory / "sources"
    sources_dir.mkdir(parents=True, exist_ok=True)
    corpus_path, labels_path = directory / "corpus.jsonl", directory / "labels.jsonl"
    records = 0
    with (
        corpus_path.open("w", encoding="utf-8") as corpus,
        labels_path.open("w", encoding="utf-8") as labels,
    ):
        for name in names:
            rows = by_source[name]
            rng.shuffle(rows)  # a dataset's copies are not next to each other
            with (sources_dir / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
                for line, (record, cluster) in enumerate(rows, start=1):
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    # The baselines read alpaca fields (dedup_passages.dedup_text): the
                    # prompt and the completion, joined as instructflow's key joins them.
                    alpaca = {
                        "instruction": record["prompt"],
                        "input": "",
                        "output": record["completion"],
                    }
                    corpus.write(json.dumps(alpaca, ensure_ascii=False) + "\n")
                    labels.write(
                        json.dumps({"file": f"{name}.jsonl", "line": line, "cluster": cluster})
                        + "\n"
                    )
                    records += 1
    return NaturalCorpus(
        sources_dir=sources_dir,
        corpus_path=corpus_path,
        labels_path=labels_path,
        records=records,
        passages=len(texts),
        clusters=clusters,
        expected_removals=expected,
        shared_passages=from_shared,
    )
