"""Labelled records for the classifier tests, generated here (no downloads, no shared data).

- Quality: ``bench.corpora.write_quality_corpus``, shared with ``instructflow bench quality``.
- Domain: three domains (cooking, code, finance) written from small word banks.
"""

from __future__ import annotations

import random
from pathlib import Path

from bench.corpora import write_records
from ops.quality import TrainSettings

# Small and fast: the tests check learning and plumbing, not the production defaults.
TEST_SETTINGS = TrainSettings(dim=32, bucket=20_000, epoch=20)


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
