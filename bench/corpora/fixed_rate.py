"""A generated corpus whose duplicate structure does not change with its size, for
``instructflow bench dedup-memory``.

``bench.corpora`` assembles records from a fixed set of templates and word banks, so the
more records it makes, the more of them collide by chance: in the memory runs its near
duplicates went from 3,686 removed at 100k records to 81,281 at 1M and 290,491 at 3M, and
its largest candidate component from 387 members to 4,834 and 54,397. A shuffle partition
of the 1M corpus then carries more candidate pairs than one of the 100k corpus, so a
comparison of memory across sizes also compares different data.

Here a record is words drawn from a Zipf law over pseudo-words, so two independent records
share almost no 3-word shingles at any size, and duplicates come only from dirt injected at
fixed rates:

- an exact copy of one of the last ``RECENT`` originals (``EXACT_RATE``);
- a near copy of one: a few words replaced, case and spacing changed (``NEAR_RATE``);
- families: every ``FAMILY_EVERY`` records a new original gets ``FAMILY_SIZE`` near copies,
  spread over the records that follow, so every size has candidate components of that size
  (over a low ``max_component_rows`` they take the joins path).

Every slice of the corpus carries the same mix, so each shuffle partition does the same work
at every size and only the number of partitions grows. One numpy generator seeded by
``seed`` draws everything in order: the same arguments give the same bytes.

    from bench.corpora.fixed_rate import write_fixed_rate_corpus
    counts = write_fixed_rate_corpus("corpus/", 100_000, seed=0, records_per_file=12_500)
"""

from __future__ import annotations

import json
from collections import Counter, deque
from pathlib import Path

import numpy as np

EXACT_RATE = 0.05
NEAR_RATE = 0.03
FAMILY_EVERY = 25_000
FAMILY_SIZE = 400
# Family members are emitted with this probability per record while a family is open, so a
# family spans about FAMILY_SIZE / FAMILY_RATE = 10,000 records (several input files).
FAMILY_RATE = 0.04
RECENT = 4096
# Share of a near copy's words replaced. With 3-word shingles a replaced word changes up to
# three shingles, so a copy keeps a Jaccard similarity of about 0.9 to its original, and two
# members of one family about 0.8.
EDIT_RATE = 0.02
VOCABULARY = 50_000
ZIPF_OFFSET = 2.7

_ONSETS = "b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl sh st th tr".split()
_VOWELS = "a e i o u ai ea ie oo ou".split()
_CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st"]


def vocabulary(rng: np.random.Generator, size: int = VOCABULARY) -> list[str]:
    """``size`` distinct pronounceable pseudo-words of one to three syllables, shortest first
    (the Zipf law gives the first ones the highest frequency, as in real text)."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        syllables = int(rng.integers(1, 4))
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return sorted(words, key=len)


class _Writer:
    """Draws records in order; keeps only the last ``RECENT`` originals and open families."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.words = np.array(vocabulary(self.rng), dtype=object)
        weights = 1.0 / (np.arange(len(self.words)) + ZIPF_OFFSET)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.recent: deque[dict[str, str]] = deque(maxlen=RECENT)
        self.families: deque[list] = deque()  # [original, members left]
        self.position = 0
        self.counts: Counter[str] = Counter()

    def text(self, words: int) -> str:
        drawn = np.searchsorted(self.cumulative, self.rng.random(words), side="right")
        picked = self.words[np.minimum(drawn, len(self.words) - 1)]
        return " ".join(picked).capitalize() + "."

    def original(self) -> dict[str, str]:
        has_input = self.rng.random() < 0.3
        return {
            "instruction": self.text(int(self.rng.integers(6, 15))),
            "input": self.text(int(self.rng.integers(10, 41))) if has_input else "",
            "output": self.text(int(self.rng.integers(30, 111))),
        }

    def edited(self, source: dict[str, str]) -> dict[str, str]:
        """``source`` with EDIT_RATE of its output's words replaced, plus case and spacing
        noise on the instruction."""
        words = source["output"].split(" ")
        replaced = np.flatnonzero(self.rng.random(len(words)) < EDIT_RATE)
        for index in replaced:
            words[index] = self.words[int(self.rng.integers(len(self.words)))]
        instruction = source["instruction"]
        if self.rng.random() < 0.5:
            instruction = instruction.lower()
        if self.rng.random() < 0.5:
            instruction = instruction.replace(" ", "  ", 2)
        return {"instruction": instruction, "input": source["input"], "output": " ".join(words)}

    def next(self) -> dict[str, str]:
        self.position += 1
        if self.position % FAMILY_EVERY == 0:
            root = self.original()
            self.families.append([root, FAMILY_SIZE])
            self.counts["family_root"] += 1
            return root
        if self.families and self.rng.random() < FAMILY_RATE:
            family = self.families[0]
            family[1] -= 1
            if family[1] == 0:
                self.families.popleft()
            self.counts["family_member"] += 1
            return self.edited(family[0])
        draw = self.rng.random()
        if self.recent and draw < EXACT_RATE:
            self.counts["exact"] += 1
            return dict(self.recent[int(self.rng.integers(len(self.recent)))])
        if self.recent and draw < EXACT_RATE + NEAR_RATE:
            self.counts["near"] += 1
            return self.edited(self.recent[int(self.rng.integers(len(self.recent)))])
        record = self.original()
        self.recent.append(record)
        self.counts["original"] += 1
        return record


def write_fixed_rate_corpus(
    directory: str | Path, records: int, *, seed: int, records_per_file: int
) -> dict[str, int]:
    """``records`` alpaca records as JSON lines, ``records_per_file`` to a file
    (``part-0000.jsonl``, ...); returns how many records of each kind were written."""
    if records < 0 or records_per_file < 1:
        raise ValueError(
            f"need records >= 0 and records_per_file >= 1, got {records}, {records_per_file}"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = _Writer(seed)
    for index in range(-(-records // records_per_file)):
        count = min(records_per_file, records - index * records_per_file)
        lines = [json.dumps(writer.next(), ensure_ascii=False) for _ in range(count)]
        (directory / f"part-{index:04d}.jsonl").write_text("\n".join(lines) + "\n")
    return dict(writer.counts)


__all__ = ["write_fixed_rate_corpus", "vocabulary"]
