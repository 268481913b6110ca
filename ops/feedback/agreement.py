"""How much annotators agree: Krippendorff's alpha on the 1-5 scores and pairwise agreement
on best picks, each with the number of overlapping units it rests on.

Alpha follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": values
coincide within a unit (here a candidate, rated by two or more annotators), an observed
disagreement is set against the one expected by chance, and ``alpha = 1 - D_o / D_e``. The
ordinal metric is used because a 4 is closer to a 5 than to a 1, yet the steps are not
known to be equal. Units with a single rating carry no information and are left out; with
no pairable unit, or no variation at all, alpha is undefined (None).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from itertools import combinations
from typing import Any

Units = Mapping[Hashable, Mapping[str, int]]  # unit -> annotator -> value


def coincidences(units: Units) -> Counter[tuple[int, int]]:
    """Krippendorff's coincidence matrix: each ordered pair of values from two different
    annotators of a unit counts 1 / (m_u - 1), m_u the unit's number of values."""
    matrix: Counter[tuple[int, int]] = Counter()
    for values_by_annotator in units.values():
        values = list(values_by_annotator.values())
        if len(values) < 2:
            continue
        weight = 1.0 / (len(values) - 1)
        for i, first in enumerate(values):
            for j, second in enumerate(values):
                if i != j:
                    matrix[(first, second)] += weight
    return matrix


def ordinal_distance(marginals: Mapping[int, float], low: int, high: int) -> float:
    """Squared ordinal difference: the values ranked between ``low`` and ``high``, the two
    ends counted half."""
    if low == high:
        return 0.0
    low, high = sorted((low, high))
    between = sum(count for value, count in marginals.items() if low <= value <= high)
    return (between - (marginals[low] + marginals[high]) / 2) ** 2


def krippendorff_alpha_ordinal(units: Units) -> float | None:
    matrix = coincidences(units)
    marginals: Counter[int] = Counter()
    for (first, _), weight in matrix.items():
        marginals[first] += weight
    total = sum(marginals.values())
    if total <= 1:
        return None
    observed = sum(w * ordinal_distance(marginals, c, k) for (c, k), w in matrix.items())
    expected = sum(
        marginals[c] * marginals[k] * ordinal_distance(marginals, c, k)
        for c in marginals
        for k in marginals
    )
    if expected == 0:
        return None
    return 1.0 - (total - 1) * observed / expected


def pairable_units(units: Units) -> int:
    return sum(1 for values in units.values() if len(values) >= 2)


def pairwise_best_agreement(picks: Units) -> list[dict[str, Any]]:
    """For each pair of annotators: the items both picked a best for, and the share where
    they picked the same candidate."""
    by_annotator: dict[str, dict[Hashable, int]] = defaultdict(dict)
    for unit, chosen in picks.items():
        for annotator, position in chosen.items():
            by_annotator[annotator][unit] = position
    pairs = []
    for first, second in combinations(sorted(by_annotator), 2):
        shared = by_annotator[first].keys() & by_annotator[second].keys()
        same = sum(by_annotator[first][u] == by_annotator[second][u] for u in shared)
        pairs.append(
            {
                "annotators": [first, second],
                "items": len(shared),
                "agreement": same / len(shared) if shared else None,
            }
        )
    return pairs


def pairwise_score_alpha(units: Units) -> list[dict[str, Any]]:
    """Alpha for each pair of annotators on the candidates both scored (human vs judge too)."""
    annotators = sorted({name for values in units.values() for name in values})
    pairs = []
    for first, second in combinations(annotators, 2):
        shared = {
            unit: {first: values[first], second: values[second]}
            for unit, values in units.items()
            if first in values and second in values
        }
        exact = sum(values[first] == values[second] for values in shared.values())
        pairs.append(
            {
                "annotators": [first, second],
                "candidates": len(shared),
                "alpha_ordinal": krippendorff_alpha_ordinal(shared),
                "exact_agreement": exact / len(shared) if shared else None,
            }
        )
    return pairs


def agreement_report(ratings: Iterable[dict[str, Any]], picks: Iterable[dict[str, Any]]):
    """Alpha over the human annotators' scores, pairwise alpha over every rater (automatic
    raters included, to see how a judge agrees with people), and best-pick agreement."""
    humans: dict[Hashable, dict[str, int]] = defaultdict(dict)
    everyone: dict[Hashable, dict[str, int]] = defaultdict(dict)
    for rating in ratings:
        unit = (rating["item_id"], rating["position"])
        everyone[unit][rating["annotator"]] = rating["score"]
        if rating["kind"] == "human":
            humans[unit][rating["annotator"]] = rating["score"]
    best: dict[Hashable, dict[str, int]] = defaultdict(dict)
    for pick in picks:
        best[pick["item_id"]][pick["annotator"]] = pick["position"]
    return {
        "scores": {
            "alpha_ordinal": krippendorff_alpha_ordinal(humans),
            "overlapping_candidates": pairable_units(humans),
            "annotators": sorted({name for values in humans.values() for name in values}),
        },
        "score_pairs": pairwise_score_alpha(everyone),
        "best_pairs": pairwise_best_agreement(best),
    }


def format_report(report: dict[str, Any]) -> str:
    def number(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    scores = report["scores"]
    lines = [
        f"scores, humans ({', '.join(scores['annotators']) or 'none'}): Krippendorff's alpha "
        f"(ordinal) {number(scores['alpha_ordinal'])} over "
        f"{scores['overlapping_candidates']} candidates rated by two or more"
    ]
    for pair in report["score_pairs"]:
        lines.append(
            f"  {' vs '.join(pair['annotators'])}: alpha {number(pair['alpha_ordinal'])}, "
            f"exact {number(pair['exact_agreement'])} on {pair['candidates']} candidates"
        )
    lines.append("best picks:")
    for pair in report["best_pairs"]:
        lines.append(
            f"  {' vs '.join(pair['annotators'])}: same pick {number(pair['agreement'])} "
            f"on {pair['items']} items"
        )
    return "\n".join(lines)
