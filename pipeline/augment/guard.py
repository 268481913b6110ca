"""The quality guard every augmentation passes: a paraphrase, not garbage and not a copy.

For each field it changed, a candidate is kept only if
1. every protected span survived (``augment.lost_protected_span``);
2. it is not the original after dedup's normalisation (``augment.copy``);
3. its length over the original's is within ``[min_length_ratio, max_length_ratio]``
   (``augment.length_ratio``);
4. its similarity to the original, chrF (Popović, 2015) or smoothed sentence BLEU through
   nltk, is at least ``min_similarity`` (``augment.low_similarity``: unrelated text, what an
   untrained or wrong-direction model emits) and at most ``max_similarity``
   (``augment.near_copy``: too little changed to be worth a record).

The first failure, in that order and in field order, names the reason. Scores of every
checked field go into the record's ``augmentation`` JSON either way.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.dedup_keys import normalize_key
from pipeline.stage import Drop

GUARD_REASONS = (
    "augment.lost_protected_span",
    "augment.copy",
    "augment.length_ratio",
    "augment.low_similarity",
    "augment.near_copy",
)
CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
BLEU_TOKEN = re.compile(f"[{CJK_RANGES}]|\\w+|[^\\w\\s]")


class GuardConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: Literal["chrf", "bleu"] = "chrf"
    # chrF below ~0.2 is unrelated text; a good English paraphrase scores 0.4-0.9, a Chinese
    # one lower (short strings of characters share few 6-grams).
    min_similarity: float = Field(0.2, ge=0.0, le=1.0)
    max_similarity: float = Field(0.95, ge=0.0, le=1.0)
    min_length_ratio: float = Field(0.5, ge=0.0)
    max_length_ratio: float = Field(2.0, gt=0.0)

    @model_validator(mode="after")
    def _bands_are_ordered(self) -> GuardConfig:
        if self.min_similarity > self.max_similarity:
            raise ValueError(
                f"min_similarity {self.min_similarity} is above max_similarity "
                f"{self.max_similarity}"
            )
        if self.min_length_ratio > self.max_length_ratio:
            raise ValueError(
                f"min_length_ratio {self.min_length_ratio} is above max_length_ratio "
                f"{self.max_length_ratio}"
            )
        return self


def bleu_tokens(text: str) -> list[str]:
    """Casefolded words and punctuation marks; single characters for CJK (no spaces)."""
    return BLEU_TOKEN.findall(text.casefold())


def similarity(original: str, paraphrase: str, metric: str) -> float:
    # Imported here: nltk (with scipy) costs ~0.7 s, which every recipe's validation would
    # pay through the stage registry otherwise.
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from nltk.translate.chrf_score import sentence_chrf

    if not original.strip() or not paraphrase.strip():
        return 0.0
    if metric == "chrf":
        return float(sentence_chrf(original, paraphrase))
    score = sentence_bleu(
        [bleu_tokens(original)],
        bleu_tokens(paraphrase),
        smoothing_function=SmoothingFunction().method1,
    )
    return float(score)


def check_field(
    original: str, paraphrase: str, lost_spans: int, config: GuardConfig
) -> tuple[dict[str, float], Drop | None]:
    """Scores of one changed field, and the failure that rejects it (None: it passes)."""
    ratio = len(paraphrase) / max(1, len(original))
    score = similarity(original, paraphrase, config.metric)
    scores = {config.metric: round(score, 4), "length_ratio": round(ratio, 4)}
    if lost_spans:
        return scores, Drop("augment.lost_protected_span", {"lost": lost_spans})
    if normalize_key(paraphrase) == normalize_key(original):
        return scores, Drop("augment.copy", None)
    if not config.min_length_ratio <= ratio <= config.max_length_ratio:
        bounds = [config.min_length_ratio, config.max_length_ratio]
        return scores, Drop("augment.length_ratio", {"value": round(ratio, 4), "bounds": bounds})
    if score < config.min_similarity:
        return scores, Drop(
            "augment.low_similarity", {"value": round(score, 4), "min": config.min_similarity}
        )
    if score > config.max_similarity:
        return scores, Drop(
            "augment.near_copy", {"value": round(score, 4), "max": config.max_similarity}
        )
    return scores, None


def check_fields(
    changes: dict[str, tuple[str, str, int]], config: GuardConfig
) -> tuple[dict[str, Any], Drop | None]:
    """``{field: (original, paraphrase, lost_spans)}`` -> per-field scores and the first
    failure, its detail naming the field."""
    scores: dict[str, Any] = {}
    failure: Drop | None = None
    for name, (original, paraphrase, lost) in changes.items():
        scores[name], drop = check_field(original, paraphrase, lost, config)
        if drop is not None and failure is None:
            failure = Drop(drop.reason, {"field": name, **(drop.detail or {})})
    return scores, failure
