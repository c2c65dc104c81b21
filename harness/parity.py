"""Prototype parity: FUSION must say what the research prototype said, on each case.

A case (`harness/cases.py`) holds what the prototype produced; parity compares what is
there. Bit-exact: the prepared arrays (values and dtypes, with `prepared.npz`), the
plug-in `(weights, loglik)` by member id — once from the reference's prepared arrays
(isolating `plug_in_weights`) and once end to end from FUSION's own `prepare` (what
`compare_parity.py` judges) — and the case's reviewed golden tables. Statistical, where
the prototype sampled (`sampled_posterior.nc`): posterior means of the four noise
parameters and of `w`, |Δ| ≤ 4·√(mcse_fusion² + mcse_prototype²), a bound that scales with
the Monte Carlo error of both runs instead of a relative tolerance on rounded numbers.
Each part is a `Component`; a red one names what differs, and a comparison the case
cannot make is listed as skipped, with the reason, rather than passed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import norm

from fusion.diagnostics import THRESHOLDS as THRESHOLDS_CONVERGENCE
from fusion.diagnostics import Thresholds, diagnose_draws, diagnose_inputs
from fusion.errors import InputError
from fusion.inference.parameters import PARAMS
from fusion.io import sha256_tree, write_csv
from harness.asserts import bitwise_difference, order_difference, weights_problems
from harness.cases import (
    ARRAYS as CASE_ARRAYS,
    POSTERIOR,
    SAMPLED,
    WEIGHTS,
    Case,
    CaseCatalog,
    CaseData,
    catalog_of,
    comparisons,
    read_reference_weights,
    sample_case,
)
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.gates import ParityGate
from harness.convergence import SETTINGS, diagnose, gate
from harness.tables import Tolerance, compare_tables, read_table
from harness.plots import plot_impact, plot_statistical_parity

__all__ = [
    "ARRAYS",
    "STAT_K",
    "TABLES",
    "Component",
    "TableSpec",
    "cases",
    "check_case",
    "compare_golden_tables",
    "compare_prepared",
    "compare_weights",
    "run_check",
    "statistical_parity",
    "ZTest",
    "mcse_z_test",
    "posterior_moments",
]

ARRAYS: tuple[str, ...] = CASE_ARRAYS  # the prepared arrays a reference holds (harness.cases)
STAT_K: float = ParityGate().stat_k  # |Δmean| ≤ STAT_K · √(mcse_a² + mcse_b²); `parity: stat_k` in the harness config

@dataclass
class Component:
    """One judged part of parity: passed or not, the lines that say why, the figures measured."""

    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


# --- FUSION's side ----------------------------------------------------------------------------


def weights_frame(member_ids: tuple[str, ...], weights: np.ndarray, loglik: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": list(member_ids),
            "weight": np.asarray(weights, np.float64),
            "log_likelihood": np.asarray(loglik, np.float64),
        }
    )


def plug_in(prepared: Any, posterior: Any) -> pd.DataFrame:
    """FUSION's plug-in weights as a table (looked up at call time, so a test can plant a fault)."""
    from fusion.inference import plugin

    weights, loglik = plugin.plug_in_weights(prepared, posterior)
    return weights_frame(prepared.member_ids, weights, loglik)

# --- bit-exact comparisons ------------------------------------------------------------------


def compare_prepared(obtained: Any, golden: Any, name: str = "prepared") -> Component:
    """Arrays bit for bit (dtype, shape, every bit), the stream counts and the member order."""
    messages: list[str] = []
    figures: dict[str, Any] = {}
    for array in ARRAYS:
        diff = bitwise_difference(getattr(obtained, array), getattr(golden, array), array)
        figures[array] = "identical" if diff is None else diff.kind
        if diff is not None:
            messages.append(diff.message)
            figures[f"{array}_first_index"] = list(diff.index) if diff.index is not None else None
            figures[f"{array}_ulp"] = diff.ulp
            figures[f"{array}_n_different"] = diff.n_different
    for count in ("n_dhdt", "n_vel"):
        got, want = int(getattr(obtained, count)), int(getattr(golden, count))
        figures[count] = got
        if got != want:
            messages.append(f"{count}: {got} != expected {want}")
    got_ids, want_ids = list(obtained.member_ids), list(golden.member_ids)
    figures["member_ids"] = got_ids
    moved = order_difference(got_ids, want_ids)
    if moved is not None:
        first, a, b = moved
        messages.append(
            f"member order differs at position {first}: {a} vs expected {b} "
            f"(obtained {got_ids}, expected {want_ids})"
        )
    return Component(name, not messages, messages, figures)


def compare_weights(
    obtained: pd.DataFrame, reference: pd.DataFrame, name: str, source: str = "reference"
) -> Component:
    """Weights and log-likelihoods bit for bit, matched by member id in any row order; plus the weight domain.

    `source` names the reference file in the messages.
    """
    ids, ref_ids = [str(m) for m in obtained["member_id"]], [str(m) for m in reference["member_id"]]
    messages = []
    missing, extra = [m for m in ref_ids if m not in ids], [m for m in ids if m not in ref_ids]
    if missing or extra:
        messages.append(f"{source}: members differ: missing {missing}, not in the reference {extra}")
    common = [m for m in ids if m in set(ref_ids)]
    by_id = reference.assign(member_id=ref_ids).set_index("member_id").loc[common].reset_index()
    mine = obtained.assign(member_id=ids).set_index("member_id").loc[common].reset_index()
    diff = compare_tables(mine, by_id[list(mine.columns)], key="member_id", name=source)
    messages += diff.messages()
    messages += weights_problems(obtained["weight"].to_numpy(), list(obtained["member_id"]))
    worst = max((c.ulp for c in diff.cells if c.ulp is not None), default=0)
    figures = {"members": len(obtained), "cells_different": len(diff.cells), "max_ulp": worst}
    return Component(name, not messages, messages, figures)


# --- golden tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableSpec:
    """One golden table: how FUSION's version is built, its row key, per-column tolerances, which cases have it."""

    name: str
    build: Callable[[CaseData], pd.DataFrame]
    key: str | None
    tolerances: dict[str, Tolerance]
    applies: Callable[[Case], bool]  # decided from the case's files alone (also at test collection)
    about: str


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def table_prepared(data: CaseData) -> pd.DataFrame:
    """Dtype, shape and SHA-256 of every prepared array under `compat: prototype` (bit-exact by digest)."""
    p = data.prepared
    rows: list[tuple[str, str]] = []
    for array in ARRAYS:
        values = np.asarray(getattr(p, array))
        rows += [
            (f"{array}.dtype", str(values.dtype)),
            (f"{array}.shape", "x".join(map(str, values.shape))),
            (f"{array}.sha256", _digest(values)),
        ]
    rows += [("n_dhdt", str(p.n_dhdt)), ("n_vel", str(p.n_vel)), ("member_ids", " ".join(p.member_ids))]
    return pd.DataFrame(rows, columns=["item", "value"])


def table_weights(data: CaseData) -> pd.DataFrame:
    return plug_in(data.prepared, data.posterior)


def table_weights_sampled(data: CaseData) -> pd.DataFrame:
    assert data.sampled_posterior is not None
    return plug_in(data.prepared, data.sampled_posterior["posterior"].to_dataset())


def table_impact(data: CaseData) -> pd.DataFrame:
    from harness.impact import weights_impact

    return weights_impact(
        plug_in(data.prepared, data.posterior), plug_in(data.prepared_fixed, data.posterior)
    )


def table_sle_impact(data: CaseData) -> pd.DataFrame:
    from harness.impact import sle_impact

    proto = plug_in(data.prepared, data.posterior)
    fixed = plug_in(data.prepared_fixed, data.posterior)
    return sle_impact(data.config("fixed"), proto, fixed)


_CLOSE = Tolerance(atol=1e-12, rtol=1e-9)
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "prepared",
            table_prepared,
            "item",
            {},
            lambda c: True,
            "dtype, shape and SHA-256 of each prepared array (compat: prototype)",
        ),
        TableSpec(
            "weights",
            table_weights,
            "member_id",
            {},
            lambda c: c.file(POSTERIOR) is not None,
            "plug-in weights and log-likelihoods at the case's reference posterior (compat: prototype)",
        ),
        TableSpec(
            "weights_sampled",
            table_weights_sampled,
            "member_id",
            {},
            lambda c: c.file(SAMPLED) is not None,
            "plug-in weights at the prototype's own sampled posterior",
        ),
        TableSpec(
            "impact",
            table_impact,
            "member_id",
            {"weight_fixed": _CLOSE, "delta": _CLOSE},
            lambda c: c.file(POSTERIOR) is not None,
            "plug-in weights under compat prototype and fixed, same posterior",
        ),
        TableSpec(
            "sle_impact",
            table_sle_impact,
            "quantity",
            {"fixed": _CLOSE, "delta": _CLOSE},
            lambda c: c.file(POSTERIOR) is not None and c.has_projection,
            "weighted SLE 2100 median and interval under both compats",
        ),
    )
}


def applicable_tables(case: Case) -> list[str]:
    return [name for name, spec in TABLES.items() if spec.applies(case)]


def compare_golden_tables(data: CaseData) -> tuple[Component, dict[str, pd.DataFrame]]:
    """FUSION's tables against the case's reviewed golden CSVs (`tables/`), with each table's own tolerances."""
    messages: list[str] = []
    figures: dict[str, Any] = {}
    built: dict[str, pd.DataFrame] = {}
    for spec in TABLES.values():
        if not spec.applies(data.case):
            continue
        path = data.case.table_path(spec.name)
        table = built[spec.name] = spec.build(data)
        if not path.is_file():
            messages.append(
                f"{path}: missing golden table (create it with `pytest harness/ --snapshot-update`, then review)"
            )
            figures[spec.name] = "missing"
            continue
        try:
            golden = read_table(path)
        except ValueError as exc:
            messages.append(f"{path}: unreadable golden table ({exc})")
            figures[spec.name] = "unreadable"
            continue
        diff = compare_tables(
            table, golden, key=spec.key, tolerances=spec.tolerances, name=_short(path, data.case)
        )
        figures[spec.name] = (
            "equal" if diff.equal else f"{len(diff.cells)} cells, {len(diff.structure)} structural"
        )
        messages += diff.messages()
    return Component("golden_tables", not messages, messages, figures), built


# --- statistical parity -------------------------------------------------------------------------

def prototype_settings(case: Case, sampled: xr.DataTree) -> dict[str, Any]:
    """The prototype's sampler settings (reference `timing.json`), else the draws and chains of its posterior.

    Any settings give a valid test (the bound scales with both MCSEs); matching them keeps it as sharp
    as the prototype's run allows.
    """
    timing_path = case.file("timing.json")
    if timing_path is None:
        post = sampled["posterior"]
        return {"draws": int(post.sizes["draw"]), "chains": int(post.sizes["chain"])}
    timing = json.loads(timing_path.read_text())
    return {
        "draws": int(timing["draws"]),
        "tune": int(timing["tune"]),
        "chains": int(timing["chains"]),
        "target_accept": float(timing["target_accept"]),
        "seed": int(timing["random_seed"]),
    }


def posterior_moments(trace: xr.DataTree, member_ids: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Mean and MCSE of the mean of each noise parameter and each member's `w` (as `w[<member>]`), by label."""
    import arviz_stats as azs

    post = trace["posterior"].to_dataset()
    names = [v for v in (*PARAMS, "w") if v in post.data_vars]
    mcse = azs.mcse(trace, var_names=names, method="mean")
    mcse_ds = mcse.to_dataset() if isinstance(mcse, xr.DataTree) else mcse
    out: dict[str, tuple[float, float]] = {}
    for name in PARAMS:
        if name in post:
            out[name] = (float(post[name].mean()), float(mcse_ds[name]))
    if "w" in post:
        w, w_mcse = post["w"], mcse_ds["w"]
        member_dim = next(d for d in w.dims if d not in ("chain", "draw"))
        labels = [str(v) for v in w[member_dim].values] if "member" == member_dim else list(member_ids)
        for i, label in enumerate(labels):
            out[f"w[{label}]"] = (float(w.isel({member_dim: i}).mean()), float(w_mcse.isel({member_dim: i})))
    return out


@dataclass(frozen=True)
class ZTest:
    """One quantity of the MCSE z-test: |Δmean| ≤ k·√(mcse_a² + mcse_b²), where a is the run judged, b its reference."""

    quantity: str
    mean_a: float
    mcse_a: float
    mean_b: float
    mcse_b: float
    k: float

    @property
    def delta(self) -> float:
        return self.mean_a - self.mean_b

    @property
    def z(self) -> float:
        """|Δ| in units of √(mcse_a² + mcse_b²): about N(0, 1) in size when both sample one posterior."""
        scale = float(np.hypot(self.mcse_a, self.mcse_b))
        return abs(self.delta) / scale if scale > 0 else (0.0 if self.delta == 0 else float("inf"))

    @property
    def tolerance(self) -> float:
        return self.k * float(np.hypot(self.mcse_a, self.mcse_b))

    @property
    def passed(self) -> bool:
        return bool(abs(self.delta) <= self.tolerance)


def mcse_z_test(
    ours: dict[str, tuple[float, float]], theirs: dict[str, tuple[float, float]], k: float = STAT_K
) -> tuple[list[ZTest], list[str]]:
    """The test statistical parity (and `drift`) use, per quantity of `theirs`: (tests, quantities `ours` lacks)."""
    tests = [ZTest(name, *ours[name], *ref, k) for name, ref in theirs.items() if name in ours]
    return tests, [name for name in theirs if name not in ours]


def false_alarm_rate(k: float, quantities: int) -> tuple[float, float]:
    """(per quantity, any of `quantities`) chance that a correct run fails the z-test at `k`."""
    per_quantity = float(2.0 * norm.sf(k))  # |Δ|/√(mcse²+mcse²) ~ N(0, 1) when both sample one posterior
    return per_quantity, float(1.0 - (1.0 - per_quantity) ** quantities)


def statistical_parity(
    trace: xr.DataTree,
    prototype: xr.DataTree,
    summary: pd.DataFrame | None,
    member_ids: tuple[str, ...],
    k: float = STAT_K,
) -> tuple[Component, pd.DataFrame]:
    """Posterior means against the prototype's: |Δ| ≤ k·√(mcse_fusion² + mcse_prototype²) per quantity.

    The prototype's means and MCSEs come from its posterior with the same estimator as FUSION's
    side (arviz_stats); a `posterior_summary.csv` of the prototype, when the case has one, gives
    the noise parameters' figures instead. `member_ids` label the prototype's positional `w`.
    """
    ours = posterior_moments(trace, member_ids)
    theirs = posterior_moments(prototype, member_ids)
    for _, row in (summary if summary is not None else pd.DataFrame()).iterrows():
        theirs[str(row["var"])] = (float(row["mean"]), float(row["mcse_mean"]))
    tests, missing = mcse_z_test(ours, theirs, k)
    messages = [f"{name}: missing from FUSION's posterior" for name in missing]
    rows = []
    for t in tests:
        rows.append(
            {
                "quantity": t.quantity,
                "fusion_mean": t.mean_a,
                "fusion_mcse": t.mcse_a,
                "prototype_mean": t.mean_b,
                "prototype_mcse": t.mcse_b,
                "delta": t.delta,
                "tolerance": t.tolerance,
                "ratio": abs(t.delta) / t.tolerance if t.tolerance > 0 else float("inf"),
                "passed": t.passed,
            }
        )
        if not t.passed:
            messages.append(
                f"{t.quantity}: |Δmean| {abs(t.delta):.4g} > {k:g}·√(mcse²+mcse²) = {t.tolerance:.4g} "
                f"(FUSION {t.mean_a:.6g} ± {t.mcse_a:.2g}, prototype {t.mean_b:.6g} ± {t.mcse_b:.2g}; "
                f"{abs(t.delta) / t.tolerance:.2f}× the bound)"
            )
    table = pd.DataFrame(rows)
    per_quantity, any_quantity = false_alarm_rate(k, len(rows))
    figures = {
        "quantities": len(rows),
        "max_ratio": float(table["ratio"].max()) if len(table) else None,
        "false_alarm_rate_per_quantity": per_quantity,
        "false_alarm_rate": any_quantity,  # any quantity, same posterior
    }
    return Component("statistical", not messages, messages, figures), table


def _short(path: Path, case: Case) -> str:
    """`golden/<case>/…` or `<case folder>/…` rather than an absolute path: readable, comparable across machines."""
    parts = Path(path).parts
    if "golden" in parts:
        return str(Path(*parts[parts.index("golden") :]))
    for base in (case.root.parent, case.reference.parent):
        if Path(path).is_relative_to(base):
            return str(Path(path).relative_to(base))
    return str(path)


def _key_figures(d: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "r_hat_max",
        "r_hat_max_at",
        "ess_bulk_per_chain_min",
        "ess_tail_per_chain_min",
        "divergences",
        "e_bfmi_min",
    )
    return {k: d[k] for k in keys}


#: what the prototype's divergences and E-BFMI are when its trace kept no sampler statistics
UNKNOWN_NO_STATS = "unknown (no sample_stats)"


def prototype_convergence(sampled: xr.DataTree, thresholds: Thresholds) -> tuple[dict[str, Any], str]:
    """The prototype's convergence figures and its gate verdict, shown beside FUSION's (never gated).

    R-hat and ESS need only the posterior; divergences and E-BFMI need the sampler's statistics.
    A trace without `sample_stats.diverging` (written by hand, or by an older capture) still gets
    the first two, and the other two read `UNKNOWN_NO_STATS`: not zero, and not an error.
    """
    draws, diverging, energy, labels = diagnose_inputs(sampled)
    if diverging is not None:
        figures = diagnose_draws(draws, diverging, energy, labels)
        return _key_figures(figures), gate(figures, thresholds)[1] or "passes"
    chains_draws = next(iter(draws.values())).shape[:2]
    # a placeholder record, so diagnose_draws computes R-hat and ESS; its divergence count is discarded
    figures = _key_figures(diagnose_draws(draws, np.zeros(chains_draws, dtype=bool), None, labels))
    figures.update(divergences=UNKNOWN_NO_STATS, e_bfmi_min=UNKNOWN_NO_STATS)
    return figures, UNKNOWN_NO_STATS


# --- one case ------------------------------------------------------------------------------------


@dataclass
class CaseReport:
    case: str
    components: list[Component]
    config_hash: str
    provenance: dict[str, Any]
    plots: list[str]
    tables: dict[str, pd.DataFrame]
    skipped: dict[str, str] = field(default_factory=dict)  # comparison → why the case cannot make it

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.components)


def check_case(
    case: Case,
    *,
    suite: str,
    artifact_dir: Path,
    progress: Callable[[str], None] = print,
    thresholds: Thresholds = THRESHOLDS_CONVERGENCE,
    stat_k: float = STAT_K,
) -> CaseReport:
    """Every parity comparison `case` holds the files for; the others are listed as skipped, with why.

    Artifacts (FUSION's prepared arrays and weights, tables, plots) go to `artifact_dir`.
    """
    from fusion.config import config_hash

    artifact_dir.mkdir(parents=True, exist_ok=True)
    data = CaseData(case)
    components: list[Component] = []
    plots: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    skipped = {k: v for k, v in comparisons(case).items() if v is not None}
    progress(f"parity[{case.name}]: prepare (compat: prototype)")
    obtained = data.prepared
    obtained.to_npz(artifact_dir / "prepared.npz")
    posterior = data.posterior
    reference = data.reference_prepared
    if reference is not None:
        components.append(compare_prepared(obtained, reference))
    if posterior is not None:
        fusion_weights = plug_in(obtained, posterior)
        write_csv(artifact_dir / "weights.csv", fusion_weights)
        ref_weights = data.reference_weights
        if ref_weights is not None:
            label = _short(case.file(WEIGHTS), case)  # type: ignore[arg-type]
            if reference is not None:
                components.append(
                    compare_weights(plug_in(reference, posterior), ref_weights, "plugin_weights", label)
                )
            components.append(compare_weights(fusion_weights, ref_weights, "pipeline_weights", label))
    sampled_table = case.file("sampled", WEIGHTS)  # bundled extra: the prototype's weights at its own draws
    if sampled_table is not None and reference is not None and data.sampled_posterior is not None:
        components.append(
            compare_weights(
                plug_in(reference, data.sampled_posterior["posterior"].to_dataset()),
                read_reference_weights(sampled_table, reference.member_ids),
                "sampled_weights",
                _short(sampled_table, case),
            )
        )

    if case.tables_dir.is_dir():
        progress(f"parity[{case.name}]: golden tables")
        tables_component, tables = compare_golden_tables(data)
        components.append(tables_component)
        for name, table in tables.items():
            write_csv(artifact_dir / f"table_{name}.csv", table)
    if posterior is not None and "impact" not in tables:
        try:
            tables["impact"] = table_impact(data)
        except InputError as exc:  # compat: fixed may refuse what the prototype silently accepted
            skipped["impact"] = f"compat: fixed cannot prepare this case: {exc}"
    if "impact" in tables:
        plot_impact(tables["impact"], tables.get("sle_impact"), artifact_dir / "impact.png")
        plots.append("impact.png")

    provenance: dict[str, Any] = {
        "case": str(case.root),
        "config": str(case.config),
        "reference": str(case.reference),
        "compat": "prototype",
        "inputs_sha256": case.inputs_sha256(),
        "reference_sha256": sha256_tree(case.reference) if case.reference.is_dir() else {},
        "warnings": data.warnings,
        "seeds": {"subsample": data.config("prototype").inference.subsample.seed},
        "skipped": skipped,
    }

    if data.sampled_posterior is not None:
        progress(f"parity[{case.name}]: sampling at the prototype's settings for statistical parity")
        settings = prototype_settings(case, data.sampled_posterior)
        cfg = data.config("prototype").with_updates(inference=settings)
        start = time.perf_counter()
        trace = sample_case(cfg, obtained)
        sample_s = time.perf_counter() - start
        summary_path = case.file("posterior_summary.csv")
        summary = read_table(summary_path) if summary_path is not None else None
        ids = reference.member_ids if reference is not None else obtained.member_ids
        component, table = statistical_parity(trace, data.sampled_posterior, summary, ids, stat_k)
        ours = diagnose(trace)
        theirs, gate_theirs = prototype_convergence(data.sampled_posterior, thresholds)
        component.figures.update(
            settings=settings,
            prototype_mcse="posterior_summary.csv" if summary is not None else "arviz_stats on sampled_posterior.nc",
            sampling_s=sample_s,
            per_quantity={
                r["quantity"]: f"Δ {r['delta']:+.3g} vs bound {r['tolerance']:.3g}"
                for r in table.to_dict("records")
            },
            convergence_note=(
                "reported, not gated: the prototype's settings are too short for the gate's ESS floor; "
                "the convergence check gates FUSION at its own settings"
            ),
            convergence={k: {"fusion": v, "prototype": theirs[k]} for k, v in _key_figures(ours).items()},
            gate_fusion=gate(ours, thresholds)[1] or "passes",
            gate_prototype=gate_theirs,
        )
        components.append(component)
        write_csv(artifact_dir / "statistical_parity.csv", table)
        plot_statistical_parity(table, artifact_dir / "statistical_parity.png", stat_k)
        plots.append("statistical_parity.png")
        provenance.update(sampler=cfg.inference.sampler, sampling=settings, convergence=_key_figures(ours))
    if suite == "full" and case.has_projection and posterior is not None:
        progress(
            f"parity[{case.name}]: sampling both compats for the science impact on posterior-mean weights"
        )
        component, sampled_tables = sampled_impact(data, thresholds)
        components.append(component)
        for name, table in sampled_tables.items():
            write_csv(artifact_dir / f"table_{name}.csv", table)
            tables[name] = table
        plot_impact(
            sampled_tables["impact_sampled"],
            sampled_tables.get("sle_impact_sampled"),
            artifact_dir / "impact_sampled.png",
        )
        plots.append("impact_sampled.png")
    return CaseReport(
        case.name, components, config_hash(data.config("prototype")), provenance, plots, tables, skipped
    )


def sampled_impact(
    data: CaseData, thresholds: Thresholds = THRESHOLDS_CONVERGENCE
) -> tuple[Component, dict[str, pd.DataFrame]]:
    """Full suite: the impact on what `fusion run` reports (posterior-mean `w`), each trace gated
    (a borderline trace is sampled longer before it may fail, as in the convergence check)."""
    from harness.convergence import SETTINGS, decide
    from harness.impact import sle_impact, weights_impact

    means: dict[str, pd.DataFrame] = {}
    messages: list[str] = []
    figures: dict[str, Any] = {"settings": SETTINGS}
    for compat, prepared in (("prototype", data.prepared), ("fixed", data.prepared_fixed)):
        cfg = data.config(compat).with_updates(inference=SETTINGS)
        decision = decide(
            lambda draws, cfg=cfg, prepared=prepared: sample_case(
                cfg.with_updates(inference={"draws": draws}), prepared
            ),
            cfg.inference.draws,
            thresholds,
        )
        trace, ok, lines = decision.trace, decision.passed, decision.messages
        figures[f"gate_{compat}"] = "passes" if ok else lines
        figures[f"attempts_{compat}"] = decision.attempts
        if decision.note():
            figures[f"note_{compat}"] = decision.note()
        messages += [f"compat {compat} trace: {line}" for line in lines]
        w = trace["posterior"]["w"].mean(("chain", "draw"))
        means[compat] = pd.DataFrame(
            {"member_id": [str(m) for m in w["member"].values], "weight": np.asarray(w.values, np.float64)}
        )
    tables = {"impact_sampled": weights_impact(means["prototype"], means["fixed"])}
    if data.case.has_projection:
        tables["sle_impact_sampled"] = sle_impact(data.config("fixed"), means["prototype"], means["fixed"])
        figures["sle"] = tables["sle_impact_sampled"].set_index("quantity")["delta"].to_dict()
    figures["max_abs_weight_change"] = float(tables["impact_sampled"]["delta"].abs().max())
    return Component("impact_convergence", not messages, messages, figures), tables


# --- the check ----------------------------------------------------------------------------------


def thresholds_text(stat_k: float = STAT_K) -> dict[str, str]:
    """What each component compares, for the report (the numbers that gate are in `parity_gates`)."""
    return {
        "prepared": "bit-exact: dtype, shape and every bit of y_obs, sigma_obs, F, speed; n_dhdt, n_vel, member order",
        "plugin_weights": "bit-exact weights and log-likelihoods by member id (the reference's prepared arrays in)",
        "pipeline_weights": "bit-exact weights and log-likelihoods from FUSION's own prepare (as compare_parity.py)",
        "sampled_weights": "bit-exact plug-in weights at the prototype's sampled posterior",
        "golden_tables": "<reference>/tables/*.csv: bit-exact, or the per-column tolerance in harness/parity.py TABLES",
        "statistical": f"|Δmean| ≤ {stat_k:g}·√(mcse_fusion² + mcse_prototype²) per noise parameter and per member w",
        "impact_convergence": "full suite: both traces behind the posterior-mean impact table pass the convergence gate",
    }


THRESHOLDS: dict[str, str] = thresholds_text()


def parity_gates(figures: dict[str, Any], stat_k: float = STAT_K) -> list[dict[str, Any]]:
    """Bit-exact components as one gate (components that differ, bound 0); each statistical |Δ|/bound ratio (≤ 1)."""
    exact = {k: c for k, c in figures.items() if isinstance(c, dict) and "passed" in c and "max_ratio" not in c}
    red = [k for k, c in exact.items() if not c["passed"]]
    found = [gate_record(f"bit-exact components differing (of {len(exact)})", "≤", 0, len(red), "components")] if exact else []
    for key, comp in figures.items():
        if isinstance(comp, dict) and "max_ratio" in comp:
            found.append(
                gate_record(
                    f"{key}: max |Δ| / ({stat_k:g}·√(mcse² + mcse²))", "≤", 1.0, comp["max_ratio"],
                    passed=comp.get("passed"),
                )
            )
    return gates_of(*found)


def cases(suite: str, catalog: CaseCatalog) -> list[str]:
    """The cases the runner plans for this check (harness.registry decides)."""
    from harness.registry import spec

    return spec("parity").cases(suite, catalog)


def run_check(ctx: CheckContext) -> CheckResult:
    """Parity of one case (or of every case, for `case="all"`), as a `report.json` record."""
    catalog = catalog_of(ctx)
    names = catalog.names("parity") if ctx.case == "all" else [ctx.case]
    status = "pass"
    figures: dict[str, Any] = {}
    messages: list[str] = []
    plots: list[str] = []
    provenance: dict[str, Any] = {}
    hashes: list[str] = []
    for name in names:
        sub = ctx.artifact_dir if len(names) == 1 else ctx.artifact_dir / name
        case = catalog.get(name, sub)
        report = check_case(
            case,
            suite=ctx.suite,
            artifact_dir=sub,
            progress=ctx.progress,
            thresholds=ctx.gates.convergence,
            stat_k=ctx.gates.parity.stat_k,
        )
        prefix = "" if len(names) == 1 else f"{name}."
        for comp in report.components:
            figures[f"{prefix}{comp.name}"] = {"passed": comp.passed, **comp.figures}
            messages += [f"{prefix}{comp.name}: {m}" for m in comp.messages]
        if report.skipped:
            figures[f"{prefix}skipped"] = dict(report.skipped)
            messages += [f"{prefix}skipped {k}: {why}" for k, why in report.skipped.items()]
        if not report.passed:
            status = "fail"
        plots += [
            str(Path(sub.relative_to(ctx.artifact_dir)) / p) if sub != ctx.artifact_dir else p
            for p in report.plots
        ]
        provenance[name] = report.provenance
        hashes.append(report.config_hash)
        impact = report.tables.get("impact")
        if impact is None:
            continue
        figures[f"{prefix}impact"] = {
            "max_abs_weight_change": float(impact["delta"].abs().max()),
            "member_max_change": str(impact.loc[impact["delta"].abs().idxmax(), "member_id"]),
            **(
                {"sle": report.tables["sle_impact"].set_index("quantity")["delta"].to_dict()}
                if "sle_impact" in report.tables
                else {"sle": "no projection inputs in this case"}
            ),
        }
    result = CheckResult(
        name="parity",
        case=ctx.case if len(names) != 1 else names[0],
        status=status,  # type: ignore[arg-type]
        figures=figures,
        thresholds={
            k: v
            for k, v in thresholds_text(ctx.gates.parity.stat_k).items()
            if any(f == k or f.endswith(f".{k}") for f in figures)
        },
        gates=parity_gates(figures, ctx.gates.parity.stat_k),
        messages=messages,
        plots=plots,
        config_hash=hashlib.sha256(("".join(hashes) + ctx.suite).encode()).hexdigest(),
        provenance=provenance if len(names) != 1 else provenance[names[0]],
    )
    return result
