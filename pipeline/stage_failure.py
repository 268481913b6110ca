"""A stage run on one batch, its failure as one line the driver can report, and that
failure found again inside the exceptions Ray wraps around it.

Shared by the plan's stage chains and by the stages that run their own per-batch workers
(global augmentation), so neither has to import the other; ``find_cause`` also serves the
training launcher.
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


def find_cause(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """Ray wraps worker exceptions (RayTaskError, UserCodeException); find ours inside."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        nested = getattr(current, "cause", None)
        current = (
            nested
            if isinstance(nested, BaseException)
            else (current.__cause__ or current.__context__)
        )
    text = str(error)
    marker = f"{kind.__name__}: "
    if marker in text:  # the exception crossed a process boundary only as text
        return kind(text.split(marker, 1)[1].strip().splitlines()[0])
    return None
