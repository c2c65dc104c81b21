"""The release report: `report.json` for machines, `report.md` and `report.html` for people.

All three come from one document (`harness.records.report_document`, written as
`report.json`) and the sign-offs in `signoff.json`; the renderers read nothing else, so the
Markdown and the page cannot disagree. `report.md` opens with the verdict and the summary
table (one row per check and case: headline figure, threshold, value, status, margin;
failing rows first), then one section per check with its thresholds, what failed and by how
much, its figures, plots, provenance and the availability record where the check left one,
and ends with the sign-off block. `report.html` is the same as one self-contained page
(`harness.html_report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusion.io import write_json, write_text
from harness.html_report import render_html
from harness.records import (
    VERDICT,
    Entry,
    availability_rows,
    flatten,
    fmt,
    open_slots,
    read_document,
    report_document,
    run_line,
    signoff_state,
    status_text,
    summary_rows,
)

__all__ = [
    "REPORT_FILES",
    "SIGNOFF_FILE",
    "flatten",
    "read_signoffs",
    "render_markdown",
    "rerender",
    "write_report",
]

REPORT_FILES: tuple[str, ...] = ("report.json", "report.md", "report.html")
SIGNOFF_FILE = "signoff.json"
_MAX_FIGURE_ROWS = 100


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(doc: dict[str, Any], signoffs: list[dict[str, Any]]) -> str:
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
            f"| {_cell(fmt(h['value']))} | {_cell(fmt(h['margin']))} | {rec['duration_s']:.1f} |"
        )
    lines += ["", run_line(run), ""]
    for rec in doc["checks"]:
        lines += [f"## {rec['name']} — {rec['case']}: {rec['status'].upper()}", ""]
        lines.append(
            f"Artifacts: [`{rec['artifact_dir']}`]({rec['artifact_dir']}/) · duration {rec['duration_s']:.1f} s"
            + (" · resumed from an earlier run" if rec.get("resumed") else "")
            + (f" · config hash `{rec['config_hash'][:12]}`" if rec.get("config_hash") else "")
        )
        lines.append("")
        if rec["messages"]:
            heading = {"fail": "What failed, by how much", "error": "Why it did not finish"}.get(
                rec["status"], "Notes (reported, not gated)"
            )
            lines += [f"**{heading}:**", ""]
            lines += [f"- {_cell(m)}" for m in rec["messages"][:40]]
            if len(rec["messages"]) > 40:
                lines.append(f"- … {len(rec['messages']) - 40} more in report.json")
            lines.append("")
        if rec.get("gates"):
            lines += ["**Gates:**", ""]
            lines += _md_table(
                ["figure", "threshold", "value", "margin", "passed"],
                [
                    [
                        fmt(g["figure"]),
                        fmt(g["threshold"]),
                        fmt(g["value"]),
                        fmt(g["margin"]),
                        fmt(g["passed"]),
                    ]
                    for g in rec["gates"]
                ],
            )
            lines.append("")
        for table in rec.get("tables") or []:
            lines += [f"**{table['title']}:**", ""]
            lines += _md_table(table["header"], [[fmt(c) for c in row] for row in table["rows"]])
            lines.append("")
        if rec["thresholds"]:
            lines += ["**Thresholds:**", ""]
            lines += [f"- {k}: {_cell(fmt(v))}" for k, v in rec["thresholds"].items()]
            lines.append("")
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
        prov = {
            k: v
            for k, v in rec["provenance"].items()
            if k not in ("versions", "inputs_sha256", "golden_sha256")
        }
        if prov:
            lines += ["<details><summary>Provenance</summary>", ""]
            lines += [f"- {_cell(k)}: {_cell(fmt(v))}" for k, v in flatten(prov)[:30]]
            lines += [
                "",
                "Input SHA-256s, versions and the rest are in report.json and report.html.",
                "</details>",
                "",
            ]
    lines += [
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
    lines += [
        "",
        "Record a decision: `harness signoff OUT_DIR --name NAME --decision approve|reject [--note TEXT]`.",
        "",
    ]
    return "\n".join(lines)


def read_signoffs(out: Path) -> list[dict[str, Any]]:
    """The recorded sign-offs; ValueError naming the file when it is not what `harness signoff` writes."""
    import json

    path = Path(out) / SIGNOFF_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    records = data.get("signoffs") if isinstance(data, dict) else None
    keys = {"name", "decision", "at", "fingerprint"}
    if not isinstance(records, list) or not all(isinstance(r, dict) and keys <= set(r) for r in records):
        raise ValueError(f"{path}: expected {{'signoffs': [{{{', '.join(sorted(keys))}, ...}}]}}")
    return records


def rerender(out: Path, doc: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write `report.md` and `report.html` from the document (default: `report.json`) and `signoff.json`."""
    out = Path(out)
    doc = doc if doc is not None else read_document(out)
    try:
        signoffs = read_signoffs(out)
    except ValueError as exc:  # the run's report is still written; the page says why no sign-off shows
        signoffs = []
        doc = {**doc, "run": {**doc["run"], "signoff_unreadable": str(exc)}}
    md = write_text(out / "report.md", render_markdown(doc, signoffs))
    html = write_text(out / "report.html", render_html(out, doc, signoffs))
    return md, html


def write_report(out: Path, info: dict[str, Any], entries: list[Entry]) -> tuple[Path, Path]:
    """Write `report.json`, then `report.md` and `report.html` from it, each atomically, into `out`."""
    out = Path(out)
    doc = report_document(out, info, entries)
    js = write_json(out / "report.json", doc)
    md, _ = rerender(out, doc)
    return md, js
