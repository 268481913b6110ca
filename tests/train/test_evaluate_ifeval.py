"""``instructflow eval ifeval``: IFEval's prompt- and instruction-level accuracy, strict and
loose, per kind and for seen and held-out kinds; input checked before Ray starts; and one run
end to end on local Ray with a tiny model, on both input shapes."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ops.cli import main
from train.evaluate_ifeval import PromptsError, Totals, check_sample, prompt_format, score_row

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NO_COMMA = {"kind": "punctuation:no_comma", "args": {}, "held_out": False}
LOWER = {"kind": "change_case:english_lowercase", "args": {}, "held_out": False}
QUOTED = {"kind": "startend:quotation", "args": {}, "held_out": True}


def test_prompt_and_instruction_level_accuracy_strict_and_loose():
    totals = Totals()
    # Followed both; broke one; held out and followed only loosely (a preface line).
    totals.add(score_row([NO_COMMA, LOWER], "all lowercase and no commas here", ""))
    totals.add(score_row([NO_COMMA, LOWER], "Hello, world", ""))
    totals.add(score_row([QUOTED], 'Sure:\n"a quoted answer"', ""))
    totals.add([])  # a prompt without constraints is counted apart
    report = totals.metrics()
    assert report["all"]["prompts"] == 3 and report["all"]["instructions"] == 5
    assert report["all"]["prompt_strict"] == pytest.approx(1 / 3)
    assert report["all"]["prompt_loose"] == pytest.approx(2 / 3)
    assert report["all"]["instruction_strict"] == pytest.approx(2 / 5)
    assert report["seen"]["prompts"] == 2 and report["seen"]["prompt_strict"] == 0.5
    assert report["held_out"]["prompt_strict"] == 0 and report["held_out"]["prompt_loose"] == 1
    assert report["kinds"]["startend:quotation"]["held_out"] is True
    assert report["kinds"]["punctuation:no_comma"] == {
        "count": 2,
        "held_out": False,
        "strict": 0.5,
        "loose": 0.5,
        "errors": 0,
    }
    assert report["unconstrained_prompts"] == 1


def test_a_malformed_constraint_is_an_error_not_a_pass():
    results = score_row(
        [{"kind": "punctuation:no_comma", "args": {"n": 1}, "held_out": False}], "x", ""
    )
    assert results[0]["strict"] is False and results[0]["error"]


def ifeval_rows(path: Path) -> str:
    rows = [
        {
            "prompt": "Write a haiku about rain. Do not use any commas.",
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
        },
        {
            "prompt": "Describe a cat in lowercase, ending with 'Any questions?'",
            "instruction_id_list": ["change_case:english_lowercase", "startend:end_checker"],
            "kwargs": [{}, {"end_phrase": "Any questions?"}],
        },
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_inputs_are_checked_before_ray(tmp_path):
    with pytest.raises(PromptsError, match="no such file"):
        prompt_format(str(tmp_path / "missing.parquet"))
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(PromptsError, match=r"columns \['text'\]; expected"):
        prompt_format(str(tmp_path / "bad.parquet"))
    path = ifeval_rows(tmp_path / "input_data.jsonl")
    assert prompt_format(path) == ("ifeval", "json")
    check_sample(path, "ifeval", "json")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(
        json.dumps({"prompt": "p", "instruction_id_list": ["a:b"], "kwargs": [{}]}) + "\n"
    )
    with pytest.raises(PromptsError, match="unknown constraint kind 'a:b'"):
        check_sample(str(unknown), "ifeval", "json")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny Llama saved with the instructflow.json every checkpoint carries."""
    from tests.train.sft_corpus import write_pipeline_output
    from train.sft import CHECKPOINT_META
    from train.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("ifeval")
    path = save_tiny_model(
        str(write_pipeline_output(root / "out")), str(root / "m"), vocab_size=300
    )
    meta = {
        "method": "sft",
        "kind": "causal",
        "prompt_format": "chat",
        "max_length": 64,
        "base_model": path,
        "lora": False,
        "step": 0,
    }
    (Path(path) / CHECKPOINT_META).write_text(json.dumps(meta))
    return path


@pytest.mark.slow
def test_eval_ifeval_end_to_end_on_both_shapes(ray_session, checkpoint, tmp_path):
    from tests.train.rl_corpus import write_rl_output

    records = write_rl_output(tmp_path / "rl", train=4, validation=6) / "data" / "validation"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            [
                "eval",
                "ifeval",
                checkpoint,
                "--prompts",
                str(records),
                "--output",
                str(tmp_path / "eval"),
                "--max-new-tokens",
                "8",
                "--no-progress",
            ]
        )
    assert code == 0
    report = json.loads((tmp_path / "eval" / "ifeval.json").read_text())
    assert report["all"]["prompts"] == 6 and report["seen"]["prompts"] == 6
    assert set(report["kinds"]) == {"change_case:english_lowercase", "startend:end_checker"}
    assert sum(kind["count"] for kind in report["kinds"].values()) == 6
    responses = pq.read_table(tmp_path / "eval" / "responses").to_pylist()
    assert len(responses) == 6 and all(json.loads(r["results"]) for r in responses)
    assert "prompt strict" in printed.getvalue()
    # Google IFEval's own file, JSONL.
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "eval",
                    "ifeval",
                    checkpoint,
                    "--prompts",
                    ifeval_rows(tmp_path / "i.jsonl"),
                    "--output",
                    str(tmp_path / "eval2"),
                    "--max-new-tokens",
                    "8",
                ]
            )
            == 0
        )
    report = json.loads((tmp_path / "eval2" / "ifeval.json").read_text())
    assert report["all"]["prompts"] == 2 and report["all"]["instructions"] == 3
