"""The top-level CLI for a newcomer: --version, a help text that shows what to run, and
errors as one line with what to do (the traceback behind --debug)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ops import cli


def test_version_names_instructflow_and_its_stack(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("instructflow 0.1.0 (") and "ray 2.60.0" in line and "python 3." in line


def test_help_starts_with_what_to_run() -> None:
    text = cli.build_parser().format_help()
    assert "instructflow data run recipe.yaml" in text and "--debug" in text
    assert "holds no stage logic" not in text  # the module docstring is for developers


def failing(error: BaseException):
    def handler(args) -> int:
        raise error

    return handler


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RuntimeError("boom\nsecond line"), "error: RuntimeError: boom (rerun with --debug"),
        (ConnectionError("no head at 10.0.0.9:6379"), "error: cannot reach the Ray cluster: no"),
        (ModuleNotFoundError("No module named 's3fs'", name="s3fs"), "instructflow[cloud]"),
    ],
)
def test_an_unexpected_error_is_one_line(monkeypatch, capsys, error, expected) -> None:
    parser = cli.build_parser()
    real = parser.parse_args

    def parse(argv=None):
        args = real(argv)
        args.handler = failing(error)
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["data", "validate", "r.yaml"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_debug_shows_the_traceback(monkeypatch) -> None:
    parser = cli.build_parser()
    real = parser.parse_args

    def parse(argv=None):
        args = real(argv)
        args.handler = failing(RuntimeError("boom"))
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    with pytest.raises(RuntimeError, match="boom"):
        cli.main(["--debug", "data", "validate", "r.yaml"])


def test_a_missing_recipe_file_is_one_line_from_the_installed_command(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "data", "validate", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "none.yaml" in done.stderr


def test_progress_prints_a_line_per_stage_when_its_counts_change() -> None:
    from ops.datarun import ProgressPrinter

    printer = ProgressPrinter(["clean", "near_dedup"])
    first = {
        "seconds": 2.0,
        "files": 1,
        "total_files": 3,
        "read": 1000,
        "stages": [{"stage": "clean", "in": 1000, "out": 990}],
    }
    assert printer.lines(first) == [
        "[   2.0s] read        1,000 records (1 of 3 files)",
        "[   2.0s] clean       1,000 -> 990",
    ]
    later = {
        **first,
        "seconds": 4.5,
        "stages": [*first["stages"], {"stage": "near_dedup", "in": 990, "out": 900}],
    }
    assert printer.lines(later) == ["[   4.5s] near_dedup  990 -> 900"]  # unchanged lines skipped
    assert printer.lines(later) == []
