"""Score records with a fastText quality classifier and optionally drop the low ones.

The model is one that ``instructflow quality train`` wrote (or any supervised fastText model
trained on ``pipeline.classifier.classifier_text``). Every live row gets ``quality_score``:
the model's probability of ``label`` (``__label__good``), rounded to 6 places. With a
``threshold``, rows scoring below it are dropped with ``quality.low_score`` and the detail
``{"score", "threshold"}``; without one the stage only scores (dedup's ``highest_quality``
keeper and sampling read the score).

The model loads once per worker, in ``__init__``: once per actor of the CPU chain the stage
joins, or of its own pool of ``concurrency`` actors when that is set. A batch is scored in
one ``predict`` call. ``counts.findings`` holds a histogram of the scores in tenths
(``score[0.9,1.0]``) to help choose a threshold.

Reason: ``quality.low_score``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import ClassVar

import pyarrow as pa
from pydantic import Field, field_validator

from pipeline.classifier import classifier_texts, label_probabilities, load_fasttext
from pipeline.schema import FLOW_SCHEMA, feedback_rows
from pipeline.stage import Drop, FilePath, Filter, Resources, StageConfig, StageCounts


def check_model_file(path: str | None) -> str | None:
    """A local model path must be a file; remote ones are checked by preflight."""
    if path is not None and "://" not in path and not os.path.isfile(path):
        raise ValueError(f"model file {path!r} not found")
    return path


def score_bucket(score: float) -> str:
    """The tenth a score falls in, ``score[0.3,0.4)``; 1.0 shares the top bucket."""
    tenth = min(math.floor(score * 10), 9)
    close = "]" if tenth == 9 else ")"
    return f"score[{tenth / 10:.1f},{(tenth + 1) / 10:.1f}{close}"


class QualityConfig(StageConfig):
    model: FilePath
    label: str = Field(default="__label__good", pattern=r"^__label__\S+$")
    # None: score only. Otherwise rows scoring below it are dropped.
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    # None (default): the stage joins the CPU chain around it, whose actors load the model
    # once each, so scoring streams behind reading on the same workers. An int: an actor pool
    # of its own (each worker one copy of the model), which on a small machine waits for the
    # readers to free their CPUs: 0.39x a plain loop at 100k records on 2 CPUs.
    concurrency: int | None = Field(default=None, ge=1)

    @field_validator("model")
    @classmethod
    def _model_exists(cls, path: str) -> str:
        return check_model_file(path)


class QualityFilter(Filter):
    name: ClassVar[str] = "quality"
    Config: ClassVar[type[StageConfig]] = QualityConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("quality.low_score",)
    config: QualityConfig

    @classmethod
    def resources(cls, config: StageConfig) -> Resources:
        return Resources(concurrency=config.concurrency)

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        self.model = load_fasttext(self.config.model)
        labels = self.model.get_labels()
        if self.config.label not in labels:
            raise ValueError(
                f"model {self.config.model!r} has no label {self.config.label!r}; it has {labels}"
            )

    def scores(self, batch: pa.Table) -> list[float]:
        """The probability of the configured label for each row."""
        label = self.config.label
        return [
            round(probabilities.get(label, 0.0), 6)
            for probabilities in label_probabilities(self.model, classifier_texts(batch))
        ]

    def annotate(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        scores = self.scores(batch)
        counts.modified["quality.scored"] += len(scores)
        counts.findings.update(score_bucket(score) for score in scores)
        index = batch.schema.get_field_index("quality_score")
        return batch.set_column(
            index, FLOW_SCHEMA.field("quality_score"), pa.array(scores, pa.float64())
        )

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        threshold = self.config.threshold
        if threshold is None:
            return [None] * batch.num_rows
        scores = batch.column("quality_score").to_pylist()
        if None in scores:  # decide() called without annotate()
            scores = self.scores(batch)
        # A pair's or a binary record's score is of its chosen or labelled reply, which may
        # be bad on purpose: it is scored, never dropped.
        return [
            Drop("quality.low_score", {"score": score, "threshold": threshold})
            if score < threshold and not prompt_only
            else None
            for score, prompt_only in zip(scores, feedback_rows(batch), strict=True)
        ]
