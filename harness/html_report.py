"""`report.html`: the sign-off page, one self-contained file readable offline years later.

Rendered from the same document as `report.md` (`harness.records`); plots are embedded as
`data:` URIs, the style is inline, there is no script, and a Content-Security-Policy forbids
any fetch, so a browser opening the file from disk loads nothing from anywhere. Layout: a
banner with the verdict and run marker, the summary table (one row per check and case,
failing rows first), a section per check (what failed, gates, thresholds, plots, figures,
data availability, provenance, link to its artifact folder), then the sign-off block.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from harness.records import (
    VERDICT,
    availability_rows,
    flatten,
    fmt,
    open_slots,
    run_line,
    signoff_state,
    status_text,
    summary_rows,
)

__all__ = ["render_html", "section_id"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f23;background:#fafbfc}
main{max-width:1200px;margin:0 auto;padding:0 24px 48px}
.banner{padding:18px 24px;color:#fff}.banner h1{margin:0;font-size:28px}.banner p{margin:4px 0 0}
.banner.pass{background:#1f7a3a}.banner.fail{background:#b3261e}.banner.partial{background:#9a6700}
table{border-collapse:collapse;margin:8px 0 16px;background:#fff}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:#ffebe9}tr.error td{background:#fff8c5}
.status{font-weight:700}.status.fail{color:#b3261e}.status.error{color:#9a6700}.status.pass{color:#1f7a3a}
section{border-top:2px solid #d0d7de;margin-top:24px}img{max-width:100%;border:1px solid #d0d7de;background:#fff}
code{background:#eff1f3;padding:0 3px}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def section_id(rec: dict[str, Any]) -> str:
    return "check-" + "".join(c if c.isalnum() else "-" for c in f"{rec['name']}-{rec['case']}")


def _table(
    header: list[str], rows: list[list[str]], row_class: list[str] | None = None, table_id: str = ""
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(out: Path, rel: str, alt: str) -> str:
    """The plot inline as a data URI; a visible note (never a broken image) when the file is gone."""
    path = out / rel
    if not path.is_file():
        return f"<p><em>plot missing: {escape(rel)}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}"><figcaption>{escape(rel)}</figcaption></figure>'


def _summary(doc: dict[str, Any]) -> str:
    rows, classes = [], []
    for rec in summary_rows(doc):
        h = rec["headline"]
        rows.append(
            [
                f'<a href="#{section_id(rec)}">{escape(rec["name"])}</a>',
                escape(rec["case"]),
                f'<span class="status {escape(rec["status"])}">{escape(status_text(rec))}</span>',
                escape(fmt(h["figure"])),
                escape(fmt(h["threshold"])),
                escape(fmt(h["value"])),
                escape(fmt(h["margin"])),
                f"{rec['duration_s']:.1f}",
            ]
        )
        classes.append(rec["status"])
    header = ["check", "case", "status", "headline figure", "threshold", "value", "margin", "duration (s)"]
    return _table(header, rows, classes, "summary")


def _provenance(rec: dict[str, Any]) -> str:
    prov = rec["provenance"]
    parts = []
    keyed = {k: v for k, v in prov.items() if k not in ("versions", "inputs_sha256", "golden_sha256")}
    rows = [[escape(k), escape(fmt(v))] for k, v in flatten(keyed)]
    if rec.get("config_hash"):
        rows.insert(0, ["config hash", f"<code>{escape(rec['config_hash'])}</code>"])
    parts.append(_table(["provenance", "value"], rows))
    for key, title in (("inputs_sha256", "input SHA-256s"), ("golden_sha256", "golden SHA-256s")):
        if prov.get(key):
            body = _table(
                ["file", "SHA-256"],
                [[escape(f), f"<code>{escape(str(h))}</code>"] for f, h in prov[key].items()],
            )
            parts.append(f"<details><summary>{title} ({len(prov[key])} files)</summary>{body}</details>")
    if prov.get("versions"):
        body = _table(
            ["package", "version"], [[escape(k), escape(str(v))] for k, v in prov["versions"].items()]
        )
        parts.append(f"<details><summary>versions</summary>{body}</details>")
    return "<h3>Provenance</h3>" + "".join(parts)


def _section(out: Path, rec: dict[str, Any]) -> str:
    link = rec["artifact_dir"].rstrip("/") + "/"
    html = [
        (f'<section id="{section_id(rec)}"><h2>{escape(rec["name"])} — {escape(rec["case"])}: '
        f'<span class="status {escape(rec["status"])}">{escape(rec["status"].upper())}</span></h2>'),
        f'<p>Artifacts: <a href="{escape(link)}">{escape(link)}</a> · duration {rec["duration_s"]:.1f} s'
        + (" · resumed from an earlier run" if rec.get("resumed") else "")
        + "</p>",
    ]
    if rec["messages"]:
        heading = {"fail": "What failed, by how much", "error": "Why it did not finish"}.get(
            rec["status"], "Notes (reported, not gated)"
        )
        items = "".join(f"<li>{escape(m)}</li>" for m in rec["messages"])
        html.append(f"<h3>{heading}</h3><ul>{items}</ul>")
    if rec.get("gates"):
        rows = [
            [escape(fmt(g[k])) for k in ("figure", "threshold", "value", "margin", "passed")]
            for g in rec["gates"]
        ]
        html.append(
            "<h3>Gates</h3>"
            + _table(
                ["figure", "threshold", "value", "margin", "passed"],
                rows,
                ["pass" if g["passed"] else "fail" for g in rec["gates"]],
            )
        )
    if rec["thresholds"]:
        html.append(
            "<h3>Thresholds</h3>"
            + _table(
                ["threshold", "value"], [[escape(k), escape(fmt(v))] for k, v in flatten(rec["thresholds"])]
            )
        )
    for plot in rec["plots"]:
        html.append(_img(out, plot, f"{rec['name']} {rec['case']}: {Path(plot).stem}"))
    figures = flatten(rec["figures"])
    if figures:
        body = _table(["figure", "value"], [[escape(k), escape(fmt(v))] for k, v in figures])
        html.append(f"<details><summary>Figures ({len(figures)})</summary>{body}</details>")
    if rec.get("availability"):
        header, rows = availability_rows(rec["availability"])
        html.append(
            "<h3>Data availability</h3><p>Points on the grid, dropped under the first mask rule that drops them "
            "(in the order of the columns), kept before the subsample, and chosen by it.</p>"
            + _table(header, [[escape(c) for c in r] for r in rows])
        )
    html.append(_provenance(rec))
    html.append("</section>")
    return "".join(html)


def _signoff(run: dict[str, Any], signoffs: list[dict[str, Any]]) -> str:
    rows = [
        [
            escape(s["name"]),
            f'<span class="status {"pass" if s["decision"] == "approve" else "fail"}">{escape(s["decision"])}</span>',
            escape(s["at"]),
            f"<code>{escape(str(s['fingerprint'])[:12])}</code>"
            + ("" if s["fingerprint"] == run["fingerprint"] else " (another run)"),
            escape(s.get("note") or ""),
        ]
        for s in signoffs
    ] + [[escape(role), "☐ approve ☐ reject", "", "", ""] for role in open_slots(run, signoffs)]
    return (
        '<section id="signoff"><h2>Sign-off</h2>'
        f"<p>A release needs both signatures on a PASSED report. <strong>{escape(signoff_state(run, signoffs))}</strong></p>"
        + _table(["signed by", "decision", "date (UTC)", "run fingerprint", "note"], rows)
        + "<p>Record a decision: <code>harness signoff OUT_DIR --name NAME --decision approve|reject [--note TEXT]</code></p></section>"
    )


def render_html(out: Path, doc: dict[str, Any], signoffs: list[dict[str, Any]]) -> str:
    """The whole page as one string (the caller writes it atomically)."""
    out = Path(out)
    run = doc["run"]
    verdict = VERDICT.get(run["marker"], run["marker"])
    tone = {"_RUN_SUCCESS": "pass", "_RUN_FAILED": "fail"}.get(run["marker"], "partial")
    counts: dict[str, int] = {}
    for rec in doc["checks"]:
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    line = run_line(run).replace("`", "").replace("**", "")
    return "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            f"<title>FUSION harness report — {escape(run['suite'])} suite: {verdict}</title>",
            f"<style>{_CSS}</style></head><body>",
            f'<header class="banner {tone}" id="verdict"><h1>{verdict}</h1>',
            f"<p>FUSION harness report — {escape(run['suite'])} suite · run marker <strong>{escape(run['marker'])}</strong> · {escape(tally)}</p></header>",
            "<main>",
            f"<p>{escape(line)}</p>",
            "<h2>Summary</h2>",
            _summary(doc),
            *[_section(out, rec) for rec in doc["checks"]],
            _signoff(run, signoffs),
            "</main></body></html>\n",
        ]
    )
