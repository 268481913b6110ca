"""PII redaction: replace e-mails, phone numbers, IPs, card numbers and Chinese resident IDs.

Kinds run in a fixed order, longest structured numbers first (resident ID, card), so a phone
pattern never claims a piece of an ID and no pattern sees another's placeholder digits.
Number boundaries are lookarounds on ASCII letters and digits, not ``\\b``: in Chinese text
a number sits directly between CJK characters, which ``\\b`` counts as word characters.
Checksummed kinds (ID, card) and IPs are validated, so look-alike numbers are left alone.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from typing import ClassVar, Literal

import pyarrow as pa
from pydantic import field_validator

from pipeline.schema import map_texts
from pipeline.stage import StageConfig, StageCounts, Transform

PIIKind = Literal["email", "phone", "ip_address", "credit_card", "cn_resident_id"]
APPLY_ORDER: tuple[PIIKind, ...] = ("cn_resident_id", "credit_card", "email", "ip_address", "phone")

# Not inside a longer alphanumeric run, and not the next group of a spaced/dashed number.
_START = r"(?<![0-9A-Za-z])(?<![0-9][ .-])"
_END = r"(?![0-9A-Za-z])(?![ .-][0-9])"

CN_RESIDENT_ID_RE = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")
# Grouped 4-4-4-4(-1..3) or 4-6-4/5 (Amex, Diners) with one consistent separator, or
# contiguous. Issuer numbers start with 2-6, which keeps millisecond timestamps (1...) out.
CREDIT_CARD_RE = re.compile(
    rf"{_START}(?:[2-6][0-9]{{3}}(?P<sep>[ -])[0-9]{{4}}(?P=sep)[0-9]{{4}}(?P=sep)[0-9]{{4}}"
    r"(?:(?P=sep)[0-9]{1,3})?|[2-6][0-9]{3}(?P<sep2>[ -])[0-9]{6}(?P=sep2)[0-9]{4,5}"
    rf"|[2-6][0-9]{{12,18}}){_END}"
)
EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
IP_ADDRESS_RE = re.compile(
    r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])"
    r"|(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}"
    r"|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z_:]|\.[0-9])"
)
_CN_MOBILE = r"(?:(?:\+|00)86[ -]?)?1[3-9][0-9](?P<msep>[ -]?)[0-9]{4}(?P=msep)[0-9]{4}"
_CN_LANDLINE = r"(?:(?:\+|00)86[ -]?)?0(?:10|2[0-9]|[3-9][0-9]{2})-[0-9]{7,8}"
_NANP = r"(?:\+?1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}"
_INTERNATIONAL = r"\+[1-9][0-9]{0,2}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,4}){2,6}"
PHONE_RE = re.compile(
    rf"(?<![+]){_START}(?:{_CN_MOBILE}|{_CN_LANDLINE}|{_NANP}|{_INTERNATIONAL}){_END}"
)

# Every kind needs a digit (IPv6 included, see is_ip_address) except e-mail, which needs "@".
MAY_HOLD_PII_RE = re.compile(r"[0-9@]")

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARACTERS = "10X98765432"


def cn_resident_id_check_character(first_17_digits: str) -> str:
    """The ISO 7064 MOD 11-2 check character of GB 11643-1999 resident ID numbers."""
    pairs = zip(first_17_digits, ID_WEIGHTS, strict=True)
    total = sum(int(digit) * weight for digit, weight in pairs)
    return ID_CHECK_CHARACTERS[total % 11]


def is_cn_resident_id(candidate: str) -> bool:
    if cn_resident_id_check_character(candidate[:17]) != candidate[17].upper():
        return False
    year, month, day = int(candidate[6:10]), int(candidate[10:12]), int(candidate[12:14])
    if not 1900 <= year <= 2100:
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def passes_luhn(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def is_credit_card(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and passes_luhn(digits)


def is_ip_address(candidate: str) -> bool:
    # Short colon runs are code far more often than addresses: Rust paths (a::b), Python
    # slices (x[1::2]). IPv6 needs a digit, two groups and one of 3+ characters (or is ::1).
    groups = [group for group in candidate.split(":") if group]
    if (
        ":" in candidate
        and candidate != "::1"
        and not (
            any(char.isdigit() for char in candidate)
            and len(groups) >= 2
            and max(len(group) for group in groups) >= 3
        )
    ):
        return False
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def is_phone(candidate: str) -> bool:
    # E.164 allows at most 15 digits; fewer than 8 is an extension or a short code.
    return 8 <= sum(char.isdigit() for char in candidate) <= 15


def _any(candidate: str) -> bool:
    return True


DETECTORS: dict[PIIKind, tuple[re.Pattern[str], Callable[[str], bool]]] = {
    "cn_resident_id": (CN_RESIDENT_ID_RE, is_cn_resident_id),
    "credit_card": (CREDIT_CARD_RE, is_credit_card),
    "email": (EMAIL_RE, _any),
    "ip_address": (IP_ADDRESS_RE, is_ip_address),
    "phone": (PHONE_RE, is_phone),
}


class PIIConfig(StageConfig):
    kinds: tuple[PIIKind, ...] = APPLY_ORDER
    # Rendered with the kind upper-cased: "<{kind}>" -> "<EMAIL>".
    placeholder_format: str = "<{kind}>"

    @field_validator("placeholder_format")
    @classmethod
    def _renders_with_kind_only(cls, value: str) -> str:
        try:
            value.format(kind="EMAIL")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"placeholder_format {value!r} must use only the field {{kind}}: {error!r}"
            ) from error
        return value


def _redact_kind(text: str, kind: PIIKind, placeholder: str, found: Counter) -> str:
    pattern, is_valid = DETECTORS[kind]

    def replace(match: re.Match[str]) -> str:
        if not is_valid(match.group()):
            return match.group()
        found[f"pii.{kind}"] += 1
        return placeholder

    return pattern.sub(replace, text)


def redact_pii(text: str, config: PIIConfig) -> tuple[str, Counter]:
    """The redacted text and a count of redactions per kind (``pii.email``: 2, ...)."""
    found: Counter = Counter()
    if not MAY_HOLD_PII_RE.search(text):
        return text, found
    for kind in APPLY_ORDER:
        if kind in config.kinds:
            placeholder = config.placeholder_format.format(kind=kind.upper())
            text = _redact_kind(text, kind, placeholder, found)
    return text, found


class RedactPII(Transform):
    """Redacts PII in every free-text field; counts each redaction under ``pii.<kind>``."""

    name: ClassVar[str] = "pii"
    Config: ClassVar[type[StageConfig]] = PIIConfig
    config: PIIConfig

    def transform(self, batch: pa.Table, counts: StageCounts) -> pa.Table:
        def edit(text: str) -> str:
            redacted, found = redact_pii(text, self.config)
            counts.modified.update(found)
            return redacted

        return map_texts(batch, edit)
