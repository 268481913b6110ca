"""``instructflow quality train``: labelled records in, a fastText model and its metrics out."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.corpora import write_quality_corpus
from ops.quality import (
    add_quality_commands,
    examples_from_files,
    examples_from_run,
    is_holdout,
    precision_recall_f1,
    train_classifier,
)
from pipeline.classifier import classifier_text, label_probabilities, load_fasttext
from pipeline.schema import RECORD_SCHEMA, REJECT_SCHEMA, make_record, message
from tests.classifier_data import TEST_SETTINGS, write_domain_corpus


def quality_train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="instructflow")
    add_quality_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["quality", "train", *argv])
    return args.handler(args)


SMALL = ["--dim", "32", "--bucket", "20000"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_quality_corpus(tmp_path_factory.mktemp("quality"), 2000, seed=11)


def test_the_classifier_tells_good_from_bad_on_held_out_records(corpus, tmp_path, capsys):
    good, bad = corpus
    output = tmp_path / "models" / "quality.bin"
    assert quality_train(["--good", str(good), "--bad", str(bad), "-o", str(output), *SMALL]) == 0
    summary = json.loads((tmp_path / "models" / "quality.json").read_text())
    metrics = summary["metrics"]
    # Chance is 0.5; bag-of-n-grams learns refusals and empty answers, and repetition and
    # copies only in part (those are the heuristic filters' job).
    assert metrics["macro"]["f1"] > 0.75, metrics
    assert metrics["per_label"]["bad"]["precision"] > 0.85
    assert summary["labels"] == ["__label__bad", "__label__good"]
    assert summary["fasttext"]["thread"] == 1 and summary["fasttext"]["wordNgrams"] == 2
    held = sum(summary["counts"]["holdout"].values())
    total = held + sum(summary["counts"]["train"].values())
    assert total == 2000 and 0.05 < held / total < 0.15
    printed = capsys.readouterr().out
    assert "macro" in printed and "precision" in printed and str(output) in printed
    assert output.is_file()


def test_training_is_deterministic(corpus, tmp_path):
    good, bad = corpus
    examples = list(examples_from_files([str(good)], "good", Counter()))
    examples += list(examples_from_files([str(bad)], "bad", Counter()))
    texts = [example.text for example in examples[:200]]
    first = train_classifier(examples, str(tmp_path / "a.bin"), TEST_SETTINGS)
    # A model loaded and freed in this process must not disturb the next training (fastText's
    # bindings do, in-process; training runs in a fresh interpreter).
    scores_a = label_probabilities(load_fasttext(str(tmp_path / "a.bin")), texts)
    second = train_classifier(list(reversed(examples)), str(tmp_path / "b.bin"), TEST_SETTINGS)
    assert first["metrics"] == second["metrics"] and first["counts"] == second["counts"]
    assert scores_a == label_probabilities(load_fasttext(str(tmp_path / "b.bin")), texts)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_the_holdout_is_a_seeded_hash_of_the_record_id():
    keys = [f"record-{index}" for index in range(5000)]
    held = [key for key in keys if is_holdout(key, seed=0, fraction=0.1)]
    assert 400 < len(held) < 600
    assert held == [key for key in keys if is_holdout(key, seed=0, fraction=0.1)]
    assert held != [key for key in keys if is_holdout(key, seed=1, fraction=0.1)]
    assert not any(is_holdout(key, seed=0, fraction=0.0) for key in keys)


def test_a_domain_classifier_is_trained_from_labelled_files(tmp_path):
    paths = write_domain_corpus(tmp_path, 120, seed=3)
    examples = [f"--examples={domain}={path}" for domain, path in paths.items()]
    assert quality_train([*examples, "-o", str(tmp_path / "domain.bin"), *SMALL]) == 0
    summary = json.loads((tmp_path / "domain.json").read_text())
    assert summary["labels"] == ["__label__code", "__label__cooking", "__label__finance"]
    assert set(summary["metrics"]["per_label"]) == {"code", "cooking", "finance"}
    assert summary["metrics"]["macro"]["f1"] > 0.9


def run_record(instruction: str, response: str, domain: str = "") -> dict:
    return make_record(
        messages=[message("user", instruction), message("assistant", response)],
        source_file="in.jsonl",
        source_format="alpaca",
        source_line=1,
        domain=domain,
    )


def fake_run(directory: Path) -> None:
    """A run's output: data/ in the record schema, rejects/ with reasons."""
    (directory / "data").mkdir(parents=True)
    (directory / "rejects").mkdir()
    kept = [
        run_record("Name a fruit.", "An apple.", domain="food"),
        run_record("Add 2 and 2.", "4", domain="maths"),
        run_record("Say hi.", "Hi!"),
    ]
    names = RECORD_SCHEMA.names
    data = pa.Table.from_pylist([{k: r[k] for k in names} for r in kept], schema=RECORD_SCHEMA)
    pq.write_table(data, directory / "data" / "part-00000-of-00001.parquet")
    rejects = [
        {**run_record("Name a colour.", "I'm sorry, I can't."), "drop_reason": "filter.refusal"},
        {**run_record("Name a fruit.", "An apple."), "drop_reason": "dedup.exact"},
    ]
    names = REJECT_SCHEMA.names
    table = pa.Table.from_pylist([{k: r[k] for k in names} for r in rejects], schema=REJECT_SCHEMA)
    pq.write_table(table, directory / "rejects" / "part-00000-of-00001.parquet")


def test_labels_from_a_previous_run(tmp_path):
    fake_run(tmp_path)
    counts: Counter = Counter()
    examples = list(examples_from_run(str(tmp_path), ["filter."], None, counts))
    assert [example.label for example in examples] == ["good", "good", "good", "bad"]
    assert counts == {"rejects_of_other_reasons": 1}  # the duplicate is not "bad"
    everything = list(examples_from_run(str(tmp_path), ["filter.", "dedup."], None, Counter()))
    assert len(everything) == 5
    counts = Counter()
    by_domain = list(examples_from_run(str(tmp_path), ["filter."], "domain", counts))
    assert [example.label for example in by_domain] == ["food", "maths"]
    assert counts == {"unlabelled": 1}
    assert by_domain[0].text == classifier_text(run_record("Name a fruit.", "An apple."))


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert quality_train(["-o", str(tmp_path / "m.bin")]) == 2
    assert "no labelled records" in capsys.readouterr().err
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"instruction": "Hi", "output": "Hello"}) + "\n")
    assert quality_train(["--good", str(good), "-o", str(tmp_path / "m.bin")]) == 2
    assert "at least two labels" in capsys.readouterr().err
    assert quality_train(["--from-run", str(tmp_path / "nope"), "-o", str(tmp_path / "m")]) == 2
    assert "not found" in capsys.readouterr().err
    assert quality_train(["--good", str(good), "--label-field", "domain", "-o", "m"]) == 2
    assert "--from-run" in capsys.readouterr().err


def test_precision_recall_f1_by_hand():
    gold = ["good", "good", "good", "bad", "bad"]
    predicted = ["good", "good", "bad", "bad", "good"]
    metrics = precision_recall_f1(gold, predicted, ["bad", "good"])
    assert metrics["per_label"]["good"] == {
        "precision": 0.6667,
        "recall": 0.6667,
        "f1": 0.6667,
        "support": 3,
    }
    assert metrics["per_label"]["bad"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert metrics["macro"]["f1"] == 0.5833 and metrics["accuracy"] == 0.6
