"""Stratum keys, sampling allocation and split counts: pure, no Ray, exact expected counts."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from pipeline.first_k import Search, at_or_below, cut_positions, digits
from pipeline.sample import SampleConfig, quality_order
from pipeline.schema import make_record, message, rows_to_table
from pipeline.split import SplitConfig, split_ranks
from pipeline.strata import (
    allocate,
    largest_remainder,
    strata_table,
    stratum_findings,
    stratum_keys,
    water_fill,
)

AVAILABLE = {"a": 100, "b": 300, "c": 600}


def taken(available=AVAILABLE, **options) -> dict[str, int]:
    return {key: quota.taken for key, quota in quotas(available, **options).items()}


def quotas(available=AVAILABLE, **options):
    settings = {
        "mode": "proportional",
        "temperature": 2.0,
        "total": 100,
        "caps": {},
        "minimums": {},
        "default_cap": None,
        "default_minimum": 0,
        **options,
    }
    return allocate(available, **settings)


def test_proportional_equal_and_temperature_shares():
    assert taken() == {"a": 10, "b": 30, "c": 60}
    # 100/3 each: one remainder unit left, the tie goes to the smallest key.
    assert taken(mode="equal") == {"a": 34, "b": 33, "c": 33}
    # T = 2: weights 10, 17.32, 24.49 -> 19.30, 33.43, 47.27 -> floors 19, 33, 47 and the one
    # remaining unit to b, the largest fractional part.
    assert taken(mode="temperature") == {"a": 19, "b": 34, "c": 47}
    assert taken(mode="temperature", temperature=1.0) == taken()


def test_caps_and_minimums_redistribute_the_rest_proportionally():
    # c capped at 40: the other 60 split 1:3 between a and b.
    assert taken(caps={"c": 40}) == {"a": 15, "b": 45, "c": 40}
    assert taken(default_cap=20) == {"a": 20, "b": 20, "c": 20}
    # a at least 20: b and c share 80 as 1:2 -> 26.67, 53.33 -> 27, 53.
    assert taken(minimums={"a": 20}) == {"a": 20, "b": 27, "c": 53}
    assert taken(default_minimum=40, total=150) == {"a": 40, "b": 40, "c": 70}


def test_a_stratum_that_runs_out_hands_its_quota_on():
    table = quotas({"a": 50, "b": 1000, "c": 1000}, mode="equal", total=300)
    assert {k: (q.available, q.requested, q.taken) for k, q in table.items()} == {
        "a": (50, 100, 50),
        "b": (1000, 100, 125),
        "c": (1000, 100, 125),
    }


def test_total_none_keeps_everything_caps_allow_and_a_large_total_takes_all():
    table = quotas(total=None, caps={"c": 40})
    assert {k: (q.requested, q.taken) for k, q in table.items()} == {
        "a": (100, 100),
        "b": (300, 300),
        "c": (40, 40),
    }
    assert taken(total=5000) == AVAILABLE
    assert sum(taken(total=999, mode="temperature").values()) == 999


def test_minimums_are_guarantees_and_absent_strata_are_listed():
    table = quotas({"a": 5, "b": 500}, total=10, minimums={"a": 8, "b": 8, "zz": 3})
    assert {k: (q.available, q.requested, q.taken) for k, q in table.items()} == {
        "a": (5, 8, 5),
        "b": (500, 8, 8),
        "zz": (0, 3, 0),
    }


def test_water_fill_solves_exactly_in_rationals():
    shares = water_fill(
        {"x": Fraction(1), "y": Fraction(1), "z": Fraction(2)},
        {"x": 0, "y": 5, "z": 0},
        {"x": 1, "y": None, "z": None},
        12,
    )
    # lambda = 3: x capped at 1, y held at its minimum 5, z = 2 * 3.
    assert shares == {"x": Fraction(1), "y": Fraction(5), "z": Fraction(6)}
    assert largest_remainder({"p": Fraction(7, 2), "q": Fraction(7, 2)}) == {"p": 4, "q": 3}


def test_split_counts_per_stratum_are_exact():
    assert split_ranks(10, {"train": 0.9, "validation": 0.1}) == (
        {"train": 9, "validation": 1},
        [9],
    )
    # 5.6, 0.7, 0.7: floors 5, 0, 0, and the two remaining groups to the largest remainders.
    assert split_ranks(7, {"train": 0.8, "validation": 0.1, "test": 0.1}) == (
        {"train": 5, "validation": 1, "test": 1},
        [5, 6],
    )


def test_stratum_keys_join_values_and_render_nulls_empty():
    rows = [
        make_record(
            messages=[message("user", "q"), message("assistant", "a")],
            source_file="f",
            source_format="alpaca",
            source_line=line,
            task=task,
            language="en",
        )
        for line, task in enumerate(["qa", "chat"])
    ]
    batch = rows_to_table(rows)
    assert stratum_keys(batch, ("task", "language")).to_pylist() == ["qa|en", "chat|en"]
    assert stratum_keys(batch, ("cluster_id",)).to_pylist() == ["", ""]
    assert stratum_keys(batch, ()).to_pylist() == ["", ""]


def test_findings_round_trip_to_a_table():
    table = {"qa|en": {"available": 5, "requested": 3, "taken": 0}, "": {"available": 1}}
    findings = stratum_findings(table)
    findings["evals.jsonl#sky"] = 2
    strata, rest = strata_table(dict(findings))
    assert strata == {
        "": {"available": 1, "requested": 0, "taken": 0},
        "qa|en": {"available": 5, "requested": 3, "taken": 0},
    }
    assert rest == {"evals.jsonl#sky": 2}


def test_config_errors_name_the_problem_and_what_is_allowed():
    with pytest.raises(ValidationError, match="unknown stratum column.*tsak.*allowed: id,"):
        SampleConfig(strata=("tsak",))
    with pytest.raises(ValidationError, match="caps key 'qa' needs 2 value"):
        SampleConfig(strata=("task", "language"), caps={"qa": 3})
    with pytest.raises(ValidationError, match=r"minimums\['qa'\] = 5 exceeds its cap 2"):
        SampleConfig(strata=("task",), caps={"qa": 2}, minimums={"qa": 5})
    with pytest.raises(ValidationError, match="more than total 3"):
        SampleConfig(strata=("task",), total=3, minimums={"qa": 2, "chat": 2})
    with pytest.raises(ValidationError, match="must add up to 1"):
        SplitConfig(fractions={"train": 0.9, "validation": 0.2})
    with pytest.raises(ValidationError, match="must be lower-case"):
        SplitConfig(fractions={"../x": 1.0})


def test_quality_order_puts_high_scores_first_and_unscored_last():
    scores = pa.array([0.5, None, 0.9, -1.0, 0.0, float("nan"), -0.0, 2.0])
    order = np.argsort(quality_order(scores), kind="stable").tolist()
    assert order == [7, 2, 0, 4, 6, 3, 1, 5]


def test_radix_digits_prefixes_and_cutoffs():
    words = np.array([[0x0102 << 48, 5], [0xFF << 56, 1]], np.uint64)
    assert digits(words, np.array([0, 1])).tolist() == [0x01, 0x00]
    search = Search("s", 0, need=5, size=10, depth=0, prefix=(0, 0))
    counts = np.zeros(256, np.int64)
    counts[[3, 7, 9]] = [4, 3, 3]
    search.narrow(counts)
    assert (search.depth, search.need, search.size, search.prefix[0] >> 56) == (1, 1, 3, 7)
    bound = np.array([[0x0102 << 48, 5], [0x0102 << 48, 5]], np.uint64)
    assert at_or_below(words, bound).tolist() == [True, False]
    cutoffs = {"a": [(0x0102 << 48, 4), (0x0102 << 48, 5)], "b": [None, (2**64 - 1, 0)]}
    targets = pa.array(["a", "b"])
    assert cut_positions(targets, words, cutoffs).tolist() == [1, 1]
