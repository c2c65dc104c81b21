"""The per-case check `drift`: what FUSION says on a team's case now, against what it said when the case was baselined.

`harness baseline --case DIR` recorded FUSION's outputs on the case (`harness.cases.baseline`); this
check runs FUSION on the case again, the same way, and compares the two records (`compare`):

- setup — the effective config with every default resolved, the likelihood form sampled and
  the input SHA-256s. Any difference (a changed case config, a changed default of a new
  FUSION, new input data) is red until a reviewer accepts it with `harness baseline --case DIR
  --accept --name NAME --note TEXT`, which makes the fresh outputs the case's baseline;
- deterministic outputs — bit for bit (prepared-array digests, availability counts, member SLE,
  the sensitivity table);
- sampled outputs — the MCSE z-test of statistical parity (`harness.checks.parity.statistical.mcse_z_test`):
  |Δmean| ≤ stat_k·√(mcse_fresh² + mcse_baseline²) per member weight, noise parameter and
  projection figure (`drift: stat_k` in the harness config);
- reported outputs — the weighted mixture's quantiles: shown when they move, not gated.

The report gets three tables: the setup difference, what moved (by how much, which way, in
MCSE units), and the case's baselines — the history, oldest first, with who accepted each.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fusion.io import json_text, write_csv, write_json
from harness.cases.baseline import flat, run_case, write_run_files
from harness.cases.baseline_store import Baseline, read_baselines, select_baseline
from harness.cases import CASE_FILE, catalog_of
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.gates import DriftGate
from harness.checks.parity.statistical import ZTest, false_alarm_rate, mcse_z_test

__all__ = ["Drift", "SetupDifference", "compare", "drift_gates", "history_table", "run_check"]

#: library versions shown beside FUSION's when they differ (provenance; never gated)
_SHOWN = 10  # deterministic differences listed one per line; the rest are in drift.csv and the table
#: setup values FUSION resolves from the config: (record key, the config key setting it, label)
_RESOLVED: tuple[tuple[str, str, str], ...] = (
    ("likelihood_form", "likelihood.form", "likelihood form sampled"),
    ("mass_matrix", "inference.mass_matrix", "nutpie mass matrix"),
)
_LIBRARIES = ("numpy", "scipy", "pymc", "pytensor", "nutpie", "numba", "arviz-stats", "xarray")


@dataclass(frozen=True)
class SetupDifference:
    """One key of the setup that differs; `review` when it can change results (config, defaults, inputs)."""

    key: str
    baseline: Any
    fresh: Any
    review: bool = True


@dataclass
class Drift:
    """The comparison of two records: what differs in the setup, what moved, and what did not."""

    setup: list[SetupDifference] = field(default_factory=list)
    deterministic: list[tuple[str, Any, Any]] = field(default_factory=list)  # (item, baseline, fresh) that differ
    deterministic_compared: int = 0
    sampled: list[ZTest] = field(default_factory=list)
    reported: list[tuple[str, Any, Any]] = field(default_factory=list)  # every reported figure
    k: float = DriftGate().stat_k

    @property
    def to_review(self) -> list[SetupDifference]:
        return [d for d in self.setup if d.review]

    @property
    def beyond(self) -> list[ZTest]:
        """Sampled outputs outside k·√(mcse²+mcse²), farthest first."""
        return sorted((t for t in self.sampled if not t.passed), key=lambda t: -t.z)

    @property
    def max_z(self) -> float | None:
        return max((t.z for t in self.sampled), default=None)


# --- comparing two records ---------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _same(a: Any, b: Any) -> bool:
    """Equal values, bit for bit for numbers (both records went through JSON: NaN is null on both sides)."""
    if isinstance(a, float) and isinstance(b, float):
        return a.hex() == b.hex()
    return type(a) is type(b) and a == b


def _setup(baseline: dict[str, Any], fresh: dict[str, Any]) -> list[SetupDifference]:
    a, b = baseline["setup"], fresh["setup"]
    out: list[SetupDifference] = []
    config_a, config_b = a.get("config", {}), b.get("config", {})
    for key in dict.fromkeys([*config_a, *config_b]):
        if not _same(config_a.get(key), config_b.get(key)):
            out.append(SetupDifference(f"config {key}", config_a.get(key, "absent"), config_b.get(key, "absent")))
    for key, config_key, label in _RESOLVED:  # a changed rule of FUSION's, where the config key did not change
        pair = (a.get(key, "absent"), b.get(key, "absent"))
        if pair[0] != pair[1] and _same(config_a.get(config_key), config_b.get(config_key)):
            out.append(SetupDifference(label, *pair))
    inputs_a, inputs_b = a.get("inputs_sha256", {}), b.get("inputs_sha256", {})
    for path in sorted(set(inputs_a) | set(inputs_b)):
        if inputs_a.get(path) != inputs_b.get(path):
            short = [str(d)[:12] if d else "absent" for d in (inputs_a.get(path), inputs_b.get(path))]
            out.append(SetupDifference(f"input {path} (SHA-256)", *short))
    if baseline["fusion_version"] != fresh["fusion_version"]:
        out.append(SetupDifference("fusion version", baseline["fusion_version"], fresh["fusion_version"], review=False))
    va, vb = baseline["provenance"].get("versions", {}), fresh["provenance"].get("versions", {})
    out += [SetupDifference(f"{lib} version", va.get(lib), vb.get(lib), review=False)
            for lib in _LIBRARIES if va.get(lib) != vb.get(lib)]  # fmt: skip
    return out


def _moments(record: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """{quantity: (mean, mcse)}; an MCSE that could not be estimated (a weight without spread) counts as 0."""
    out = {}
    for name, m in record["sampled"].items():
        if isinstance(m, dict) and not _missing(m.get("mean")):
            mcse = m.get("mcse")
            out[name] = (float(m["mean"]), 0.0 if _missing(mcse) else float(mcse))
    return out


def compare(baseline: dict[str, Any], fresh: dict[str, Any], k: float = DriftGate().stat_k) -> Drift:
    """Setup, deterministic, sampled and reported parts of `fresh` against `baseline` (records after JSON)."""
    drift = Drift(setup=_setup(baseline, fresh), k=k)
    det_a, det_b = flat(baseline["deterministic"]), flat(fresh["deterministic"])
    for key in dict.fromkeys([*det_a, *det_b]):
        drift.deterministic_compared += 1
        if not _same(det_a.get(key), det_b.get(key)):
            drift.deterministic.append((key, det_a.get(key, "absent"), det_b.get(key, "absent")))
    tests, missing = mcse_z_test(_moments(fresh), _moments(baseline), k)
    drift.sampled = tests
    drift.deterministic += [(f"{name} (sampled)", "present", "absent") for name in missing]
    rep_a, rep_b = baseline["reported"], fresh["reported"]
    drift.reported = [(key, rep_a.get(key), rep_b.get(key)) for key in dict.fromkeys([*rep_a, *rep_b])]
    return drift


# --- how it reads ---------------------------------------------------------------------------------------


def _direction(a: Any, b: Any) -> str:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return "up" if b > a else "down" if b < a else "none"
    return "none" if _same(a, b) else "changed"


def _delta(a: Any, b: Any) -> Any:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return b - a if numeric else None


def moved_rows(drift: Drift) -> list[dict[str, Any]]:
    """What moved, by how much and which way: sampled beyond the bound, deterministic differences, the rest."""
    beyond = {t.quantity for t in drift.beyond}
    rows = [
        {"quantity": t.quantity, "kind": "sampled", "baseline": t.mean_b, "fresh": t.mean_a, "delta": t.delta,
         "direction": _direction(t.mean_b, t.mean_a), "mcse_baseline": t.mcse_b, "mcse_fresh": t.mcse_a, "z": t.z,
         "verdict": f"moved beyond {drift.k:g}·MCSE" if t.quantity in beyond else "within MCSE"}
        for t in sorted(drift.sampled, key=lambda t: (t.quantity not in beyond, -t.z))
    ]  # fmt: skip
    rows[len(beyond):len(beyond)] = [
        {"quantity": item, "kind": "deterministic", "baseline": a, "fresh": b, "delta": _delta(a, b),
         "direction": _direction(a, b), "mcse_baseline": None, "mcse_fresh": None, "z": None, "verdict": "differs"}
        for item, a, b in drift.deterministic
    ]  # fmt: skip
    rows += [
        {"quantity": item, "kind": "reported", "baseline": a, "fresh": b, "delta": _delta(a, b),
         "direction": _direction(a, b), "mcse_baseline": None, "mcse_fresh": None, "z": None,
         "verdict": "identical" if _same(a, b) else "moved (not gated)"}
        for item, a, b in drift.reported
    ]  # fmt: skip
    return rows


def history_table(baselines: list[Baseline], compared: str) -> dict[str, Any]:
    """The case's baselines, oldest first, with who accepted each and why; a record replaced in its
    folder (re-accepted at the same FUSION version and config) keeps its row."""
    rows = []
    for b in baselines:
        version, digest = b.record["fusion_version"], str(b.record["config_hash"])[:12]
        for old in b.record.get("replaced") or []:
            acc = old.get("accepted") or {}
            rows.append([f"{b.id} (replaced)", old.get("created_at"), version, digest, acc.get("name") or "first baseline",
                         acc.get("note") or "", acc.get("at") or "", acc.get("previous") or "", ""])  # fmt: skip
        acc = b.accepted or {}
        rows.append([b.id, b.created_at, version, digest, acc.get("name") or "first baseline", acc.get("note") or "",
                     acc.get("at") or "", acc.get("previous") or "", "yes" if b.id == compared else ""])  # fmt: skip
    header = ["baseline", "created (UTC)", "fusion", "config hash", "accepted by", "note", "accepted at (UTC)",
              "replaces", "compared with"]  # fmt: skip
    return {"title": "Baselines of this case (history)", "header": header, "rows": rows}


def _tables(drift: Drift, rows: list[dict[str, Any]], history: dict[str, Any]) -> list[dict[str, Any]]:
    setup = {
        "title": "Setup: baseline → this run (config with FUSION's defaults resolved, inputs, versions)",
        "header": ["what", "baseline", "this run", "needs review"],
        "rows": [[d.key, d.baseline, d.fresh, "yes" if d.review else "no (provenance)"] for d in drift.setup]
        or [["(no difference)", "", "", ""]],
    }
    header = ["quantity", "kind", "baseline", "this run", "Δ", "direction", "|Δ| / √(mcse²+mcse²)", "verdict"]
    keys = ["quantity", "kind", "baseline", "fresh", "delta", "direction", "z", "verdict"]
    moved = {
        "title": "What moved, by how much, in which direction",
        "header": header,
        "rows": [[r[k] for k in keys] for r in rows],
        "classes": ["fail" if r["verdict"] in ("differs", f"moved beyond {drift.k:g}·MCSE") else "" for r in rows],
    }
    return [setup, moved, history]


def drift_gates(figures: dict[str, Any], gate: DriftGate = DriftGate()) -> list[dict[str, Any]]:
    """Setup differences to review (bound 0), deterministic items differing (bound 0), the largest sampled z (≤ stat_k)."""
    return gates_of(
        gate_record("setup differences from the baseline (config, defaults, inputs)", "≤", 0,
                    figures.get("setup_differences"), "keys"),
        gate_record("deterministic outputs differing from the baseline", "≤", 0,
                    figures.get("deterministic_differing"), "items"),
        gate_record("sampled outputs: max |Δmean| / √(mcse_fresh² + mcse_baseline²)", "≤", gate.stat_k,
                    figures.get("max_z"), "MCSE"),
    )  # fmt: skip


def _messages(drift: Drift, baseline: Baseline, accept: str) -> list[str]:
    """What differs, one line each: the setup, what moved beyond its MCSE, deterministic differences, what to do."""
    review = drift.to_review
    lines = [f"setup differs from baseline {baseline.id}: {d.key}: {d.baseline!r} → {d.fresh!r}" for d in review]
    for t in drift.beyond:
        lines.append(
            f"{t.quantity} moved {_direction(t.mean_b, t.mean_a)} beyond its MCSE: {t.mean_b:.6g} → {t.mean_a:.6g} "
            f"(Δ {t.delta:+.4g} = {t.z:.1f}·√(mcse²+mcse²), bound {drift.k:g})"
        )
    lines += [f"deterministic {item} differs: {a!r} → {b!r}" for item, a, b in drift.deterministic[:_SHOWN]]
    if len(drift.deterministic) > _SHOWN:
        lines.append(f"… {len(drift.deterministic) - _SHOWN} more deterministic items differ (drift.csv)")
    if review:
        lines.append(f"a change is expected only once a reviewer accepts it: {accept}")
    elif drift.deterministic or drift.beyond:
        lines.append(f"if the change is intended, a reviewer re-baselines: {accept}")
    return lines


def run_check(ctx: CheckContext) -> CheckResult:
    """Drift of one case: a fresh run of FUSION against the case's baseline."""
    case = catalog_of(ctx).get(ctx.case, ctx.artifact_dir)
    baseline = select_baseline(case.root, case.name, case.baseline, case.root / CASE_FILE)
    ctx.progress(f"drift[{case.name}]: running FUSION on the case (compat: {case.settings.compat}) against {baseline.id}")
    fresh = run_case(case)
    record = json.loads(json_text(fresh.record))  # as a baseline reads back: NaN is null on both sides
    write_json(ctx.artifact_dir / "fresh.json", record)
    write_run_files(fresh, ctx.artifact_dir)
    k = ctx.gates.drift.stat_k
    drift = compare(baseline.record, record, k)
    rows = moved_rows(drift)
    write_csv(ctx.artifact_dir / "drift.csv", pd.DataFrame(rows))
    accept = f"harness baseline --case {case.root} --accept --name NAME --note TEXT"
    per_quantity, any_quantity = false_alarm_rate(k, len(drift.sampled))
    figures = {
        "baseline": baseline.id,
        "baseline_created_at": baseline.created_at,
        "fresh": record["id"],
        "setup_differences": len(drift.to_review),
        "deterministic_compared": drift.deterministic_compared,
        "deterministic_differing": len(drift.deterministic),
        "sampled_compared": len(drift.sampled),
        "sampled_beyond": len(drift.beyond),
        "moved": [t.quantity for t in drift.beyond],
        "max_z": drift.max_z,
        "false_alarm_rate_per_quantity": per_quantity,
        "false_alarm_rate": any_quantity,
    }
    converged = {"baseline": baseline.record["provenance"].get("convergence", {}).get("passed"),
                 "fresh": record["provenance"]["convergence"]["passed"]}  # fmt: skip
    figures["convergence_passed"] = converged
    gates = drift_gates(figures, ctx.gates.drift)
    failed = [side for side, ok in converged.items() if ok is False]
    notes = [f"the {' and the '.join(failed)} run{'s' if len(failed) > 1 else ''} failed FUSION's convergence gate: "
             "MCSEs may understate the Monte-Carlo error (reported, not gated)"] if failed else []  # fmt: skip
    return CheckResult(
        name="drift",
        case=case.name,
        status="pass" if all(g["passed"] for g in gates) else "fail",
        figures=figures,
        thresholds={
            "setup": "config (defaults resolved), likelihood form and inputs equal to the baseline's, or accepted",
            "deterministic": "bit for bit: prepared-array digests, availability, member SLE, sensitivity table",
            "sampled": f"|Δmean| ≤ {k:g}·√(mcse_fresh² + mcse_baseline²) per weight, noise parameter, projection figure",
        },
        gates=gates,
        messages=_messages(drift, baseline, accept) + notes,
        tables=_tables(drift, rows, history_table(read_baselines(case.root, case.name), baseline.id)),
        config_hash=record["config_hash"],
        provenance={
            "case": str(case.root),
            "config": str(case.config),
            "baseline": str(baseline.path),
            "compat": record["provenance"]["compat"],
            "seeds": record["provenance"]["seeds"],
            "sampler": record["provenance"]["sampler"],
            "convergence_passed": record["provenance"]["convergence"]["passed"],
            "warnings": record["provenance"]["warnings"],
            "inputs_sha256": record["setup"]["inputs_sha256"],
        },
    )
