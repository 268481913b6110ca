"""Supervised fine-tuning examples: canonical records -> token ids, loss mask and packed rows.

Pure functions over one record or one list of examples, with no Ray and no torch, so the
Ray Data stage that tokenises and packs for ``instructflow train sft`` (issue 5) is a thin
wrapper around them, and they are tested on their own.

**Prompt formats.** ``chat``: the tokenizer's own chat template. A named plain template,
``instruction_output`` (``Instruction: ...\\n\\nOutput: ...``) or ``alpaca`` (the Stanford
Alpaca prompt): each user turn is rendered into the template, and the assistant's reply
follows. An alpaca ``input`` (the record's ``context``) belongs to the last user turn.

**Labels.** Every assistant turn is supervised, and only those: system prompt, user turns,
template text and padding are ``IGNORE`` (-100). With ``chat``, assistant spans are found by
rendering the conversation up to each turn twice, with the generation prompt and with the
reply, and taking the tokens in between; the template's own end-of-turn token after a reply
is supervised too, so the model learns to stop. Plain templates append ``eos_token`` to each
reply for the same reason. An empty reply is not supervised (not even its end token: that
would teach silence). A record whose assistant turns are empty, or lost to truncation,
has no supervised token: ``tokenize_record`` returns it with ``supervised == 0`` and
``check_supervised`` makes a whole dataset of them an error, never a silent zero loss.

**Packing.** ``pack`` fills rows of ``seq_len`` tokens with whole examples (best-fit
decreasing: deterministic, little padding, and no example is split). Position ids restart at
0 for each example, and transformers builds a block-diagonal causal mask from that when the
attention mask is left out and no cache is in use (call the model with ``position_ids``, no
``attention_mask`` and ``use_cache=False``: with a cache it does not look for packing), so
no token attends across examples. The first token of every example is unsupervised, so the
loss never asks one example to predict the next. The tail of a row is
padding: its own position run, label ``IGNORE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100

PLAIN_TEMPLATES = {
    "instruction_output": "Instruction: {instruction}\n\nOutput: ",
    "alpaca": (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
    ),
}
PROMPT_FORMATS = ("chat", *PLAIN_TEMPLATES)


@dataclass
class Example:
    """One tokenised record: ids, labels (``IGNORE`` outside assistant replies), and how many
    tokens are supervised."""

    input_ids: list[int]
    labels: list[int]
    supervised: int = 0
    truncated: bool = False


@dataclass
class PackedRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    # Lengths of the examples in the row, padding last (0 when the row is full).
    lengths: list[int] = field(default_factory=list)
    # Positions of the row's examples in the sequence given to ``pack``.
    sources: list[int] = field(default_factory=list)


def turns_of(record: dict[str, Any]) -> list[dict[str, str]]:
    """The record's conversation as ``{role, content}`` turns, context joined to the last user
    turn and the system prompt first. Tool turns are kept in chat format only."""
    turns = [{"role": t["role"], "content": t["content"]} for t in record["messages"]]
    context = record.get("context") or ""
    if context:
        last_user = max((i for i, t in enumerate(turns) if t["role"] == "user"), default=None)
        if last_user is not None:
            turns[last_user] = {
                "role": "user",
                "content": f"{turns[last_user]['content']}\n\n{context}",
            }
    if record.get("system"):
        turns.insert(0, {"role": "system", "content": record["system"]})
    return turns


def tokenize_record(
    record: dict[str, Any], tokenizer: Any, prompt_format: str, max_length: int
) -> Example:
    """One record to ids and labels (see the module docstring), cut to ``max_length``."""
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(
            f"prompt format {prompt_format!r}: choose one of {', '.join(PROMPT_FORMATS)}"
        )
    turns = turns_of(record)
    if prompt_format == "chat":
        segments = chat_segments(turns, tokenizer)
    else:
        segments = plain_segments(turns, tokenizer, PLAIN_TEMPLATES[prompt_format])
    ids: list[int] = []
    labels: list[int] = []
    for tokens, supervised in segments:
        ids += tokens
        labels += tokens if supervised else [IGNORE] * len(tokens)
    truncated = len(ids) > max_length
    ids, labels = ids[:max_length], labels[:max_length]
    if labels:
        labels[0] = IGNORE  # nothing precedes it: it is never a target
    supervised_count = sum(label != IGNORE for label in labels)
    return Example(ids, labels, supervised_count, truncated)


def plain_segments(
    turns: Sequence[dict[str, str]], tokenizer: Any, template: str
) -> list[tuple[list[int], bool]]:
    """(tokens, supervised) pieces: the system prompt and each user turn in ``template``
    unsupervised, each assistant reply plus EOS supervised. Tokenised piece by piece, with
    the tokenizer's BOS (if it has one) in front of the first."""
    segments: list[tuple[list[int], bool]] = []
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        segments.append(([bos], False))
    eos = tokenizer.eos_token or ""
    pending_system = ""
    for turn in turns:
        if turn["role"] == "system":
            pending_system = turn["content"] + "\n\n"
        elif turn["role"] == "user":
            prompt = pending_system + template.replace("{instruction}", turn["content"])
            pending_system = ""
            segments.append((encode(tokenizer, prompt), False))
        elif turn["role"] == "assistant":
            has_reply = bool(turn["content"].strip())
            segments.append((encode(tokenizer, turn["content"] + eos), has_reply))
    return segments


def chat_segments(turns: Sequence[dict[str, str]], tokenizer: Any) -> list[tuple[list[int], bool]]:
    """(tokens, supervised) pieces from the tokenizer's chat template, by prefix difference."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "prompt format 'chat' needs a tokenizer with a chat_template; "
            f"this one has none: use one of {', '.join(PLAIN_TEMPLATES)}"
        )
    segments: list[tuple[list[int], bool]] = []
    done: list[int] = []
    for index, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        prompt = render(tokenizer, turns[:index], generation_prompt=True)
        full = render(tokenizer, turns[: index + 1], generation_prompt=False)
        if prompt[: len(done)] != done or full[: len(prompt)] != prompt:
            raise ValueError(
                "the chat template does not render a conversation as a prefix of its "
                "continuation, so assistant turns cannot be located; use a plain template"
            )
        segments.append((prompt[len(done) :], False))
        segments.append((full[len(prompt) :], bool(turn["content"].strip())))
        done = full
    return segments


def render(tokenizer: Any, turns: Sequence[dict[str, str]], generation_prompt: bool) -> list[int]:
    rendered = tokenizer.apply_chat_template(
        list(turns), tokenize=True, add_generation_prompt=generation_prompt
    )
    if isinstance(rendered, dict) or hasattr(rendered, "keys"):  # a BatchEncoding
        rendered = rendered["input_ids"]
    return list(rendered)


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_supervised(examples: Iterable[Example], where: str) -> int:
    """Supervised tokens over ``examples``; an error naming ``where`` when there are none."""
    total = sum(example.supervised for example in examples)
    if total == 0:
        raise ValueError(
            f"{where}: no response token is supervised (every label is -100); check that the "
            "records have assistant replies and that max_length leaves room for them"
        )
    return total


def pack(examples: Iterable[Example], seq_len: int, pad_id: int) -> Iterator[PackedRow]:
    """Rows of exactly ``seq_len`` tokens holding whole examples, padded at the end.

    Best-fit decreasing: the longest example first, each into the row whose free space it
    fills most tightly, else a new row. Deterministic (ties go to the earlier example and
    the earlier row) and, unlike next fit, it leaves little padding when lengths are mixed.
    An example longer than ``seq_len`` is cut to it and fills a row of its own.
    """
    from bisect import bisect_left, insort

    kept = [
        (index, example.input_ids[:seq_len], example.labels[:seq_len])
        for index, example in enumerate(examples)
        if example.input_ids
    ]
    kept.sort(key=lambda item: (-len(item[1]), item[0]))
    rows: list[PackedRow] = []
    free: list[tuple[int, int]] = []  # (free tokens, row index), ascending
    for index, ids, labels in kept:
        slot = bisect_left(free, (len(ids), -1))
        if slot < len(free):
            space, row_index = free.pop(slot)
        else:
            space, row_index = seq_len, len(rows)
            rows.append(PackedRow([], [], [], []))
        row = rows[row_index]
        row.input_ids += ids
        row.labels += [IGNORE, *labels[1:]]
        row.position_ids += list(range(len(ids)))
        row.lengths.append(len(ids))
        row.sources.append(index)
        insort(free, (space - len(ids), row_index))
    for row in rows:
        yield padded(row, seq_len, pad_id)


def padded(row: PackedRow, seq_len: int, pad_id: int) -> PackedRow:
    missing = seq_len - len(row.input_ids)
    return PackedRow(
        row.input_ids + [pad_id] * missing,
        row.labels + [IGNORE] * missing,
        row.position_ids + list(range(missing)),
        row.lengths + [missing],
        row.sources,
    )


def seq2seq_examples(
    record: dict[str, Any], tokenizer: Any, prompt_format: str, max_length: int
) -> list[Example]:
    """Encoder-decoder examples: one per non-empty assistant turn, so every turn is a target.

    The source is the conversation before the turn (the chat template with its generation
    prompt, or each user turn in the plain template followed by the earlier replies), in the
    tokenizer's own special-token convention (T5 appends ``</s>``; BART wraps in ``<s>..</s>``).
    The labels are the reply in the same convention, all supervised: the decoder input is
    the labels shifted right, which the model builds itself. A source longer than
    ``max_length`` loses its beginning, so the turn being answered survives.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(
            f"prompt format {prompt_format!r}: choose one of {', '.join(PROMPT_FORMATS)}"
        )
    turns = turns_of(record)
    examples = []
    for index, turn in enumerate(turns):
        if turn["role"] != "assistant" or not turn["content"].strip():
            continue
        source_text = prompt_text(turns[:index], tokenizer, prompt_format)
        source = list(tokenizer(source_text)["input_ids"])
        target = list(tokenizer(text_target=turn["content"])["input_ids"])
        truncated = len(source) > max_length or len(target) > max_length
        source, target = source[-max_length:], target[:max_length]
        examples.append(Example(source, target, len(target), truncated))
    return examples


def opening_turns(record: dict[str, Any]) -> list[dict[str, str]]:
    """The record's conversation up to its first reply: what a model is asked to answer."""
    turns = turns_of(record)
    first_reply = next((i for i, t in enumerate(turns) if t["role"] == "assistant"), len(turns))
    return turns[:first_reply]


def generation_input_ids(
    turns: Sequence[dict[str, str]], tokenizer: Any, prompt_format: str, kind: str, max_length: int
) -> list[int]:
    """The ids a model generates its next reply from, as training built them, keeping the
    last ``max_length``: the seq2seq source, or the causal prompt."""
    if kind == "seq2seq":
        ids = tokenizer(prompt_text(turns, tokenizer, prompt_format))["input_ids"]
    else:
        ids = prompt_ids(turns, tokenizer, prompt_format)
    return list(ids)[-max_length:]


def prompt_ids(turns: Sequence[dict[str, str]], tokenizer: Any, prompt_format: str) -> list[int]:
    """Token ids a causal model is given to write the next assistant turn, built piece by
    piece exactly as ``tokenize_record`` builds them in training."""
    if prompt_format == "chat":
        return render(tokenizer, turns, generation_prompt=True)
    if prompt_format not in PLAIN_TEMPLATES:
        raise ValueError(
            f"prompt format {prompt_format!r}: choose one of {', '.join(PROMPT_FORMATS)}"
        )
    segments = plain_segments(turns, tokenizer, PLAIN_TEMPLATES[prompt_format])
    return [token for tokens, _ in segments for token in tokens]


def prompt_text(turns: Sequence[dict[str, str]], tokenizer: Any, prompt_format: str) -> str:
    """The text a model is given to answer the conversation's next assistant turn: what
    training put before each reply, as a string (generation and seq2seq sources)."""
    if prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt format 'chat' needs a tokenizer with a chat_template")
        return tokenizer.apply_chat_template(
            list(turns), tokenize=False, add_generation_prompt=True
        )
    template = PLAIN_TEMPLATES[prompt_format]
    parts, pending_system = [], ""
    for turn in turns:
        if turn["role"] == "system":
            pending_system = turn["content"] + "\n\n"
        elif turn["role"] == "user":
            parts.append(pending_system + template.replace("{instruction}", turn["content"]))
            pending_system = ""
        elif turn["role"] == "assistant":
            parts.append(turn["content"] + (tokenizer.eos_token or ""))
    return "".join(parts)


__all__ = [
    "IGNORE",
    "PLAIN_TEMPLATES",
    "PROMPT_FORMATS",
    "Example",
    "PackedRow",
    "check_supervised",
    "generation_input_ids",
    "opening_turns",
    "pack",
    "prompt_ids",
    "prompt_text",
    "seq2seq_examples",
    "tokenize_record",
    "turns_of",
]
