"""The ``self_instruct`` stage: its prompts, parsers and filters as pure functions, the seed
task input format, then end to end on the session's Ray against the scripted HTTP server."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from pipeline.convert import ConversionError, detect_format, to_canonical
from pipeline.generate.backend import BackendConfig, Completion, decode_request, encode_completion
from pipeline.generate.self_instruct import (
    BACKEND_ERROR,
    BLOCKLISTED,
    CLASSIFICATION_UNPARSED,
    CONFLICTING_INSTANCES,
    DROP_REASONS,
    DUPLICATE_INSTANCE,
    EMPTY_GENERATION,
    EMPTY_OUTPUT,
    INCOMPLETE_INSTANCE,
    INPUT_EQUALS_OUTPUT,
    INSTANCE_OVER_LIMIT,
    INSTANCE_TOO_LONG,
    INSTANCES_UNPARSED,
    NON_ENGLISH_START,
    PARSE_FAILED,
    PROMPT_SCHEMA,
    PUNCTUATION_START,
    TOO_LONG,
    TOO_SHORT,
    TRUNCATED,
    WRITE_A_PROGRAM,
    SelfInstructConfig,
    instance_drops,
    instruction_drop,
    parse_replies,
    round_prompts,
    seed_pool_rows,
    tidy_instruction,
)
from pipeline.generate.self_instruct_prompts import (
    Instance,
    ListedTask,
    classify_prompt,
    instance_prompt,
    instruction_prompt,
    parse_classification_answer,
    parse_input_first,
    parse_output_first,
    parse_task_list,
)
from pipeline.schema import make_record, message, rows_to_table
from pipeline.stage import Drop

BACKEND = {"kind": "openai", "model": "scripted", "base_url": "http://127.0.0.1:9/v1"}


def config(**options) -> SelfInstructConfig:
    return SelfInstructConfig.model_validate({"backend": BACKEND, **options})


# ----- prompts ----------------------------------------------------------------------------


def test_the_instruction_prompt_is_a_numbered_list_with_the_next_task_open():
    text = instruction_prompt(["Answer the question:", "Sort   the\nlist."])
    assert text == (
        "Come up with a series of tasks:\nTask 1: Answer the question\nTask 2: Sort the list.\n"
        "Task 3:"
    )


def test_classification_and_instance_prompts_end_with_the_task():
    assert classify_prompt("Tell  me if it rains.").endswith(
        "Task: Tell me if it rains.\nIs it classification?"
    )
    assert "Yes" in classify_prompt("x") and "No" in classify_prompt("x")
    output_first = instance_prompt("Label the mood.", is_classification=True)
    input_first = instance_prompt("Write a haiku.", is_classification=False)
    assert output_first.startswith("Given the classification task definition")
    assert input_first.startswith("Come up with examples for the following tasks.")
    assert output_first.endswith("Task: Label the mood.\n")
    assert input_first.endswith("Task: Write a haiku.\n")


def pool(count: int, origin: str = "seed") -> list[dict]:
    return [
        {
            "ident": f"{origin}{index}",
            "instruction": f"{origin} task number {index}",
            "origin": origin,
            "parent_id": f"{origin}{index}",
            "source_file": "/in/seeds.jsonl",
            "source_format": "self_instruct",
            "source_line": index + 1,
            "domain": "",
            "language": "en",
            "split": "",
        }
        for index in range(count)
    ]


def test_a_first_round_shows_only_seeds_and_later_rounds_mix_in_machine_tasks():
    options = config(prompts_per_round=3)
    first = round_prompts(pool(30), [], options, seed=5, round_number=1)
    assert [row["shown"] for row in first] == [8, 8, 8]
    assert all(len(row["prompt_seeds"]) == 8 and row["prompt_machine"] == [] for row in first)
    later = round_prompts(pool(30), pool(10, "machine"), options, seed=5, round_number=2)
    assert all(len(row["prompt_seeds"]) == 6 for row in later)
    assert all(len(row["prompt_machine"]) == 2 for row in later)
    one = round_prompts(pool(30), pool(1, "machine"), options, seed=5, round_number=2)
    assert [len(row["prompt_seeds"]) for row in one] == [7, 7, 7]
    for row in later:
        shown = row["prompt_seeds"] + row["prompt_machine"]
        assert len(set(shown)) == len(shown) == 8
        # The parent is the first seed the list shows, an original record.
        listed = [line.split(": ", 1)[1] for line in row["prompt_text"].splitlines()[1:-1]]
        first_seed = next(text for text in listed if text.startswith("seed"))
        assert row["parent_id"] == "seed" + first_seed.rsplit(" ", 1)[1]
        assert row["source_line"] == int(first_seed.rsplit(" ", 1)[1]) + 1


def test_prompt_requests_carry_the_sampling_settings_and_a_seed_per_prompt():
    options = config(prompts_per_round=4, temperature=0.7, top_p=0.5, max_tokens=99, n=2)
    rows = round_prompts(pool(40), [], options, seed=5, round_number=1)
    requests = [decode_request(row["request"]) for row in rows]
    params = requests[0].params
    assert (params.temperature, params.top_p, params.max_tokens, params.n) == (0.7, 0.5, 99, 2)
    assert params.stop == ("\n\n", "Task 16:")
    assert len({request.params.seed for request in requests}) == 4
    assert requests[0].messages == ({"role": "user", "content": rows[0]["prompt_text"]},)
    again = round_prompts(pool(40), [], options, seed=5, round_number=1)
    assert again == rows
    other_round = round_prompts(pool(40), [], options, seed=5, round_number=2)
    assert [r["request"] for r in other_round] != [r["request"] for r in rows]


def test_a_pool_smaller_than_a_round_is_reused_but_never_twice_in_one_prompt():
    rows = round_prompts(pool(10), [], config(prompts_per_round=5), seed=1, round_number=1)
    for row in rows:
        assert len(set(row["prompt_seeds"])) == 8
    tiny = round_prompts(pool(3), [], config(prompts_per_round=2), seed=1, round_number=1)
    assert [row["shown"] for row in tiny] == [3, 3]
    assert all(row["prompt_text"].endswith("Task 4:") for row in tiny)


# ----- the numbered list ------------------------------------------------------------------


def test_a_reply_continuing_the_open_task_parses_in_order():
    reply = " Summarize the article in two sentences.\nTask 10: Translate the phrase into German.\n"
    assert parse_task_list(reply, 9) == [
        ListedTask(9, "Summarize the article in two sentences."),
        ListedTask(10, "Translate the phrase into German."),
    ]


def test_a_reply_that_restates_the_number_or_uses_bare_numbers_parses():
    assert [task.text for task in parse_task_list("Task 9: A b c d\nTask 10: E f g h", 9)] == [
        "A b c d",
        "E f g h",
    ]
    assert [task.number for task in parse_task_list("1. First one here\n2. Second one", 9)] == [
        1,
        2,
    ]


def test_numbers_out_of_sequence_stay_inside_their_task():
    reply = "Task 9: Follow the steps:\n1. wash\n2. dry\nTask 10: Name a colour."
    tasks = parse_task_list(reply, 9)
    assert tasks == [
        ListedTask(9, "Follow the steps: 1. wash 2. dry"),
        ListedTask(10, "Name a colour."),
    ]


def test_garbage_and_empty_lists_do_not_parse():
    assert parse_task_list("lorem ipsum\ndolor sit amet\n<html>", 9) is None
    assert parse_task_list("Task 9:\nTask 10:", 9) is None
    assert parse_task_list("   \n", 9) is None
    # One unnumbered line is the open task itself.
    assert parse_task_list("zxq qqq", 9) == [ListedTask(9, "zxq qqq")]


def prompt_row(completion: Completion, shown: int = 8) -> dict:
    return {
        "round": 1,
        "prompt": 0,
        "shown": shown,
        "prompt_seeds": ["seed0"],
        "prompt_machine": [],
        "prompt_text": "Come up with a series of tasks:\nTask 1: x\nTask 9:",
        "request": "{}",
        "parent_id": "seed0",
        "source_file": "/in/seeds.jsonl",
        "source_format": "self_instruct",
        "source_line": 1,
        "domain": "",
        "language": "en",
        "split": "",
        "completion": encode_completion(completion),
    }


def parsed(*completions: Completion, **options) -> list[dict]:
    rows = [prompt_row(completion) for completion in completions]
    schema = PROMPT_SCHEMA.append(pa.field("completion", pa.string()))
    batch = pa.Table.from_pylist(rows, schema=schema)
    return parse_replies(batch, config=config(**options)).to_pylist()


def test_a_truncated_reply_loses_its_last_task_as_a_reject():
    reply = " Give three uses for a brick.\nTask 10: Explain how a kite flies in the"
    rows = parsed(Completion(texts=(reply,), finish_reasons=("length",)))
    assert [(row["item"], row["drop_reason"]) for row in rows] == [(0, None), (1, TRUNCATED)]


def test_failed_empty_and_unparsable_replies_are_one_reject_each():
    rows = parsed(
        Completion(error="HTTP 500 after 6 attempts", attempts=6),
        Completion(texts=("  ",), finish_reasons=("stop",)),
        Completion(texts=("no\nlist\nhere",), finish_reasons=("stop",)),
    )
    assert [row["drop_reason"] for row in rows] == [BACKEND_ERROR, EMPTY_GENERATION, PARSE_FAILED]
    assert all(row["item"] is None for row in rows)
    assert json.loads(rows[2]["drop_detail"])["raw"] == "no\nlist\nhere"
    assert rows[2]["raw"] == "no\nlist\nhere"
    assert json.loads(rows[0]["drop_detail"])["attempts"] == 6


def test_every_choice_of_a_reply_is_parsed():
    texts = (" Name two rivers in Africa.", " List the planets in order.")
    rows = parsed(Completion(texts=texts, finish_reasons=("stop", "stop")), n=2)
    assert [(row["choice"], row["item"], row["ident"]) for row in rows] == [
        (0, 0, "r1.p0.c0.i0"),
        (1, 0, "r1.p0.c1.i0"),
    ]


# ----- instruction filters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Sort the list.", TOO_SHORT),
        (" ".join(["word"] * 151), TOO_LONG),
        ("Describe the image in detail.", BLOCKLISTED),
        ("Go to the website and find the price.", BLOCKLISTED),
        ("Write a program that adds two numbers.", WRITE_A_PROGRAM),
        ('"Quote" the sentence back to me.', PUNCTUATION_START),
        ("Écris une phrase sur la mer.", NON_ENGLISH_START),
        ("Explain the word mapping to a child.", None),
        ("Give me three tips for better sleep.", None),
    ],
)
def test_each_instruction_filter(text, reason):
    decision = instruction_drop(tidy_instruction(text), config())
    assert (decision.reason if decision else None) == reason


def test_filter_settings_are_config():
    assert instruction_drop("Écris une phrase sur la mer.", config(english_only=False)) is None
    assert instruction_drop("Sort the list.", config(min_words=3)) is None
    assert instruction_drop("Plan a trip to Rome.", config(blocklist=("rome",))) == Drop(
        BLOCKLISTED, {"word": "rome"}
    )
    assert tidy_instruction("  write a Python haiku ") == "Write a Python haiku"
    with pytest.raises(ValueError, match="max_words"):
        config(min_words=10, max_words=5)


# ----- classification and instances -------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        (" Yes", True),
        ("No.", False),
        ("yes, it is", True),
        ("Is it classification? No", False),
        ("Maybe", None),
        ("", None),
        ("Nobody knows", None),
    ],
)
def test_the_classification_answer(reply, answer):
    assert parse_classification_answer(reply) is answer


def test_input_first_instances():
    reply = (
        "Example 1\nSentence: I like tea.\nOutput: Tea is liked by me.\n"
        "Example 2\nInput: Birds sing.\nOutput: Singing is done by birds.\nInput: extra"
    )
    assert parse_input_first(reply) == [
        Instance("Sentence: I like tea.", "Tea is liked by me."),
        Instance("Birds sing.", "Singing is done by birds."),
    ]
    assert parse_input_first("Output: Paris") == [Instance("", "Paris")]
    assert parse_input_first("Just an answer without labels.") is None


def test_output_first_instances():
    reply = "Class label: Positive\nReview: Great food.\nClass label: Negative\nReview: Cold soup."
    assert parse_output_first(reply) == [
        Instance("Review: Great food.", "Positive"),
        Instance("Review: Cold soup.", "Negative"),
    ]
    assert parse_output_first("Class label: Mercury") == [Instance("", "Mercury")]
    assert parse_output_first("Positive, negative") is None


def reasons(decisions: list[Drop | None]) -> list[str | None]:
    return [decision.reason if decision else None for decision in decisions]


def test_instance_filters():
    found = [
        Instance("a", "b"),
        Instance("", ""),
        Instance("same", "same"),
        Instance("Text:", "x"),
        Instance("a", "b"),
        Instance("c", " ".join(["w"] * 20)),
        Instance("d", "e"),
    ]
    options = config(max_instance_words=10)
    assert reasons(instance_drops(found, options, truncated=True)) == [
        None,
        EMPTY_OUTPUT,
        INPUT_EQUALS_OUTPUT,
        INCOMPLETE_INSTANCE,
        DUPLICATE_INSTANCE,
        INSTANCE_TOO_LONG,
        TRUNCATED,
    ]


def test_conflicting_outputs_drop_the_task_and_the_limit_caps_instances():
    conflict = [Instance("q", "yes"), Instance("q", "no"), Instance("r", "")]
    assert reasons(instance_drops(conflict, config(), truncated=False)) == [
        CONFLICTING_INSTANCES,
        CONFLICTING_INSTANCES,
        EMPTY_OUTPUT,
    ]
    many = [Instance(f"in {i}", f"out {i}") for i in range(4)]
    assert reasons(instance_drops(many, config(max_instances=2), truncated=False)) == [
        None,
        None,
        INSTANCE_OVER_LIMIT,
        INSTANCE_OVER_LIMIT,
    ]


def test_the_vocabulary_is_prefixed_and_unique():
    assert len(set(DROP_REASONS)) == len(DROP_REASONS)
    assert all(reason.startswith("self_instruct.") for reason in DROP_REASONS)
    assert {CLASSIFICATION_UNPARSED, INSTANCES_UNPARSED} <= set(DROP_REASONS)


# ----- the seed task format ---------------------------------------------------------------

SEED_TASK = {
    "id": "seed_task_1",
    "name": "antonym_relation",
    "instruction": "What is the relation between the given pairs?",
    "instances": [{"input": "Night : Day :: Right : Left", "output": "They are opposites."}],
    "is_classification": False,
}


def test_seed_tasks_are_detected_and_converted():
    assert detect_format(SEED_TASK) == "self_instruct"
    # Only the whole shape is detected: an instruction alone still reads as alpaca's.
    with pytest.raises(ConversionError, match="alpaca"):
        detect_format({"instruction": "x", "input": ""})
    row = to_canonical(SEED_TASK, "self_instruct", source_file="/s.jsonl", source_line=2)
    assert [turn["content"] for turn in row["messages"]] == [
        SEED_TASK["instruction"],
        "They are opposites.",
    ]
    assert row["context"] == "Night : Day :: Right : Left"
    meta = json.loads(row["meta"])
    assert meta == {"id": "seed_task_1", "is_classification": False, "name": "antonym_relation"}


def test_seed_tasks_keep_their_other_instances_and_reject_empty_ones():
    more = {**SEED_TASK, "instances": [{"input": "", "output": "a"}, {"input": "b", "output": "c"}]}
    row = to_canonical(more, "self_instruct")
    assert row["context"] == "" and json.loads(row["meta"])["instances"] == [
        {"input": "b", "output": "c"}
    ]
    with pytest.raises(ConversionError) as caught:
        to_canonical({**SEED_TASK, "instances": []}, "self_instruct")
    assert caught.value.reason == "convert.no_reply"
    with pytest.raises(ConversionError) as caught:
        to_canonical({**SEED_TASK, "instances": [{"input": "x"}]}, "self_instruct")
    assert caught.value.reason == "convert.missing_field"


def test_only_live_original_sft_records_seed_the_pool():
    def record(line: int, **extra) -> dict:
        row = make_record(
            messages=[message("user", f"Seed instruction {line}"), message("assistant", "ok")],
            source_file="/in/a.jsonl",
            source_format="alpaca",
            source_line=line,
        )
        return {**row, **extra}

    table = rows_to_table(
        [
            record(1),
            record(2, drop_reason="filter.too_short"),
            record(3, augmentation='{"stage": "x"}'),
            record(4, feedback=True),
        ]
    )
    rows = seed_pool_rows(table).to_pylist()
    assert [(row["source_line"], row["origin"]) for row in rows] == [(1, "seed")]
    assert rows[0]["ident"] == rows[0]["parent_id"] == table.column("id")[0].as_py()


def test_the_backend_block_is_required_and_checked():
    with pytest.raises(ValueError, match="backend"):
        SelfInstructConfig.model_validate({})
    with pytest.raises(ValueError, match="base_url"):
        SelfInstructConfig.model_validate({"backend": {"kind": "openai", "model": "m"}})
    assert isinstance(config().backend, BackendConfig)


# ----- end to end on Ray, against the scripted server --------------------------------------

WORDS = (
    "amber basalt cobalt dune ember fjord glacier harbor island jungle kelp lagoon meadow "
    "nebula orchard prairie quarry reef savanna tundra upland valley willow yarrow zephyr "
    "acorn bramble cedar delta estuary fern grotto heath inlet juniper knoll ledge marsh "
    "oasis pebble quartz ridge spruce thicket umber vista wetland"
).split()
SEEDS = [
    ("Suggest a name for a bakery that sells only sourdough bread.", False),
    ("Decide whether the sentence is written in the past or the present tense.", True),
    ("Explain how a refrigerator keeps food cold.", False),
    ("Tell me whether the animal in the sentence is a mammal or a bird.", True),
    ("Write a two-line poem about a rainy morning in the city.", False),
    ("Give three tips for keeping a houseplant alive in winter.", False),
    ("Is the following review positive or negative?", True),
    ("Rewrite the sentence so that a ten-year-old understands it.", False),
    ("List the steps to change a flat bicycle tyre.", False),
    ("Which of the two numbers is larger?", True),
    ("Describe the taste of a lemon to someone who never had one.", False),
    ("Turn the following notes into a short thank-you email.", False),
]


def scripted_reply(messages: list[dict], params: dict) -> str:
    """Plausible replies for each prompt, and in every instruction list one task for each
    way a task can fail; the second choice of a list is always garbage."""
    import random

    text = messages[-1]["content"]
    if text.startswith("Come up with a series of tasks:"):
        if params["choice"] == 1:
            return "I am a language model.\nHere is some text\nwithout any list."
        words = random.Random(params["seed"]).sample(WORDS, 24)
        lines = text.splitlines()
        open_number = int(lines[-1].removeprefix("Task ").rstrip(":"))
        listed = [
            f"Classify whether {words[0]} {words[1]} {words[2]} is {words[3]} or {words[4]}.",
            f"Draw a map of {words[5]} {words[6]}.",
            "Sort it.",
            f"Explain {words[7]} {words[8]} {words[9]} {words[10]} {words[11]} simply.",
            lines[1].split(": ", 1)[1],  # a task the prompt showed: not novel
            f"Solve the riddle about {words[12]} {words[13]} {words[14]} {words[15]} quickly.",
            f"Describe the zigzag of {words[16]} {words[17]} {words[18]} {words[19]} briefly.",
            f"Summarize why {words[20]} {words[21]} {words[22]} {words[23]} explode.",
        ]
        rest = [f"Task {open_number + i}: {task}" for i, task in enumerate(listed[1:], start=1)]
        return "\n".join([" " + listed[0], *rest])
    task = text.rsplit("Task: ", 1)[1]
    if text.startswith("Can the following task"):
        if "riddle" in task:
            return "Perhaps"
        return " Yes" if task.startswith("Classify") else " No"
    if "explode" in task:
        raise RuntimeError("scripted failure")  # every attempt: a 500
    if text.startswith("Given the classification"):
        return "Class label: Yes\nText: the first case\nClass label: No\nText: the second case"
    if "zigzag" in task:
        return "I cannot think of examples."
    return (
        "Example 1\nInput: first input\nOutput: first output\n"
        "Example 2\nInput: first input\nOutput: first output\n"
        "Example 3\nInput: third input\nOutput:"
    )


def write_seeds(path) -> None:
    with path.open("w") as stream:
        for index, (instruction, is_classification) in enumerate(SEEDS):
            task = {
                "id": f"seed_task_{index}",
                "name": f"task_{index}",
                "instruction": instruction,
                "instances": [{"input": "", "output": f"An answer for task {index}."}],
                "is_classification": is_classification,
            }
            stream.write(json.dumps(task) + "\n")


def run_recipe(root, backend: dict, **options):
    import pyarrow.parquet as pq
    import yaml

    from ops.datarun import run_data

    stage = {"backend": backend, "rounds": 2, "prompts_per_round": 3, "n": 2, **options}
    recipe = {
        "seed": 17,
        "inputs": [{"path": str(root.parent / "seeds.jsonl"), "language": "en"}],
        "stages": [{"self_instruct": stage}],
        "output": {"path": str(root / "out")},
        "run": {"progress_bars": False, "batch_rows": 5},
    }
    root.mkdir()
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    outcome = run_data(str(root / "recipe.yaml"))
    output = pq.read_table(root / "out" / "data").to_pylist()
    rejects = pq.read_table(root / "out" / "rejects").to_pylist()
    return outcome, output, rejects


def scripted_backend(server) -> dict:
    return {
        "kind": "openai",
        "model": "scripted",
        "base_url": server.url,
        "max_retries": 2,
        "backoff_s": 0.0,
        "batch_size": 8,
    }


@pytest.fixture(scope="module")
def generated(ray_session, tmp_path_factory):
    from tests.pipeline.generate.scripted_server import ScriptedServer

    root = tmp_path_factory.mktemp("self_instruct")
    write_seeds(root / "seeds.jsonl")
    with ScriptedServer(scripted_reply, fail_first={429: 1}) as server:
        outcome, output, rejects = run_recipe(root / "first", scripted_backend(server))
        attempts = dict(server.attempts)
    return root, outcome, output, rejects, attempts


def made(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["augmentation"]]


@pytest.mark.slow
def test_seeds_pass_through_and_the_counts_add_up(generated):
    root, outcome, output, rejects, attempts = generated
    seeds = [row for row in output if row["augmentation"] is None]
    assert sorted(row["messages"][0]["content"] for row in seeds) == sorted(s for s, _ in SEEDS)
    assert all(json.loads(row["meta"])["name"].startswith("task_") for row in seeds)
    conservation = outcome.stats["conservation"]
    created = len(made(output + rejects))
    assert conservation == {
        "input": len(SEEDS),
        "created": created,
        "output": len(output),
        "rejects": len(rejects),
        "quarantine": 0,
        "balanced": True,
    }
    (stage,) = [s for s in outcome.stats["stages"] if s["stage"] == "self_instruct"]
    assert stage["created"] == created and stage["in"] == len(SEEDS)
    assert stage["out"] == len(output)
    findings = stage["findings"]
    assert findings["round_1.prompts"] == findings["round_2.prompts"] == 3
    assert findings["seeds"] == len(SEEDS)
    # Every prompt met one 429 first and was retried.
    assert attempts and all(count >= 2 for count in attempts.values())


@pytest.mark.slow
def test_each_failure_is_a_reject_with_its_reason(generated):
    _, _, _, rejects, _ = generated
    reasons = {row["drop_reason"] for row in rejects}
    assert {
        PARSE_FAILED,
        BLOCKLISTED,
        TOO_SHORT,
        "self_instruct.not_novel",
        CLASSIFICATION_UNPARSED,
        INSTANCES_UNPARSED,
        BACKEND_ERROR,
        DUPLICATE_INSTANCE,
        EMPTY_OUTPUT,
    } <= reasons
    assert reasons <= set(DROP_REASONS)
    unparsed = [row for row in rejects if row["drop_reason"] == PARSE_FAILED]
    assert json.loads(unparsed[0]["drop_detail"])["raw"].startswith("I am a language model.")
    failed = [row for row in rejects if row["drop_reason"] == BACKEND_ERROR]
    assert all("explode" in row["messages"][0]["content"] for row in failed)
    assert all("scripted failure" in json.loads(row["drop_detail"])["error"] for row in failed)


@pytest.mark.slow
def test_created_rows_carry_their_provenance(generated):
    _, _, output, rejects, _ = generated
    seeds = {row["id"]: row for row in output if row["augmentation"] is None}
    kept = made(output)
    assert kept and all(row["messages"][-1]["role"] == "assistant" for row in kept)
    keys = set()
    for row in made(output + rejects):
        augmentation = json.loads(row["augmentation"])
        generation = json.loads(row["meta"])["generation"]
        parent = seeds[row["parent_id"]]
        assert (row["source_file"], row["source_line"]) == (
            parent["source_file"],
            parent["source_line"],
        )
        assert augmentation["stage"] == generation["stage"] == "self_instruct"
        assert augmentation["model"] == generation["model"] == "scripted"
        assert augmentation["round"] == generation["round"] in (1, 2)
        assert row["parent_id"] in generation["prompt_seeds"]
        assert row["task"] == "self_instruct" and row["language"] == "en"
        keys.add(row["augmentation"])
    assert len(keys) == len(made(output + rejects))  # each created row has a key of its own
    labelled = [row for row in kept if json.loads(row["meta"])["generation"]["is_classification"]]
    assert {row["messages"][-1]["content"] for row in labelled} == {"Yes", "No"}
    assert {row["context"] for row in labelled} == {"Text: the first case", "Text: the second case"}
    later = [row for row in kept if json.loads(row["augmentation"])["round"] == 2]
    assert any(json.loads(row["meta"])["generation"]["prompt_machine"] for row in later)
