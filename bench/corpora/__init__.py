"""Deterministic corpora for benchmarks, tests and the quickstart.

Synthetic instruction data: records are assembled from hand-written English and Chinese word
banks and sentence templates (no external data), so the same seed always yields the same
records, on any machine. Dirt (duplicates, PII, refusals, mojibake, ...) is injected at the
rates of a ``DirtConfig`` to give the pipeline's filters something real to catch; with
``mark_dirt=True`` every record says what it got in ``"_dirt"``, which makes the generated
corpus its own ground truth.

    from bench.corpora import DirtConfig, write_corpus
    write_corpus("bench/alpaca.jsonl.gz", 100_000, seed=0, dirt=DirtConfig.typical())

By what they generate: ``records`` (clean records and the language mix; ``tasks`` builds
each kind of pair from the word banks of ``english``, ``english_topics``, ``chinese`` and
``snippets``, shaped by ``banks``), ``dirt`` and ``decorations`` (the damage), ``files``
(formats and writers), ``prose`` (QA rows and raw paragraphs). ``fixed_rate`` is the
separate corpus of ``bench dedup-memory``.

Public API, here: ``DirtConfig``, ``generate_records``, ``to_format``, ``write_records``,
``write_corpus``, ``write_quality_corpus`` (good and bad records for a quality model),
``generate_qa`` (extractive QA rows) and ``generate_paragraphs`` (raw English prose).
"""

from bench.corpora.dirt import (
    DECORATION_KINDS,
    DIRT_KINDS,
    DUPLICATE_KINDS,
    QUALITY_BAD_KINDS,
    RESPONSE_KINDS,
    DirtConfig,
)
from bench.corpora.files import (
    FILE_TYPES,
    FORMAT_COLUMNS,
    FORMATS,
    to_format,
    write_corpus,
    write_quality_corpus,
    write_records,
)
from bench.corpora.prose import generate_paragraphs, generate_qa
from bench.corpora.records import DEFAULT_LANGUAGE_MIX, LANGUAGES, generate_records

__all__ = [
    "DECORATION_KINDS",
    "DEFAULT_LANGUAGE_MIX",
    "DIRT_KINDS",
    "DUPLICATE_KINDS",
    "FILE_TYPES",
    "FORMATS",
    "FORMAT_COLUMNS",
    "LANGUAGES",
    "QUALITY_BAD_KINDS",
    "RESPONSE_KINDS",
    "DirtConfig",
    "generate_paragraphs",
    "generate_qa",
    "generate_records",
    "to_format",
    "write_corpus",
    "write_quality_corpus",
    "write_records",
]
