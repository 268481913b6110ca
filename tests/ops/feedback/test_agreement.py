"""Krippendorff's alpha against hand-computed and published values; best-pick agreement."""

from __future__ import annotations

import pytest

from ops.feedback.agreement import (
    agreement_report,
    krippendorff_alpha_ordinal,
    pairwise_best_agreement,
)


def test_alpha_of_two_units_computed_by_hand():
    # Coincidences (1,2)=(2,1)=1, (3,3)=2; n_1=n_2=1, n_3=2, n=4. Ordinal distances:
    # d(1,2)=(2-1)^2=1, d(1,3)=(4-1.5)^2=6.25, d(2,3)=(3-1.5)^2=2.25.
    # Observed 2*1 = 2; expected 2*(1*1*1 + 1*2*6.25 + 1*2*2.25) = 36;
    # alpha = 1 - (n-1) * 2 / 36 = 1 - 1/6.
    units = {"u1": {"x": 1, "y": 2}, "u2": {"x": 3, "y": 3}}
    assert krippendorff_alpha_ordinal(units) == pytest.approx(5 / 6)


def test_alpha_of_krippendorffs_own_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4-coder,
    # 12-unit example with missing values: ordinal alpha 0.815.
    coders = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    units = {
        unit: {name: values[unit] for name, values in coders.items() if values[unit] is not None}
        for unit in range(12)
    }
    assert krippendorff_alpha_ordinal(units) == pytest.approx(0.815, abs=5e-4)


def test_alpha_is_undefined_without_overlap_or_variation():
    assert krippendorff_alpha_ordinal({"u": {"x": 3}}) is None
    assert krippendorff_alpha_ordinal({"u": {"x": 3, "y": 3}, "v": {"x": 3, "y": 3}}) is None


def test_best_pick_agreement_counts_shared_items():
    picks = {"i1": {"a": 0, "b": 0}, "i2": {"a": 1, "b": 0}, "i3": {"a": 1}}
    assert pairwise_best_agreement(picks) == [
        {"annotators": ["a", "b"], "items": 2, "agreement": 0.5}
    ]


def test_report_keeps_automatic_raters_out_of_the_human_alpha():
    ratings = [
        {"item_id": "i", "position": p, "annotator": name, "kind": kind, "score": score}
        for p, name, kind, score in [
            (0, "a", "human", 5),
            (0, "b", "human", 4),
            (1, "a", "human", 1),
            (1, "b", "human", 2),
            (0, "rules", "rules", 1),
        ]
    ]
    report = agreement_report(ratings, [])
    assert report["scores"]["annotators"] == ["a", "b"]
    assert report["scores"]["overlapping_candidates"] == 2
    pairs = {tuple(p["annotators"]): p for p in report["score_pairs"]}
    assert pairs[("a", "rules")]["candidates"] == 1
    assert pairs[("a", "b")]["exact_agreement"] == 0.0
