"""Dirt drawn on top of a record's text, independently of the rest: PII, HTML, mojibake and
end-of-text markers."""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Mapping
from typing import Any

from bench.corpora.banks import Language, split_bank
from bench.corpora.english import ENGLISH

_BOUNDARY = re.compile(r"[.!?。！？]\s*")


def _text_field(record: Mapping[str, Any]) -> str:
    return "output" if record["output"].strip() else "instruction"


def _pii(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    """One or two PII-bearing sentences, in the output, the instruction or the input."""
    for _ in range(1 if rng.random() < 0.8 else 2):
        kind = rng.choice(lang.pii_kinds)
        sentence = rng.choice(lang.pii_templates[kind]).format(v=_PII_VALUES[kind](lang, rng))
        roll = rng.random()
        field = "input" if roll < 0.15 else "instruction" if roll < 0.4 else _text_field(record)
        text = record[field]
        joiner = "\n\n" if field == "output" and rng.random() < 0.3 else lang.joiner
        record[field] = text + joiner + sentence if text.strip() else sentence


def _email_address(lang: Language, rng: random.Random) -> str:
    if lang.code == "zh":
        if rng.random() < 0.3:
            return f"{rng.randint(10_000_000, 2_999_999_999)}@qq.com"
        suffix = str(rng.randint(1, 99)) if rng.random() < 0.6 else ""
        return f"{rng.choice(_ZH_PINYIN_NAMES)}{suffix}@{rng.choice(_ZH_MAIL_DOMAINS)}"
    first, last = rng.choice(_EN_FIRST_NAMES), rng.choice(_EN_LAST_NAMES)
    local = rng.choice(
        (f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}_{last}")
    )
    if rng.random() < 0.4:
        local += str(rng.randint(1, 99))
    return f"{local}@{rng.choice(_EN_MAIL_DOMAINS)}"


def _us_phone(lang: Language, rng: random.Random) -> str:
    area, exchange, line = rng.choice(_US_AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
    style = rng.randrange(3)
    if style == 0:
        return f"({area}) {exchange}-{line:04d}"
    if style == 1:
        return f"{area}-{exchange}-{line:04d}"
    return f"+1 {area} {exchange} {line:04d}"


def _cn_mobile(lang: Language, rng: random.Random) -> str:
    prefix, rest = rng.choice(_CN_MOBILE_PREFIXES), rng.randint(0, 99_999_999)
    number = f"{prefix}{rest:08d}"
    style = rng.random()
    if style < 0.7:
        return number
    if style < 0.85:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    return f"+86 {number}"


def _ipv4(lang: Language, rng: random.Random) -> str:
    if rng.random() < 0.4:
        return f"192.168.{rng.randint(0, 20)}.{rng.randint(2, 254)}"
    first = rng.choice((23, 45, 61, 81, 101, 114, 118, 172, 185, 203, 210, 220))
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _luhn_check_digit(partial: str) -> int:
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # these digits sit at odd positions once the check digit is added
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10


def _credit_card(lang: Language, rng: random.Random) -> str:
    prefix = rng.choice(("4", "4", "51", "52", "53", "54", "55"))
    partial = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    number = partial + str(_luhn_check_digit(partial))
    separator = rng.choice(("", " ", " ", "-"))
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def _cn_resident_id(lang: Language, rng: random.Random) -> str:
    """An 18-digit ID with a valid GB 11643 check character."""
    body = (
        f"{rng.choice(_CN_AREA_CODES)}{rng.randint(1960, 2004)}{rng.randint(1, 12):02d}"
        f"{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    )
    checksum = sum(int(char) * weight for char, weight in zip(body, _CN_ID_WEIGHTS, strict=True))
    return body + _CN_ID_CHECK[checksum % 11]


_PII_VALUES = {
    "email": _email_address,
    "phone": _us_phone,
    "cn_mobile": _cn_mobile,
    "ipv4": _ipv4,
    "credit_card": _credit_card,
    "cn_id": _cn_resident_id,
}


def _html(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    field = _text_field(record)
    text = record[field]
    style = rng.randrange(4)
    if style == 0:
        paragraphs = text.split("\n\n")
        text = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>" for p in paragraphs)
    elif style == 1:
        text = '<div class="answer">\n' + text.replace("\n", "<br>\n") + "\n</div>"
    elif style == 2:
        first, _, rest = text.partition(lang.stop)
        link = f'<a href="https://www.example.com/articles/{rng.randint(100, 9999)}">'
        text = f"<b>{first}{lang.stop}</b>{rest} {link}Read more</a>"
    else:
        text = text.replace(" and ", " &amp; ").replace("'", "&#39;")
        text = f'<span style="font-size:14px">{text}</span>&nbsp;'
    record[field] = text


def _latin1_to_cp1252() -> dict[int, str]:
    """How the C1 range reads when the bytes are taken as cp1252 instead of latin-1."""
    table = {}
    for byte in range(0x80, 0xA0):
        with contextlib.suppress(UnicodeDecodeError):  # five bytes are undefined in cp1252
            table[byte] = bytes([byte]).decode("cp1252")
    return table


_LATIN1_TO_CP1252 = _latin1_to_cp1252()


def _mojibake(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    """UTF-8 bytes read back as cp1252 (or latin-1), from a sentence start to the end."""
    field = _text_field(record)
    text = record[field]
    if text.isascii():
        text = text.replace("'", "’").replace(" - ", " — ")
        if text.isascii():
            text = text + " " + rng.choice(ENGLISH.mojibake_sentences)
    last_special = max(i for i, char in enumerate(text) if ord(char) > 127)
    starts = [0] + [m.end() for m in _BOUNDARY.finditer(text) if m.end() <= last_special]
    cut = rng.choice(starts)
    garbled = text[cut:].encode("utf-8").decode("latin-1")
    if rng.random() < 0.8:
        garbled = garbled.translate(_LATIN1_TO_CP1252)
    record[field] = text[:cut] + garbled


def _endoftext(record: dict[str, Any], lang: Language, rng: random.Random) -> None:
    output = record["output"]
    token = rng.choice(_EOT_TOKENS)
    roll = rng.random()
    if roll < 0.6 or not output.strip():
        record["output"] = output + token
    elif roll < 0.8:
        record["output"] = output + token + rng.choice(_EOT_TAILS)
    else:
        middle = output.find(lang.stop, len(output) // 3)
        at = middle + 1 if middle >= 0 else len(output)
        record["output"] = output[:at] + token + output[at:]


DECORATE = {"pii": _pii, "html": _html, "mojibake": _mojibake, "endoftext": _endoftext}


_EN_FIRST_NAMES = split_bank(
    "john|mary|james|linda|robert|susan|michael|karen|david|lisa|daniel|emma|olivia|noah|liam|"
    "sophia|ethan|ava|lucas|mia"
)


_EN_LAST_NAMES = split_bank(
    "smith|johnson|lee|brown|garcia|miller|davis|wilson|taylor|clark|walker|young|hall|allen|"
    "king|wright|turner|parker"
)


_EN_MAIL_DOMAINS = split_bank(
    "gmail.com|outlook.com|yahoo.com|hotmail.com|icloud.com|proton.me|mail.example.com|example.org"
)


_ZH_PINYIN_NAMES = split_bank(
    "zhangwei|wangfang|liuyang|chenjing|lina|zhaolei|huangli|yangfan|zhoujie|wumin|xuqiang|sunli"
)


_ZH_MAIL_DOMAINS = split_bank("163.com|qq.com|126.com|sina.com|foxmail.com|aliyun.com")


_US_AREA_CODES = (212, 213, 312, 415, 503, 512, 617, 646, 702, 206, 303, 404)


_CN_MOBILE_PREFIXES = (
    130,
    131,
    132,
    133,
    135,
    136,
    137,
    138,
    139,
    150,
    151,
    152,
    155,
    156,
    158,
    159,
    166,
    176,
    177,
    180,
    181,
    186,
    187,
    188,
    189,
    199,
)


# Real county-level division codes, so the 18-digit IDs look like the real thing.
_CN_AREA_CODES = (
    110101,
    110105,
    310101,
    310115,
    440106,
    440305,
    330106,
    320102,
    510107,
    420106,
    610113,
    500103,
    370102,
    210102,
)


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


_CN_ID_CHECK = "10X98765432"


_EOT_TOKENS = ("<|endoftext|>",) * 6 + ("<|im_end|>", "</s>")


_EOT_TAILS = ("\n\nHuman: thanks!", "\n\nUser: Can you say more?", "\n\n### Instruction:")
