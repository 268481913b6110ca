"""``instructflow run``'s report: report.json and a self-contained report.html in the run's
output, built from state.json alone, one row per step with its figures, links and wall time.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from ops.run_recipe import RunRecipe

# How this invocation treated a step (plan_actions' words, as a reader says them).
THIS_RUN = {"skip": "reused", "resume": "resumed", "run": "ran"}


def build_report(recipe: RunRecipe, state: dict[str, Any], actions: dict[str, str]) -> dict:
    steps = []
    for step in recipe.steps:
        record = state["steps"].get(step.name) or {}
        steps.append(
            {
                "name": step.name,
                "command": step.command,
                "status": record.get("status", "not run"),
                "this_run": THIS_RUN[actions[step.name]] if record else "not run",
                "seconds": record.get("seconds"),
                "attempts": record.get("attempts", 0),
                "output": step.output,
                "figures": record.get("figures", {}),
                "links": record.get("links", {}),
                "error": record.get("error"),
            }
        )
    return {
        "recipe": recipe.name,
        "source": recipe.source,
        "output": recipe.output,
        "finished": all(step["status"] == "finished" for step in steps),
        "seconds": round(sum(step["seconds"] or 0 for step in steps), 1),
        "steps": steps,
    }


def write_json(path: Path, document: Any) -> None:
    """Whole or not at all: a run killed mid-write keeps the previous document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(temporary, path)


def write_report(recipe: RunRecipe, state: dict[str, Any], actions: dict[str, str]) -> dict:
    report = build_report(recipe, state, actions)
    write_json(Path(recipe.output) / "report.json", report)
    page = render_html(report)
    temporary = Path(recipe.output) / ".report.html.tmp"
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, Path(recipe.output) / "report.html")
    return report


def shown(value: Any) -> str:
    """A figure as a reader wants it: 4 significant digits, before -> after, counts."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict) and set(value) == {"before", "after"}:
        start = "-" if value["before"] is None else shown(value["before"])
        return f"{start} &rarr; {shown(value['after'])}"
    if isinstance(value, dict) and "balanced" in value:  # a data run's conservation
        created = f" + created {value['created']}" if value.get("created") else ""
        return (
            f"input {value['input']}{created} &rarr; output {value['output']}, rejects "
            f"{value['rejects']}, quarantine {value['quarantine']}"
            + ("" if value["balanced"] else " <b>(does not add up)</b>")
        )
    if isinstance(value, dict):
        return "; ".join(f"{html.escape(str(k))} {shown(v)}" for k, v in value.items())
    if value is None:
        return "-"
    return html.escape(str(value))


def href(target: str, base: str) -> str:
    """A link relative to the report when the target is a local path (the folder can move)."""
    if "://" in target:
        return target
    return os.path.relpath(target, base)


def render_html(report: dict[str, Any]) -> str:
    rows = []
    for step in report["steps"]:
        figures = "".join(
            f"<li>{html.escape(name.replace('_', ' '))}: {shown(value)}</li>"
            for name, value in step["figures"].items()
        )
        links = " &middot; ".join(
            f'<a href="{html.escape(href(path, report["output"]))}">{html.escape(label)}</a>'
            for label, path in step["links"].items()
        )
        status = html.escape(step["status"])
        if step["error"]:
            status += f"<br><small>{html.escape(step['error'])}</small>"
        seconds = "-" if step["seconds"] is None else f"{step['seconds']:.1f} s"
        rows.append(
            f'<tr class="{html.escape(step["status"].replace(" ", "-"))}">'
            f"<td>{html.escape(step['name'])}</td><td><code>{html.escape(step['command'])}"
            f"</code></td><td>{status}</td><td>{html.escape(step['this_run'])}</td>"
            f"<td>{seconds}</td><td><ul>{figures}</ul></td><td>{links}</td></tr>"
        )
    state = "finished" if report["finished"] else "not finished"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(report["recipe"])}: instructflow run</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.4em 0.6em; vertical-align: top; text-align: left; }}
tr.failed td {{ background: #fdecea; }}
tr.not-run td, tr.running td {{ color: #888; }}
ul {{ margin: 0; padding-left: 1.2em; }}
</style></head><body>
<h1>{html.escape(report["recipe"])}</h1>
<p><code>instructflow run {html.escape(report["source"])}</code>: {state};
{len(report["steps"])} steps, {report["seconds"]:.1f} s of step wall time in all.</p>
<table>
<tr><th>step</th><th>command</th><th>status</th><th>this run</th><th>wall time</th>
<th>figures</th><th>links</th></tr>
{"".join(rows)}
</table>
</body></html>
"""
