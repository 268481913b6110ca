"""manifest.json (what was written) and stats.json (what happened), from a RunResult.

The manifest holds no timestamps or timings, so two runs of the same input and recipe give
the same manifest as well as the same shards; timings live in stats.json.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from pipeline.accounting import AUGMENT_PREFIX, FATES, LENGTH_EDGES, Summary
from pipeline.config import DataRecipe
from pipeline.ingest import CONVERSION_REJECTS
from pipeline.registry import reason_owners
from pipeline.strata import strata_table
from pipeline.writer import FATE_SCHEMAS

if TYPE_CHECKING:  # the plan commits the manifest, so it imports this module
    from pipeline.plan import RunResult

MANIFEST_VERSION = 1
TRACKED_PACKAGES = (
    "instructflow",
    "ray",
    "pyarrow",
    "pydantic",
    "ftfy",
    "py3langid",
    "stopwordsiso",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def build_manifest(recipe: DataRecipe, result: RunResult) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "recipe_name": recipe.name,
        "recipe_sha256": recipe.fingerprint(),
        "packages": package_versions(),
        "schemas": {fate: [f"{f.name}: {f.type}" for f in FATE_SCHEMAS[fate]] for fate in FATES},
        "rows": {fate: result.summary.rows[fate] for fate in FATES},
        "shards": result.shards,
    }


def stage_funnel(recipe: DataRecipe, result: RunResult) -> list[dict[str, Any]]:
    """in/out/dropped per stage from the data; timing and edit counts from the workers."""
    owners = reason_owners()
    total = sum(result.read_per_file.values())
    quarantined = result.summary.rows["quarantine"]
    # Pairs that conversion already rejects (ties, identical sides) leave at ingest.
    rejected = {
        reason: count
        for reason, count in sorted(result.summary.reasons.items())
        if reason in CONVERSION_REJECTS
    }
    funnel = [
        {
            "stage": "ingest",
            "in": total,
            "out": total - quarantined - sum(rejected.values()),
            "dropped": rejected,
            "quarantined": quarantined,
            "modified": {},
            "seconds": None,
        }
    ]
    alive = funnel[0]["out"]
    for position, spec in enumerate(recipe.stages):
        dropped = stage_drops(result.summary, spec.name, owners)
        created = result.summary.created.get(spec.name, 0)
        counts = result.stage_counts.get(position, {})
        entry = {
            "stage": spec.name,
            "enabled": spec.config.enabled,
            "in": alive,
            "out": alive + created - sum(dropped.values()),
            "dropped": dropped,
            "modified": counts.get("modified", {}),
            "seconds": counts.get("seconds"),
        }
        if created:
            entry["created"] = created
        strata, findings = strata_table(counts.get("findings", {}))
        if findings:
            entry["findings"] = findings
        if strata:
            entry["strata"] = strata
        funnel.append(entry)
        alive = entry["out"]
    return funnel


def stage_drops(summary: Summary, stage: str, owners: dict[str, str]) -> dict[str, int]:
    """A stage's drops by reason. ``augment.*`` reasons are shared by the augmentation
    stages, so those are counted from the rows each stage created."""
    dropped = {
        reason: count
        for reason, count in summary.reasons.items()
        if owners.get(reason) == stage and not reason.startswith(AUGMENT_PREFIX)
    }
    for key, count in summary.created_dropped.items():
        creator, reason = key.split("/", 1)
        if creator == stage and reason.startswith(AUGMENT_PREFIX):
            dropped[reason] = count
    return dict(sorted(dropped.items()))


def build_stats(recipe: DataRecipe, result: RunResult) -> dict[str, Any]:
    summary = result.summary
    total = sum(result.read_per_file.values())
    created = sum(summary.created.values())
    return {
        "recipe_name": recipe.name,
        "recipe_sha256": recipe.fingerprint(),
        "conservation": {
            "input": total,
            "created": created,
            **{fate: summary.rows[fate] for fate in FATES},
            "balanced": total + created == sum(summary.rows[fate] for fate in FATES),
        },
        "input_files": len(result.read_per_file),
        "bytes": {fate: summary.bytes[fate] for fate in FATES},
        "splits": dict(sorted(summary.split_rows.items())),
        "stages": stage_funnel(recipe, result),
        "drop_reasons": dict(sorted(summary.reasons.items())),
        "mix": {column: dict(counts.most_common()) for column, counts in summary.mix.items()},
        "length_histograms": {"edges": LENGTH_EDGES, **summary.lengths},
        "samples": {
            group: [row for _, row in rows] for group, rows in sorted(summary.samples.items())
        },
        "seconds": {name: round(value, 3) for name, value in result.seconds.items()},
        # Wall seconds of each step of "process", which they add up to (plan.StepClock).
        "steps": result.steps,
        # With --resume: the checkpoint the run continued from and the shards it reused.
        "resumed": result.resumed,
    }
