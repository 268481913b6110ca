"""Labelled records for the classifier tests, generated here (no downloads, no shared data).

- Quality: ``ops.synthetic`` records, clean ones good, and bad ones damaged by the kinds of
  dirt a quality model should learn: empty responses, refusals, repetition and responses that
  copy the instruction.
- Domain: three domains (cooking, code, finance) written from small word banks.
"""

from __future__ import annotations

import random
from pathlib import Path

from ops.quality import TrainSettings
from ops.synthetic import DirtConfig, generate_records, write_records

BAD_KINDS = frozenset(("empty_response", "refusal", "repetition", "copied_instruction"))
# Small and fast: the tests check learning and plumbing, not the production defaults.
TEST_SETTINGS = TrainSettings(dim=32, bucket=20_000, epoch=20)


def write_quality_corpus(directory: Path, records: int, seed: int) -> tuple[Path, Path]:
    """``good.jsonl`` and ``bad.jsonl`` (alpaca) under ``directory``; about half bad."""
    dirt = DirtConfig(
        empty_response=0.1, refusal=0.15, repetition=0.15, copied_instruction=0.1, mark_dirt=True
    )
    good, bad = [], []
    for record in generate_records(records, seed=seed, dirt=dirt):
        kinds = set(record.pop("_dirt"))
        (bad if kinds & BAD_KINDS else good).append(record)
    write_records(directory / "good.jsonl", good)
    write_records(directory / "bad.jsonl", bad)
    return directory / "good.jsonl", directory / "bad.jsonl"


_DOMAINS = {
    "cooking": (
        ["How do I cook {x}?", "Give me a recipe with {x}.", "What goes well with {x}?"],
        ["rice", "pasta", "salmon", "lentils", "eggs", "tofu", "bread dough", "soup"],
        "Heat the pan, season the {x} with salt and pepper, bake or simmer until tender, "
        "then serve with fresh herbs.",
    ),
    "code": (
        [
            "Write a Python function that sorts {x}.",
            "Why does my loop over {x} crash?",
            "How do I parse {x} in JavaScript?",
        ],
        ["a list", "a dictionary", "JSON", "strings", "integers", "a CSV file", "dates"],
        "Use a function that takes the {x} as an argument, loop over it, and return the "
        "result; add a unit test and handle the exception.",
    ),
    "finance": (
        ["How should I invest in {x}?", "What are the risks of {x}?", "Explain {x} taxes."],
        ["index funds", "bonds", "stocks", "a pension", "real estate", "savings accounts"],
        "Diversify your portfolio, compare the fees and the interest rate of the {x}, and "
        "keep an emergency fund before you invest.",
    ),
}


def domain_records(per_domain: int, seed: int) -> dict[str, list[dict[str, str]]]:
    """Alpaca records per domain."""
    rng = random.Random(seed)
    corpus: dict[str, list[dict[str, str]]] = {}
    for domain, (asks, subjects, answer) in _DOMAINS.items():
        corpus[domain] = []
        for index in range(per_domain):
            subject = rng.choice(subjects)
            corpus[domain].append(
                {
                    "instruction": f"{rng.choice(asks).format(x=subject)} (case {index})",
                    "input": "",
                    "output": answer.format(x=subject),
                }
            )
    return corpus


def write_domain_corpus(directory: Path, per_domain: int, seed: int) -> dict[str, Path]:
    paths = {}
    for domain, records in domain_records(per_domain, seed).items():
        paths[domain] = directory / f"{domain}.jsonl"
        write_records(paths[domain], records)
    return paths
