"""SFT examples: loss only on replies, every assistant turn, empty masks refused, and a packed
row that computes exactly what its examples compute alone (tiny Llama built from a config,
word-level tokenizer trained here; nothing is downloaded)."""

from __future__ import annotations

import os

import pytest

from train.sft_data import IGNORE, Example, check_supervised, pack, tokenize_record

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)
TEXTS = [
    "Instruction: name a colour Output: red",
    "what is two plus two ? four",
    "say hello in french bonjour",
    "list three fruits apple pear plum",
    "be brief . you are helpful",
]


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<user>", "<assistant>", "<system>"]
    backend.train_from_iterator(TEXTS, trainers.WordLevelTrainer(special_tokens=specials))
    made = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    made.chat_template = CHAT_TEMPLATE
    return made


def record(*turns: str, system: str = "", context: str = "") -> dict:
    roles = ["user", "assistant"] * len(turns)
    messages = [{"role": r, "content": c} for r, c in zip(roles, turns, strict=False)]
    return {"messages": messages, "system": system, "context": context}


def supervised_text(tokenizer, example: Example) -> list[str]:
    return [
        tokenizer.convert_ids_to_tokens(token)
        for token, label in zip(example.input_ids, example.labels, strict=True)
        if label != IGNORE
    ]


def test_plain_template_supervises_every_reply_and_nothing_else(tokenizer):
    example = tokenize_record(
        record("name a colour", "red", "what is two plus two ?", "four", context="be brief ."),
        tokenizer,
        "instruction_output",
        max_length=64,
    )
    assert supervised_text(tokenizer, example) == ["red", "</s>", "four", "</s>"]
    assert example.supervised == 4 and not example.truncated
    assert example.input_ids[0] == tokenizer.bos_token_id and example.labels[0] == IGNORE
    # The context belongs to the last user turn, inside the template.
    prompt = tokenizer.decode(example.input_ids)
    assert "four ? be brief ." not in prompt and "plus two ? be brief ." in prompt


def test_chat_template_supervises_every_assistant_turn(tokenizer):
    example = tokenize_record(
        record(
            "say hello in french",
            "bonjour",
            "list three fruits",
            "apple pear plum",
            system="you are helpful",
        ),
        tokenizer,
        "chat",
        max_length=64,
    )
    assert supervised_text(tokenizer, example) == [
        "bonjour",
        "</s>",
        "apple",
        "pear",
        "plum",
        "</s>",
    ]
    tokens = tokenizer.convert_ids_to_tokens(example.input_ids)
    assert tokens[:2] == ["<system>", "you"]
    assert tokens.count("<assistant>") == 2


def test_a_dataset_without_a_supervised_token_is_an_error(tokenizer):
    empty = tokenize_record(record("name a colour", ""), tokenizer, "instruction_output", 64)
    cut = tokenize_record(record("name a colour", "red"), tokenizer, "instruction_output", 4)
    assert empty.supervised == 0 and cut.supervised == 0 and cut.truncated
    with pytest.raises(ValueError, match="train.parquet: no response token is supervised"):
        check_supervised([empty, cut], "train.parquet")
    kept = tokenize_record(record("name a colour", "red"), tokenizer, "instruction_output", 64)
    assert check_supervised([empty, kept], "train.parquet") == 2


def test_unknown_format_and_missing_chat_template_are_named(tokenizer):
    with pytest.raises(ValueError, match="chat, instruction_output, alpaca"):
        tokenize_record(record("a", "b"), tokenizer, "vicuna", 16)
    plain = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, eos_token="</s>")
    with pytest.raises(ValueError, match="no.*chat_template|has none"):
        tokenize_record(record("a", "b"), plain, "chat", 16)


def test_pack_fits_best_longest_first_and_restarts_positions():
    examples = [
        Example([1, 2, 3], [IGNORE, 2, 3], 2),
        Example([4, 5], [IGNORE, 5], 1),
        Example([6, 7, 8, 9], [IGNORE, IGNORE, 8, 9], 2),
    ]
    rows = list(pack(examples, seq_len=6, pad_id=0))
    # 4 tokens open a row; 3 do not fit its 2 free, so they open another; 2 fill the first.
    assert [r.input_ids for r in rows] == [[6, 7, 8, 9, 4, 5], [1, 2, 3, 0, 0, 0]]
    assert rows[0].position_ids == [0, 1, 2, 3, 0, 1]
    assert rows[0].labels == [IGNORE, IGNORE, 8, 9, IGNORE, 5]
    assert rows[0].lengths == [4, 2, 0] and rows[0].sources == [2, 1]
    assert rows[1].lengths == [3, 3] and rows[1].sources == [0]


def test_best_fit_leaves_less_padding_than_next_fit_on_mixed_lengths():
    import random

    generator = random.Random(0)
    lengths = [int(8 * 64 ** generator.random()) for _ in range(400)]  # 8..512, log-uniform
    examples = [Example([1] * n, [IGNORE] + [1] * (n - 1), n - 1) for n in lengths]
    rows = list(pack(examples, seq_len=512, pad_id=0))
    next_fit_rows, used = 1, 0
    for n in lengths:
        if used + n > 512:
            next_fit_rows, used = next_fit_rows + 1, 0
        used += n
    assert sum(len(r.sources) for r in rows) == len(examples)
    assert len(rows) < next_fit_rows
    assert 1 - sum(lengths) / (512 * len(rows)) < 0.05  # padding
    long = list(pack([Example(list(range(1, 10)), list(range(1, 10)), 8)], 4, 0))
    assert [r.input_ids for r in long] == [[1, 2, 3, 4]]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_packed_row_computes_what_its_examples_compute_alone(tokenizer, attention):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            attn_implementation=attention,
        )
    ).eval()
    examples = [
        tokenize_record(record(*pair), tokenizer, "instruction_output", 64)
        for pair in [
            ("name a colour", "red"),
            ("list three fruits", "apple pear plum"),
            ("say hello in french", "bonjour"),
        ]
    ]
    (row,) = pack(examples, seq_len=64, pad_id=tokenizer.pad_token_id)
    assert len(row.lengths) == 4  # three examples and the padding
    with torch.no_grad():
        packed = model(
            input_ids=torch.tensor([row.input_ids]),
            position_ids=torch.tensor([row.position_ids]),
            use_cache=False,  # with a cache, transformers does not look for packing
        ).logits[0]
        start, packed_loss, alone_loss = 0, 0.0, 0.0
        for example in (examples[index] for index in row.sources):  # the row's order
            alone = model(input_ids=torch.tensor([example.input_ids])).logits[0]
            span = packed[start : start + len(example.input_ids)]
            torch.testing.assert_close(span, alone, atol=1e-5, rtol=1e-5)
            labels = torch.tensor(example.labels)
            alone_loss += torch.nn.functional.cross_entropy(
                alone[:-1], labels[1:], ignore_index=IGNORE, reduction="sum"
            ).item()
            start += len(example.input_ids)
        packed_loss = torch.nn.functional.cross_entropy(
            packed[:-1], torch.tensor(row.labels)[1:], ignore_index=IGNORE, reduction="sum"
        ).item()
    assert packed_loss == pytest.approx(alone_loss, rel=1e-5)
