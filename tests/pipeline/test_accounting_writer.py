"""Summaries and shard writing are independent of batching and order: pure, no Ray."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.accounting import (
    ConservationError,
    Summary,
    check_conservation,
    summarize_batch,
)
from pipeline.checkpoint import RunDirectory
from pipeline.schema import make_record, message, quarantine_row, rows_to_table
from pipeline.writer import (
    SHARD_KEY,
    _ray_partition_function,
    assign_shards,
    routed_shard_keys,
    shard_counts,
    write_shard,
)


def corpus() -> pa.Table:
    rows = []
    for index in range(60):
        row = make_record(
            messages=[
                message("user", f"Question number {index}?"),
                message("assistant", f"Answer {index}."),
            ],
            source_file=f"/data/part-{index % 3}.jsonl",
            source_format="alpaca",
            source_line=index + 1,
            language="en" if index % 4 else "zh",
            task="qa",
        )
        if index % 5 == 0:
            row["drop_reason"], row["drop_detail"] = "filter.response_too_short", '{"min": 99}'
        rows.append(row)
    rows.append(
        quarantine_row(
            source_file="/data/part-0.jsonl",
            source_line=999,
            source_format="jsonl",
            reason="read.invalid_json",
            detail="truncated",
            raw='{"instr',
        )
    )
    return rows_to_table(rows)


def summary_of(batches: list[pa.Table]) -> Summary:
    total = Summary()
    for batch in batches:
        total.merge(Summary.from_json(summarize_batch(batch).column("summary")[0].as_py()))
    return total


def test_summary_is_the_same_however_the_rows_are_batched():
    table = corpus()
    whole = summary_of([table])
    split = summary_of([table.slice(0, 17), table.slice(17, 30), table.slice(47)])
    reversed_rows = summary_of([table.take(list(range(table.num_rows))[::-1])])
    assert whole.to_json() == split.to_json() == reversed_rows.to_json()
    assert dict(whole.rows) == {"output": 48, "rejects": 12, "quarantine": 1}
    assert whole.reasons == {"filter.response_too_short": 12, "read.invalid_json": 1}
    assert whole.per_file["/data/part-0.jsonl"] == 21
    assert whole.mix["language"] == {"en": 36, "zh": 12}


def test_conservation_names_the_file_that_lost_records():
    summary = summary_of([corpus()])
    read = {"/data/part-0.jsonl": 21, "/data/part-1.jsonl": 20, "/data/part-2.jsonl": 20}
    written = {"output": 48, "rejects": 12, "quarantine": 1}
    check_conservation(read, summary, written)
    with pytest.raises(ConservationError, match="part-1.jsonl: read 21, accounted 20"):
        check_conservation({**read, "/data/part-1.jsonl": 21}, summary, written)
    with pytest.raises(ConservationError, match="rejects: 12 rows processed, 11 written"):
        check_conservation(read, summary, {**written, "rejects": 11})


def test_shard_counts_follow_target_size_and_output_always_has_a_shard():
    assert shard_counts({"output": 250, "rejects": 10}, {"output": 5, "rejects": 1}, 100) == {
        "output": 3,
        "rejects": 1,
        "quarantine": 0,
    }
    assert shard_counts({}, {}, 100) == {"output": 1, "rejects": 0, "quarantine": 0}


def staged(root: Path) -> Path:
    """Where the writer puts shards until the run commits them."""
    return Path(RunDirectory(str(root)).staged_shards)


def write_all(
    table: pa.Table, root, shards: dict[str, int], routed: dict[str, str] | None = None
) -> dict[str, str]:
    keyed = assign_shards(table, shards, routed)
    digests = {}
    for key in sorted(set(keyed.column(SHARD_KEY).to_pylist())):
        group = keyed.filter(pa.compute.equal(keyed.column(SHARD_KEY), key))
        result = write_shard(
            group,
            run=RunDirectory(str(root)),
            shards_per_fate=shards,
            compression="zstd",
            row_group_rows=1000,
        ).to_pylist()[0]
        digests[result["path"]] = result["sha256"]
    return digests


def test_shards_are_byte_identical_whatever_the_input_order(tmp_path):
    table = corpus()
    shards = shard_counts(
        {"output": 300, "rejects": 50, "quarantine": 5},
        {"output": 1, "rejects": 1, "quarantine": 1},
        100,
    )
    first = write_all(table, tmp_path / "a", shards)
    second = write_all(table.take(list(range(table.num_rows))[::-1]), tmp_path / "b", shards)
    assert first == second
    assert set(first) >= {
        "data/part-00000-of-00003.parquet",
        "quarantine/part-00000-of-00001.parquet",
    }
    rejects = pq.read_table(staged(tmp_path / "a") / "rejects" / "part-00000-of-00001.parquet")
    assert rejects.column_names[-2:] == ["drop_reason", "drop_detail"]
    assert set(rejects.column("drop_reason").to_pylist()) == {"filter.response_too_short"}
    quarantine = pq.read_table(
        staged(tmp_path / "a") / "quarantine" / "part-00000-of-00001.parquet"
    ).to_pylist()
    assert quarantine[0]["source_line"] == 999 and quarantine[0]["raw"] == '{"instr'
    data = pq.read_table(staged(tmp_path / "a") / "data")
    assert "drop_reason" not in data.column_names and data.num_rows == 48


def test_routed_keys_give_every_shard_a_partition_of_its_own(tmp_path):
    shards = {"output": 30, "output/validation": 4, "rejects": 6, "quarantine": 1}
    routed = routed_shard_keys(shards)
    assert routed == routed_shard_keys(shards)  # deterministic
    assert len(routed) == 41 and all(key.startswith(f"{group}#") for group, key in routed.items())
    partitions = _ray_partition_function()(list(routed.values()), len(routed))
    assert sorted(int(p) for p in partitions) == list(range(41))
    # The salt only routes: the files are the ones plain keys give, byte for byte.
    table = corpus()
    small = {"output": 3, "rejects": 1, "quarantine": 1}
    plain = write_all(table, tmp_path / "plain", small)
    assert write_all(table, tmp_path / "routed", small, routed_shard_keys(small)) == plain


def test_ray_groupby_gives_each_routed_shard_its_own_reduce_task(ray_session):
    # With the plain part/shard keys, 15 groups met in 11 tasks here.
    import ray

    routed = routed_shard_keys({"output": 12, "rejects": 3})
    rows = pa.table({SHARD_KEY: [key for key in routed.values() for _ in range(20)]})

    def task_of(group: pa.Table) -> pa.Table:
        task = ray.get_runtime_context().get_task_id()
        return pa.table({"task": [task], "groups": [len(set(group[SHARD_KEY].to_pylist()))]})

    dataset = ray.data.from_arrow(rows).repartition(4)
    done = dataset.groupby(SHARD_KEY, num_partitions=len(routed)).map_groups(
        task_of, batch_format="pyarrow"
    )
    tasks = [row["task"] for row in done.iter_rows()]
    assert len(tasks) == len(routed) == len(set(tasks))
