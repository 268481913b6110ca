"""What ``self_instruct`` says to the model and how it reads the replies: pure text functions.

The three prompts follow Self-Instruct (Wang et al. 2022, arXiv:2212.10560, Tables 5-8): a
numbered task list the model continues, the few-shot "Is it classification?" question, and
the two instance prompts, output-first for classification tasks (a class label, then an input
for it) and input-first for the others. The headers are the paper's sentences; the few-shot
examples are this project's own. Each prompt is sent as the single user turn of a chat
request, so a completion model and a chat model read the same text.

The readers are strict where the paper's scripts silently drop: every reply either parses into
something or says why it did not (``None``), and the stage turns that into a reject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

INSTRUCTION_HEADER = "Come up with a series of tasks:"

CLASSIFY_HEADER = (
    "Can the following task be regarded as a classification task with finite output labels?"
)
# (task, is it classification?) pairs shown before the question.
CLASSIFY_EXAMPLES: tuple[tuple[str, bool], ...] = (
    ("Decide whether the review below is positive or negative.", True),
    ("Write a short story about a lighthouse keeper.", False),
    ("Tell me which of the listed animals is a mammal.", True),
    ("Summarize the meeting notes in three bullet points.", False),
    ("Is the following email spam? Answer yes or no.", True),
    ("Suggest a name for a new coffee shop.", False),
    ("Label the grammatical tense of the sentence: past, present or future.", True),
    ("Explain how a bicycle gear works to a ten-year-old.", False),
    ("Pick the option (A, B, C or D) that answers the question.", True),
    ("Translate the sentence into Spanish.", False),
)

INPUT_FIRST_HEADER = (
    "Come up with examples for the following tasks. Try to generate multiple examples when "
    "possible. If the task doesn't require additional input, you can generate the output "
    "directly."
)
INPUT_FIRST_EXAMPLES = """Task: Name three fruits that are high in vitamin C.
Output: Oranges, kiwis and strawberries.

Task: Convert the temperature from Celsius to Fahrenheit.
Example 1
Temperature: 20 C
Output: 20 C is 68 F.
Example 2
Temperature: -5 C
Output: -5 C is 23 F.

Task: Rewrite the sentence so that it sounds more polite.
Example 1
Sentence: Give me the report now.
Output: Could you please send me the report when you have a moment?
Example 2
Sentence: Your code is wrong.
Output: I think there may be a problem in this part of the code.
"""

OUTPUT_FIRST_HEADER = (
    "Given the classification task definition and the class labels, generate an input that "
    "corresponds to each of the class labels. If the task doesn't require input, just "
    "generate possible class labels."
)
OUTPUT_FIRST_EXAMPLES = """Task: Classify the sentiment of the review as positive or negative.
Class label: Positive
Review: The staff were friendly and the room was spotless.
Class label: Negative
Review: We waited an hour and the food arrived cold.

Task: Tell me whether the number is even or odd.
Class label: Even
Number: 42
Class label: Odd
Number: 17

Task: Which planet is closest to the sun?
Class label: Mercury
"""

# A task line in the list the model continues: "Task 9: ...", "Task 9. ...", "9. ...".
_TASK_MARKER = re.compile(r"^[ \t]*(?:Task[ \t]*)?(\d{1,3})[ \t]*[:.)][ \t]*", re.MULTILINE)
_ANSWER = re.compile(r"^\W*(?:is it classification\?\W*)?(yes|no)\b", re.IGNORECASE)
_EXAMPLE_MARKER = re.compile(r"^[ \t]*Example[ \t]*\d+[ \t]*[.:]?[ \t]*$", re.MULTILINE)
_OUTPUT_LABEL = re.compile(r"Output\s*\d*\s*:")
_INPUT_LABEL = re.compile(r"Input\s*\d*\s*:")
_LEADING_INPUT_LABEL = re.compile(r"^Input\s*\d*\s*:")
CLASS_LABEL = "Class label:"


def one_line(text: str) -> str:
    """Whitespace runs to one space: a listed task must stay on its own numbered line."""
    return " ".join(text.split())


def instruction_prompt(instructions: Sequence[str]) -> str:
    """The paper's bootstrap prompt: the tasks numbered from 1, then the next number open.

    A trailing colon is cut so that "Answer the question:" does not read as a cut-off line.
    """
    lines = [INSTRUCTION_HEADER]
    for number, instruction in enumerate(instructions, start=1):
        lines.append(f"Task {number}: {one_line(instruction).rstrip(':')}")
    lines.append(f"Task {len(instructions) + 1}:")
    return "\n".join(lines)


def classify_prompt(instruction: str) -> str:
    shots = [
        f"Task: {task}\nIs it classification? {'Yes' if answer else 'No'}"
        for task, answer in CLASSIFY_EXAMPLES
    ]
    question = f"Task: {one_line(instruction)}\nIs it classification?"
    return "\n\n".join([CLASSIFY_HEADER, *shots, question])


def instance_prompt(instruction: str, is_classification: bool) -> str:
    """Output-first for classification tasks (so labels do not skew to one class), input-first
    for the rest, as the paper found works best."""
    if is_classification:
        header, examples = OUTPUT_FIRST_HEADER, OUTPUT_FIRST_EXAMPLES
    else:
        header, examples = INPUT_FIRST_HEADER, INPUT_FIRST_EXAMPLES
    return f"{header}\n\n{examples}\nTask: {one_line(instruction)}\n"


class ListedTask(NamedTuple):
    number: int
    text: str


def parse_task_list(reply: str, open_number: int) -> list[ListedTask] | None:
    """The tasks a reply to ``instruction_prompt`` lists, in order; ``None`` when it is no list.

    The reply continues the open line ``Task {open_number}:``: text before the first marker is
    that task, if it is one line (a free-form paragraph with no numbered line is not a list).
    A marker counts only when it is the next number (the first may be any, for a model that
    restates ``Task 9:`` or restarts at 1), so "1." inside a task's own steps stays its text.
    """
    markers = []
    for match in _TASK_MARKER.finditer(reply):
        number = int(match.group(1))
        if not markers or number == markers[-1][0] + 1:
            markers.append((number, match))
    preamble = reply[: markers[0][1].start()] if markers else reply
    tasks: list[ListedTask] = []
    if preamble.strip():
        if not markers and "\n" in preamble.strip():
            return None
        tasks.append(ListedTask(open_number, one_line(preamble)))
    for index, (number, match) in enumerate(markers):
        end = markers[index + 1][1].start() if index + 1 < len(markers) else len(reply)
        tasks.append(ListedTask(number, one_line(reply[match.end() : end])))
    if not any(task.text for task in tasks):
        return None
    return tasks


def parse_classification_answer(reply: str) -> bool | None:
    """Yes/No from the first word of the answer (an echoed question is skipped); else None."""
    match = _ANSWER.match(reply.strip())
    return None if match is None else match.group(1).lower() == "yes"


class Instance(NamedTuple):
    input: str
    output: str


def split_input_output(text: str) -> Instance:
    """One example: the input before ``Output:`` (its ``Input:`` label removed), the output
    after it up to any further ``Input:``; with no ``Output:``, all of it is the output."""
    parts = _OUTPUT_LABEL.split(text, maxsplit=1)
    if len(parts) == 2:
        given, output = parts[0].strip(), parts[1].strip()
    else:
        given, output = "", text.strip()
    output = _INPUT_LABEL.split(output, maxsplit=1)[0].strip()
    return Instance(_LEADING_INPUT_LABEL.sub("", given).strip(), output)


def parse_input_first(reply: str) -> list[Instance] | None:
    """Instances of a generation task: ``Example k`` blocks, or one bare ``Output:`` pair."""
    text = reply.strip()
    if _EXAMPLE_MARKER.search(text):
        blocks = [block.strip() for block in _EXAMPLE_MARKER.split(text)]
        found = [split_input_output(block) for block in blocks if block]
        return found or None
    if _OUTPUT_LABEL.search(text):
        return [split_input_output(text)]
    return None


def parse_output_first(reply: str) -> list[Instance] | None:
    """Instances of a classification task: each ``Class label:`` line's label is the output,
    the lines after it (up to the next label) the input, which may be empty."""
    if CLASS_LABEL not in reply:
        return None
    found = []
    for block in reply.split(CLASS_LABEL)[1:]:
        label, _, given = block.strip().partition("\n")
        found.append(Instance(given.strip(), label.strip()))
    return found
