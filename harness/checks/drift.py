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
  projection figure (`drift: stat_k` in the harness config), decided on its interval (below);
- reported outputs — the weighted mixture's quantiles: shown when they move, not gated.

The sampled gate's bound is in units of the combined MCSE S = √(mcse_fresh² + mcse_baseline²), which
is also the standard error of one fresh run's z: from one run, a true shift near the bound is a
coin flip. So the gate reads the largest shift with an interval (`harness.verdict`): per quantity,
the mean of the fresh runs' values against the baseline, |mean_j(a_j) − b| / S₀, with the normal
interval from se² = v/n + mcse_baseline², v the larger of the runs' spread (variance across runs)
and their mean squared MCSE (so an MCSE that understates the run-to-run scatter does not narrow
it); S₀ is the first look's scale (the first fresh run's MCSE with the baseline's), fixed, so the
bound does not move as runs are added; the largest over quantities takes `harness.verdict.largest`
(its lower end Bonferroni). The first fresh run is at the case's own sampler seed (an unchanged
FUSION reproduces the baseline bit for bit: Δ = 0, a pass); undecided adds fresh runs at the
next sampler seeds (seed + 1, seed + 2, …: a fixed path), `batch` at a time up to `max_seeds`
runs, under Pocock-type alpha spending over the looks (`mc_alpha` per side); runs already made are
read back from the result store (`seeds/seed<N>`). The baseline's own MCSE does not shrink, so
more runs narrow the interval by at most √2: a shift within about one half-width of the bound
stays undecided, and re-baselining (with longer chains) is what settles it. When the setup or a
deterministic output already fails, no runs are added (the check fails whatever they say).

The report gets three tables: the setup difference, what moved (by how much, which way, in
MCSE units), and the case's baselines — the history, oldest first, with who accepted each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion.io import json_text, write_csv, write_json
from harness.cases.baseline import flat, run_case, write_run_files
from harness.cases.baseline_store import Baseline, read_baselines, select_baseline
from harness.cases import CASE_FILE, Case, catalog_of
from harness.checks import CheckContext, CheckResult, gate_record, gates_of, status_of
from harness.gates import DriftGate
from harness.checks.parity.statistical import ZTest, false_alarm_rate, mcse_z_test
from harness.verdict import Decision, Interval, Plan, largest, sequential

__all__ = ["Drift", "SetupDifference", "compare", "drift_gates", "history_table", "run_check", "sampled_decision",
           "sampled_interval", "sampled_plan", "shift_interval"]

Moments = dict[str, tuple[float, float]]  # {quantity: (mean, mcse)}
SAMPLED = "sampled outputs: max |Δmean| / √(mcse_fresh² + mcse_baseline²) over the fresh runs"

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


def drift_gates(figures: dict[str, Any], gate: DriftGate = DriftGate(),
                decision: Decision | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Setup differences to review (bound 0), deterministic items differing (bound 0), the largest
    sampled z (≤ stat_k): with its interval and verdict when `decision` is given, else the point z."""
    sampled = decision.record(SAMPLED, "MCSE") if decision is not None else gate_record(
        "sampled outputs: max |Δmean| / √(mcse_fresh² + mcse_baseline²)", "≤", gate.stat_k, figures.get("max_z"), "MCSE")
    return gates_of(
        gate_record("setup differences from the baseline (config, defaults, inputs)", "≤", 0,
                    figures.get("setup_differences"), "keys"),
        gate_record("deterministic outputs differing from the baseline", "≤", 0,
                    figures.get("deterministic_differing"), "items"),
        sampled,
    )  # fmt: skip


def shift_interval(baseline: tuple[float, float], runs: Sequence[tuple[float, float]], level: float) -> Interval:
    """One quantity's shift |mean_j(a_j) − b| in units of the first run's √(mcse_a,0² + mcse_b²),
    from the (mean, mcse) of the baseline and of n fresh runs, with its normal interval at `level`:
    se² = v/n + mcse_b², v the larger of the runs' variance and their mean squared MCSE."""
    from scipy.stats import norm

    b, mcse_b = baseline
    means = np.array([m for m, _ in runs], dtype=float)
    mcses = np.array([e for _, e in runs], dtype=float)
    n = means.size
    delta = abs(float(means.mean()) - b)
    spread = float(means.var(ddof=1)) if n > 1 else 0.0
    se = math.sqrt(max(spread, float(np.mean(mcses**2))) / n + mcse_b**2)
    scale = math.hypot(mcses[0], mcse_b)
    half = float(norm.ppf(0.5 + level / 2)) * se
    method = f"normal, mean of {n} fresh run{'s' if n > 1 else ''} (spread and MCSE) against the baseline's MCSE"
    if scale == 0:  # no spread at the first look on either side: unchanged, or moved beyond any MCSE
        z = 0.0 if delta == 0 and half == 0 else math.inf
        return Interval(z, z, z, level, n, method)
    return Interval(delta / scale, max(delta - half, 0.0) / scale, (delta + half) / scale, level, n, method)


def sampled_interval(baseline: Moments, runs: Sequence[Moments], level: float) -> Interval:
    """The largest shift over the quantities of the first run the baseline has, with its interval
    (`harness.verdict.largest`: lower end Bonferroni over the quantities)."""
    quantities = [q for q in runs[0] if q in baseline]

    def each(lv: float) -> list[Interval]:
        return [shift_interval(baseline[q], [r[q] for r in runs], lv) for q in quantities]

    return largest(each, level, "sampled outputs")


def sampled_plan(gate: DriftGate, extend: bool = True) -> Plan:
    """Looks at 1 fresh run, then every `batch` more up to `max_seeds`; one look when not `extend`."""
    cap = max(gate.max_seeds, 1) if extend else 1
    return Plan(first=1, batch=gate.batch, cap=cap, alpha=gate.mc_alpha)


def sampled_decision(
    baseline: Moments, runs_upto: Callable[[int], Sequence[Moments]], gate: DriftGate, plan: Plan | None = None,
    progress: Callable[[str], None] | None = None,
) -> Decision:
    """The sampled gate decided in batches of fresh runs: `runs_upto(n)` gives (running or reading
    back) the moments of the first n fresh runs."""
    plan = plan or sampled_plan(gate)
    return sequential(plan, lambda n, level: sampled_interval(baseline, runs_upto(n), level), "≤", gate.stat_k, progress)


def _runs_upto(case: Case, first: Moments, record: dict[str, Any], folder: Path,
               progress: Callable[[str], None]) -> Callable[[int], list[Moments]]:  # fmt: skip
    """Fresh runs at the case's sampler seed + 1, + 2, …, each read back from `folder/seeds/seed<N>`
    when made under the same config, inputs and code."""
    from harness.result_store import load_result, result_key, save_result, source_digest

    runs = [first]
    seed0 = int(record["provenance"]["seeds"]["inference"])
    code = source_digest(("fusion", "harness/cases/baseline.py", "harness/checks/parity/statistical.py"))

    def upto(n: int) -> list[Moments]:
        while len(runs) < n:
            seed = seed0 + len(runs)
            spec = {"config_hash": record["config_hash"], "inputs": record["setup"]["inputs_sha256"], "seed": seed}
            key, where = result_key(spec, code), folder / "seeds" / f"seed{seed}"
            stored = load_result(where, key, null_as_nan=True)
            if stored is None:
                progress(f"drift[{case.name}]: fresh run at sampler seed {seed} ({len(runs) + 1} of up to {n})")
                rec = json.loads(json_text(run_case(case, seed=seed).record))
                stored = {"seed": seed, "sampled": rec["sampled"],
                          "convergence_passed": rec["provenance"]["convergence"]["passed"]}  # fmt: skip
                save_result(where, stored, key)
            runs.append(_moments(stored))
        return runs[:n]

    return upto


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


def _undecided(decision: Decision | None) -> list[str]:
    """The line an undecided sampled gate gets: its interval, the runs made and what would decide."""
    if decision is None or decision.verdict != "undecided":
        return []
    iv = decision.interval
    line = (f"sampled outputs: largest shift {iv.estimate:.3g}·MCSE, {iv.level:.1%} interval [{iv.lower:.3g}, {iv.upper:.3g}] "
            f"holds the bound {decision.bound:g} after {iv.n} fresh run{'s' if iv.n > 1 else ''} (cap {decision.cap})")
    if decision.needed:
        line += f"; about {decision.needed} would decide"
    return [line + "; the baseline's own MCSE bounds what more runs can settle: re-baseline with longer chains"]


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
    gate = ctx.gates.drift
    first = _moments(record)
    decision = None
    if any(q in first for q in _moments(baseline.record)):
        extend = not drift.to_review and not drift.deterministic  # else the check fails whatever more runs say
        decision = sampled_decision(_moments(baseline.record), _runs_upto(case, first, record, ctx.artifact_dir, ctx.progress),
                                    gate, sampled_plan(gate, extend), lambda m: ctx.progress(f"drift[{case.name}]: {m}"))  # fmt: skip
        iv = decision.interval
        figures["sampled"] = {"verdict": decision.verdict, "max_z": iv.estimate, "interval": [iv.lower, iv.upper],
                              "level": iv.level, "fresh_runs": iv.n, "extended": extend,
                              "seeds": [int(record["provenance"]["seeds"]["inference"]) + j for j in range(iv.n)],
                              "looks": [list(look) for look in decision.looks]}  # fmt: skip
    gates = drift_gates(figures, gate, decision)
    failed = [side for side, ok in converged.items() if ok is False]
    notes = [f"the {' and the '.join(failed)} run{'s' if len(failed) > 1 else ''} failed FUSION's convergence gate: "
             "MCSEs may understate the Monte-Carlo error (reported, not gated)"] if failed else []  # fmt: skip
    return CheckResult(
        name="drift",
        case=case.name,
        status=status_of(gates),
        figures=figures,
        thresholds={
            "setup": "config (defaults resolved), likelihood form and inputs equal to the baseline's, or accepted",
            "deterministic": "bit for bit: prepared-array digests, availability, member SLE, sensitivity table",
            "sampled": f"|Δmean| ≤ {k:g}·√(mcse_fresh² + mcse_baseline²) per weight, noise parameter, projection figure",
        },
        gates=gates,
        messages=_messages(drift, baseline, accept) + _undecided(decision) + notes,
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
