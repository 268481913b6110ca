"""``instructflow bench augment`` on a handful of sentences: the result rows are complete.
No timing assertions; the tiny MarianMT is built from a config, nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.augment import bench_augment, wants_gpu
from ops.cli import build_parser


def test_bench_augment_times_the_tiny_model(tmp_path: Path, capsys) -> None:
    results = bench_augment(
        sentences=6, batch_size=4, workdir=str(tmp_path), json_out=str(tmp_path / "r.json")
    )

    assert json.loads((tmp_path / "r.json").read_text()) == results
    (row,) = results
    assert (row["name"], row["device"], row["sentences"], row["batch_size"]) == (
        "tiny-marian",
        "cpu",
        6,
        4,
    )
    assert row["sentences_per_second"] > 0 and row["seconds"] > 0 and row["threads"] >= 1
    assert row["plain_sentences_per_second"] > 0 and row["over_plain"] > 0
    assert "tiny-marian" in capsys.readouterr().out


def test_devices() -> None:
    assert wants_gpu("cpu") is False
    import torch

    if torch.cuda.is_available():
        assert wants_gpu("auto") and wants_gpu("cuda")
    else:
        assert wants_gpu("auto") is False
        with pytest.raises(ValueError, match="sees no CUDA device"):
            wants_gpu("cuda")


def test_cli_wires_bench_augment() -> None:
    args = build_parser().parse_args(
        ["bench", "augment", "--sentences", "64", "--batch-size", "8", "--device", "cpu"]
    )
    assert (args.sentences, args.batch_size, args.device, args.model) == (64, 8, "cpu", None)
    args = build_parser().parse_args(["bench", "augment"])
    assert (args.sentences, args.batch_size, args.device) == (512, 32, "auto")
