"""Language identification and an allowlist, with py3langid (Lui & Baldwin 2012, "langid.py:
An Off-the-shelf Language Identification Tool"; the numpy port ``py3langid``), run on the
instruction and the response together, fenced code blocks left out (code is in no language).

``annotate`` writes the detected ISO 639-1 code into the ``language`` column when it is
empty, or always when ``overwrite`` is set; a language declared by the source is trusted by
default. ``decide`` then checks the row's language (declared or detected) against ``allow``.
A detection is only trusted when its probability reaches ``min_confidence``; texts shorter
than ``min_chars_for_confidence`` are judged by the allowlist alone, because a few words give
low probabilities for every language. A text without a single letter has no language: the
column is left as it is and the row is kept.

``model`` names the identifier so that a fastText LID model can be added later behind the same
config.

Reasons: ``filter.language_not_allowed``, ``filter.language_uncertain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal, NamedTuple

import pyarrow as pa
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from pydantic import Field, field_validator

from pipeline.schema import instructions_and_responses
from pipeline.stage import Drop, Filter, StageConfig, StageCounts
from pipeline.text import language_code, without_code_blocks

LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]

# py3langid also labels varieties with ISO 639-3 codes. Those that belong to an ISO 639-1
# macrolanguage are folded into it, probabilities added: on short standard Chinese the model
# often says Cantonese or Wu ("我喜欢吃苹果。" -> yue 0.42), which is still "zh" to a recipe.
MACROLANGUAGE = {
    "yue": "zh",
    "wuu": "zh",
    "arz": "ar",
    "ary": "ar",
    "uzs": "uz",
    "gug": "gn",
    "sdh": "ku",
}
# "No linguistic content" (ISO 639-2 zxx): treated like a text without letters.
NO_LANGUAGE = "zxx"


def load_identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify(identifier: LanguageIdentifier, text: str) -> tuple[str, float]:
    """The most probable language of ``text`` (macrolanguages folded) and its probability."""
    folded: dict[str, float] = {}
    for label, probability in identifier.rank(text):
        code = MACROLANGUAGE.get(label, label)
        folded[code] = folded.get(code, 0.0) + probability
    language, probability = max(folded.items(), key=lambda item: item[1])
    return ("" if language == NO_LANGUAGE else language), probability


class LanguageConfig(StageConfig):
    model: Literal["py3langid"] = "py3langid"
    # None: every language is allowed (the stage then only labels and checks confidence).
    allow: tuple[LanguageCode, ...] | None = None
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    min_chars_for_confidence: int = Field(default=20, ge=0)
    overwrite: bool = False

    @field_validator("allow")
    @classmethod
    def _no_folded_varieties(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        folded = [code for code in value or () if code in MACROLANGUAGE]
        if folded:
            wanted = sorted({MACROLANGUAGE[code] for code in folded})
            raise ValueError(f"{folded} are detected as their macrolanguage; allow {wanted}")
        return value


class Detection(NamedTuple):
    language: str  # "" when the text has no letters or no linguistic content
    probability: float
    chars: int


class Label(NamedTuple):
    language: str  # what the row's language column holds after annotate()
    detected: bool  # True when that is the detection, False when the source declared it
    detection: Detection


class LanguageFilter(Filter):
    name: ClassVar[str] = "language"
    Config: ClassVar[type[StageConfig]] = LanguageConfig
    drop_reasons: ClassVar[tuple[str, ...]] = (
        "filter.language_not_allowed",
        "filter.language_uncertain",
    )
    config: LanguageConfig

    def __init__(self, config: StageConfig) -> None:
        super().__init__(config)
        # Loading the model takes ~0.7 s: once per stage object, never per batch.
        self.identifier = load_identifier()
        # annotate() labels, decide() judges the same rows right after; kept in between so
        # that each text is classified once.
        self._labels: list[Label] = []

    def detect(self, text: str) -> Detection:
        prose = without_code_blocks(text).strip()
        if not any(char.isalpha() for char in prose):
            return Detection("", 0.0, len(prose))
        language, probability = identify(self.identifier, prose)
        return Detection(language, round(float(probability), 4), len(prose))

    def detect_batch(self, batch: pa.Table) -> list[Detection]:
        instructions, responses = instructions_and_responses(batch)
        return [
            self.detect(f"{instruction}\n{response}")
            for instruction, response in zip(instructions, responses, strict=True)
        ]

    def annotate(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        self._labels = self.labels(batch)
        counts.modified["language.labelled"] += sum(label.detected for label in self._labels)
        index = batch.schema.get_field_index("language")
        languages = pa.array([label.language for label in self._labels], pa.string())
        # The schema's own field, so that the column stays non-nullable like the others.
        return batch.set_column(index, batch.schema.field(index), languages)

    def labels(self, batch: pa.Table) -> list[Label]:
        """Each row's language: the declared one, or the detected one where that is wanted."""
        labels = []
        declared = batch.column("language").to_pylist()
        for language, detection in zip(declared, self.detect_batch(batch), strict=True):
            relabel = bool(detection.language) and (self.config.overwrite or not language)
            labels.append(Label(detection.language if relabel else language, relabel, detection))
        return labels

    def decide(self, batch: pa.Table) -> Sequence[Drop | None]:
        labels = self._labels
        if len(labels) != batch.num_rows:  # decide() called without annotate()
            labels = self.labels(batch)
        self._labels = []
        return [self._judge(label) for label in labels]

    def _judge(self, label: Label) -> Drop | None:
        config = self.config
        if not label.language:
            return None
        detection = label.detection
        detail = {
            "language": label.language,
            "detected": detection.language,
            "probability": detection.probability,
        }
        if (
            label.detected
            and detection.chars >= config.min_chars_for_confidence
            and detection.probability < config.min_confidence
        ):
            return Drop("filter.language_uncertain", {**detail, "min": config.min_confidence})
        if config.allow is not None and language_code(label.language) not in config.allow:
            return Drop("filter.language_not_allowed", {**detail, "allow": list(config.allow)})
        return None
