"""The ``quality`` stage and the feature text it shares with training."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from pydantic import ValidationError

from bench.corpora import write_quality_corpus
from ops.quality import examples_from_files, train_classifier
from pipeline.classifier import classifier_text, feature_text
from pipeline.quality import QualityConfig, QualityFilter, score_bucket
from pipeline.schema import rows_to_table
from pipeline.stage import Resources
from tests.classifier_data import TEST_SETTINGS
from tests.pipeline.filters.helpers import check_filter, check_passes_dropped_rows_through, record

GOOD_ANSWER = (
    "Start with a clear goal, then break the work into small steps. Review what you did at "
    "the end of each week and adjust the plan; a written checklist keeps the habit going."
)
REFUSAL = "I'm sorry, but I can't help with that request."


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    directory = tmp_path_factory.mktemp("quality_model")
    good, bad = write_quality_corpus(directory, 1500, seed=5)
    examples = list(examples_from_files([str(good)], "good", Counter()))
    examples += list(examples_from_files([str(bad)], "bad", Counter()))
    train_classifier(examples, str(directory / "quality.bin"), TEST_SETTINGS)
    return str(directory / "quality.bin")


@pytest.fixture(scope="module")
def scorer(model_path):
    return QualityFilter(QualityConfig(model=model_path))


def test_the_feature_text_is_one_line_of_tokens():
    text = feature_text("Explain __label__x:\nwhy 你好？", "Because\tit's 2.5 km.")
    assert text == (
        "explain _ _ label _ _ x : why 你 好 ? __response__ "
        "r:because r:it r:' r:s r:2 r:. r:5 r:km r:."
    )
    row = record("Summarise.", "Short.", context="Some text")
    assert classifier_text(row) == feature_text("Summarise.\n\nSome text", "Short.")


def test_every_live_row_is_scored_and_nothing_dropped_without_threshold(scorer):
    rows = [record("How can I build a habit?", GOOD_ANSWER), record("How can I build a habit?", "")]
    table, counts = scorer.run(rows_to_table(rows))
    scores = table.column("quality_score").to_pylist()
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert scores[0] > 0.5 > scores[1]
    assert table.column("drop_reason").null_count == 2 and counts.kept == 2
    assert counts.modified == {"quality.scored": 2}
    assert sum(counts.findings.values()) == 2
    assert all(key.startswith("score[") for key in counts.findings)


def test_a_threshold_drops_low_scores_with_the_score_in_the_detail(model_path):
    stage = QualityFilter(QualityConfig(model=model_path, threshold=0.5))
    row = check_filter(stage, "How can I build a habit?", REFUSAL, "quality.low_score")
    detail = row["drop_detail"]
    assert detail["threshold"] == 0.5 and detail["score"] == row["quality_score"] < 0.5
    row = check_filter(stage, "How can I build a habit?", GOOD_ANSWER, None)
    assert row["quality_score"] >= 0.5


def test_scores_are_deterministic(model_path, scorer):
    table = rows_to_table([record(f"Question {n}?", GOOD_ANSWER[: 20 * n]) for n in range(1, 9)])
    again = QualityFilter(QualityConfig(model=model_path))
    assert scorer.scores(table) == again.scores(table) == scorer.scores(table)
    one_by_one = [scorer.scores(table.slice(row, 1))[0] for row in range(table.num_rows)]
    assert one_by_one == scorer.scores(table)


def test_decide_without_annotate_scores_the_rows(model_path):
    stage = QualityFilter(QualityConfig(model=model_path, threshold=0.5))
    drops = stage.decide(rows_to_table([record("Help me plan.", REFUSAL)]))
    assert [drop.reason for drop in drops] == ["quality.low_score"]


def test_already_dropped_rows_pass_through(scorer):
    check_passes_dropped_rows_through(scorer, "Help me plan.", REFUSAL)


def test_config_and_model_are_checked(model_path, tmp_path):
    with pytest.raises(ValidationError, match="not found"):
        QualityConfig(model=str(tmp_path / "missing.bin"))
    with pytest.raises(ValidationError):
        QualityConfig(model=model_path, label="good")
    with pytest.raises(ValidationError):
        QualityConfig(model=model_path, threshold=1.5)
    with pytest.raises(ValueError, match="no label '__label__great'"):
        QualityFilter(QualityConfig(model=model_path, label="__label__great"))
    not_a_model = tmp_path / "model.bin"
    not_a_model.write_text("hello")
    with pytest.raises(ValueError, match="cannot be loaded"):
        QualityFilter(QualityConfig(model=str(not_a_model)))
    config = QualityConfig(model=model_path, concurrency=3)
    assert QualityFilter.resources(config) == Resources(concurrency=3)


def test_score_buckets():
    assert [score_bucket(s) for s in (0.0, 0.05, 0.1, 0.95, 1.0)] == [
        "score[0.0,0.1)",
        "score[0.0,0.1)",
        "score[0.1,0.2)",
        "score[0.9,1.0]",
        "score[0.9,1.0]",
    ]
    assert json.dumps(score_bucket(0.55)) == '"score[0.5,0.6)"'
