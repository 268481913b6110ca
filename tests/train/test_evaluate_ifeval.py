"""``instructflow eval ifeval``: IFEval's prompt- and instruction-level accuracy, strict and
loose, per kind and for seen and held-out kinds, added up from per-row results (no Ray); the
prompts checked before Ray starts; both input shapes answered by a tiny model; and one run
end to end on local Ray."""

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
from pipeline.schema import make_record, message, rows_to_table
from train.evaluate_ifeval import (
    RESULT_SCHEMA,
    IFEvalResponder,
    PromptsError,
    Totals,
    check_constraints,
    prompt_source,
    prompts_of,
    result_table,
)
from train.rewards.ifeval import KINDS

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def verdict(kind: str, strict: bool, loose: bool, held_out: bool = False) -> dict:
    return {"kind": kind, "held_out": held_out, "strict": strict, "loose": loose}


def test_prompt_and_instruction_level_accuracy_per_subset_and_kind():
    totals = Totals()
    comma, lower, quote = (
        "punctuation:no_comma",
        "change_case:english_lowercase",
        "startend:quotation",
    )
    totals.add([verdict(comma, True, True), verdict(lower, True, True)])
    totals.add([verdict(comma, False, False), verdict(lower, True, True)])
    totals.add([verdict(quote, False, True, held_out=True)])
    totals.add([verdict(comma, True, True), verdict(quote, True, True, held_out=True)])  # mixed
    totals.skip("no_constraints")
    report = totals.metrics()
    assert report["rows"] == 5 and report["skipped"]["no_constraints"] == 1
    assert report["mixed_prompts"] == 1
    assert report["all"] == {
        "prompts": 4,
        "instructions": 7,
        "prompt_strict": 2 / 4,
        "prompt_loose": 3 / 4,
        "instruction_strict": 5 / 7,
        "instruction_loose": 6 / 7,
    }
    # The mixed prompt is in neither subset at prompt level, in both at instruction level.
    assert (report["seen"]["prompts"], report["held_out"]["prompts"]) == (2, 1)
    assert report["seen"]["prompt_strict"] == 0.5
    assert report["held_out"]["prompt_strict"] == 0 and report["held_out"]["prompt_loose"] == 1
    assert (report["seen"]["instructions"], report["held_out"]["instructions"]) == (5, 2)
    assert report["held_out"]["instruction_strict"] == 0.5
    assert report["seen"]["instructions"] + report["held_out"]["instructions"] == 7
    assert report["kinds"][comma] == {"count": 3, "held_out": 0, "strict": 2 / 3, "loose": 2 / 3}
    assert report["kinds"][quote]["held_out"] == 2
    assert sum(kind["count"] for kind in report["kinds"].values()) == 7


def test_an_empty_subset_has_no_accuracy_and_skip_reasons_are_fixed():
    totals = Totals()
    totals.add([verdict("punctuation:no_comma", True, True)])
    assert totals.metrics()["held_out"]["prompt_strict"] is None
    with pytest.raises(ValueError, match="skip reason 'odd'"):
        totals.skip("odd")


def test_result_rows_add_up_as_the_driver_adds_batches():
    rows = [
        canonical("Say hi. Do not use any commas.", [("punctuation:no_comma", {}, False)]),
        canonical(
            "Quote it.", [("startend:quotation", {}, True), ("punctuation:no_comma", {}, False)]
        ),
        canonical("No constraint here.", []),
    ]
    prompts = prompts_of(rows, "canonical")
    assert [prompt.skipped for prompt in prompts] == ["", "", "no_constraints"]
    table = result_table(prompts, {0: "hi there", 1: '"a, b"'})
    assert table.schema == RESULT_SCHEMA
    assert table.column("strict").to_pylist() == [True, False, None]
    totals = Totals()
    totals.add_batch(table.slice(0, 2))
    totals.add_batch(table.slice(2))
    report = totals.metrics()
    assert report["rows"] == 3 and report["mixed_prompts"] == 1
    assert report["all"]["instruction_strict"] == 2 / 3
    assert json.loads(table.column("results")[1].as_py())[0]["strict_details"] == {
        "first": '"',
        "last": '"',
    }


def test_a_record_without_a_user_turn_to_answer_is_skipped():
    row = canonical("x", [("punctuation:no_comma", {}, False)])
    row["messages"] = [message("assistant", "only a reply")]
    assert prompts_of([row], "canonical")[0].skipped == "no_user_turn"


def canonical(prompt: str, constraints: list[tuple[str, dict, bool]], reply: str = "ok") -> dict:
    row = make_record(
        messages=[message("user", prompt), message("assistant", reply)],
        source_file="prompts.jsonl",
        source_format="messages",
        source_line=1,
    )
    row["constraints"] = [
        {"kind": kind, "args": json.dumps(args), "held_out": held_out}
        for kind, args, held_out in constraints
    ]
    return row


def write_ifeval_jsonl(path: Path, rows: list[dict] | None = None) -> str:
    rows = rows or [
        {
            "key": 1000,
            "prompt": "Write a haiku about rain. Do not use any commas.",
            "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}],
        },
        {
            "key": 1001,
            "prompt": "Describe a cat in lowercase, ending with 'Any questions?'",
            "instruction_id_list": ["change_case:english_lowercase", "startend:end_checker"],
            "kwargs": [{}, {"end_phrase": "Any questions?"}],
        },
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_the_prompts_are_checked_before_ray(tmp_path):
    with pytest.raises(PromptsError, match="no such file"):
        prompt_source(str(tmp_path / "missing.parquet"))
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(PromptsError, match=r"bad.parquet: columns \['text'\]; expected"):
        prompt_source(str(tmp_path / "bad.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PromptsError, match="without .parquet files"):
        prompt_source(str(tmp_path / "empty"))
    (tmp_path / "run" / "data" / "test").mkdir(parents=True)
    (tmp_path / "run" / "manifest.json").write_text("{}")
    with pytest.raises(PromptsError, match="a data engine run; pass one of its splits: .*/test"):
        prompt_source(str(tmp_path / "run"))
    source = prompt_source(write_ifeval_jsonl(tmp_path / "input_data.jsonl"))
    assert (source.shape, source.encoding) == ("ifeval", "jsonl")
    assert check_constraints(source)["punctuation:no_comma"] == 1
    (tmp_path / "broken.jsonl").write_text(
        '{"prompt": "p", "instruction_id_list": [], "kwargs": []}\n{'
    )
    with pytest.raises(PromptsError, match="broken.jsonl: line 2: not JSON Lines"):
        check_constraints(prompt_source(str(tmp_path / "broken.jsonl")))


def ifeval_row(kinds: list[str], kwargs: list[dict]) -> dict:
    return {"prompt": "p", "instruction_id_list": kinds, "kwargs": kwargs}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            ifeval_row(["a:b", "punctuation:no_comma", "c:d"], [{}, {}, {}]),
            r"p.jsonl: unknown constraint kinds 'a:b' \(line 1\), 'c:d' \(line 1\); known: "
            + ", ".join(KINDS),
        ),
        (
            ifeval_row(["length_constraints:number_words"], [{"num_words": 5}]),
            "line 1: .*relation",
        ),
        (ifeval_row(["punctuation:no_comma"], [{}, {}]), "one kwargs object per kind"),
        (ifeval_row([], []), "no row has constraints"),
    ],
)
def test_bad_constraints_are_named_with_their_line(tmp_path, row, message):
    source = prompt_source(write_ifeval_jsonl(tmp_path / "p.jsonl", [row]))
    with pytest.raises(PromptsError, match=message):
        check_constraints(source)


def test_ifeval_parquet_with_every_kinds_keys_null_where_unused(tmp_path):
    # The Hugging Face copy of IFEval: kwargs structs carry every key, null where unused.
    kwargs = [{"end_phrase": None, "num_words": None}, {"end_phrase": "Bye.", "num_words": None}]
    table = pa.table(
        {
            "key": [1],
            "prompt": ["Say bye."],
            "instruction_id_list": [["punctuation:no_comma", "startend:end_checker"]],
            "kwargs": [kwargs],
        }
    )
    pq.write_table(table, tmp_path / "ifeval.parquet")
    source = prompt_source(str(tmp_path / "ifeval.parquet"))
    assert source.shape == "ifeval"
    assert sum(check_constraints(source).values()) == 2


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A tiny Llama saved with the instructflow.json every checkpoint carries (no training:
    resolve_checkpoint and load_for_generation only read that file's keys)."""
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


def test_ifeval_jsonl_lines_are_answered_and_scored(checkpoint, tmp_path):
    """The actor on IFEval's lines as Ray Data's read_text hands them over, without Ray."""
    lines = Path(write_ifeval_jsonl(tmp_path / "input_data.jsonl")).read_text().splitlines()
    responder = IFEvalResponder(checkpoint, "ifeval", "jsonl", max_new_tokens=4, use_gpu=False)
    table = responder(pa.table({"text": lines}))
    assert table.column("id").to_pylist() == ["1000", "1001"]
    assert [len(json.loads(results)) for results in table.column("results").to_pylist()] == [1, 2]
    assert table.column("prompt")[0].as_py().startswith("Write a haiku")


@pytest.mark.slow
def test_eval_ifeval_end_to_end(ray_session, checkpoint, tmp_path):
    kinds = [
        ("punctuation:no_comma", {}, False),
        ("change_case:english_lowercase", {}, False),
        ("startend:end_checker", {"end_phrase": "Any questions?"}, True),
        ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, True),
    ]
    rows = [
        canonical(f"Tell me about rain, take {index}.", [kinds[index % 4], kinds[(index + 1) % 4]])
        for index in range(6)
    ] + [canonical("Nothing asked.", [])]
    prompts = tmp_path / "prompts" / "data" / "test"
    prompts.mkdir(parents=True)
    pq.write_table(rows_to_table(rows), prompts / "part-00000-of-00001.parquet")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["eval", "ifeval", checkpoint, "--prompts", str(prompts), "--output"]
            + [str(tmp_path / "eval"), "--max-new-tokens", "4"]
            + ["--no-progress"]
        )
    assert code == 0
    report = json.loads((tmp_path / "eval" / "ifeval.json").read_text())
    assert report["rows"] == 7 and report["skipped"]["no_constraints"] == 1
    assert report["all"]["prompts"] == 6 and report["all"]["instructions"] == 12
    seen, held_out = report["seen"], report["held_out"]
    assert seen["prompts"] + held_out["prompts"] + report["mixed_prompts"] == 6
    assert seen["instructions"] + held_out["instructions"] == 12
    assert set(report["kinds"]) == {kind for kind, _, _ in kinds}
    assert sum(kind["count"] for kind in report["kinds"].values()) == 12
    assert report["kinds"]["startend:end_checker"]["held_out"] == 3
    responses = pq.read_table(tmp_path / "eval" / "responses.parquet")
    assert responses.column("id").to_pylist() == [row["id"] for row in rows]  # input order
    scored = responses.to_pylist()[:6]
    for row in scored:
        assert row["strict"] == all(item["strict"] for item in json.loads(row["results"]))
    assert sum(row["strict"] for row in scored) / 6 == report["all"]["prompt_strict"]
    assert responses.column("skipped").to_pylist()[6] == "no_constraints"
    assert "prompt" in printed.getvalue() and "held out: all" in printed.getvalue()
