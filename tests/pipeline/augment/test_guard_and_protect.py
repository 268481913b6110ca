"""Protection of code, URLs, numbers and placeholders, and the quality guard's verdicts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.augment.guard import GuardConfig, check_field, check_fields
from pipeline.augment.protect import has_words, protect, restore

TEXT = (
    "Run `pip install ray` at 9:30, then open https://docs.ray.io/en/latest. "
    "Greet {{name}} with 3 emojis:\n```python\nprint('hi')\n```"
)


def test_protect_swaps_every_kind_of_span_for_a_sentinel():
    masked = protect(TEXT)
    assert (
        masked.text == "Run XPH0X at XPH1X, then open XPH2X. Greet XPH3X with XPH4X emojis:\nXPH5X"
    )
    assert masked.spans == (
        "`pip install ray`",
        "9:30",
        "https://docs.ray.io/en/latest",
        "{{name}}",
        "3",
        "```python\nprint('hi')\n```",
    )
    assert restore(masked.text, masked.spans) == (TEXT, 0)


def test_restore_counts_missing_repeated_and_invented_sentinels():
    masked = protect("Pay 10 dollars by 5 pm.")
    assert restore("Zahle XPH0X Dollar bis XPH1X Uhr.", masked.spans) == (
        "Zahle 10 Dollar bis 5 Uhr.",
        0,
    )
    assert restore("Zahle Dollar bis XPH1X Uhr.", masked.spans)[1] == 1
    assert restore("XPH0X XPH0X XPH1X", masked.spans)[1] == 1
    assert restore("XPH0X XPH1X XPH7X", masked.spans) == ("10 5 ", 1)


def test_sentinel_shaped_text_and_digits_inside_words_survive():
    masked = protect("Keep XPH3X and mp3 as they are.")
    assert masked.text == "Keep XPH0X and mp3 as they are."
    assert restore(masked.text, masked.spans) == ("Keep XPH3X and mp3 as they are.", 0)
    assert not has_words("XPH0X ... XPH1X") and has_words("see XPH0X")


@pytest.mark.parametrize(
    ("paraphrase", "lost", "reason"),
    [
        ("Please explain how rain is formed in clouds.", 0, None),  # chrF 0.704
        ("Please explain how rain is formed in clouds.", 1, "augment.lost_protected_span"),
        ("explain HOW rain forms in clouds!", 0, "augment.copy"),
        ("Rain.", 0, "augment.length_ratio"),
        ("Quantum baker drinking card theory, nitrogen.", 0, "augment.low_similarity"),
        ("Explain how the rain forms in clouds.", 0, "augment.near_copy"),  # chrF 0.887
    ],
)
def test_guard_names_the_failure(paraphrase, lost, reason):
    guard = GuardConfig(max_similarity=0.85)
    scores, drop = check_field("Explain how rain forms in clouds.", paraphrase, lost, guard)
    assert (drop.reason if drop else None) == reason
    assert set(scores) == {"chrf", "length_ratio"}


def test_guard_reports_the_first_failing_field_and_every_score():
    scores, drop = check_fields(
        {
            "instruction": (
                "Explain how rain forms in clouds, step by step.",
                "Can you explain how rain forms in clouds, step by step?",  # BLEU 0.736
                0,
            ),
            "response": ("Water falls from clouds.", "Water falls from clouds.", 0),
        },
        GuardConfig(metric="bleu"),
    )
    assert drop.reason == "augment.copy" and drop.detail == {"field": "response"}
    assert set(scores) == {"instruction", "response"} and "bleu" in scores["instruction"]


def test_guard_bands_must_be_ordered():
    with pytest.raises(ValidationError, match="min_similarity 0.9 is above max_similarity 0.5"):
        GuardConfig(min_similarity=0.9, max_similarity=0.5)
