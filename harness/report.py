"""The release report: `report.md` for people, `report.json` for machines.

`report.md` opens with the summary table (one row per check and case), then one section
per check with its thresholds, what failed and by how much, its figures and plots, and
ends with sign-off slots for the science owner and the release engineer. `report.json`
holds one record per check (name, case, status, figures, thresholds, duration, plots,
provenance) under the run's own record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import artifacts

if TYPE_CHECKING:
    from harness.runner import Entry

__all__ = ["flatten", "render_markdown", "report_records", "write_report"]

_VERDICT = {"_RUN_SUCCESS": "PASSED", "_RUN_FAILED": "FAILED", "_RUN_PARTIAL": "INCOMPLETE"}
_MAX_FIGURE_ROWS = 100


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        items = [_fmt(v) for v in value[:8]]
        return "[" + ", ".join(items) + (", …" if len(value) > 8 else "") + "]"
    text = str(value)
    return text if len(text) <= 160 else text[:157] + "…"


def flatten(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested figures as (dotted key, value) rows, in insertion order."""
    rows: list[tuple[str, Any]] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flatten(value, f"{name}.")
        else:
            rows.append((name, value))
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _headline(entry: Entry) -> str:
    r = entry.result
    if r.messages:
        extra = f" (+{len(r.messages) - 1} more)" if len(r.messages) > 1 else ""
        return _fmt(r.messages[0]) + extra
    parts = []
    for key, value in r.figures.items():
        if isinstance(value, dict) and "passed" in value:
            parts.append(f"{key} {'ok' if value['passed'] else 'red'}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{key} {_fmt(value)}")
        if len(parts) == 5:
            break
    return ", ".join(parts)


def _rel_plots(entry: Entry, out: Path) -> list[str]:
    rel = entry.folder.relative_to(out) if entry.folder.is_relative_to(out) else entry.folder
    return [str(Path(rel) / p) for p in entry.result.plots]


def report_records(out: Path, entries: Iterable[Entry]) -> list[dict[str, Any]]:
    records = []
    for e in entries:
        r = e.result
        records.append(
            {
                "name": r.name,
                "case": r.case,
                "status": r.status,
                "figures": r.figures,
                "thresholds": r.thresholds,
                "duration_s": r.duration_s,
                "messages": r.messages,
                "plots": _rel_plots(e, out),
                "artifact_dir": str(e.folder.relative_to(out))
                if e.folder.is_relative_to(out)
                else str(e.folder),
                "complete": artifacts.is_complete(e.folder),
                "resumed": e.resumed,
                "ran": e.ran,
                "config_hash": r.config_hash,
                "provenance": r.provenance,
            }
        )
    return records


def render_markdown(out: Path, info: dict[str, Any], entries: list[Entry]) -> str:
    verdict = _VERDICT.get(info["marker"], info["marker"])
    lines = [
        f"# FUSION harness report — {info['suite']} suite: {verdict}",
        "",
        "| check | case | status | duration (s) | headline |",
        "|---|---|---|---:|---|",
    ]
    for e in entries:
        r = e.result
        status = r.status.upper() + (" (resumed)" if e.resumed else "") + ("" if e.ran else " (not run)")
        lines.append(f"| {r.name} | {r.case} | {status} | {r.duration_s:.1f} | {_cell(_headline(e))} |")
    versions = info.get("versions", {})
    lines += [
        "",
        f"Run marker `{info['marker']}` · started {info['started_at']} · finished {info['finished_at']} · "
        f"{info['duration_s']:.1f} s · fingerprint `{str(info['fingerprint'])[:12]}` · "
        f"fusion {versions.get('fusion', '?')}, pymc {versions.get('pymc', '?')}, numpy {versions.get('numpy', '?')}, "
        f"arviz-stats {versions.get('arviz-stats', '?')}, Python {versions.get('python', '?')}"
        + (f" · scheduler {info['scheduler']}" if info.get("scheduler") else "")
        + (" · **interrupted**" if info.get("interrupted") else ""),
        "",
    ]
    for e in entries:
        r = e.result
        lines += [f"## {r.name} — {r.case}: {r.status.upper()}", ""]
        folder = e.folder.relative_to(out) if e.folder.is_relative_to(out) else e.folder
        lines.append(
            f"Artifacts: `{folder}` · duration {r.duration_s:.1f} s"
            + (" · resumed from an earlier run" if e.resumed else "")
            + (f" · config hash `{r.config_hash[:12]}`" if r.config_hash else "")
        )
        lines.append("")
        if r.messages:
            heading = {"fail": "What failed, by how much", "error": "Why it did not finish"}.get(
                r.status, "Notes (reported, not gated)"
            )
            lines += [f"**{heading}:**", ""]
            lines += [f"- {_cell(m)}" for m in r.messages[:40]]
            if len(r.messages) > 40:
                lines.append(f"- … {len(r.messages) - 40} more in report.json")
            lines.append("")
        if r.thresholds:
            lines += ["**Thresholds:**", ""]
            lines += [f"- {k}: {_cell(_fmt(v))}" for k, v in r.thresholds.items()]
            lines.append("")
        rows = flatten(r.figures)
        if rows:
            lines += ["| figure | value |", "|---|---|"]
            lines += [f"| {_cell(k)} | {_cell(_fmt(v))} |" for k, v in rows[:_MAX_FIGURE_ROWS]]
            if len(rows) > _MAX_FIGURE_ROWS:
                lines.append(f"| … | {len(rows) - _MAX_FIGURE_ROWS} more figures in report.json |")
            lines.append("")
        for plot in _rel_plots(e, out):
            lines += [f"![{r.name} {r.case}: {Path(plot).stem}]({plot})", ""]
        prov = {
            k: v for k, v in r.provenance.items() if k not in ("versions", "inputs_sha256", "golden_sha256")
        }
        if prov:
            lines += ["<details><summary>Provenance</summary>", ""]
            lines += [f"- {_cell(k)}: {_cell(_fmt(v))}" for k, v in flatten(prov)[:30]]
            lines += ["", "Input SHA-256s, versions and the rest are in report.json.", "</details>", ""]
    lines += [
        "## Sign-off",
        "",
        "A release needs both signatures on a PASSED report.",
        "",
        "| role | name | decision | date | notes |",
        "|---|---|---|---|---|",
        "| Science owner |  | ☐ approve ☐ reject |  |  |",
        "| Release engineer |  | ☐ approve ☐ reject |  |  |",
        "",
    ]
    return "\n".join(lines)


def write_report(out: Path, info: dict[str, Any], entries: list[Entry]) -> tuple[Path, Path]:
    """Write `report.json` then `report.md` atomically into `out`."""
    out = Path(out)
    js = artifacts.write_json(out / "report.json", {"run": info, "checks": report_records(out, entries)})
    md = artifacts.write_text(out / "report.md", render_markdown(out, info, entries))
    return md, js
