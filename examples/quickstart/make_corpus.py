"""Write the quickstart corpus into examples/quickstart/data/.

    python examples/quickstart/make_corpus.py

The clean bulk comes from ``bench.corpora`` (deterministic, authored word banks); the dirt
that each stage of the quickstart recipe should catch is mostly written out by hand below, so
that a reader can open a data file and find it. Every run writes the same bytes (gzip with a
zero timestamp), so the files can be regenerated and diffed.

What is in each file:
  alpaca_en.jsonl          English alpaca: duplicates, PII, empty responses, refusals,
                           mojibake, HTML, <|endoftext|>, French and German records, blocklist terms
  sharegpt_zh.json         Chinese multi-turn sharegpt (JSON array): mobile numbers, resident
                           IDs, duplicates, a Japanese conversation, a blocklist term
  messages_mixed.jsonl.gz  OpenAI messages with system prompts, English and Chinese, gzip
  qa_en.csv                question,context,answers (one answer text) for QA templates
  web_text.txt             raw English paragraphs; one is spam that repeats itself
  broken.jsonl             good alpaca lines mixed with malformed ones (for quarantine)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # runnable from a plain checkout, before `pip install -e .`

from bench.corpora import (  # noqa: E402
    DirtConfig,
    generate_paragraphs,
    generate_qa,
    generate_records,
    to_format,
    write_records,
)

DATA = Path(__file__).resolve().parent / "data"
FILES = (
    "alpaca_en.jsonl",
    "sharegpt_zh.json",
    "messages_mixed.jsonl.gz",
    "qa_en.csv",
    "web_text.txt",
    "broken.jsonl",
)

# Hand-written dirty alpaca records, each tagged with what a stage should do about it.
ALPACA_DIRT = [
    {  # pii: e-mail and US phone number in the response
        "instruction": "How can customers contact the bakery about a large order?",
        "input": "",
        "output": "Customers can email the owner at rosa.marquez@gmail.com or call (415) "
        "555-0193 between 8 a.m. and noon. Large orders need two days' notice.",
    },
    {  # pii: a Luhn-valid card number and an IPv4 address in the instruction
        "instruction": "My card 4539 1488 0343 6467 was declined when I ordered from "
        "192.168.10.24. Why would that happen?",
        "input": "",
        "output": "A card is usually declined because of a typo in the expiry date, a billing "
        "address that does not match, or a daily limit. Check those first, then call the bank.",
    },
    {  # length: empty response
        "instruction": "Give me three tips for keeping basil alive on a windowsill.",
        "input": "",
        "output": "",
    },
    {  # length: whitespace-only response
        "instruction": "What is the difference between baking soda and baking powder?",
        "input": "",
        "output": "   ",
    },
    {  # refusal
        "instruction": "Suggest a name for a small neighborhood coffee shop.",
        "input": "",
        "output": "As an AI language model, I cannot have personal preferences, so I cannot "
        "suggest a name for your coffee shop.",
    },
    {  # refusal
        "instruction": "Write a two-line poem about the first snow of the year.",
        "input": "",
        "output": "I'm sorry, but I can't help with that.",
    },
    {  # clean: mojibake (UTF-8 read as cp1252) that ftfy repairs
        "instruction": "Describe the atmosphere of a small café on a rainy afternoon.",
        "input": "",
        "output": "The cafÃ© is quiet â€” only the hiss of the espresso machine and the "
        "rain on the windows. Itâ€™s the kind of place where nobody minds if you stay for "
        "hours.",
    },
    {  # clean: mojibake in the instruction
        "instruction": "Whatâ€™s a good way to keep a sourdough starter alive while Iâ€™m "
        "away for a week?",
        "input": "",
        "output": "Feed the starter, let it rise for an hour, then put it in the fridge. It "
        "will be fine for a week; feed it twice when you are back before baking with it.",
    },
    {  # clean: HTML markup and entities
        "instruction": "List two benefits of walking to work.",
        "input": "",
        "output": "<p>Walking to work has two big benefits:</p><ul><li><b>Health:</b> you "
        "get daily exercise without planning it.</li><li><b>Money:</b> you save on fuel "
        "&amp; parking.</li></ul>",
    },
    {  # clean: HTML in a copied web answer
        "instruction": "How long should I boil an egg for a runny yolk?",
        "input": "",
        "output": '<div class="answer">About six minutes in gently boiling water, then '
        "straight into cold water.<br>Seven minutes gives a jammy yolk.</div>",
    },
    {  # clean: end-of-text marker and a leaked next turn
        "instruction": "Name three things to check before a long bike ride.",
        "input": "",
        "output": "Check the tire pressure, make sure the brakes work, and pack water and a "
        "spare tube.<|endoftext|>Human: thanks! what about a helmet?",
    },
    {  # clean: end-of-text marker at the end
        "instruction": "What does a thesaurus help a writer do?",
        "input": "",
        "output": "A thesaurus helps a writer find a more precise word, or avoid using the "
        "same word twice in a row.<|endoftext|>",
    },
    {  # language: French
        "instruction": "Donne-moi trois conseils pour bien organiser ma semaine.",
        "input": "",
        "output": "Commence par noter tes rendez-vous fixes. Garde ensuite un moment chaque "
        "matin pour les tâches importantes. Enfin, prévois une soirée libre pour te reposer.",
    },
    {  # language: German
        "instruction": "Wie bereite ich mich am besten auf ein Vorstellungsgespräch vor?",
        "input": "",
        "output": "Informiere dich gründlich über das Unternehmen und übe deine Antworten "
        "laut. Überlege dir außerdem zwei oder drei Fragen, die du selbst stellen möchtest.",
    },
    {  # blocklist: a demo term in the response
        "instruction": "Is there a quick way to get rid of a cold?",
        "input": "",
        "output": "Some websites sell a moonshine miracle cure that promises to end a cold "
        "overnight. Rest, fluids and time work better, and they are free.",
    },
    {  # blocklist: a demo term in the instruction
        "instruction": "Write a product description for the Zorblax energy drink.",
        "input": "",
        "output": "Zorblax is a lightly sparkling drink with a hint of lime, made for long "
        "afternoons when you need a small lift without a sugar crash.",
    },
    {  # copy: the response repeats the instruction
        "instruction": "Explain why the sky looks blue during the day.",
        "input": "",
        "output": "Explain why the sky looks blue during the day.",
    },
]


def conversation(*turns: tuple[str, str]) -> dict:
    """A sharegpt record from (speaker, text) pairs."""
    return {"conversations": [{"from": speaker, "value": text} for speaker, text in turns]}


SHAREGPT_DIRT = [
    conversation(  # pii: Chinese mobile number and resident ID
        ("human", "我想办理快递代收，需要提供哪些信息？"),
        ("gpt", "一般需要提供收件人姓名、手机号和详细地址，有些驿站还要求实名登记。"),
        ("human", "好的，我叫王丽，手机号13812345678，身份证号110105199003078510。"),
        ("gpt", "收到。建议不要在聊天中发送完整的身份证号，到驿站现场出示证件即可。"),
    ),
    conversation(  # pii: a mobile number and an e-mail address in the answer
        ("human", "小区的停车位怎么申请？"),
        (
            "gpt",
            "可以联系物业的李经理，电话13987654321，"
            "也可以发邮件到wuye_service@163.com，说明车牌号和房号就行。",
        ),
    ),
    conversation(  # pii: a resident ID in a form-filling question
        ("system", "你是一个乐于助人的助手。"),
        ("human", "帮我检查一下这个身份证号格式对不对：310104198511223020。"),
        (
            "gpt",
            "这个号码是18位，前六位是地区码，中间八位是出生日期，最后一位是校验码，格式是正确的。",
        ),
    ),
    conversation(  # language: Japanese
        ("human", "週末に東京で行くべき場所を教えてください。"),
        (
            "gpt",
            "浅草寺や上野公園がおすすめです。"
            "天気が良ければ、隅田川沿いを散歩するのも楽しいですよ。",
        ),
    ),
    conversation(  # blocklist: a demo term
        ("human", "朋友推荐我买一本快速致富秘籍，值得买吗？"),
        ("gpt", "不建议购买。承诺快速致富的内容大多不可靠，踏实储蓄和学习理财知识更有用。"),
    ),
    conversation(  # refusal
        ("human", "请推荐一部适合周末看的电影。"),
        ("gpt", "抱歉，我无法提供个人观点。"),
    ),
]

# A paragraph of keyword spam for the repetition filter.
SPAM_PARAGRAPH = (
    "Best garden hoses for sale. Cheap garden hoses, best prices online. Best garden hoses for "
    "sale. Cheap garden hoses, best prices online. Best garden hoses for sale. Cheap garden "
    "hoses, best prices online. Best garden hoses for sale. Cheap garden hoses, best prices "
    "online. Best garden hoses for sale. Cheap garden hoses, best prices online."
)


def interleave(clean: list[dict], dirty: list[dict], every: int) -> list[dict]:
    """Spread the dirty records through the clean ones, one after every ``every`` clean ones."""
    merged, pending = [], list(dirty)
    for index, record in enumerate(clean, start=1):
        merged.append(record)
        if index % every == 0 and pending:
            merged.append(pending.pop(0))
    return merged + pending


def with_duplicates(records: list[dict], sources: list[int], every: int) -> list[dict]:
    """Copy the records at ``sources`` and spread the copies further down the list."""
    return interleave(records, [dict(records[i]) for i in sources], every)


def alpaca_en() -> list[dict]:
    dirt = DirtConfig(exact_duplicate=0.02, near_duplicate=0.03, pii=0.03, mojibake=0.02)
    clean = list(
        generate_records(126, seed=101, language_mix={"en": 1.0}, dirt=dirt, history_rate=0.03)
    )
    records = interleave(clean, ALPACA_DIRT, every=7)
    return with_duplicates(records, [2, 11, 40, 58], every=35)


def sharegpt_zh() -> list[dict]:
    clean = [
        to_format(record, "sharegpt")
        for record in generate_records(
            70, seed=102, language_mix={"zh": 1.0}, system_rate=0.3, history_rate=0.85
        )
    ]
    records = interleave(clean, SHAREGPT_DIRT, every=11)
    return with_duplicates(records, [3, 20, 33], every=25)


def messages_mixed() -> list[dict]:
    dirt = DirtConfig(refusal=0.04, endoftext=0.04, pii=0.04)
    mix = {"en": 0.6, "zh": 0.4}
    records = generate_records(60, seed=103, language_mix=mix, dirt=dirt, system_rate=1.0)
    return [to_format(record, "messages") for record in records]


def qa_rows() -> list[dict]:
    return [
        {"question": row["question"], "context": row["context"], "answers": row["answers"][0]}
        for row in generate_qa(30, seed=104)
    ]


def web_text() -> str:
    paragraphs = list(generate_paragraphs(14, seed=105, min_chars=250, max_chars=600))
    paragraphs.insert(7, SPAM_PARAGRAPH)
    return "\n\n".join(paragraphs) + "\n"


def broken_lines() -> bytes:
    """Good alpaca lines among a truncated line, invalid UTF-8, a missing field and an array."""
    good = [
        json.dumps(record, ensure_ascii=False).encode("utf-8")
        for record in generate_records(6, seed=106, language_mix={"en": 1.0}, system_rate=0)
    ]
    truncated = json.dumps(
        {"instruction": "Name a fruit that is high in vitamin C.", "input": "", "output": "Kiwi."}
    )
    lines = [
        good[0],
        good[1],
        truncated[:52].encode("utf-8"),  # cut mid-string: not valid JSON
        good[2],
        b"",
        # latin-1 bytes: \xe9 alone is not valid UTF-8
        b'{"instruction": "Describe a caf\xe9 in Paris.", "input": "", "output": "Small."}',
        good[3],
        b'{"instruction": "What is the capital of Canada?", "input": ""}',  # no "output"
        b"",
        b'["What is the tallest mountain in Africa?", "Mount Kilimanjaro."]',  # not an object
        good[4],
        good[5],
    ]
    return b"\n".join(lines) + b"\n"


def write_all(out: Path) -> list[Path]:
    """Write every quickstart data file into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    write_records(out / "alpaca_en.jsonl", alpaca_en())
    write_records(out / "sharegpt_zh.json", sharegpt_zh(), file_type="json", indent=2)
    write_records(out / "messages_mixed.jsonl.gz", messages_mixed())
    write_records(out / "qa_en.csv", qa_rows(), file_type="csv")
    (out / "web_text.txt").write_text(web_text(), encoding="utf-8")
    (out / "broken.jsonl").write_bytes(broken_lines())
    return [out / name for name in FILES]


def main() -> None:
    for path in write_all(DATA):
        print(f"{path.stat().st_size:>8,d}  {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
