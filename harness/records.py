"""The report's records: one source that `report.json`, `report.md` and `report.html` all render.

Below both the runner and the renderers (no import cycle): the runner builds `Entry` objects,
`report_document` turns them into the JSON-ready document written as `report.json`, and each
renderer reads only that document (plus `signoff.json`), so the Markdown and the page cannot
disagree — and `harness signoff` can re-render both from the files alone.

Each check record carries `gates` — (figure, threshold, value, margin, passed) for every gated
figure that can be read from its figures and thresholds — and a `headline`: the failing gate,
else the one with the least room. Margin is how far inside the threshold the value is
(negative: outside), in the figure's units.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fusion.io import is_complete, to_jsonable
from harness.checks import CheckResult

__all__ = [
    "STATUS_ORDER",
    "VERDICT",
    "Entry",
    "availability_rows",
    "flatten",
    "fmt",
    "gates",
    "headline",
    "open_slots",
    "read_document",
    "report_document",
    "report_records",
    "run_line",
    "signoff_state",
    "status_text",
    "summary_rows",
]

VERDICT: dict[str, str] = {"_RUN_SUCCESS": "PASSED", "_RUN_FAILED": "FAILED", "_RUN_PARTIAL": "INCOMPLETE"}
STATUS_ORDER: dict[str, int] = {"fail": 0, "error": 1, "pass": 2}  # failing rows first
REPORT_JSON = "report.json"
APPROVALS_NEEDED = 2  # the science owner and the release engineer


@dataclass
class Entry:
    """One planned check's outcome as the report shows it."""

    result: CheckResult
    folder: Path
    resumed: bool = False
    ran: bool = True


# --- gates: (figure, threshold, value, margin) read from a record's figures and thresholds -------

_BOUND = re.compile(r"^\s*(≤|<=|<|≥|>=|>)\s*([-+0-9.eE]+)")


def _bound(text: Any) -> tuple[str, float] | None:
    """`"≤ 1.01"` → ("≤", 1.01); None when the threshold is not a one-sided numeric bound."""
    m = _BOUND.match(str(text))
    if m is None:
        return None
    op = {"<=": "≤", "<": "≤", ">=": "≥", ">": "≥"}.get(m.group(1), m.group(1))
    try:
        return op, float(m.group(2))
    except ValueError:
        return None


def _gate(
    figure: str, op: str, bound: float, value: Any, threshold: str | None = None
) -> dict[str, Any] | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    margin = bound - value if op == "≤" else value - bound
    return {
        "figure": figure,
        "threshold": threshold or f"{op} {bound:g}",
        "value": value,
        "margin": margin,
        "passed": margin >= 0,
    }


def _get(figures: dict[str, Any], path: str) -> Any:
    node: Any = figures
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


# threshold key -> figure path, where the two names differ
_FIGURE_OF: dict[str, dict[str, str]] = {
    "convergence": {
        "ess_bulk": "ess_bulk_per_chain_min",
        "ess_tail": "ess_tail_per_chain_min",
        "e_bfmi": "e_bfmi_min",
    },
}


def _generic(name: str, figures: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Thresholds written as one-sided bounds ("≤ 1.01") or bare numbers named like a `max_`/`min_` figure."""
    out = []
    for key, text in thresholds.items():
        path = _FIGURE_OF.get(name, {}).get(key, key)
        value = _get(figures, path)
        b = _bound(text)
        if b is None and isinstance(text, (int, float)) and not isinstance(text, bool):
            if key.startswith("max_") or key.endswith("_max"):
                b = ("≤", float(text))
            elif key.startswith("min_") or key.endswith("_min"):
                b = ("≥", float(text))
        if b is not None and (g := _gate(path, *b, value, str(text) if _bound(text) else None)):
            out.append(g)
    return out


def _parity(figures: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Bit-exact components as one gate (components that differ, bound 0); the statistical |Δ|/bound ratio (≤ 1)."""
    out = []
    exact = {
        k: c for k, c in figures.items() if isinstance(c, dict) and "passed" in c and "max_ratio" not in c
    }
    if exact:
        red = [k for k, c in exact.items() if not c["passed"]]
        g = _gate(f"bit-exact components differing (of {len(exact)})", "≤", 0.0, len(red), "0")
        if g is not None:
            out.append(g)
    for key, comp in figures.items():
        if isinstance(comp, dict) and "max_ratio" in comp:
            g = _gate(f"{key}: max |Δ| / (4·√(mcse² + mcse²))", "≤", 1.0, comp["max_ratio"])
            if g is not None:
                g["passed"] = bool(comp.get("passed", g["passed"]))
                out.append(g)
    return out


def _coverage(figures: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Thresholds named `<setting>_<regime>_max_<figure>` / `..._min_<figure>`."""
    out = []
    for key, bound in thresholds.items():
        m = re.match(r"^([a-z]+)_(.+)_(max|min)_(.+)$", key)
        if m is None or not isinstance(bound, (int, float)):
            continue
        setting, regime, side, name = m.groups()
        node = _get(figures, f"{setting}.{regime}")
        if not isinstance(node, dict):
            continue
        value = node.get(name, node.get(f"{name}_fraction"))
        g = _gate(f"{setting}.{regime}.{name}", "≤" if side == "max" else "≥", float(bound), value)
        if g is not None:
            out.append(g)
    return out


def _sbc(figures: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """The generative form: smallest χ² p against the per-test α, ECDF bands, failed fits."""
    gen = figures.get("generative", figures)
    out = []
    alpha = thresholds.get("alpha_per_test")
    ps = {q: p for q, p in (gen.get("chi2_p") or {}).items() if isinstance(p, (int, float))}
    if ps and isinstance(alpha, (int, float)):
        q = min(ps, key=lambda k: ps[k])
        out.append(_gate(f"min χ² p ({q})", "≥", float(alpha), ps[q]))
    bands = gen.get("ecdf_inside_band")
    if isinstance(bands, dict) and bands:
        out.append(_gate("ECDF outside the simultaneous band", "≤", 0.0, sum(not v for v in bands.values())))
    limit = thresholds.get("max_failed_fraction")
    if isinstance(limit, (int, float)):
        out.append(_gate("failed fits (fraction)", "≤", float(limit), gen.get("failed_fraction")))
    return [g for g in out if g is not None]


def _agreement(figures: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Laplace against NUTS: weight shift and projection shift in NUTS sd, the sd ratio's range."""
    nums = {k: [float(x) for x in re.findall(r"\d+(?:\.\d+)?", str(v))] for k, v in thresholds.items()}
    out = []
    if nums.get("weight_shift"):
        out.append(
            _gate(
                "max weight shift (NUTS sd)",
                "≤",
                nums["weight_shift"][-1],
                figures.get("max_weight_shift_sd"),
            )
        )
    if len(nums.get("sd_ratio", [])) >= 2:
        low, high = nums["sd_ratio"][-2:]
        out.append(_gate("min sd ratio (Laplace/NUTS)", "≥", low, figures.get("sd_ratio_min")))
        out.append(_gate("max sd ratio (Laplace/NUTS)", "≤", high, figures.get("sd_ratio_max")))
    if nums.get("projection"):
        shift = _get(figures, "projection.weighted_mean_shift_sd")
        out.append(_gate("projection median shift (NUTS sd)", "≤", nums["projection"][-1], shift))
    return [g for g in out if g is not None]


_GATES: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]] = {
    "parity": _parity,
    "coverage": _coverage,
    "sbc": _sbc,
    "agreement": _agreement,
}


def gates(name: str, figures: dict[str, Any], thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Every gate readable from a record; checks without a reader use the generic bound parser."""
    special = _GATES.get(name)
    found = special(figures, thresholds) if special else []
    return found or _generic(name, figures, thresholds)


def headline(status: str, found: list[dict[str, Any]], messages: list[str]) -> dict[str, Any]:
    if found:
        failing = [g for g in found if not g["passed"]]
        pick = failing or found

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
        found = gates(r.name, r.figures, r.thresholds)
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
