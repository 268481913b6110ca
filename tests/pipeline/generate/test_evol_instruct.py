"""The ``evol_instruct`` stage: prompts, method draws, parsing and the four elimination rules
as pure functions; the per-batch steps on hand-made completions; then a two-round run on the
session's Ray against the scripted HTTP server."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pyarrow as pa
import pytest
from pydantic import ValidationError

from pipeline.generate.backend import Completion, decode_request, encode_completion
from pipeline.generate.created import COMPLETION_COLUMN, REQUEST_COLUMN
from pipeline.generate.evol_instruct import (
    ANSWER_FAILED,
    ANSWER_ONLY_STOPWORDS,
    BACKEND_ERROR,
    COPIED_PROMPT,
    DEPTH_METHODS,
    DROP_REASONS,
    EMPTY_GENERATION,
    EQUALITY_UNPARSED,
    METHODS,
    NO_INFORMATION_GAIN,
    TRUNCATED,
    EvolInstructConfig,
    answer_drop,
    equality_prompt,
    evolution_drop,
    evolution_prompt,
    evolve_requests,
    evolved_rows,
    next_heads,
    parent_rows,
    parse_equality,
    pick_method,
    read_answers,
    read_equality,
    read_evolutions,
    rewritten_prompt,
    text_similarity,
)
from pipeline.schema import make_record, message, rows_to_table
from pipeline.stage import Drop

BACKEND = {"kind": "openai", "model": "scripted", "base_url": "http://127.0.0.1:9/v1"}


def config(**options) -> EvolInstructConfig:
    return EvolInstructConfig.model_validate({"backend": BACKEND, **options})


def record(instruction: str, response: str = "An answer.", line: int = 0, **fields) -> dict:
    turns = [message("user", instruction)]
    if response is not None:
        turns.append(message("assistant", response))
    return make_record(
        messages=turns,
        source_file="in.jsonl",
        source_format="alpaca",
        source_line=line,
        task="qa",
        language="en",
        **fields,
    )


def with_completions(jobs: pa.Table, reply: Callable[[str], Completion | str | None]) -> pa.Table:
    """What ``generate_column`` does, by hand: a completion per request (null for null)."""
    completions = []
    for text in jobs.column(REQUEST_COLUMN).to_pylist():
        if text is None:
            completions.append(None)
            continue
        made = reply(decode_request(text).messages[-1]["content"])
        if isinstance(made, str):
            made = Completion(texts=(made,), finish_reasons=("stop",))
        completions.append(encode_completion(made))
    return jobs.append_column(COMPLETION_COLUMN, pa.array(completions, pa.string()))


# ----- prompts and draws ------------------------------------------------------------------


def test_each_depth_prompt_names_its_method_and_ends_at_the_rewritten_prompt():
    for method, sentence in DEPTH_METHODS.items():
        text = evolution_prompt(method, "Explain tides.\n\nFor sailors.")
        assert sentence in text
        assert text.startswith("I want you act as a Prompt Rewriter.")
        assert text.endswith(
            "#The Given Prompt#:\nExplain tides.\n\nFor sailors.\n#Rewritten Prompt#:\n"
        )


def test_the_breadth_prompt_asks_for_a_created_prompt():
    text = evolution_prompt("breadth", "Explain tides.")
    assert text.startswith("I want you act as a Prompt Creator.")
    assert text.endswith("#Given Prompt#:\nExplain tides.\n#Created Prompt#:\n")


def test_the_equality_prompt_shows_both_instructions_and_asks_equal_or_not():
    text = equality_prompt("First one.", "Second one.")
    assert "The First Prompt: First one.\nThe Second Prompt: Second one.\n" in text
    assert text.endswith("(Just answer: Equal or Not Equal. No need to explain the reason.):")


def test_the_method_is_a_seeded_draw_per_parent_and_round():
    weights = dict.fromkeys(METHODS, 1.0)
    first = [pick_method(weights, 7, f"parent{i}", 1) for i in range(500)]
    assert first == [pick_method(weights, 7, f"parent{i}", 1) for i in range(500)]
    assert first != [pick_method(weights, 7, f"parent{i}", 2) for i in range(500)]
    assert first != [pick_method(weights, 8, f"parent{i}", 1) for i in range(500)]
    counts = Counter(first)
    assert set(counts) == set(METHODS) and min(counts.values()) > 60


def test_method_weights_steer_the_draw_and_zero_leaves_a_method_out():
    only = {"deepen": 1.0, "breadth": 0.0}
    assert {pick_method(only, 0, f"p{i}", 1) for i in range(200)} == {"deepen"}
    skewed = Counter(
        pick_method({"breadth": 9.0, "concretize": 1.0}, 0, f"p{i}", 1) for i in range(1000)
    )
    assert 850 < skewed["breadth"] < 950 and skewed["concretize"] == 1000 - skewed["breadth"]


def test_config_refuses_bad_weights_and_unknown_methods():
    with pytest.raises(ValidationError, match="at least one method"):
        config(methods={"deepen": 0.0})
    with pytest.raises(ValidationError, match=">= 0"):
        config(methods={"deepen": -1.0, "breadth": 1.0})
    with pytest.raises(ValidationError, match="methods.complicate_input"):
        config(methods={"complicate_input": 1.0})


# ----- parsing and elimination ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "instruction"),
    [
        ("#Rewritten Prompt#:\n  Explain tides in detail.  ", "Explain tides in detail."),
        ("Rewritten Prompt: Explain tides.", "Explain tides."),
        ("#Created Prompt#: Describe rip currents.", "Describe rip currents."),
        ('**#Rewritten Prompt#:** "Explain tides."', "Explain tides."),
        ("#The Given Prompt#: Say hi.\n#Rewritten Prompt#: Say hi twice.", "Say hi twice."),
        ("Explain tides to a sailor.", "Explain tides to a sailor."),
    ],
)
def test_the_rewritten_prompt_is_read_after_its_label(reply, instruction):
    assert rewritten_prompt(reply) == instruction


def test_rule_4_rejects_an_instruction_that_copies_the_evolving_prompt():
    settings = config()
    for text in ("Rewrite the given prompt as a poem.", "Explain #Rewritten Prompt# tides."):
        drop = evolution_drop(text, "Explain tides.", settings)
        assert drop is not None and drop.reason == COPIED_PROMPT
    assert evolution_drop("Explain tides with two examples.", "Explain tides.", settings) is None


def test_rule_1_by_text_rejects_identical_and_near_identical_rewrites():
    settings = config()
    same = evolution_drop("explain   why TIDES matter", "Explain why tides matter.", settings)
    assert same == Drop(NO_INFORMATION_GAIN, {"check": "text", "similarity": 1.0})
    original = "Explain in three sentences why the tides matter to sailors on the coast of Maine."
    near = original.replace("sailors", "fishermen")
    assert text_similarity(original, near) >= 0.9
    assert evolution_drop(near, original, settings).reason == NO_INFORMATION_GAIN
    longer = original + " Cite two historical shipwrecks and explain the role of the moon."
    assert evolution_drop(longer, original, settings) is None
    assert evolution_drop(original, original, config(equality_check="off")) is None
    assert evolution_drop(original, original, config(equality_check="llm")) is None


def test_rule_1_by_the_model_reads_equal_and_not_equal():
    assert parse_equality("Equal") is True
    assert parse_equality("Not Equal.") is False
    assert parse_equality("  not equal - the second adds a constraint") is False
    assert parse_equality("They are different.") is None


def test_rule_2_rejects_a_short_sorry_and_keeps_a_long_one():
    settings = config()
    assert answer_drop("Sorry, I cannot help with that.", settings).reason == ANSWER_FAILED
    long_answer = "I am sorry to say the tides " + "rise and fall twice a day " * 14
    assert len(long_answer.split()) >= 80
    assert answer_drop(long_answer, settings) is None
    assert answer_drop("Sorrynot a word.", settings) is None


def test_rule_3_rejects_an_answer_of_only_punctuation_and_stop_words():
    settings = config()
    assert answer_drop("... the, and of it!", settings).reason == ANSWER_ONLY_STOPWORDS
    assert answer_drop("?!", settings).reason == ANSWER_ONLY_STOPWORDS
    assert answer_drop("The moon pulls the sea.", settings) is None
    assert answer_drop("moon", config(stopwords=("moon",))).reason == ANSWER_ONLY_STOPWORDS


def test_every_reason_is_the_stage_s():
    assert all(reason.startswith("evol_instruct.") for reason in DROP_REASONS)
    assert len(set(DROP_REASONS)) == len(DROP_REASONS)


# ----- the per-batch steps ----------------------------------------------------------------


def test_parents_are_live_original_single_exchange_records_sampled_by_rate():
    rows = [
        record("Explain tides.", line=0),
        record("Explain tides without a reply.", response=None, line=1),
        record("Alpaca with an empty output.", response="", line=2),
        {**record("Dropped.", line=3), "drop_reason": "filter.too_short"},
        {**record("Made by a stage.", line=4), "augmentation": '{"stage": "x"}'},
        record("Pair.", line=5, rejected=[message("assistant", "bad")]),
        make_record(
            messages=[message("user", "a"), message("assistant", "b"), message("user", "c")],
            source_file="in.jsonl",
            source_format="sharegpt",
            source_line=6,
        ),
        record("   ", line=7),
    ]
    picked = parent_rows(rows_to_table(rows), seed=0, rate=1.0)
    assert picked.column("source_line").to_pylist() == [0, 1, 2]
    many = rows_to_table([record(f"Task {i}.", line=i) for i in range(400)])
    half = parent_rows(many, seed=0, rate=0.5).num_rows
    assert 150 < half < 250 and parent_rows(many, seed=0, rate=0.5).num_rows == half


def reply_for(prompt: str) -> str:
    """A scripted model: evolves by adding a clause, answers plainly."""
    if prompt.startswith("I want you act as"):
        given = prompt.split("Prompt#:\n", 1)[1].rsplit("\n#", 1)[0]
        return f"#Rewritten Prompt#:\n{given} Give two examples and cite a source."
    if prompt.startswith("Here are two Instructions"):
        return "Not Equal"
    return f"Here is a careful answer to: {prompt}"


def run_round(rows: list[dict], settings: EvolInstructConfig, reply=reply_for, round_number=1):
    pool = rows_to_table(rows)
    jobs = evolve_requests(pool, seed=3, round_number=round_number, config=settings)
    jobs = read_evolutions(with_completions(jobs, reply), seed=3, config=settings)
    if settings.equality_check == "llm":
        jobs = read_equality(with_completions(jobs, reply), seed=3, config=settings)
    return read_answers(with_completions(jobs, reply), config=settings)


def test_a_round_makes_one_answered_row_per_parent_with_its_provenance():
    parent = record("Explain tides.", context="For sailors.")
    judged = run_round([parent], config())
    (row,) = evolved_rows(judged, model="scripted").to_pylist()
    evolved = "Explain tides.\n\nFor sailors. Give two examples and cite a source."
    assert [turn["content"] for turn in row["messages"]] == [
        evolved,
        f"Here is a careful answer to: {evolved}",
    ]
    assert row["context"] == "" and row["drop_reason"] is None
    assert row["parent_id"] == parent["id"] != row["id"]
    assert (row["source_file"], row["source_line"], row["task"]) == ("in.jsonl", 0, "qa")
    augmentation = json.loads(row["augmentation"])
    method = pick_method(dict.fromkeys(METHODS, 1.0), 3, parent["id"], 1)
    assert augmentation["stage"] == "evol_instruct" and augmentation["method"] == method
    assert augmentation["round"] == 1 and augmentation["model"] == "scripted"
    assert augmentation["root_id"] == augmentation["from_id"] == parent["id"]
    generation = json.loads(row["meta"])["generation"]
    assert generation["stage"] == "evol_instruct" and generation["from_id"] == parent["id"]
    assert generation["previous"] is None


def test_a_second_round_evolves_the_survivor_and_keeps_the_root():
    parent = record("Explain tides.")
    heads = next_heads(run_round([parent], config()), model="scripted").to_pylist()
    (child,) = heads
    assert child["parent_id"] == parent["id"] and child["augmentation"]
    (grandchild,) = evolved_rows(
        run_round(heads, config(), round_number=2), model="scripted"
    ).to_pylist()
    assert grandchild["parent_id"] == parent["id"]
    augmentation = json.loads(grandchild["augmentation"])
    assert augmentation["round"] == 2 and augmentation["from_id"] == child["id"]
    assert augmentation["root_id"] == parent["id"]
    previous = json.loads(grandchild["meta"])["generation"]["previous"]
    assert previous["round"] == 1 and previous["from_id"] == parent["id"]
    assert grandchild["messages"][0]["content"].count("Give two examples") == 2


def test_a_failed_evolution_is_rejected_and_its_parent_goes_back_to_the_pool():
    parent = record("Explain tides.")

    def copying(prompt: str) -> str:
        if prompt.startswith("I want you act as"):
            return "#Rewritten Prompt#: Answer the given prompt: explain tides."
        return "An answer."

    judged = run_round([parent], config(), reply=copying)
    (row,) = evolved_rows(judged, model="scripted").to_pylist()
    assert row["drop_reason"] == COPIED_PROMPT
    assert json.loads(row["drop_detail"]) == {"phrase": "given prompt"}
    assert [turn["role"] for turn in row["messages"]] == ["user"]
    assert next_heads(judged, model="scripted").to_pylist()[0]["id"] == parent["id"]


@pytest.mark.parametrize(
    ("evolve_reply", "answer_reply", "reason"),
    [
        (Completion(error="HTTP 500", attempts=3), "x", BACKEND_ERROR),
        ("   ", "x", EMPTY_GENERATION),
        ("#Rewritten Prompt#:", "x", EMPTY_GENERATION),
        (Completion(texts=("Explain",), finish_reasons=("length",)), "x", TRUNCATED),
        ("Explain tides to sailors with care.", Completion(error="timeout"), BACKEND_ERROR),
        ("Explain tides to sailors with care.", "", EMPTY_GENERATION),
        ("Explain tides to sailors with care.", "Sorry, no.", ANSWER_FAILED),
        ("Explain tides to sailors with care.", "The, and of.", ANSWER_ONLY_STOPWORDS),
    ],
)
def test_each_failure_is_a_rejected_created_row(evolve_reply, answer_reply, reason):
    def reply(prompt: str):
        return evolve_reply if prompt.startswith("I want you act as") else answer_reply

    (row,) = evolved_rows(
        run_round([record("Explain tides.")], config(), reply=reply), model="scripted"
    ).to_pylist()
    assert row["drop_reason"] == reason and row["augmentation"]


def test_the_model_judges_rule_1_with_equality_check_llm():
    def equal(prompt: str) -> str:
        return "Equal" if prompt.startswith("Here are two") else reply_for(prompt)

    settings = config(equality_check="llm")
    (kept,) = evolved_rows(run_round([record("Explain tides.")], settings), model="m").to_pylist()
    assert kept["drop_reason"] is None
    assert json.loads(kept["meta"])["generation"]["equal"] is False
    (same,) = evolved_rows(
        run_round([record("Explain tides.")], settings, reply=equal), model="m"
    ).to_pylist()
    assert same["drop_reason"] == NO_INFORMATION_GAIN
    assert json.loads(same["drop_detail"]) == {"check": "llm"}

    def unsure(prompt: str) -> str:
        return "Perhaps." if prompt.startswith("Here are two") else reply_for(prompt)

    (odd,) = evolved_rows(
        run_round([record("Explain tides.")], settings, reply=unsure), model="m"
    ).to_pylist()
    assert odd["drop_reason"] == EQUALITY_UNPARSED


def test_requests_carry_seeds_from_the_recipe_seed_and_the_parent():
    rows = rows_to_table([record("Explain tides."), record("Explain dunes.", line=1)])
    settings = config()
    first = evolve_requests(rows, seed=3, round_number=1, config=settings)
    again = evolve_requests(rows, seed=3, round_number=1, config=settings)
    other = evolve_requests(rows, seed=4, round_number=1, config=settings)
    assert first.equals(again)
    seeds = [decode_request(t).params.seed for t in first.column(REQUEST_COLUMN).to_pylist()]
    other_seeds = [decode_request(t).params.seed for t in other.column(REQUEST_COLUMN).to_pylist()]
    assert len(set(seeds)) == 2 and seeds != other_seeds
    params = decode_request(first.column(REQUEST_COLUMN)[0].as_py()).params
    assert (params.temperature, params.top_p, params.max_tokens) == (0.7, 0.95, 512)


# ----- end to end on Ray, against the scripted HTTP server --------------------------------

TOPICS = ("tides", "dunes", "glaciers", "volcanoes", "reefs", "deltas")


def scripted(messages: list[dict], params: dict) -> str:
    """Evolutions add a clause (or copy the prompt, for "reefs"); answers are plain, except
    a short "sorry" for anything about dunes."""
    prompt = messages[-1]["content"]
    if prompt.startswith("I want you act as"):
        given = prompt.split("Prompt#:\n", 1)[1].rsplit("\n#", 1)[0]
        if "reefs" in given:
            return "#Rewritten Prompt#: Rewrite the given prompt about reefs."
        return f"#Rewritten Prompt#:\n{given} Add a worked example."
    if "dunes" in prompt:
        return "Sorry, I cannot answer that."
    return f"A careful answer about {prompt[:40]}, with an example."


def write_recipe(root, base_url: str) -> str:
    import yaml

    (root / "in").mkdir(exist_ok=True)
    with (root / "in" / "qa.jsonl").open("w") as stream:
        for topic in TOPICS:
            row = {"instruction": f"Explain {topic}.", "input": "", "output": f"About {topic}."}
            stream.write(json.dumps(row) + "\n")
        stream.write(json.dumps({"instruction": "Hi", "output": "x"}) + "\n")
    recipe = {
        "seed": 5,
        "inputs": [{"path": str(root / "in" / "qa.jsonl"), "format": "alpaca", "task": "qa"}],
        "stages": [
            {"length": {"min_instruction_chars": 3}},
            {
                "evol_instruct": {
                    "backend": {
                        "kind": "openai",
                        "model": "scripted",
                        "base_url": base_url,
                        "max_retries": 0,
                    },
                    "rounds": 2,
                    "batch_size": 2,
                }
            },
        ],
        "output": {"path": str(root / "out")},
        "run": {"progress_bars": False, "batch_rows": 4, "checkpoints": False},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return str(root / "recipe.yaml")


def read_run(root) -> tuple[list[dict], list[dict]]:
    import pyarrow.parquet as pq

    def rows(part: str) -> list[dict]:
        return sorted(
            pq.read_table(root / "out" / part).to_pylist(),
            key=lambda row: (row["source_line"], row["augmentation"] or ""),
        )

    return rows("data"), rows("rejects")


@pytest.fixture(scope="module")
def evolved(ray_session, tmp_path_factory):
    from ops.datarun import run_data
    from tests.pipeline.generate.scripted_server import ScriptedServer

    root = tmp_path_factory.mktemp("evol")
    with ScriptedServer(scripted) as server:
        outcome = run_data(write_recipe(root, server.url))
    return (outcome, *read_run(root))


def of_stage(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["augmentation"]]


def test_two_rounds_make_chains_and_every_row_ends_somewhere(evolved):
    outcome, output, rejects = evolved
    conservation = outcome.stats["conservation"]
    created = of_stage(output + rejects)
    # Six parents ("Hi" is too short): round 1 evolves all six; round 2 again the four that
    # survived (a grandchild each) and the two that failed (a second try each).
    assert len(created) == 12
    assert conservation == {
        "input": 7,
        "created": 12,
        "output": len(output),
        "rejects": len(rejects),
        "quarantine": 0,
        "balanced": True,
    }
    funnel = {stage["stage"]: stage for stage in outcome.stats["stages"]}
    assert funnel["evol_instruct"]["created"] == 12
    assert funnel["evol_instruct"]["dropped"] == {COPIED_PROMPT: 2, ANSWER_FAILED: 2}
    findings = funnel["evol_instruct"]["findings"]
    assert findings["parents"] == 6 and findings["round_2.kept"] == 4


def test_created_rows_name_their_root_and_their_immediate_parent(evolved):
    _, output, rejects = evolved
    everything = {row["id"]: row for row in output + rejects}
    originals = {row["source_line"]: row for row in output + rejects if not row["augmentation"]}
    for row in of_stage(output + rejects):
        augmentation = json.loads(row["augmentation"])
        root = originals[row["source_line"]]
        assert row["parent_id"] == root["id"] == augmentation["root_id"]
        parent = everything[augmentation["from_id"]]
        # Round 1 evolves the root; round 2 its survivor, or the root again after a failure.
        if parent["id"] != root["id"]:
            assert json.loads(parent["augmentation"])["round"] == augmentation["round"] - 1 == 1
            assert parent["parent_id"] == root["id"] and parent in output
    for row in of_stage(output):
        assert [turn["role"] for turn in row["messages"]] == ["user", "assistant"]
    grandchildren = [
        row
        for row in output
        if row["augmentation"] and json.loads(row["augmentation"])["round"] == 2
    ]
    assert len(grandchildren) == 4
    assert all(
        row["messages"][0]["content"].count("Add a worked example.") == 2 for row in grandchildren
    )
