"""RedactPII: each kind's positives and look-alikes, ordering, and the stage. Pure, no Ray."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.pii import (
    PIIConfig,
    RedactPII,
    cn_resident_id_check_character,
    passes_luhn,
    redact_pii,
)
from pipeline.schema import make_record, message, rows_to_table

DEFAULT = PIIConfig()
# The worked example of GB 11643-1999 (check character X), and two computed here.
RESIDENT_ID_X = "11010519491231002X"
RESIDENT_ID = "44030619900307123" + "2"
RESIDENT_ID_LEAP_DAY = "11010120000229001" + "8"


def redacted(text: str, config: PIIConfig = DEFAULT) -> tuple[str, dict[str, int]]:
    text, found = redact_pii(text, config)
    return text, dict(found)


def test_resident_id_checksum() -> None:
    assert cn_resident_id_check_character(RESIDENT_ID_X[:17]) == "X"
    assert cn_resident_id_check_character(RESIDENT_ID[:17]) == RESIDENT_ID[17]


@pytest.mark.parametrize(
    "digits", ["4111111111111111", "5555555555554444", "378282246310005", "30569309025904"]
)
def test_luhn_accepts_test_card_numbers(digits: str) -> None:
    assert passes_luhn(digits)
    assert not passes_luhn(digits[:-1] + str((int(digits[-1]) + 1) % 10))


@pytest.mark.parametrize(
    ("text", "expected", "kind"),
    [
        ("mail john.doe@example.com now", "mail <EMAIL> now", "pii.email"),
        ("邮箱是zhang.san+tag@mail.example.com.cn，谢谢", "邮箱是<EMAIL>，谢谢", "pii.email"),
        ("(a_b-c@sub.example.org).", "(<EMAIL>).", "pii.email"),
        ("我的手机号是13812345678，请联系我", "我的手机号是<PHONE>，请联系我", "pii.phone"),
        ("电话+86 138 1234 5678。", "电话<PHONE>。", "pii.phone"),
        ("call +86-138-1234-5678", "call <PHONE>", "pii.phone"),
        ("手机138-1234-5678", "手机<PHONE>", "pii.phone"),
        ("座机010-12345678", "座机<PHONE>", "pii.phone"),
        ("landline 0755-1234567.", "landline <PHONE>.", "pii.phone"),
        ("call +1 (415) 555-2671 today", "call <PHONE> today", "pii.phone"),
        ("London +44 20 7946 0958.", "London <PHONE>.", "pii.phone"),
        ("Paris +33 1 23 45 67 89", "Paris <PHONE>", "pii.phone"),
        ("(415) 555-2671", "<PHONE>", "pii.phone"),
        ("415-555-2671", "<PHONE>", "pii.phone"),
        ("415.555.2671", "<PHONE>", "pii.phone"),
        ("1-415-555-2671", "<PHONE>", "pii.phone"),
        ("server 192.168.1.10, ok", "server <IP_ADDRESS>, ok", "pii.ip_address"),
        ("地址是10.0.0.1。", "地址是<IP_ADDRESS>。", "pii.ip_address"),
        ("v6 2001:db8::1 here", "v6 <IP_ADDRESS> here", "pii.ip_address"),
        ("loopback ::1", "loopback <IP_ADDRESS>", "pii.ip_address"),
        ("fe80::1ff:fe23:4567:890a", "<IP_ADDRESS>", "pii.ip_address"),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "<IP_ADDRESS>", "pii.ip_address"),
        ("mapped ::ffff:192.0.2.1.", "mapped <IP_ADDRESS>.", "pii.ip_address"),
        ("http://[2001:db8::7]:8080/", "http://[<IP_ADDRESS>]:8080/", "pii.ip_address"),
        ("card 4111 1111 1111 1111.", "card <CREDIT_CARD>.", "pii.credit_card"),
        ("4111-1111-1111-1111", "<CREDIT_CARD>", "pii.credit_card"),
        ("卡号4111111111111111", "卡号<CREDIT_CARD>", "pii.credit_card"),
        ("amex 3782 822463 10005", "amex <CREDIT_CARD>", "pii.credit_card"),
        ("mc 5555555555554444", "mc <CREDIT_CARD>", "pii.credit_card"),
        (f"身份证号{RESIDENT_ID_X}，", "身份证号<CN_RESIDENT_ID>，", "pii.cn_resident_id"),
        (f"id {RESIDENT_ID_X.lower()}", "id <CN_RESIDENT_ID>", "pii.cn_resident_id"),
        (f"ID: {RESIDENT_ID}", "ID: <CN_RESIDENT_ID>", "pii.cn_resident_id"),
        (RESIDENT_ID_LEAP_DAY, "<CN_RESIDENT_ID>", "pii.cn_resident_id"),
    ],
)
def test_pii_is_redacted(text: str, expected: str, kind: str) -> None:
    assert redacted(text) == (expected, {kind: 1})


@pytest.mark.parametrize(
    "text",
    [
        "follow @username on twitter",
        "a@b and user@localhost",
        "@decorator and foo@bar.",
        "the year 2023 and 42 apples",
        "version 1.2.3 and 10.4.5-beta",
        "dated 2023-01-15 at 12:30:45",
        "2023/01/15 2023.01.15 20230115",
        "costs $1,234.56 or ¥12345.00",
        "1234567890 is an order number",
        "123-456-7890 and 555-1234",
        "pi is 3.14159265358979",
        "999.1.1.1 and 256.0.0.1",
        "dotted 1.2.3.4.5 run",
        "time 12:30:45, ratio 3:2, a::b, std::vector, x[1::2], y[::2]",
        "mac 00:1A:2B:3C:4D:5E",
        "4111 1111 1111 1112",
        "4111111111111112",
        "1700000000000 ms timestamp",
        "11010519491231002Y",
        "110105194912310021",  # wrong check digit
        "110105194913310021",  # month 13, checksum valid
        "110105180001010010",  # born 1800, checksum valid
        "sku ABC13812345678 and 138123456789",
        "hash 0x1f3a9b7c and uuid 123e4567-e89b-12d3-a456-426614174000",
    ],
)
def test_look_alikes_are_not_redacted(text: str) -> None:
    assert redacted(text) == (text, {})


def test_negative_resident_ids_really_have_the_stated_defect() -> None:
    assert cn_resident_id_check_character("11010519491331002") == "1"
    assert cn_resident_id_check_character("11010518000101001") == "0"


def test_long_numbers_are_claimed_by_the_right_kind_first() -> None:
    text = f"id {RESIDENT_ID} card 4111111111111111 tel 13812345678 ip 8.8.8.8 a@example.com"
    assert redacted(text) == (
        "id <CN_RESIDENT_ID> card <CREDIT_CARD> tel <PHONE> ip <IP_ADDRESS> <EMAIL>",
        {
            "pii.cn_resident_id": 1,
            "pii.credit_card": 1,
            "pii.phone": 1,
            "pii.ip_address": 1,
            "pii.email": 1,
        },
    )


def test_digits_inside_an_email_are_not_a_phone() -> None:
    assert redacted("13812345678@qq.com") == ("<EMAIL>", {"pii.email": 1})


def test_each_match_is_counted() -> None:
    text = "a@x.com, b@y.org; 13812345678 / 13987654321 / 415-555-2671"
    assert redacted(text) == (
        "<EMAIL>, <EMAIL>; <PHONE> / <PHONE> / <PHONE>",
        {"pii.email": 2, "pii.phone": 3},
    )


def test_kinds_and_placeholder_are_configurable() -> None:
    config = PIIConfig(kinds=("email",), placeholder_format="[{kind} removed]")
    assert redacted("a@example.com 13812345678", config) == (
        "[EMAIL removed] 13812345678",
        {"pii.email": 1},
    )
    assert PIIConfig(kinds=["phone"]).kinds == ("phone",)  # YAML lists become tuples


@pytest.mark.parametrize("options", [{"kinds": ("ssn",)}, {"placeholder_format": "<{name}>"}])
def test_config_rejects_bad_values(options: dict) -> None:
    with pytest.raises(ValueError):
        PIIConfig(**options)


def test_stage_redacts_every_text_field_and_passes_dropped_rows_through() -> None:
    def record(user: str, assistant: str, line: int, **fields: str) -> dict:
        return make_record(
            messages=[message("user", user), message("assistant", assistant)],
            source_file="/data/a.jsonl",
            source_format="sharegpt",
            source_line=line,
            **fields,
        )

    rows = [
        record(
            "我的手机号是13812345678，请联系我",
            "好的，我会发邮件到a@example.com",
            1,
            system="Contact admin@example.org",
            context="server 10.0.0.1",
        ),
        record("What is 2+2?", "4", 2),
        {**record("mail b@example.com", "ok", 3), "drop_reason": "filter.too_short"},
    ]
    batch = rows_to_table(rows)
    out, counts = RedactPII(PIIConfig()).run(batch)

    assert out.schema == batch.schema and out.num_rows == 3
    first, second, dropped = out.to_pylist()
    assert first["system"] == "Contact <EMAIL>"
    assert first["context"] == "server <IP_ADDRESS>"
    assert [turn["content"] for turn in first["messages"]] == [
        "我的手机号是<PHONE>，请联系我",
        "好的，我会发邮件到<EMAIL>",
    ]
    assert first["id"] != rows[0]["id"]
    assert second == rows[1]
    assert dropped == rows[2]
    assert counts.seen == 2 and counts.kept == 2 and not counts.dropped
    assert counts.modified == Counter({"pii.email": 2, "pii.phone": 1, "pii.ip_address": 1})
