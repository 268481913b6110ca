"""The ``instructflow feedback`` commands end to end without Ray, and their error lines."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from ops.cli import main
from tests.ops.feedback.conftest import sample_rows


def test_import_rate_agreement_export(tmp_path, capsys):
    samples = tmp_path / "samples"
    samples.mkdir()
    pq.write_table(pa.Table.from_pylist(sample_rows()), samples / "part-0.parquet")
    db = str(tmp_path / "f.db")
    assert main(["feedback", "import", str(samples), "--db", db]) == 0
    assert main(["feedback", "import", str(samples), "--db", db]) == 0
    assert "0 items added, 3 already" in capsys.readouterr().out
    assert main(["feedback", "rate", "--db", db, "--rater", "rules"]) == 0
    assert "rules: 7 candidates rated, 0 failures" in capsys.readouterr().out
    assert main(["feedback", "agreement", "--db", db, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scores"]["alpha_ordinal"] is None  # no person has rated yet
    assert main(["feedback", "export", "--db", db, str(tmp_path / "out")]) == 0
    assert "preference pairs" in capsys.readouterr().out
    assert (tmp_path / "out" / "kto.jsonl").read_text().count("\n") == 7


def test_errors_name_the_cause_without_a_traceback(tmp_path, capsys):
    db = str(tmp_path / "f.db")
    assert main(["feedback", "import", str(tmp_path / "missing"), "--db", db]) == 2
    assert "missing: not readable as Parquet" in capsys.readouterr().err
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"prompt": ["x"]}), wrong)
    assert main(["feedback", "import", str(wrong), "--db", db]) == 2
    assert "missing column(s) conversation, candidates" in capsys.readouterr().err
    assert main(["feedback", "rate", "--db", db, "--rater", "judge"]) == 2
    assert "needs --judge-url and --judge-model" in capsys.readouterr().err
    assert main(["feedback", "agreement", "--db", "nosuchdialect://x"]) == 2
    assert "--db nosuchdialect://x" in capsys.readouterr().err
    assert main(["feedback", "export", "--db", db, str(tmp_path), "--margin", "-1"]) == 2
    assert "--margin -1.0: must be above 0" in capsys.readouterr().err
