"""The ``Augment`` base, budgeted selection and conservation with created rows, without Ray."""

from __future__ import annotations

import json
from typing import ClassVar

import pyarrow as pa
import pytest

from pipeline.accounting import ConservationError, Summary, check_conservation, summarize_batch
from pipeline.augment.rules import RuleAugmentBatches, RuleAugmentConfig
from pipeline.augment.selection import (
    Selection,
    SelectiveAugment,
    bottom_hashes,
    hash_bound,
    merge_bottom,
)
from pipeline.dedup_keys import row_uids
from pipeline.schema import make_record, message, rows_to_table
from pipeline.stage import Augment, Candidate, Drop, StageConfig, StageCounts


def record(line: int, task: str = "qa", file: str = "/data/a.jsonl", text: str = ""):
    return make_record(
        messages=[
            message("user", text or f"Write a short poem about river number {line}."),
            message("assistant", f"River {line} flows."),
        ],
        source_file=file,
        source_format="alpaca",
        source_line=line,
        task=task,
        language="en",
    )


class Echo(Augment):
    """Proposes one candidate per row, with the reason it is given."""

    name: ClassVar[str] = "echo"
    Config: ClassVar[type[StageConfig]] = StageConfig
    drop_reasons: ClassVar[tuple[str, ...]] = ("augment.copy",)
    reason: str | None = None

    def candidates(self, batch: pa.Table, counts: StageCounts) -> list[Candidate]:
        drop = Drop(self.reason) if self.reason else None
        return [
            Candidate(row, "", [message("user", f"copy {row}")], "", {"method": "echo"}, drop)
            for row in range(batch.num_rows)
        ]


def test_the_base_appends_created_rows_and_checks_the_vocabulary():
    stage = Echo(StageConfig())
    table, counts = stage.run(rows_to_table([record(1), record(2)]))
    assert table.num_rows == 4 and counts.seen == 2 and counts.kept == 4
    assert json.loads(table.column("augmentation")[2].as_py()) == {
        "stage": "echo",
        "method": "echo",
    }
    stage.reason = "augment.copy"
    _, counts = stage.run(rows_to_table([record(1)]))
    assert counts.dropped == {"augment.copy": 1} and counts.kept == 1
    stage.reason = "augment.invented"
    with pytest.raises(RuntimeError, match="'augment.invented', which is not in its vocabulary"):
        stage.run(rows_to_table([record(1)]))


def test_a_created_row_is_never_a_parent():
    created = Echo(StageConfig()).run(rows_to_table([record(1)]))[0].slice(1)
    with pytest.raises(RuntimeError, match="augmented a record it created itself"):
        Echo(StageConfig()).run(created)


def test_created_rows_get_their_own_row_uids():
    table = Echo(StageConfig()).run(rows_to_table([record(1), record(2)]))[0]
    uids = row_uids(table, {"/data/a.jsonl": 0}).tolist()
    assert uids[:2] == [1, 2]
    assert all(uid < 0 for uid in uids[2:]) and len(set(uids)) == 4


def test_conservation_counts_created_rows_per_file():
    rows = [record(1), record(2), record(3, file="/data/b.jsonl")]
    stage = Echo(StageConfig())
    table = stage.run(rows_to_table(rows))[0]
    stage.reason = "augment.copy"
    table = pa.concat_tables([table, stage.run(rows_to_table(rows[:1]))[0].slice(1)])
    summary = Summary.from_json(summarize_batch(table).column("summary")[0].as_py())
    assert summary.created == {"echo": 4}
    assert summary.created_per_file == {"/data/a.jsonl": 3, "/data/b.jsonl": 1}
    assert summary.created_dropped == {"echo/augment.copy": 1}
    read = {"/data/a.jsonl": 2, "/data/b.jsonl": 1}
    written = {"output": 6, "rejects": 1, "quarantine": 0}
    check_conservation(read, summary, written, created=4)
    # A created row lost on the way: the data alone still balances, the workers' count does not.
    lost = Summary.from_json(summarize_batch(table.slice(0, 6)).column("summary")[0].as_py())
    check_conservation(read, lost, {"output": 6, "rejects": 0, "quarantine": 0})
    with pytest.raises(ConservationError, match="stages created 4 records but 3 reached the end"):
        check_conservation(read, lost, {"output": 6, "rejects": 0, "quarantine": 0}, created=4)
    # An original lost: named with its file, created rows counted for their parent's file.
    lost = Summary.from_json(summarize_batch(table.slice(1)).column("summary")[0].as_py())
    with pytest.raises(ConservationError) as caught:
        check_conservation(read, lost, {"output": 5, "rejects": 1, "quarantine": 0}, created=4)
    assert "readers produced 3 records and augmentation created 4, but 6 reached" in str(
        caught.value
    )
    assert "/data/a.jsonl: read 2, created 3, accounted 4" in str(caught.value)


def blocks_then_bounds(
    tables: list[pa.Table], worker: type[SelectiveAugment], config, selection: Selection
) -> dict[str, int]:
    """The global pass of ``budget_bounds`` with the groupby done by hand."""
    bottoms = pa.concat_tables(
        bottom_hashes(table, worker=worker, config=config, selection=selection) for table in tables
    )
    bounds = {}
    for stratum in set(bottoms.column("stratum").to_pylist()):
        group = bottoms.filter(pa.compute.equal(bottoms.column("stratum"), stratum))
        merged = merge_bottom(group, budget=config.budget).to_pylist()[0]
        bounds[stratum] = hash_bound(config.budget[stratum], merged["last"])
    return bounds


def test_the_budget_is_an_exact_cap_whatever_the_blocks():
    rows = [record(line, task="qa" if line % 3 else "chat") for line in range(60)]
    config = RuleAugmentConfig(
        methods=("swap",), variants=2, rate=0.5, budget={"qa|en": 7, "chat|en": 100, "code|en": 2}
    )
    selection = Selection(seed=3, stage="rule_augment")
    table = rows_to_table(rows)
    chosen = []
    for split in ([table], [table.slice(0, 17), table.slice(17, 30), table.slice(47)]):
        bounds = blocks_then_bounds(split, RuleAugmentBatches, config, selection)
        worker = RuleAugmentBatches(config, Selection(3, "rule_augment", bounds))
        units = [
            (part.column("source_line")[row].as_py(), unit)
            for part in split
            for row, unit in worker.chosen_units(part)
        ]
        chosen.append(sorted(units))
    assert chosen[0] == chosen[1]
    tasks = [rows[line]["task"] for line, _ in chosen[0]]
    assert tasks.count("qa") == 7
    # chat has 20 records; rate 0.5 samples some of them, and all their 2 variants are taken.
    assert 0 < tasks.count("chat") < 40 and tasks.count("chat") % 2 == 0


def test_no_budget_takes_every_sampled_unit_and_unlisted_strata_take_none():
    rows = [record(line, task="qa" if line % 2 else "chat") for line in range(10)]
    all_qa = RuleAugmentConfig(methods=("swap",), budget={"qa|en": 100})
    worker = RuleAugmentBatches(all_qa, Selection(0, "rule_augment", {"qa|en": 1 << 64}))
    assert [row for row, _ in worker.chosen_units(rows_to_table(rows))] == [1, 3, 5, 7, 9]
    free = RuleAugmentBatches(RuleAugmentConfig(methods=("swap",)), Selection(0, "rule_augment"))
    assert len(free.chosen_units(rows_to_table(rows))) == 10
