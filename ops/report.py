"""Reports built from stats.json only: a self-contained report.html and a terminal summary."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

MIX_SHOWN = 12
FINDINGS_SHOWN = 50


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{encoded}">'


def funnel_plot(stages: list[dict[str, Any]]) -> str:
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(stages) + 1))
    names = [s["stage"] for s in stages][::-1]
    axis.barh(names, [s["out"] for s in stages][::-1], color="#3b7dd8", label="kept")
    axis.barh(
        names,
        [removed(s) for s in stages][::-1],
        left=[s["out"] for s in stages][::-1],
        color="#e07b39",
        label="dropped / quarantined",
    )
    axis.set_xlabel("records")
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    axis.set_title("Stage funnel")
    return _png(figure)


def removed(stage: dict[str, Any]) -> int:
    """Records a stage dropped or quarantined; augmentation stages also add ``created``."""
    return stage["in"] + stage.get("created", 0) - stage["out"]


def length_plot(histograms: dict[str, Any]) -> str:
    edges = histograms["edges"]
    series = {key: counts for key, counts in histograms.items() if key != "edges"}
    occupied = [i for counts in series.values() for i, count in enumerate(counts) if count]
    low, high = (min(occupied), max(occupied) + 1) if occupied else (0, len(edges))
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for axis, field in zip(axes, ("instruction", "response"), strict=True):
        for fate, colour in (("output", "#3b7dd8"), ("rejects", "#e07b39")):
            counts = series.get(f"{fate}.{field}")
            if counts:
                axis.bar(range(low, high), counts[low:high], color=colour, alpha=0.6, label=fate)
        axis.set_xticks(
            range(low, high),
            [f"<{edges[i] * 2}" if i else "0" for i in range(low, high)],
            rotation=45,
        )
        axis.set_xlabel(f"{field} characters")
        axis.set_ylabel("records")
        axis.legend()
    return _png(figure)


def mix_plot(mix: dict[str, dict[str, int]]) -> str:
    columns = [c for c in ("language", "task", "source_format", "domain") if mix.get(c)]
    if not columns:
        return "<p>No records kept.</p>"
    figure, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for axis, column in zip(axes[0], columns, strict=True):
        items = list(mix[column].items())[:MIX_SHOWN]
        axis.bar([k or "(none)" for k, _ in items], [v for _, v in items], color="#3b7dd8")
        axis.set_title(column)
        axis.tick_params(axis="x", rotation=45)
    return _png(figure)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _samples(samples: dict[str, list[dict[str, Any]]]) -> str:
    parts = []
    for group, rows in samples.items():
        table_rows = [
            [
                r["source_file"].rsplit("/", 1)[-1],
                r["source_line"],
                r.get("language", ""),
                r.get("instruction") or r.get("raw", ""),
                r.get("response", ""),
                r.get("drop_detail") or "",
            ]
            for r in rows
        ]
        parts.append(
            f"<h3>{html.escape(group)}</h3>"
            + _table(
                ["file", "line", "lang", "instruction / raw", "response", "detail"], table_rows
            )
        )
    return "".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;
font-size:13px;vertical-align:top;max-width:420px;white-space:pre-wrap;word-break:break-word}
th{background:#f0f0f0}"""


def render_report(stats: dict[str, Any]) -> str:
    funnel_rows = [
        [
            s["stage"],
            s["in"],
            s.get("created", ""),
            s["out"],
            removed(s),
            json.dumps(s.get("modified") or {}, ensure_ascii=False),
            "" if s.get("seconds") is None else f"{s['seconds']:.2f}",
        ]
        for s in stats["stages"]
    ]
    total_dropped = max(1, sum(stats["drop_reasons"].values()))
    reason_rows = [
        [reason, count, f"{100 * count / total_dropped:.1f}%"]
        for reason, count in stats["drop_reasons"].items()
    ]
    sources = list(stats["mix"].get("source_file", {}).items())[:MIX_SHOWN]
    return (
        page_head(stats, funnel_rows, reason_rows)
        + findings_section(stats["stages"])
        + strata_section(stats["stages"])
        + f"""<h2>Lengths</h2>{length_plot(stats["length_histograms"])}
<h2>Mix of kept records</h2>{mix_plot(stats["mix"])}
{_table(["source file", "records kept"], [[k, v] for k, v in sources])}
<h2>Samples</h2>{_samples(stats["samples"])}
</body></html>"""
    )


def page_head(
    stats: dict[str, Any], funnel_rows: list[list[Any]], reason_rows: list[list[Any]]
) -> str:
    conservation = stats["conservation"]
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>instructflow report: {html.escape(stats["recipe_name"])}</title>
<style>{STYLE}</style></head><body>
<h1>instructflow report: {html.escape(stats["recipe_name"])}</h1>
<p>recipe sha256 <code>{stats["recipe_sha256"][:16]}</code>. Input {conservation["input"]} records
from {stats["input_files"]} files, {conservation.get("created", 0)} created by augmentation:
<b>{conservation["output"]}</b> kept, {conservation["rejects"]}
rejected, {conservation["quarantine"]} quarantined. Conservation
{"holds" if conservation["balanced"] else "BROKEN"}.</p>
<h2>Stage funnel</h2>{funnel_plot(stats["stages"])}
{_table(["stage", "in", "created", "out", "dropped", "edits", "worker seconds"], funnel_rows)}
<h2>Wall time</h2>
{_table(["step", "seconds"], step_rows(stats))}
<h2>Drop reasons</h2>{_table(["reason", "records", "share"], reason_rows)}
"""


def step_rows(stats: dict[str, Any]) -> list[list[Any]]:
    """One row per step of the run (its stages between two materializations), then the
    summary and the write: the rows add up to the run's wall seconds."""
    rows: list[list[Any]] = [
        [", ".join(step["stages"]), f"{step['seconds']:.2f}"] for step in stats.get("steps", [])
    ]
    seconds = stats.get("seconds", {})
    rows += [[name, f"{seconds[name]:.2f}"] for name in ("summarize", "write") if name in seconds]
    return rows


def findings_section(stages: list[dict[str, Any]]) -> str:
    """What stages found beyond drops: decontamination's matched evaluation items."""
    parts = []
    for stage in stages:
        findings = stage.get("findings") or {}
        if not findings:
            continue
        rows = sorted(findings.items(), key=lambda item: (-item[1], item[0]))[:FINDINGS_SHOWN]
        parts.append(
            f"<h2>{html.escape(stage['stage'])}: matched evaluation items</h2>"
            f"<p>{len(findings)} items matched {sum(findings.values())} training records "
            f"(top {len(rows)} shown).</p>" + _table(["evaluation item", "records"], rows)
        )
    return "".join(parts)


def strata_section(stages: list[dict[str, Any]]) -> str:
    """Per-stratum tables of sampling (available, requested, taken) and splits (groups)."""
    parts = []
    for stage in stages:
        strata = stage.get("strata") or {}
        if not strata:
            continue
        columns = list(next(iter(strata.values())))
        rows = [[name or "(all)", *row.values()] for name, row in strata.items()]
        what = "groups per split" if stage["stage"] == "split" else "records per stratum"
        parts.append(
            f"<h2>{html.escape(stage['stage'])}: {what}</h2>" + _table(["stratum", *columns], rows)
        )
    return "".join(parts)


def terminal_summary(stats: dict[str, Any], manifest: dict[str, Any]) -> str:
    conservation = stats["conservation"]
    lines = [
        f"recipe {stats['recipe_name']} (sha256 {stats['recipe_sha256'][:12]})",
        f"input {conservation['input']} records from {stats['input_files']} files "
        f"+ created {conservation.get('created', 0)} -> "
        f"output {conservation['output']}, rejects {conservation['rejects']}, "
        f"quarantine {conservation['quarantine']} "
        f"({'balanced' if conservation['balanced'] else 'NOT BALANCED'})",
        "",
        f"{'stage':<14}{'in':>9}{'created':>9}{'out':>9}{'dropped':>9}{'seconds':>9}",
    ]
    for stage in stats["stages"]:
        seconds = "" if stage.get("seconds") is None else f"{stage['seconds']:.2f}"
        lines.append(
            f"{stage['stage']:<14}{stage['in']:>9}{stage.get('created', ''):>9}{stage['out']:>9}"
            f"{removed(stage):>9}{seconds:>9}"
        )
    lines += ["", "drop reasons:"]
    lines += [f"  {reason:<40}{count:>8}" for reason, count in stats["drop_reasons"].items()]
    for stage in stats["stages"]:
        findings = sorted((stage.get("findings") or {}).items(), key=lambda i: (-i[1], i[0]))
        if findings:
            lines.append(f"{stage['stage']}: {len(findings)} evaluation items matched")
            lines += [f"  {item:<40}{count:>8}" for item, count in findings[:10]]
    for column in ("language", "task", "source_format"):
        shown = ", ".join(f"{k or '(none)'}={v}" for k, v in list(stats["mix"][column].items())[:8])
        lines.append(f"{column}: {shown}")
    lines += ["", "shards:"]
    lines += [f"  {s['path']}  rows={s['rows']}  bytes={s['bytes']}" for s in manifest["shards"]]
    return "\n".join(lines)
