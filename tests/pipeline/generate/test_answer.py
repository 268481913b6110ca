"""The ``answer`` stage: which records it answers, the rows it creates and the records it
replaces, as pure functions on hand-made completions; then on the session's Ray against the
scripted HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow as pa
import pytest
from pydantic import ValidationError

from pipeline.generate.answer import (
    BACKEND_ERROR,
    EMPTY_GENERATION,
    REPLACED,
    TRUNCATED,
    AnswerConfig,
    answer_jobs,
    answered_rows,
    prompt_to_answer,
    replaced_by_answers,
)
from pipeline.generate.backend import Completion, decode_request, encode_completion
from pipeline.generate.created import COMPLETION_COLUMN, REQUEST_COLUMN
from pipeline.schema import make_record, message, rows_to_table

BACKEND = {"kind": "openai", "model": "scripted", "base_url": "http://127.0.0.1:9/v1"}


def config(**options) -> AnswerConfig:
    return AnswerConfig.model_validate({"backend": BACKEND, **options})


def record(*turns: tuple[str, str], line: int = 0, **fields) -> dict:
    return make_record(
        messages=[message(role, content) for role, content in turns],
        source_file="in.jsonl",
        source_format="messages",
        source_line=line,
        task="qa",
        language="en",
        **fields,
    )


def with_completions(jobs: pa.Table, reply: Callable[[tuple], Completion | str]) -> pa.Table:
    completions = []
    for text in jobs.column(REQUEST_COLUMN).to_pylist():
        request = decode_request(text)
        made = reply(request)
        if isinstance(made, str):
            made = Completion(texts=(made,), finish_reasons=("stop",))
        completions.append(encode_completion(made))
    return jobs.append_column(COMPLETION_COLUMN, pa.array(completions, pa.string()))


def echo(request) -> str:
    return f"Answer {request.params.seed % 1000} to: {request.messages[-1]['content']}"


def test_an_open_user_turn_is_answered_and_a_reply_only_with_overwrite():
    user, reply = message("user", "Explain tides."), message("assistant", "They move.")
    empty = message("assistant", "  ")
    assert prompt_to_answer([user], overwrite=False) == [user]
    assert prompt_to_answer([user, empty], overwrite=False) == [user]
    assert prompt_to_answer([user, reply], overwrite=False) is None
    assert prompt_to_answer([user, reply], overwrite=True) == [user]
    later = message("user", "And dunes?")
    assert prompt_to_answer([user, reply, later], overwrite=False) == [user, reply, later]
    assert prompt_to_answer([user, reply, later, reply], overwrite=True) == [user, reply, later]
    assert prompt_to_answer([message("user", " ")], overwrite=True) is None
    tool = [user, message("tool_call", "{}"), message("tool", "42"), reply]
    assert prompt_to_answer(tool, overwrite=True) is None


def test_n_answers_need_sampling():
    with pytest.raises(ValidationError, match="temperature > 0"):
        config(n=3)
    assert config(n=3, temperature=0.7).n == 3


def test_each_answer_is_a_created_row_and_the_record_is_replaced():
    question = record(("user", "Explain tides."), context="For sailors.", line=4)
    done = record(("user", "Hi."), ("assistant", "Hello."), line=5)
    pair = record(("user", "Q"), ("assistant", "A"), line=6, rejected=[message("assistant", "B")])
    batch = rows_to_table([question, done, pair])
    settings = config(n=2, temperature=0.7, system_prompt="Be brief.")
    jobs = answer_jobs(batch, seed=1, config=settings)
    assert jobs.num_rows == 2
    request = decode_request(jobs.column(REQUEST_COLUMN)[0].as_py())
    assert request.messages == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Explain tides.\n\nFor sailors."},
    )
    assert request.params.temperature == 0.7 and request.params.max_tokens == 1024
    made = answered_rows(with_completions(jobs, echo), config=settings).to_pylist()
    assert [json.loads(row["augmentation"])["sample"] for row in made] == [0, 1]
    assert made[0]["messages"][1]["content"] != made[1]["messages"][1]["content"]
    for row in made:
        assert (
            row["drop_reason"] is None and row["system"] == "" and row["context"] == "For sailors."
        )
        assert [turn["role"] for turn in row["messages"]] == ["user", "assistant"]
        assert row["parent_id"] == question["id"] and row["source_line"] == 4
        generation = json.loads(row["meta"])["generation"]
        assert generation["stage"] == "answer" and generation["system_prompt"] is True
    marked = replaced_by_answers(batch, config=settings).to_pylist()
    assert [row["drop_reason"] for row in marked] == [REPLACED, None, None]
    assert json.loads(marked[0]["drop_detail"]) == {"answers": 2}


def test_overwrite_answers_the_records_with_a_reply_again():
    done = record(("user", "Hi."), ("assistant", "Hello."))
    settings = config(overwrite=True)
    jobs = answer_jobs(rows_to_table([done]), seed=1, config=settings)
    (row,) = answered_rows(
        with_completions(jobs, lambda _: "Hey there."), config=settings
    ).to_pylist()
    assert [turn["content"] for turn in row["messages"]] == ["Hi.", "Hey there."]
    assert (
        replaced_by_answers(rows_to_table([done]), config=settings)["drop_reason"][0].as_py()
        == REPLACED
    )


def test_an_answer_of_a_created_instruction_names_the_root_and_the_instruction():
    root = record(("user", "description"))
    made_by_describe = {
        **record(("user", "Write a haiku."), line=0),
        "parent_id": root["id"],
        "augmentation": json.dumps({"stage": "describe_to_instruction", "sample": 0}),
        "meta": json.dumps({"generation": {"stage": "describe_to_instruction"}}),
    }
    settings = config()
    jobs = answer_jobs(rows_to_table([made_by_describe]), seed=1, config=settings)
    (row,) = answered_rows(with_completions(jobs, echo), config=settings).to_pylist()
    assert row["parent_id"] == root["id"]
    augmentation = json.loads(row["augmentation"])
    assert (
        augmentation["from_id"] == made_by_describe["id"] and augmentation["root_id"] == root["id"]
    )
    previous = json.loads(row["meta"])["generation"]["previous"]
    assert previous == {"stage": "describe_to_instruction"}


@pytest.mark.parametrize(
    ("completion", "reason"),
    [
        (Completion(error="HTTP 429", attempts=6), BACKEND_ERROR),
        (Completion(texts=("  \n",), finish_reasons=("stop",)), EMPTY_GENERATION),
        (Completion(texts=("They rise and",), finish_reasons=("length",)), TRUNCATED),
    ],
)
def test_a_failed_answer_is_a_rejected_row_holding_the_prompt(completion, reason):
    question = record(("user", "Explain tides."))
    settings = config()
    jobs = answer_jobs(rows_to_table([question]), seed=1, config=settings)
    (row,) = answered_rows(
        with_completions(jobs, lambda _: completion), config=settings
    ).to_pylist()
    assert row["drop_reason"] == reason
    assert [turn["role"] for turn in row["messages"]] == ["user"]
    assert row["augmentation"] and row["parent_id"] == question["id"]


def test_a_cut_off_answer_is_kept_without_drop_truncated():
    settings = config(drop_truncated=False)
    jobs = answer_jobs(rows_to_table([record(("user", "Explain tides."))]), seed=1, config=settings)
    cut = Completion(texts=("They rise and",), finish_reasons=("length",))
    (row,) = answered_rows(with_completions(jobs, lambda _: cut), config=settings).to_pylist()
    assert row["drop_reason"] is None
    assert json.loads(row["meta"])["generation"]["finish_reason"] == "length"


def test_constraints_stay_with_the_answered_prompt():
    constraints = [{"kind": "lowercase", "args": "{}", "held_out": False}]
    question = {**record(("user", "Explain tides in lowercase.")), "constraints": constraints}
    settings = config()
    jobs = answer_jobs(rows_to_table([question]), seed=1, config=settings)
    (row,) = answered_rows(with_completions(jobs, echo), config=settings).to_pylist()
    assert row["constraints"] == constraints


# ----- end to end on Ray, against the scripted HTTP server --------------------------------


def scripted(messages: list[dict], params: dict) -> str:
    prompt = messages[-1]["content"]
    if "volcano" in prompt:
        raise RuntimeError("scripted failure")
    if "blank" in prompt:
        return "  "
    system = messages[0]["content"] if messages[0]["role"] == "system" else "-"
    return f"[{system}] answer {params['seed'] % 1000} to {prompt}"


def write_recipe(root, base_url: str, batch_size: int, name: str) -> str:
    import yaml

    (root / "in").mkdir(exist_ok=True)
    rows = [
        {"instruction": "Explain tides.", "output": ""},
        {"instruction": "Describe a volcano.", "output": ""},
        {"instruction": "Say something blank.", "output": ""},
        {"instruction": "Name a river.", "input": "In Europe.", "output": ""},
        {"instruction": "Already answered.", "output": "Yes, it is."},
    ]
    with (root / "in" / "instructions.jsonl").open("w") as stream:
        stream.writelines(json.dumps(row) + "\n" for row in rows)
    recipe = {
        "seed": 9,
        "inputs": [{"path": str(root / "in" / "instructions.jsonl"), "format": "alpaca"}],
        "stages": [
            {
                "answer": {
                    "backend": {
                        "kind": "openai",
                        "model": "scripted",
                        "base_url": base_url,
                        "max_retries": 1,
                        "backoff_s": 0.01,
                    },
                    "n": 2,
                    "temperature": 0.7,
                    "system_prompt": "Be brief.",
                    "batch_size": batch_size,
                }
            }
        ],
        "output": {"path": str(root / name)},
        "run": {"progress_bars": False, "batch_rows": 2, "checkpoints": False},
    }
    (root / f"{name}.yaml").write_text(yaml.safe_dump(recipe))
    return str(root / f"{name}.yaml")


def read_run(output) -> tuple[list[dict], list[dict]]:
    import pyarrow.parquet as pq

    def rows(part: str) -> list[dict]:
        table = pq.read_table(output / part).to_pylist()
        return sorted(table, key=lambda row: (row["source_line"], row["augmentation"] or ""))

    return rows("data"), rows("rejects")


@pytest.fixture(scope="module")
def answered(ray_session, tmp_path_factory):
    from ops.datarun import run_data
    from tests.pipeline.generate.scripted_server import ScriptedServer

    root, runs = tmp_path_factory.mktemp("answer"), []
    with ScriptedServer(scripted) as server:
        for batch_size in (64, 1):  # the same run, batched differently
            name = f"out{batch_size}"
            outcome = run_data(write_recipe(root, server.url, batch_size, name))
            runs.append((outcome, *read_run(root / name)))
        attempts = dict(server.attempts)
    return runs, attempts


def test_every_instruction_is_replaced_by_its_answers_and_the_counts_add_up(answered):
    runs, _ = answered
    outcome, output, rejects = runs[0]
    created = [row for row in output + rejects if row["augmentation"]]
    assert len(created) == 8  # four instructions, two samples each
    assert outcome.stats["conservation"] == {
        "input": 5,
        "created": 8,
        "output": len(output),
        "rejects": len(rejects),
        "quarantine": 0,
        "balanced": True,
    }
    funnel = {stage["stage"]: stage for stage in outcome.stats["stages"]}["answer"]
    assert funnel["created"] == 8
    assert funnel["dropped"] == {REPLACED: 4, BACKEND_ERROR: 2, EMPTY_GENERATION: 2}
    assert {row["messages"][0]["content"] for row in output if not row["augmentation"]} == {
        "Already answered."
    }


def test_answers_keep_their_prompt_and_name_their_instruction(answered):
    runs, attempts = answered
    _, output, rejects = runs[0]
    replaced = {row["id"]: row for row in rejects if row["drop_reason"] == REPLACED}
    river = [row for row in output if row["messages"][0]["content"] == "Name a river."]
    assert (
        len(river) == 2 and river[0]["messages"][1]["content"] != river[1]["messages"][1]["content"]
    )
    for row in river:
        assert row["context"] == "In Europe." and row["system"] == ""
        assert row["messages"][1]["content"].startswith("[Be brief.] answer ")
        assert row["messages"][1]["content"].endswith("to Name a river.\n\nIn Europe.")
        assert row["parent_id"] in replaced
    failed = [row for row in rejects if row["drop_reason"] == BACKEND_ERROR]
    assert {row["messages"][0]["content"] for row in failed} == {"Describe a volcano."}
    assert attempts["Describe a volcano."] == 2 * 2 * 2  # two samples, one retry, two runs


def test_the_same_input_and_seed_give_the_same_rows_however_batched(answered):
    ((_, output, rejects), (_, output_again, rejects_again)), _ = answered
    assert output == output_again and rejects == rejects_again
