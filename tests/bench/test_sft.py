"""``instructflow bench sft`` at a tiny size, plain loops only (Ray Train is covered by
tests/train): the report is complete, packing removes padding without losing a token, and
the loop counts exactly the tokens of the batches ``global_batches`` gives it. No timing
assertions beyond "positive"."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from bench.sft import (
    SFTBenchSettings,
    TableShard,
    bench_records,
    bench_sft,
    check_settings,
    print_report,
    ray_windows,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Replies up to ~220 tokens in rows of 512: packing fills rows, unpacked micro-batches pad
# to their longest reply.
TINY = dict(
    records=96,
    size="tiny",
    vocab_size=512,
    max_length=512,
    min_words=5,
    max_words=200,
    micro_batch_size=2,
    steps=8,
    log_every_steps=2,
    warmup_steps=2,
    ray=False,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("bench-sft")
    settings = SFTBenchSettings(workdir=workdir, **TINY)
    result = bench_sft(settings, json_out=str(workdir / "result.json"))
    assert json.loads((workdir / "result.json").read_text()) == result
    return result


def test_the_plain_loops_report_real_numbers(report: dict, capsys) -> None:
    for layout in ("packed", "unpacked"):
        row = report["plain"][layout]
        assert row["tokens_per_s"] > 0 and row["seconds"] > 0 and row["wall_seconds"] > 0
        assert (row["steps"], row["timed_steps"], len(row["windows"])) == (8, 6, 4)
        assert row["tokens"] == sum(w["tokens"] for w in row["windows"][1:])
        assert all(0 < w["tokens"] <= w["slots"] for w in row["windows"])
    expected = (
        report["plain"]["packed"]["tokens_per_s"] / report["plain"]["unpacked"]["tokens_per_s"]
    )
    assert report["packed_over_unpacked"] == pytest.approx(expected, abs=1e-3)
    assert report["machine"]["plain_torch_threads"] == 2
    assert report["gpu"] == {"skipped": "not asked for (--device cuda runs it)"}
    assert "ray" not in report and report["model"]["params"] > 0
    print_report(report)  # bench_sft printed it during the fixture; print it again here
    printed = capsys.readouterr().out
    assert "Packed vs unpacked" in printed and "Ray Train: not run" in printed


def test_packing_removes_padding_and_keeps_every_token(report: dict) -> None:
    packed, unpacked = report["data"]["packed"], report["data"]["unpacked"]
    # The same examples either way: every real and supervised token, in fewer rows.
    for key in ("tokens", "supervised", "records", "truncated"):
        assert packed[key] == unpacked[key], key
    assert packed["records"] == unpacked["rows"] == 96 and packed["rows"] < unpacked["rows"]
    assert packed["stored_padding"] > 0 and unpacked["stored_padding"] == 0
    # Padding the model saw in training: packed rows are full, unpacked micro-batches are not.
    plain = report["plain"]
    assert plain["packed"]["padding_fraction"] < plain["unpacked"]["padding_fraction"]
    for window in plain["packed"]["windows"]:  # packed slots: exactly micro-batch x max_length
        assert window["slots"] == 2 * 2 * 512


def test_the_loop_counts_the_tokens_of_the_global_batches(report: dict) -> None:
    """The packed loop's tokens per window are those of the rows ``global_batches`` hands
    out for those steps, from the same rows the loop trained on."""
    import pyarrow.parquet as pq

    from bench.sft import recipe_dict, train_plan
    from train.config import SFTRecipe
    from train.sft import global_batches
    from train.sft_rows import load_tokenizer, training_rows

    workdir = Path(report["settings"]["workdir"])
    settings = SFTBenchSettings(workdir=workdir, **TINY)
    model = str(workdir / "model-tiny")
    recipe = SFTRecipe.model_validate(
        recipe_dict(settings, workdir / "data", model, workdir / "unused")
    )
    tokenizer = load_tokenizer(model)
    records = pq.read_table(workdir / "data" / "data" / "train").to_pylist()
    rows = training_rows(records, tokenizer, "instruction_output", 512, "causal", True)
    plan = train_plan(recipe, rows, tokenizer.pad_token_id, model)
    per_step = []
    for step, batch in global_batches(TableShard(rows), plan, recipe, 0):
        if step == 8:
            break
        per_step.append(int(batch["tokens"].sum()))
    counted = [w["tokens"] for w in report["plain"]["packed"]["windows"]]
    assert counted == [sum(per_step[i : i + 2]) for i in range(0, 8, 2)]


def test_records_are_seeded_and_mixed_in_length(tmp_path: Path) -> None:
    settings = SFTBenchSettings(workdir=tmp_path, records=200, min_words=10, max_words=400)
    first, again = bench_records(settings), bench_records(settings)
    assert [r["id"] for r in first] == [r["id"] for r in again]
    other = bench_records(replace(settings, seed=1))
    assert [r["id"] for r in other] != [r["id"] for r in first]
    lengths = [len(r["messages"][1]["content"].split()) for r in first]
    assert min(lengths) >= 10 and max(lengths) <= 400
    assert min(lengths) < 20 and max(lengths) > 200  # both ends of the log-uniform range


def test_ray_windows_drop_the_warm_up_and_take_the_harmonic_mean(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    lines = [
        {"step": 10, "train/loss": 5.0, "train/tokens_per_s": 100.0},
        {"step": 20, "train/loss": 4.0, "train/tokens_per_s": 1000.0},
        {"step": 20, "validation/loss": 4.5},
        {"step": 30, "train/loss": 3.0, "train/tokens_per_s": 3000.0},
    ]
    metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = ray_windows(metrics, warmup_steps=10)
    assert result["tokens_per_s"] == pytest.approx(1500.0)  # 2 / (1/1000 + 1/3000)
    assert (result["steps"], result["timed_steps"], len(result["windows"])) == (30, 20, 3)
    with pytest.raises(ValueError, match="no tokens/s window after step 30"):
        ray_windows(metrics, warmup_steps=30)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"records": 5}, "--records must be at least 32"),
        ({"size": "huge"}, "--size must be one of tiny, small, 0.5b"),
        ({"device": "tpu"}, "--device must be one of cpu, cuda"),
        ({"cpus": 0}, "--cpus must be at least 1"),
        ({"prompt_format": "nope"}, "--prompt-format"),
        ({"min_words": 50, "max_words": 10}, "--min-words"),
        ({"peak_flops": 0}, "--peak-flops must be positive"),
        ({"warmup_steps": 15}, "--warmup-steps must be a positive multiple"),
        ({"warmup_steps": 0}, "--warmup-steps must be a positive multiple"),
        ({"steps": 25}, "--steps must be a multiple of --log-every-steps"),
        ({"steps": 20}, "--steps must be a multiple of --log-every-steps"),
        ({"gpu_steps": 10}, "--gpu-steps must be"),
    ],
)
def test_settings_are_checked_before_anything_runs(
    tmp_path: Path, change: dict, message: str
) -> None:
    check_settings(SFTBenchSettings(workdir=tmp_path))  # the defaults pass
    with pytest.raises(ValueError, match=message):
        check_settings(replace(SFTBenchSettings(workdir=tmp_path), **change))
    with pytest.raises(ValueError, match=message):
        bench_sft(replace(SFTBenchSettings(workdir=tmp_path / "never"), **change))
    assert not (tmp_path / "never").exists()
