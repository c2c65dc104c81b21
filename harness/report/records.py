"""The report's records: one source that `report.json`, `report.md` and `report.html` all render.

Below both the runner and the renderers (no import cycle): the runner builds `Entry` objects,
`report_document` turns them into the JSON-ready document written as `report.json`, and each
renderer reads only that document (plus `signoff.json`), so the Markdown and the page cannot
disagree — and `harness signoff` can re-render both from the files alone.

Each check record carries the `gates` its check returned — (figure, comparison, bound, value,
margin, unit, passed) per gated figure, nothing parsed back from text — and a `headline`: the
failing gate, else an undecided one, else the one with the least room. Margin is how far inside
the bound the value is (negative: outside): in interval half-widths for a gate on a Monte-Carlo
estimate (`harness.verdict`: beyond ±1 the verdict is decided), else in the figure's unit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.io import is_complete, to_jsonable
from harness.checks import CheckResult, gate_verdict

__all__ = [
    "GATE_HEADER",
    "STATUS_ORDER",
    "VERDICT",
    "Entry",
    "availability_rows",
    "flatten",
    "fmt",
    "gate_cells",
    "headline",
    "margin_text",
    "open_slots",
    "read_document",
    "report_document",
    "report_records",
    "run_line",
    "signoff_state",
    "status_text",
    "summary_rows",
    "value_text",
]

VERDICT: dict[str, str] = {"_RUN_SUCCESS": "PASSED", "_RUN_FAILED": "FAILED", "_RUN_PARTIAL": "INCOMPLETE"}
STATUS_ORDER: dict[str, int] = {"fail": 0, "undecided": 1, "error": 2, "pass": 3}  # failing rows first
REPORT_JSON = "report.json"
APPROVALS_NEEDED = 2  # the science owner and the release engineer


@dataclass
class Entry:
    """One planned check's outcome as the report shows it."""

    result: CheckResult
    folder: Path
    resumed: bool = False
    ran: bool = True


# --- gates: the records each check returned (harness.checks.gate_record) ------------------------


def headline(status: str, found: list[dict[str, Any]], messages: list[str]) -> dict[str, Any]:
    if found:
        verdicts = [gate_verdict(g) for g in found]
        pick = ([g for g, v in zip(found, verdicts) if v == "fail"]
                or [g for g, v in zip(found, verdicts) if v == "undecided"] or found)

        def room(g: dict[str, Any]) -> float:
            """Relative margin; a passing count against a zero bound says little, so it comes last."""
            scale = abs(float(g["value"])) + abs(g["margin"])
            return g["margin"] / scale if scale else (math.inf if g["passed"] else -math.inf)

        return dict(min(pick, key=room))
    text = messages[0] if messages else ("every gate passed" if status == "pass" else status)
    return {"figure": text, "threshold": "", "value": None, "margin": None, "passed": status == "pass"}


# --- how a record reads as text (shared by report.md and report.html) ---------------------------


def fmt(value: Any) -> str:
    """One cell's text: floats to 6 significant digits, long lists and strings shortened."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        items = [fmt(v) for v in value[:8]]
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


def margin_text(g: dict[str, Any]) -> str:
    """The margin as the report shows it: in interval half-widths when the gate has an interval."""
    hw = g.get("margin_hw")
    if hw is None:
        return fmt(g.get("margin"))
    return ("+∞" if hw > 0 else "−∞") + " hw" if math.isinf(hw) else f"{hw:+.3g} hw"


def value_text(g: dict[str, Any]) -> str:
    """The value, and its interval at its level when it has one."""
    if not g.get("interval"):
        return fmt(g.get("value"))
    lo, hi = g["interval"]
    return f"{fmt(g['value'])} [{lo:.4g}, {hi:.4g}] ({g['level']:.1%})"


def _replicates_text(g: dict[str, Any]) -> str:
    if g.get("n") is None:
        return "—"
    text = f"{g['n']}" + (f" of {g['cap']}" if g.get("cap") else "")
    return text + (f"; about {g['needed']} to decide" if g.get("needed") else "")


#: the gate table of both renderers: a gate with an interval fills every column
GATE_HEADER = ["figure", "threshold", "value [interval] (level)", "margin", "verdict", "replicates", "method"]


def gate_cells(g: dict[str, Any]) -> list[str]:
    """One gate's row under `GATE_HEADER`."""
    return [fmt(g["figure"]), fmt(g["threshold"]), value_text(g), margin_text(g), gate_verdict(g).upper(),
            _replicates_text(g), str(g.get("method") or "—")]


def status_text(rec: dict[str, Any]) -> str:
    return (
        rec["status"].upper()
        + (" (resumed)" if rec.get("resumed") else "")
        + ("" if rec.get("ran", True) else " (not run)")
    )


def run_line(run: dict[str, Any]) -> str:
    """Marker, times, fingerprint and versions: the run's own provenance in one line."""
    versions = run.get("versions", {})
    return (
        f"Run marker `{run['marker']}` · started {run['started_at']} · finished {run['finished_at']} · "
        f"{run['duration_s']:.1f} s · fingerprint `{str(run['fingerprint'])[:12]}` · "
        f"fusion {versions.get('fusion', '?')}, pymc {versions.get('pymc', '?')}, numpy {versions.get('numpy', '?')}, "
        f"arviz-stats {versions.get('arviz-stats', '?')}, Python {versions.get('python', '?')}"
        + (f" · scheduler {run['scheduler']}" if run.get("scheduler") else "")
        + (" · **interrupted**" if run.get("interrupted") else "")
    )


def availability_rows(av: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the availability table: per stream, its total then each interval."""
    rules = list(av["rule_order"])
    header = [
        "stream",
        "interval",
        "pixels",
        *[r.replace("_", " ") for r in rules],
        "kept",
        "subsampled",
        "skipped",
    ]
    rows = []
    for name, s in av["streams"].items():
        rows.append(
            [
                name,
                "all",
                str(s["pixels"]),
                *[str(s["dropped"][r]) for r in rules],
                str(s["kept"]),
                str(s["subsampled"]),
                "",
            ]
        )
        for iv in s["intervals"]:
            rows.append(
                [
                    name,
                    f"{iv['start']:.3f}–{iv['end']:.3f}",
                    str(iv["pixels"]),
                    *[str(iv["dropped"][r]) for r in rules],
                    str(iv["kept"]),
                    str(iv["subsampled"]),
                    iv["skipped"] or "",
                ]
            )
    return header, rows


def open_slots(run: dict[str, Any], signoffs: list[dict[str, Any]]) -> list[str]:
    """Roles still to sign this run: empty rows the reports show under the recorded sign-offs."""
    current = {
        s["name"]
        for s in signoffs
        if s.get("fingerprint") == run.get("fingerprint") and s["decision"] == "approve"
    }
    return ["Science owner", "Release engineer"][len(current) :]


def signoff_state(run: dict[str, Any], signoffs: list[dict[str, Any]]) -> str:
    """One line: how many current approvals the run has, or why it cannot be released."""
    if run.get("signoff_unreadable"):
        return f"Sign-offs cannot be shown: {run['signoff_unreadable']}."
    current = [s for s in signoffs if s.get("fingerprint") == run.get("fingerprint")]
    approvals = {s["name"] for s in current if s["decision"] == "approve"}
    rejected = [s["name"] for s in current if s["decision"] == "reject"]
    if run.get("marker") != "_RUN_SUCCESS":
        return f"Not releasable: the run is {VERDICT.get(run.get('marker', ''), run.get('marker'))}."
    if rejected:
        return f"Rejected by {', '.join(rejected)}."
    return f"{len(approvals)} of {APPROVALS_NEEDED} approvals (science owner and release engineer)."


# --- records -------------------------------------------------------------------------------------


def availability_in(folder: Path) -> dict[str, Any] | None:
    """The availability record a check left in its folder: a `prepared.npz` or a `run_metadata.json`."""
    meta = folder / "run_metadata.json"
    if meta.is_file():
        try:
            found = json.loads(meta.read_text()).get("availability")
        except (OSError, ValueError):
            found = None
        if found:
            return found
    npz = folder / "prepared.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as z:
                if "availability" in z.files:
                    return json.loads(str(z["availability"]))
        except (OSError, ValueError):
            return None
    return None


def _rel(folder: Path, out: Path) -> str:
    return str(folder.relative_to(out)) if folder.is_relative_to(out) else str(folder)


def report_records(out: Path, entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """One JSON-ready record per check and case, in plan order."""
    records = []
    for e in entries:
        r = e.result
        found = list(r.gates)
        records.append(
            {
                "name": r.name,
                "case": r.case,
                "status": r.status,
                "figures": r.figures,
                "thresholds": r.thresholds,
                "gates": found,
                "headline": headline(r.status, found, r.messages),
                "duration_s": r.duration_s,
                "messages": r.messages,
                "plots": [str(Path(_rel(e.folder, out)) / p) for p in r.plots],
                "tables": r.tables,
                "artifact_dir": _rel(e.folder, out),
                "complete": is_complete(e.folder),
                "resumed": e.resumed,
                "ran": e.ran,
                "config_hash": r.config_hash,
                "provenance": r.provenance,
                "availability": availability_in(e.folder),
            }
        )
    return records


def report_document(out: Path, info: dict[str, Any], entries: Iterable[Entry]) -> dict[str, Any]:
    """What `report.json` holds: the run's own record and one record per check."""
    return to_jsonable({"run": info, "checks": report_records(Path(out), entries)})


def read_document(out: Path) -> dict[str, Any]:
    """`report.json` of a finished run (for re-rendering after a sign-off)."""
    return json.loads((Path(out) / REPORT_JSON).read_text())


def summary_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary table, failing rows first (stable within a status): what both renderers print."""
    return sorted(doc["checks"], key=lambda r: STATUS_ORDER.get(r["status"], 1))
