"""A stage run on one batch, and its failure as one line the driver can report.

Shared by the plan's stage chains and by the stages that run their own per-batch workers
(global augmentation), so neither has to import the other.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import ValidationError

from pipeline.stage import Stage, StageCounts


class StageFailure(RuntimeError):
    """A stage raised on a batch: names the stage and the files the batch came from."""


def one_line(error: BaseException) -> str:
    """An exception as one line: Ray passes worker errors on as text, line by line."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)
        )
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def run_stage(stage: Stage, batch: pa.Table) -> tuple[pa.Table, StageCounts]:
    """``stage.run(batch)``; a failure becomes a StageFailure naming the stage and the
    batch's first files, so the driver reports it in one line instead of a worker trace."""
    try:
        return stage.run(batch)
    except Exception as error:
        files = sorted(set(batch.column("source_file").to_pylist()))[:3]
        raise StageFailure(
            f"stage {stage.name!r} failed on a batch from {', '.join(files)}: {one_line(error)}"
        ) from error
