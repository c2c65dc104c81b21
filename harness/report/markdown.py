"""`report.md`: the release report for people reading it as text (a review, a terminal, a diff).

It is rendered from the one document (`harness.report.records.report_document`, written as
`report.json`) and the sign-offs, as `report.html` is (`harness.report.html`); the renderers
read nothing else, so the Markdown and the page cannot disagree. `report.md` opens with the verdict and the summary
table (one row per check and case: headline figure, threshold, value, status, margin;
failing rows first), then one section per check with its thresholds, what failed and by how
much, its figures, plots, provenance and the availability record where the check left one,
and ends with the sign-off block.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.records import (
    VERDICT,
    availability_rows,
    GATE_HEADER,
    flatten,
    fmt,
    gate_cells,
    margin_text,
    open_slots,
    run_line,
    signoff_state,
    status_text,
    summary_rows,
    value_text,
)

__all__ = ["flatten", "render_markdown"]

_MAX_FIGURE_ROWS = 100


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _summary(doc: dict[str, Any]) -> list[str]:
    """The verdict and one row per check and case, failing rows first."""
    run = doc["run"]
    verdict = VERDICT.get(run["marker"], run["marker"])
    lines = [
        f"# FUSION harness report — {run['suite']} suite: {verdict}",
        "",
        "| check | case | status | headline figure | threshold | value | margin | duration (s) |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for rec in summary_rows(doc):
        h = rec["headline"]
        lines.append(
            f"| {rec['name']} | {rec['case']} | {status_text(rec)} | {_cell(fmt(h['figure']))} | {_cell(fmt(h['threshold']))} "
            f"| {_cell(value_text(h))} | {_cell(margin_text(h))} | {rec['duration_s']:.1f} |"
        )
    return lines + ["", run_line(run), ""]


def _messages(rec: dict[str, Any]) -> list[str]:
    if not rec["messages"]:
        return []
    heading = {"fail": "What failed, by how much", "error": "Why it did not finish",
               "undecided": "Why it is undecided (bound inside the interval at the cap)"}.get(
        rec["status"], "Notes (reported, not gated)"
    )
    lines = [f"**{heading}:**", ""] + [f"- {_cell(m)}" for m in rec["messages"][:40]]
    if len(rec["messages"]) > 40:
        lines.append(f"- … {len(rec['messages']) - 40} more in report.json")
    return lines + [""]


def _gates_and_tables(rec: dict[str, Any]) -> list[str]:
    """The gate records as the check returned them, then the check's own tables and thresholds."""
    lines: list[str] = []
    if rec.get("gates"):
        lines += ["**Gates:**", ""]
        lines += _md_table(GATE_HEADER, [gate_cells(g) for g in rec["gates"]])
        lines.append("")
    for table in rec.get("tables") or []:
        lines += [f"**{table['title']}:**", ""]
        lines += _md_table(table["header"], [[fmt(c) for c in row] for row in table["rows"]])
        lines.append("")
    if rec["thresholds"]:
        lines += ["**Thresholds:**", ""]
        lines += [f"- {k}: {_cell(fmt(v))}" for k, v in rec["thresholds"].items()]
        lines.append("")
    return lines


def _figures_and_plots(rec: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    rows = flatten(rec["figures"])
    if rows:
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(fmt(v))} |" for k, v in rows[:_MAX_FIGURE_ROWS]]
        if len(rows) > _MAX_FIGURE_ROWS:
            lines.append(f"| … | {len(rows) - _MAX_FIGURE_ROWS} more figures in report.json |")
        lines.append("")
    for plot in rec["plots"]:
        lines += [f"![{rec['name']} {rec['case']}: {Path(plot).stem}]({plot})", ""]
    if rec.get("availability"):
        lines += ["**Data availability** (each dropped point under the first rule that drops it):", ""]
        lines += _md_table(*availability_rows(rec["availability"]))
        lines.append("")
    return lines


def _provenance(rec: dict[str, Any]) -> list[str]:
    prov = {k: v for k, v in rec["provenance"].items() if k not in ("versions", "inputs_sha256", "golden_sha256")}
    if not prov:
        return []
    return [
        "<details><summary>Provenance</summary>",
        "",
        *[f"- {_cell(k)}: {_cell(fmt(v))}" for k, v in flatten(prov)[:30]],
        "",
        "Input SHA-256s, versions and the rest are in report.json and report.html.",
        "</details>",
        "",
    ]


def _section(rec: dict[str, Any]) -> list[str]:
    """One check and case: what failed, its gates, tables, thresholds, figures, plots and provenance."""
    lines = [f"## {rec['name']} — {rec['case']}: {rec['status'].upper()}", ""]
    lines.append(
        f"Artifacts: [`{rec['artifact_dir']}`]({rec['artifact_dir']}/) · duration {rec['duration_s']:.1f} s"
        + (" · resumed from an earlier run" if rec.get("resumed") else "")
        + (f" · config hash `{rec['config_hash'][:12]}`" if rec.get("config_hash") else "")
    )
    lines.append("")
    return lines + _messages(rec) + _gates_and_tables(rec) + _figures_and_plots(rec) + _provenance(rec)


def _signoff_block(run: dict[str, Any], signoffs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Sign-off",
        "",
        f"A release needs both signatures on a PASSED report. {signoff_state(run, signoffs)}",
        "",
    ]
    lines += _md_table(
        ["signed by", "decision", "date (UTC)", "run fingerprint", "note"],
        [
            [
                s["name"],
                s["decision"],
                s["at"],
                str(s["fingerprint"])[:12]
                + ("" if s["fingerprint"] == run["fingerprint"] else " (another run)"),
                s.get("note") or "",
            ]
            for s in signoffs
        ]
        + [[role, "☐ approve ☐ reject", "", "", ""] for role in open_slots(run, signoffs)],
    )
    return lines + [
        "",
        "Record a decision: `harness signoff OUT_DIR --name NAME --decision approve|reject [--note TEXT]`.",
        "",
    ]


def render_markdown(doc: dict[str, Any], signoffs: list[dict[str, Any]]) -> str:
    lines = _summary(doc)
    for rec in doc["checks"]:
        lines += _section(rec)
    return "\n".join(lines + _signoff_block(doc["run"], signoffs))
