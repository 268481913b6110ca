"""Strata: naming them, and dividing a sample or a split among them with exact integer counts.

Pure functions, no Ray, shared by the ``sample`` and ``split`` stages.

- A **stratum key** is the values of the stratum columns joined by ``|`` (``qa|en``); a null
  value renders as ``""``. No columns give one stratum, ``""``.
- **Allocation** (``allocate``) gives each stratum a quota between its lower bound (its
  minimum) and its upper bound (its cap, and the rows it has), proportional to a weight
  (rows, 1, or rows^(1/T)), so that the quotas add up to the target total: water-filling,
  ``quota = clamp(lambda * weight, lower, upper)`` with the one ``lambda`` that meets the total.
  A stratum that runs out therefore hands its leftover quota to the others in proportion to
  their weights. It is solved in exact rationals, then rounded by largest remainder (ties to
  the smaller stratum key), so the counts add up exactly and never depend on float order.
- **Findings**: per-stratum tables travel to stats.json through the summable
  ``StageCounts.findings`` as ``stratum.<column>=<stratum key>`` counters (and one
  ``stratum.<column>`` per column); ``strata_table`` turns them back into
  ``{stratum: {column: count}}``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.schema import RECORD_FIELDS

Mode = Literal["proportional", "equal", "temperature"]
SEPARATOR = "|"
FINDING_PREFIX = "stratum."
# Columns a stratum may be made of: every scalar column of a record.
STRATUM_COLUMNS = tuple(field.name for field in RECORD_FIELDS if not pa.types.is_list(field.type))


def check_strata(columns: tuple[str, ...]) -> tuple[str, ...]:
    """The columns, or ValueError naming the unknown ones and what is allowed."""
    unknown = [name for name in columns if name not in STRATUM_COLUMNS]
    if unknown:
        raise ValueError(
            f"unknown stratum column(s) {', '.join(unknown)}; allowed: {', '.join(STRATUM_COLUMNS)}"
        )
    if len(set(columns)) != len(columns):
        raise ValueError(f"stratum columns repeat: {list(columns)}")
    return columns


def check_stratum_names(names: Mapping[str, int], columns: tuple[str, ...], what: str) -> None:
    """Keys of ``caps``/``minimums`` must have one ``|``-separated value per stratum column."""
    parts = max(1, len(columns))
    for name in names:
        if len(name.split(SEPARATOR)) != parts:
            raise ValueError(
                f"{what} key {name!r} needs {parts} value(s) joined by '{SEPARATOR}', one per "
                f"stratum column ({', '.join(columns) or 'no columns: the one stratum is empty'})"
            )


def stratum_keys(batch: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    """One stratum key per row."""
    if not columns:
        return pa.array([""] * batch.num_rows, pa.string())
    parts = [
        pc.fill_null(pc.cast(batch.column(name), pa.string()), "").combine_chunks()
        for name in columns
    ]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, SEPARATOR)


@dataclass(frozen=True)
class Quota:
    """One row of the allocation table."""

    available: int
    requested: int
    taken: int


def weights(available: Mapping[str, int], mode: Mode, temperature: float) -> dict[str, Fraction]:
    """The share each stratum asks for: its rows, 1, or rows^(1/T) (T5 / FLAN mixing)."""
    if mode == "proportional":
        return {key: Fraction(count) for key, count in available.items()}
    if mode == "equal":
        return {key: Fraction(1) for key in available}
    return {key: Fraction(count ** (1.0 / temperature)) for key, count in available.items()}


def water_fill(
    weight: Mapping[str, Fraction],
    lower: Mapping[str, int],
    upper: Mapping[str, int | None],
    total: int,
) -> dict[str, Fraction]:
    """``clamp(lambda * weight, lower, upper)`` per stratum, adding up to ``total`` if the
    bounds allow; otherwise every stratum at the bound that is closest. ``None``: no upper."""
    if total <= sum(lower.values()):
        return {key: Fraction(lower[key]) for key in weight}
    if all(upper[key] is not None for key in weight) and total >= sum(upper.values()):
        return {key: Fraction(upper[key]) for key in weight}

    def clamp(key: str, lam: Fraction) -> Fraction:
        value = max(Fraction(lower[key]), lam * weight[key])
        bound = upper[key]
        return value if bound is None else min(value, Fraction(bound))

    points = sorted(
        {Fraction(lower[key]) / weight[key] for key in weight}
        | {Fraction(upper[key]) / weight[key] for key in weight if upper[key] is not None}
    )
    previous = Fraction(0)
    for point in [*points, None]:
        # The fill is linear between breakpoints: solve inside the first segment that reaches
        # the total (the last one is open-ended and holds the uncapped strata).
        probe = previous + 1 if point is None else (previous + point) / 2
        if point is not None and sum(clamp(key, point) for key in weight) < total:
            previous = point
            continue
        free = [key for key in weight if clamp(key, probe) == probe * weight[key]]
        fixed = sum(clamp(key, probe) for key in weight if key not in free)
        lam = (total - fixed) / sum(weight[key] for key in free)
        return {key: clamp(key, lam) for key in weight}
    raise AssertionError("unreachable: the open segment always solves")


def largest_remainder(shares: Mapping[str, Fraction]) -> dict[str, int]:
    """Integers adding up to ``round(sum(shares))``: floors, then one more each for the
    largest fractional parts; ties go to the key that comes first in ``shares``."""
    floors = {key: math.floor(share) for key, share in shares.items()}
    missing = round(sum(shares.values())) - sum(floors.values())
    order = sorted(shares, key=lambda key: -(shares[key] - floors[key]))  # stable: ties by order
    for key in order[:missing]:
        floors[key] += 1
    return floors


def allocate(
    available: Mapping[str, int],
    *,
    mode: Mode,
    temperature: float,
    total: int | None,
    caps: Mapping[str, int],
    minimums: Mapping[str, int],
    default_cap: int | None,
    default_minimum: int,
) -> dict[str, Quota]:
    """Rows to take per stratum. ``requested`` is the quota before the stratum's own row count
    limits it (caps and minimums apply); ``taken`` spends leftovers of strata that ran out.
    With ``total=None`` every stratum takes all its rows up to its cap. Minimums are
    guarantees: when they add up to more than ``total``, the total is exceeded. Strata named
    in ``minimums`` that have no rows are listed with nothing available."""
    keys = sorted(available)
    cap = {key: caps.get(key, default_cap) for key in keys}
    minimum = {key: minimums.get(key, default_minimum) for key in keys}
    upper = {
        key: min(available[key], cap[key] if cap[key] is not None else available[key])
        for key in keys
    }
    if total is None:
        taken = upper
        requested = {key: cap[key] if cap[key] is not None else available[key] for key in keys}
    else:
        weight = weights({key: available[key] for key in keys}, mode, temperature)
        low = {key: min(minimum[key], upper[key]) for key in keys}
        taken = largest_remainder(water_fill(weight, low, upper, total))
        wished_low = {
            key: minimum[key] if cap[key] is None else min(minimum[key], cap[key]) for key in keys
        }
        requested = largest_remainder(water_fill(weight, wished_low, cap, total))
    table = {key: Quota(available[key], requested[key], taken[key]) for key in keys}
    for key in sorted(set(minimums) - set(available)):
        table[key] = Quota(0, minimums[key], 0)
    return table


def stratum_findings(table: Mapping[str, Mapping[str, int]]) -> Counter:
    """A per-stratum table as summable findings counters: ``stratum.<column>=<key>`` per
    non-zero cell, and ``stratum.<column>`` once per column, so that all-zero columns survive
    Counter addition (which drops zeros)."""
    findings = Counter()
    for stratum, row in table.items():
        for column, value in row.items():
            findings[f"{FINDING_PREFIX}{column}"] = 1
            if value:
                findings[f"{FINDING_PREFIX}{column}={stratum}"] = value
    return findings


def strata_table(findings: Mapping[str, int]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Split findings into the per-stratum table and the other findings."""
    table: dict[str, dict[str, int]] = {}
    columns: set[str] = set()
    rest = {}
    for key, value in findings.items():
        if not key.startswith(FINDING_PREFIX):
            rest[key] = value
            continue
        column, cell, stratum = key[len(FINDING_PREFIX) :].partition("=")
        columns.add(column)
        if cell:
            table.setdefault(stratum, {})[column] = value
    ordered = {
        stratum: {column: table[stratum].get(column, 0) for column in sorted(columns)}
        for stratum in sorted(table)
    }
    return ordered, rest
