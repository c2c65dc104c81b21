"""Writing a run's report: `report.json` for machines, then `report.md` and `report.html` from it.

All three come from one document (`harness.report.records.report_document`) and the sign-offs in
`signoff.json`, each file written atomically; `harness signoff` re-renders the two pages from the
stored document when a decision is added, so the record the reviewer signed never changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusion.io import write_json, write_text
from harness.report.html import render_html
from harness.report.markdown import render_markdown
from harness.report.records import Entry, read_document, report_document

__all__ = ["REPORT_FILES", "SIGNOFF_FILE", "read_signoffs", "rerender", "write_report"]

REPORT_FILES: tuple[str, ...] = ("report.json", "report.md", "report.html")
SIGNOFF_FILE = "signoff.json"


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
