"""``check_filter``: one record through one filter, asserting the exact drop reason.

Modelled on DataTrove's ``check_filter`` test helper: a test names the reason it expects, so a
filter that drops for the wrong reason fails as loudly as one that does not drop.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.schema import make_record, message, rows_to_table
from pipeline.stage import Filter


def record(instruction: str, response: str, language: str = "", context: str = "") -> dict:
    return make_record(
        messages=[message("user", instruction), message("assistant", response)],
        source_file="test.jsonl",
        source_format="messages",
        source_line=1,
        context=context,
        language=language,
    )


def check_filter(
    stage: Filter,
    instruction: str,
    response: str,
    expected_reason: str | None,
    language: str = "",
) -> dict[str, Any]:
    """Run ``stage`` on one record; assert its drop reason; return the row with parsed detail."""
    table, counts = stage.run(rows_to_table([record(instruction, response, language)]))
    (row,) = table.to_pylist()
    detail = json.loads(row["drop_detail"]) if row["drop_detail"] else None
    assert row["drop_reason"] == expected_reason, (row["drop_reason"], detail)
    assert counts.seen == 1
    assert counts.kept == (expected_reason is None)
    if expected_reason is not None:
        assert counts.dropped == {expected_reason: 1}
    return {**row, "drop_detail": detail}


def check_passes_dropped_rows_through(stage: Filter, instruction: str, response: str) -> None:
    """A row an earlier stage dropped is neither judged nor counted; its reason is kept."""
    earlier = {
        **record(instruction, response),
        "drop_reason": "filter.earlier_stage",
        "drop_detail": json.dumps({"by": "test"}),
    }
    table, counts = stage.run(rows_to_table([earlier]))
    (row,) = table.to_pylist()
    assert row["drop_reason"] == "filter.earlier_stage"
    assert row["drop_detail"] == json.dumps({"by": "test"})
    assert counts.seen == 0 and not counts.dropped
