"""``instructflow quality train``: a supervised fastText classifier from labelled records.

Two kinds of model, trained the same way (Joulin et al. 2017, "Bag of Tricks for Efficient
Text Classification"):

- a quality model, labels ``good`` and ``bad``, that the ``quality`` stage scores with;
- a multi-class model over a record column (``--label-field domain``), that the ``label``
  stage reads as ``domain_model``.

Where the labels come from:

    instructflow quality train --good curated.jsonl --bad scraped_rejects.json -o quality.bin
    instructflow quality train --from-run out/corpus --bad-reasons filter. -o quality.bin
    instructflow quality train --from-run out/labelled --label-field domain -o domain.bin
    instructflow quality train --examples code=code.jsonl --examples cooking=food.csv -o d.bin

Files are read by the pipeline's own readers and converters (``pipeline.read``,
``pipeline.ingest``), so any format a recipe accepts works; malformed lines are skipped and
counted. A previous run's ``data/`` holds good records and its ``rejects/`` bad ones; by
default only rejects whose reason starts with ``filter.`` count as bad, because dedup rejects
are copies of kept records and would give the same text both labels.

Deterministic: a seeded hash of the record id puts a record in the held-out split (exact
copies share an id, so they never straddle it), the training lines are ordered by another
seeded hash (fastText's SGD reads the file in order; good-then-bad would bias it), and
fastText runs with one thread and a fixed seed. The same inputs and settings give the same
model and the same metrics. The model is written as ``OUT.bin`` (and ``OUT.ftz`` with
``--quantize``) with ``OUT.json`` beside it: settings, labels, counts and held-out metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from pipeline.classifier import (
    LABEL_PREFIX,
    best_label,
    classifier_texts,
    label_probabilities,
    load_fasttext,
)
from pipeline.discover import InputNotFound, list_input_files, open_filesystem
from pipeline.ingest import InputConfig, ingest_file

HOLDOUT_SALT = 0x401D_0B7
ORDER_SALT = 0x0DE5_5EED
_LABEL = re.compile(r"^\S+$")
# Columns of a run's output a multi-class model may take its labels from.
LABEL_FIELDS = ("task", "domain", "language", "difficulty")
_RUN_COLUMNS = ("id", "messages", "context", *LABEL_FIELDS, "drop_reason")


@dataclass(frozen=True)
class Example:
    label: str
    text: str
    key: str  # the record id: decides the split, so exact copies land on one side


@dataclass(frozen=True)
class TrainSettings:
    """fastText's supervised settings (its own names in MODEL.json) plus the split."""

    holdout: float = 0.1
    seed: int = 0
    epoch: int = 20
    dim: int = 64
    word_ngrams: int = 2
    learning_rate: float = 0.5
    # Hash buckets for word n-grams; the .bin holds bucket x dim floats (51 MB at the defaults).
    bucket: int = 200_000
    min_count: int = 1
    quantize: bool = False

    def fasttext_args(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "dim": self.dim,
            "wordNgrams": self.word_ngrams,
            "lr": self.learning_rate,
            "bucket": self.bucket,
            "minCount": self.min_count,
            "loss": "softmax",
            "thread": 1,  # one thread: fastText's Hogwild updates are otherwise unordered
            "seed": self.seed,
            "verbose": 0,
        }


# ---------------------------------------------------------------------------------------
# Labelled examples


def examples_from_files(paths: Sequence[str], label: str, counts: Counter) -> Iterator[Example]:
    """Every readable record under ``paths`` (files, directories, globs), as ``label``."""
    for path in paths:
        config = InputConfig(path=path)
        for input_file in list_input_files(path):
            for table in ingest_file(input_file, config, seed=0):
                live = table.filter(pc.is_null(table.column("drop_reason")))
                counts["malformed"] += table.num_rows - live.num_rows
                yield from _examples(live, [label] * live.num_rows)


def examples_from_run(
    output: str, bad_reasons: Sequence[str], label_field: str | None, counts: Counter
) -> Iterator[Example]:
    """A previous run: ``data/`` good and matching ``rejects/`` bad, or ``data/`` labelled by
    the column ``label_field``."""
    for table in _run_tables(output, "data"):
        if label_field is None:
            yield from _examples(table, ["good"] * table.num_rows)
            continue
        if label_field not in table.column_names:
            raise ValueError(f"{output}/data has no column {label_field!r}")
        labels = table.column(label_field).to_pylist()
        keep = [bool(label) for label in labels]
        counts["unlabelled"] += keep.count(False)
        yield from _examples(table.filter(pa.array(keep)), [label for label in labels if label])
    if label_field is not None:
        return
    for table in _run_tables(output, "rejects"):
        reasons = table.column("drop_reason").to_pylist()
        keep = [reason.startswith(tuple(bad_reasons)) for reason in reasons]
        counts["rejects_of_other_reasons"] += keep.count(False)
        yield from _examples(table.filter(pa.array(keep)), ["bad"] * keep.count(True))


def _run_tables(output: str, fate: str) -> Iterator[pa.Table]:
    directory = f"{output.rstrip('/')}/{fate}"
    try:
        files = list_input_files(directory)
    except InputNotFound:
        raise ValueError(f"{directory}: not found; is {output} a run's output?") from None
    for item in files:
        if not item.uri.endswith(".parquet"):
            continue
        filesystem, path = open_filesystem(item.uri)
        with filesystem.open_input_file(path) as stream:
            parquet = pq.ParquetFile(stream)
            present = parquet.schema_arrow.names
            yield parquet.read(columns=[name for name in _RUN_COLUMNS if name in present])


def _examples(table: pa.Table, labels: list[str]) -> Iterator[Example]:
    for label, text, key in zip(
        labels, classifier_texts(table), table.column("id").to_pylist(), strict=True
    ):
        if not _LABEL.match(label):
            raise ValueError(f"label {label!r} contains whitespace; fastText labels cannot")
        yield Example(label, text, key)


def is_holdout(key: str, seed: int, fraction: float) -> bool:
    """A seeded hash of the record id below ``fraction`` of the 64-bit range."""
    digest = xxhash.xxh3_64_intdigest(key.encode("utf-8"), seed=(seed ^ HOLDOUT_SALT) & 2**64 - 1)
    return digest < fraction * 2**64


def _training_order(example: Example, seed: int) -> tuple[int, str, str]:
    text = f"{example.key}\x1f{example.label}".encode()
    digest = xxhash.xxh3_64_intdigest(text, seed=(seed ^ ORDER_SALT) & 2**64 - 1)
    return digest, example.key, example.label


# ---------------------------------------------------------------------------------------
# Training and evaluation


def train_classifier(
    examples: Iterable[Example],
    output: str,
    settings: TrainSettings,
    skipped: Counter | None = None,
) -> dict[str, Any]:
    """Split, train, evaluate and save ``OUTPUT.bin`` (+ ``.ftz``) and ``OUTPUT.json``.

    ``skipped`` is the counter the example readers fill (malformed lines, unlabelled rows),
    read once the examples are consumed. Returns what MODEL.json holds; raises ValueError
    when there is nothing to learn from.
    """
    train, holdout = [], []
    for example in examples:
        is_held = is_holdout(example.key, settings.seed, settings.holdout)
        (holdout if is_held else train).append(example)
    labels = sorted({example.label for example in train})
    if len(labels) < 2:
        raise ValueError(f"training needs at least two labels, got {labels or 'no examples'}")
    train.sort(key=lambda example: _training_order(example, settings.seed))
    stem = model_stem(output)
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        train_file = os.path.join(scratch, "train.txt")
        with open(train_file, "w", encoding="utf-8") as handle:
            for example in train:
                handle.write(f"{LABEL_PREFIX}{example.label} {example.text}\n")
        fit_in_fresh_process(train_file, stem, settings)
    summary = _summary(
        settings, labels, train, holdout, evaluate(load_fasttext(f"{stem}.bin"), holdout)
    )
    summary["counts"]["skipped"] = dict(sorted((skipped or Counter()).items()))
    if settings.quantize:
        metrics = evaluate(load_fasttext(f"{stem}.ftz"), holdout)
        summary["quantized"] = {"path": f"{stem}.ftz", "metrics": metrics}
    with open(f"{stem}.json", "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
        handle.write("\n")
    return summary


# Run by ``fit_in_fresh_process`` in a new interpreter that imports nothing but fastText.
FIT_SCRIPT = """
import json, sys
import fasttext
train_file, stem, arguments, quantize = json.loads(sys.argv[1])
model = fasttext.train_supervised(input=train_file, **arguments)
model.save_model(stem + ".bin")
if quantize:
    model.quantize(input=train_file, qnorm=True, retrain=False, thread=1)
    model.save_model(stem + ".ftz")
"""


def fit_in_fresh_process(train_file: str, stem: str, settings: TrainSettings) -> None:
    """Train (and quantize) in a new interpreter, writing ``STEM.bin`` (and ``STEM.ftz``).

    fastText's bindings (fasttext-numpy2 0.10.4) diverge to "Encountered NaN" when a model is
    trained after another fastText model was freed in the same process, as if training read
    memory it did not initialise; a fresh process gives the same model every time.
    """
    arguments = json.dumps([train_file, stem, settings.fasttext_args(), settings.quantize])
    done = subprocess.run(
        [sys.executable, "-c", FIT_SCRIPT, arguments], capture_output=True, text=True
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        hint = " (lower --learning-rate)" if "NaN" in lines[-1] else ""
        raise ValueError(f"fastText training failed: {lines[-1]}{hint}")


def model_stem(output: str) -> str:
    """``quality.bin`` and ``quality`` both give ``quality``: the .bin/.ftz/.json stem."""
    return output[: -len(".bin")] if output.endswith((".bin", ".ftz")) else output


def _summary(
    settings: TrainSettings,
    labels: list[str],
    train: list[Example],
    holdout: list[Example],
    metrics: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "labels": [f"{LABEL_PREFIX}{label}" for label in labels],
        "settings": asdict(settings),
        "fasttext": settings.fasttext_args(),
        "feature_text": "pipeline.classifier.classifier_text",
        "counts": {
            "train": dict(sorted(Counter(example.label for example in train).items())),
            "holdout": dict(sorted(Counter(example.label for example in holdout).items())),
        },
        "metrics": metrics,
    }


def evaluate(model: Any, examples: Sequence[Example]) -> dict[str, Any] | None:
    """Per-label precision/recall/F1 and their macro average on held-out examples."""
    if not examples:
        return None
    predicted = [
        best_label(probabilities)[0]
        for probabilities in label_probabilities(model, [example.text for example in examples])
    ]
    labels = sorted({label.removeprefix(LABEL_PREFIX) for label in model.get_labels()})
    return precision_recall_f1([example.label for example in examples], predicted, labels)


def precision_recall_f1(
    gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Per-label scores, macro averages over ``labels`` and accuracy; 0.0 where undefined."""
    raw = {}
    for label in labels:
        hits = sum(g == p == label for g, p in zip(gold, predicted, strict=True))
        claimed, actual = predicted.count(label), gold.count(label)
        precision = hits / claimed if claimed else 0.0
        recall = hits / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        raw[label] = {"precision": precision, "recall": recall, "f1": f1}
    per_label = {
        label: {
            **{name: round(value, 4) for name, value in scores.items()},
            "support": gold.count(label),
        }
        for label, scores in raw.items()
    }
    macro = {
        name: round(sum(scores[name] for scores in raw.values()) / len(labels), 4)
        for name in ("precision", "recall", "f1")
    }
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {"per_label": per_label, "macro": macro, "accuracy": round(correct / len(gold), 4)}


def format_metrics(summary: dict[str, Any]) -> str:
    """The held-out table for the terminal."""
    metrics = summary["metrics"]
    counts = summary["counts"]
    lines = [
        f"train {sum(counts['train'].values())} examples {counts['train']}, "
        f"holdout {sum(counts['holdout'].values())} {counts['holdout']}"
    ]
    if metrics is None:
        return "\n".join(lines + ["no held-out examples: no metrics (raise --holdout)"])
    lines.append(f"{'label':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    rows = [*metrics["per_label"].items(), ("macro", {**metrics["macro"], "support": ""})]
    for label, scores in rows:
        lines.append(
            f"{label:<24}{scores['precision']:>10.4f}{scores['recall']:>10.4f}"
            f"{scores['f1']:>10.4f}{scores['support']:>10}"
        )
    lines.append(f"accuracy {metrics['accuracy']:.4f}")
    if counts.get("skipped"):
        lines.append(f"skipped: {counts['skipped']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Command line


def add_quality_commands(subparsers: Any) -> None:
    """Registers ``instructflow quality train`` on the CLI's top-level subparsers."""
    quality = subparsers.add_parser("quality", help="learned quality and domain classifiers")
    actions = quality.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train a fastText classifier on labelled records")
    sources = train.add_argument_group("labelled records (files in any format a recipe reads)")
    sources.add_argument("--good", nargs="+", default=[], metavar="PATH")
    sources.add_argument("--bad", nargs="+", default=[], metavar="PATH")
    sources.add_argument(
        "--examples", action="append", default=[], metavar="LABEL=PATH", help="repeatable"
    )
    sources.add_argument("--from-run", metavar="OUTDIR", help="a run's data/ (good), rejects/")
    sources.add_argument(
        "--bad-reasons",
        nargs="+",
        default=["filter."],
        metavar="PREFIX",
        help="rejects counted as bad, by reason prefix (default: filter.)",
    )
    sources.add_argument(
        "--label-field",
        choices=LABEL_FIELDS,
        help="with --from-run: labels from this column of data/ (a multi-class model)",
    )
    train.add_argument("-o", "--output", required=True, help="model path: OUT.bin, OUT.json")
    defaults = TrainSettings()
    for flag, kind in (
        ("holdout", float),
        ("seed", int),
        ("epoch", int),
        ("dim", int),
        ("word_ngrams", int),
        ("learning_rate", float),
        ("bucket", int),
        ("min_count", int),
    ):
        default = getattr(defaults, flag)
        train.add_argument(
            f"--{flag.replace('_', '-')}", type=kind, default=default, help=f"default {default}"
        )
    train.add_argument("--quantize", action="store_true", help="also write a small OUT.ftz")
    train.set_defaults(handler=quality_train)


def quality_train(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        counts: Counter = Counter()
        summary = train_classifier(_sources(args, counts), args.output, settings, counts)
    except (ValueError, InputNotFound) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stem = model_stem(args.output)
    print(format_metrics(summary))
    print(f"model: {stem}.bin{' and .ftz' if settings.quantize else ''}; settings: {stem}.json")
    return 0


def _settings(args: argparse.Namespace) -> TrainSettings:
    named = {name: getattr(args, name) for name in _setting_names()}
    settings = TrainSettings(**named, quantize=args.quantize)
    if not 0.0 <= settings.holdout < 1.0:
        raise ValueError(f"--holdout must be in [0, 1), got {settings.holdout}")
    for name in ("epoch", "dim", "word_ngrams", "bucket", "min_count"):
        if getattr(settings, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if settings.learning_rate <= 0:
        raise ValueError(f"--learning-rate must be positive, got {settings.learning_rate}")
    return settings


def _setting_names() -> list[str]:
    return [name for name in TrainSettings.__dataclass_fields__ if name != "quantize"]


def _sources(args: argparse.Namespace, counts: Counter) -> Iterator[Example]:
    if not (args.good or args.bad or args.examples or args.from_run):
        raise ValueError("no labelled records: give --good/--bad, --examples or --from-run")
    if args.label_field and not args.from_run:
        raise ValueError("--label-field reads labels from a run's data/: give --from-run")
    if args.good:
        yield from examples_from_files(args.good, "good", counts)
    if args.bad:
        yield from examples_from_files(args.bad, "bad", counts)
    for item in args.examples:
        label, separator, path = item.partition("=")
        if not separator or not label or not path:
            raise ValueError(f"--examples takes LABEL=PATH, got {item!r}")
        yield from examples_from_files([path], label, counts)
    if args.from_run:
        yield from examples_from_run(args.from_run, args.bad_reasons, args.label_field, counts)
