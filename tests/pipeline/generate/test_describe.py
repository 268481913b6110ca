"""The ``describe_to_instruction`` stage: where descriptions are read, the prompt formats, the
rows it creates and the descriptions it consumes, as pure functions; then end to end through
``data run`` on the session's Ray with a tiny untrained T5 (its text is garbage; the counts
must add up)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pyarrow as pa
import pytest
from pydantic import ValidationError

from pipeline.generate.backend import Completion, decode_request, encode_completion
from pipeline.generate.created import COMPLETION_COLUMN, REQUEST_COLUMN
from pipeline.generate.describe import (
    BACKEND_ERROR,
    CHECKPOINT_META,
    CONSUMED,
    EMPTY_GENERATION,
    PLAIN_TEMPLATES,
    TRUNCATED,
    DescribeConfig,
    consumed_descriptions,
    describe_jobs,
    description_of,
    instruction_rows,
    prompt_turn,
    trained_format,
)
from pipeline.schema import make_record, message, rows_to_table

BACKEND = {"kind": "openai", "model": "scripted", "base_url": "http://127.0.0.1:9/v1"}


def config(**options) -> DescribeConfig:
    return DescribeConfig.model_validate({"backend": BACKEND, **options})


def description(text: str, line: int = 0, **fields) -> dict:
    return make_record(
        messages=[message("user", text), message("assistant", "")],
        source_file="descriptions.jsonl",
        source_format="alpaca",
        source_line=line,
        task="describe",
        **fields,
    )


def with_completions(jobs: pa.Table, reply: Callable[[object], Completion | str]) -> pa.Table:
    completions = []
    for text in jobs.column(REQUEST_COLUMN).to_pylist():
        made = reply(decode_request(text))
        if isinstance(made, str):
            made = Completion(texts=(made,), finish_reasons=("stop",))
        completions.append(encode_completion(made))
    return jobs.append_column(COMPLETION_COLUMN, pa.array(completions, pa.string()))


def test_the_description_is_read_from_the_field():
    row = description("thank-you note", context="a passage", meta={"description": " weekend "})
    assert description_of(row, "instruction") == "thank-you note"
    assert description_of(row, "context") == "a passage"
    assert description_of(row, "meta.description") == "weekend"
    assert description_of(row, "meta.missing") == ""
    with pytest.raises(ValidationError, match="meta.<key>"):
        config(field="response")
    with pytest.raises(ValidationError, match="temperature > 0"):
        config(n=2)


def test_the_plain_templates_are_the_ones_sft_trains_with():
    from train.sft_data import PLAIN_TEMPLATES as TRAINED

    assert PLAIN_TEMPLATES == TRAINED
    assert prompt_turn("weekend plan", "raw", "unused") == "weekend plan"
    assert prompt_turn("weekend plan", "instruction_output", "unused") == (
        "Instruction: weekend plan\n\nOutput: "
    )


def test_the_checkpoint_says_which_format_its_training_used(tmp_path):
    from train.sft import CHECKPOINT_META as TRAINED

    assert CHECKPOINT_META == TRAINED
    settings = config(backend={"kind": "transformers", "model": str(tmp_path)})
    assert trained_format(settings) == "raw"  # no instructflow.json
    meta = tmp_path / CHECKPOINT_META
    meta.write_text(json.dumps({"kind": "seq2seq", "prompt_format": "alpaca"}))
    assert trained_format(settings) == "alpaca"
    meta.write_text(json.dumps({"kind": "causal", "prompt_format": "alpaca"}))
    assert trained_format(settings) == "raw"  # the backend renders a causal model's chat
    assert trained_format(config(prompt_format="instruction_output")) == "instruction_output"
    assert trained_format(config()) == "raw"  # an openai backend renders its turns itself


def test_n_instructions_per_description_are_created_rows_without_a_reply():
    rows = [description("thank-you note", line=0), description("weekend plan", line=1)]
    pair = make_record(
        messages=[message("user", "q"), message("assistant", "a")],
        source_file="descriptions.jsonl",
        source_format="pairwise",
        source_line=2,
        rejected=[message("assistant", "b")],
    )
    settings = config(n=2, temperature=0.8, task="generated")
    jobs = describe_jobs(rows_to_table([*rows, pair]), seed=5, config=settings, prompt_format="raw")
    assert jobs.num_rows == 4
    seeds = {decode_request(t).params.seed for t in jobs.column(REQUEST_COLUMN).to_pylist()}
    assert len(seeds) == 4

    def write(request) -> str:
        return f"  Write a {request.messages[0]['content']} ({request.params.seed % 97}).\n"

    made = instruction_rows(with_completions(jobs, write), config=settings).to_pylist()
    assert [row["source_line"] for row in made] == [0, 0, 1, 1]
    for row, parent in zip(made, [rows[0], rows[0], rows[1], rows[1]], strict=True):
        (turn,) = row["messages"]
        assert turn["role"] == "user" and turn["content"].startswith("Write a ")
        assert row["parent_id"] == parent["id"] and row["task"] == "generated"
        assert row["drop_reason"] is None
        generation = json.loads(row["meta"])["generation"]
        assert generation["description"] == parent["messages"][0]["content"]
    assert len({row["augmentation"] for row in made}) == 4


def test_descriptions_are_consumed_unless_kept():
    rows = rows_to_table([description("thank-you note"), description("  ", line=1)])
    consumed = consumed_descriptions(rows, config=config()).to_pylist()
    assert [row["drop_reason"] for row in consumed] == [CONSUMED, None]
    kept = consumed_descriptions(rows, config=config(keep_descriptions=True))
    assert kept["drop_reason"].to_pylist() == [None, None]


@pytest.mark.parametrize(
    ("completion", "reason"),
    [
        (Completion(error="worker died", attempts=1), BACKEND_ERROR),
        (Completion(texts=("",), finish_reasons=("stop",)), EMPTY_GENERATION),
        (Completion(texts=("Write a",), finish_reasons=("length",)), TRUNCATED),
    ],
)
def test_a_failed_generation_is_a_rejected_row_holding_the_description(completion, reason):
    settings = config()
    table = rows_to_table([description("thank-you note")])
    jobs = describe_jobs(table, seed=5, config=settings, prompt_format="raw")
    (row,) = instruction_rows(
        with_completions(jobs, lambda _: completion), config=settings
    ).to_pylist()
    assert row["drop_reason"] == reason
    assert row["messages"][0]["content"] == "thank-you note"


# ----- end to end: a tiny untrained T5 through Ray, then answers from the scripted server ---

DESCRIPTIONS = ("thank-you note", "weekend plan", "explain a proverb", "packing list")


@pytest.fixture(scope="module")
def described(ray_session, tmp_path_factory):
    import pyarrow.parquet as pq
    import yaml

    from ops.datarun import run_data
    from tests.pipeline.generate.scripted_server import ScriptedServer
    from train.tiny import build_model, train_tokenizer

    root = tmp_path_factory.mktemp("describe")
    tokenizer = train_tokenizer(iter([*DESCRIPTIONS, "Write a note."] * 20), 300, seq2seq=True)
    checkpoint = root / "tiny-t5"
    build_model(tokenizer, "seq2seq", "tiny", 0, "t5").save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    (checkpoint / CHECKPOINT_META).write_text(
        json.dumps({"kind": "seq2seq", "prompt_format": "chat"})
    )
    (root / "descriptions.jsonl").write_text(
        "".join(json.dumps({"description": text, "output": ""}) + "\n" for text in DESCRIPTIONS)
    )
    with ScriptedServer(lambda messages, params: f"Done: {messages[-1]['content']}") as server:
        recipe = {
            "seed": 2,
            "inputs": [
                {
                    "path": str(root / "descriptions.jsonl"),
                    "format": "alpaca",
                    "columns": {"instruction": "description"},
                }
            ],
            "stages": [
                {
                    "describe_to_instruction": {
                        "backend": {"kind": "transformers", "model": str(checkpoint)},
                        "n": 2,
                        "temperature": 1.0,
                        "max_tokens": 6,
                        "drop_truncated": False,
                    }
                },
                {"answer": {"backend": {"kind": "openai", "model": "s", "base_url": server.url}}},
            ],
            "output": {"path": str(root / "out")},
            "run": {"progress_bars": False, "checkpoints": False},
        }
        (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        outcome = run_data(str(root / "recipe.yaml"))
    output = pq.read_table(root / "out" / "data").to_pylist()
    rejects = pq.read_table(root / "out" / "rejects").to_pylist()
    return outcome, output, rejects, str(checkpoint)


def by_stage(rows: list[dict], stage: str) -> list[dict]:
    return [
        r for r in rows if r["augmentation"] and json.loads(r["augmentation"])["stage"] == stage
    ]


def test_descriptions_become_instructions_then_answers_and_the_counts_add_up(described):
    outcome, output, rejects, _ = described
    instructions = by_stage(output + rejects, "describe_to_instruction")
    answers = by_stage(output + rejects, "answer")
    assert len(instructions) == 8
    live_instructions = [row for row in instructions if row["drop_reason"] is None]
    assert live_instructions == []  # each was answered, so replaced by its answer
    replaced = [row for row in instructions if row["drop_reason"] == "answer.replaced_by_answers"]
    assert len(answers) == len(replaced)
    assert outcome.stats["conservation"] == {
        "input": 4,
        "created": len(instructions) + len(answers),
        "output": len(output),
        "rejects": len(rejects),
        "quarantine": 0,
        "balanced": True,
    }
    funnel = {stage["stage"]: stage for stage in outcome.stats["stages"]}
    assert funnel["describe_to_instruction"]["dropped"][CONSUMED] == 4
    assert funnel["describe_to_instruction"]["created"] == 8
    assert funnel["describe_to_instruction"]["findings"]["descriptions"] == 4
    assert {row["drop_reason"] for row in rejects if not row["augmentation"]} == {CONSUMED}


def test_answers_and_instructions_name_the_description_as_their_root(described):
    _, output, rejects, checkpoint = described
    descriptions = {row["id"]: row for row in rejects if row["drop_reason"] == CONSUMED}
    instructions = {row["id"]: row for row in by_stage(rejects, "describe_to_instruction")}
    for row in instructions.values():
        assert row["parent_id"] in descriptions
        generation = json.loads(row["meta"])["generation"]
        assert generation["prompt_format"] == "chat"
        assert generation["description"] in DESCRIPTIONS
    for row in by_stage(output + rejects, "answer"):
        augmentation = json.loads(row["augmentation"])
        assert augmentation["from_id"] in instructions and row["parent_id"] in descriptions


def test_chat_renders_the_description_as_seq2seq_sft_rendered_its_sources(described):
    from train.sft_data import prompt_text
    from train.sft_rows import load_tokenizer

    *_, checkpoint = described
    turns = [{"role": "user", "content": "weekend plan"}]
    rendered = prompt_turn("weekend plan", "chat", checkpoint)
    assert rendered == prompt_text(turns, load_tokenizer(checkpoint), "chat")
    assert rendered.endswith("<|assistant|>\n")
