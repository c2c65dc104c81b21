"""`report.html`: the sign-off page, one self-contained file readable offline years later.

Rendered from the same document as `report.md` (`harness.report.records`); plots are embedded as
`data:` URIs, the style is inline, there is no script, and a Content-Security-Policy forbids
any fetch, so a browser opening the file from disk loads nothing from anywhere. Layout: a
banner with the verdict and run marker, the summary table (one row per check and case,
failing rows first), a section per check (what failed, gates, thresholds, plots, figures,
data availability, provenance, link to its artifact folder), then the sign-off block.
The markup is `harness/report/templates/report.html.j2`, rendered by Jinja2 with autoescaping (as
pytest-html renders its page): this module only gathers plain values.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.checks import gate_verdict
from harness.report.records import (
    GATE_HEADER,
    VERDICT,
    availability_rows,
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

if TYPE_CHECKING:
    import jinja2

__all__ = ["render_html", "section_id"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f23;background:#fafbfc}
main{max-width:1200px;margin:0 auto;padding:0 24px 48px}
.banner{padding:18px 24px;color:#fff}.banner h1{margin:0;font-size:28px}.banner p{margin:4px 0 0}
.banner.pass{background:#1f7a3a}.banner.fail{background:#b3261e}.banner.partial{background:#9a6700}.banner.undecided{background:#6639ba}
table{border-collapse:collapse;margin:8px 0 16px;background:#fff}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:#ffebe9}tr.error td{background:#fff8c5}tr.undecided td{background:#fbefff}
.status{font-weight:700}.status.fail{color:#b3261e}.status.error{color:#9a6700}.status.pass{color:#1f7a3a}.status.undecided{color:#6639ba}
section{border-top:2px solid #d0d7de;margin-top:24px}img{max-width:100%;border:1px solid #d0d7de;background:#fff}
code{background:#eff1f3;padding:0 3px}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def section_id(rec: dict[str, Any]) -> str:
    return "check-" + "".join(c if c.isalnum() else "-" for c in f"{rec['name']}-{rec['case']}")


@cache
def _template() -> jinja2.Template:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a missing value is an error, not an empty cell
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _plot(out: Path, rel: str, alt: str) -> dict[str, Any]:
    """The plot's data for a data URI; none when the file is gone (the page says so, never a broken image)."""
    path = out / rel
    data = base64.b64encode(path.read_bytes()).decode("ascii") if path.is_file() else ""
    return {"rel": rel, "alt": alt, "data": data}


def _summary_row(rec: dict[str, Any]) -> dict[str, Any]:
    h = rec["headline"]
    return {
        "id": section_id(rec),
        "name": rec["name"],
        "case": rec["case"],
        "status": rec["status"],
        "status_text": status_text(rec),
        "cells": [fmt(h["figure"]), fmt(h["threshold"]), value_text(h), margin_text(h), f"{rec['duration_s']:.1f}"],
    }


def _section(out: Path, rec: dict[str, Any]) -> dict[str, Any]:
    prov = rec["provenance"]
    keyed = {k: v for k, v in prov.items() if k not in ("versions", "inputs_sha256", "golden_sha256")}
    availability = None
    if rec.get("availability"):
        header, rows = availability_rows(rec["availability"])
        availability = {"header": header, "rows": rows}
    gates = rec.get("gates") or []
    return {
        "id": section_id(rec),
        "name": rec["name"],
        "case": rec["case"],
        "status": rec["status"],
        "link": rec["artifact_dir"].rstrip("/") + "/",
        "duration": f"{rec['duration_s']:.1f}",
        "resumed": bool(rec.get("resumed")),
        "messages": rec["messages"],
        "messages_heading": {"fail": "What failed, by how much", "error": "Why it did not finish",
                             "undecided": "Why it is undecided (bound inside the interval at the cap)"}.get(
            rec["status"], "Notes (reported, not gated)"
        ),
        "gates": [gate_cells(g) for g in gates],
        "gate_classes": [gate_verdict(g) for g in gates],
        "thresholds": [[k, fmt(v)] for k, v in flatten(rec["thresholds"])],
        "tables": [{**t, "rows": [[fmt(c) for c in row] for row in t["rows"]],
                    "classes": t.get("classes")} for t in rec.get("tables") or []],
        "plots": [_plot(out, p, f"{rec['name']} {rec['case']}: {Path(p).stem}") for p in rec["plots"]],
        "figures": [[k, fmt(v)] for k, v in flatten(rec["figures"])],
        "availability": availability,
        "config_hash": rec.get("config_hash") or "",
        "provenance": [[k, fmt(v)] for k, v in flatten(keyed)],
        "digests": [
            {"title": title, "rows": [[f, str(h)] for f, h in prov[key].items()]}
            for key, title in (("inputs_sha256", "input SHA-256s"), ("golden_sha256", "golden SHA-256s"))
            if prov.get(key)
        ],
        "versions": [[k, str(v)] for k, v in prov.get("versions", {}).items()],
    }


def render_html(out: Path, doc: dict[str, Any], signoffs: list[dict[str, Any]]) -> str:
    """The whole page as one string (the caller writes it atomically)."""
    out = Path(out)
    run = doc["run"]
    counts: dict[str, int] = {}
    for rec in doc["checks"]:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    return _template().render(
        csp=_CSP,
        css=_CSS,
        run=run,
        verdict=VERDICT.get(run["marker"], run["marker"]),
        tone=("undecided" if run["marker"] == "_RUN_FAILED" and "undecided" in counts and "fail" not in counts
              else {"_RUN_SUCCESS": "pass", "_RUN_FAILED": "fail"}.get(run["marker"], "partial")),
        tally=", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        line=run_line(run).replace("`", "").replace("**", ""),
        summary_header=["check", "case", "status", "headline figure", "threshold", "value", "margin", "duration (s)"],
        summary=[_summary_row(rec) for rec in summary_rows(doc)],
        gates_header=GATE_HEADER,
        sections=[_section(out, rec) for rec in doc["checks"]],
        signoff_state=signoff_state(run, signoffs),
        signoffs=[
            {
                "name": s["name"],
                "decision": s["decision"],
                "tone": "pass" if s["decision"] == "approve" else "fail",
                "at": s["at"],
                "fingerprint": str(s["fingerprint"])[:12],
                "other": s["fingerprint"] != run["fingerprint"],
                "note": s.get("note") or "",
            }
            for s in signoffs
        ],
        open_slots=open_slots(run, signoffs),
    )
