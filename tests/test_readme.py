"""The README's promises that code can check: its reason table and its two commands."""

import re
from pathlib import Path

from pipeline.ingest import CONVERSION_REJECTS, INGEST_REASONS
from pipeline.registry import reason_owners

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_reason_table_is_the_code_vocabulary():
    prefixes = (
        "read|convert|pair|filter|dedup|novelty|quality|augment|sample"
        "|self_instruct|evol_instruct|answer|describe_to_instruction"
    )
    reason = rf"`((?:{prefixes})\.[a-z0-9_]+)`"
    documented = set(re.findall(reason, README))
    assert documented == set(INGEST_REASONS) | set(CONVERSION_REJECTS) | set(reason_owners())


def test_readme_starts_with_the_two_setup_commands():
    first_block = README.split("```")[1]
    assert re.findall(r"^make \w+", first_block, flags=re.M) == ["make demo", "make test"]
