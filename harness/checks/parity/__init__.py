"""Check `parity`: FUSION must say what the research prototype said, on each case.

A case (`harness/cases/`) holds what the prototype produced; parity compares what is there.
Bit-exact (`bits`): the prepared arrays (values and dtypes, with `prepared.npz`), the plug-in
`(weights, loglik)` by member id — once from the reference's prepared arrays (isolating
`plug_in_weights`) and once end to end from FUSION's own `prepare` (what `compare_parity.py`
judges) — and the case's reviewed golden tables (`golden_tables`). Statistical, where the
prototype sampled (`statistical`): posterior means of the four noise parameters and of `w`,
|Δ| ≤ 4·√(mcse_fusion² + mcse_prototype²). The science impact of the prototype's defects
(`impact`) is reported beside them. Each part is a `Component`; a red one names what differs,
and a comparison the case cannot make is listed as skipped, with the reason, rather than passed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fusion.diagnostics import THRESHOLDS as THRESHOLDS_CONVERGENCE
from fusion.diagnostics import Thresholds
from fusion.errors import InputError
from fusion.io import sha256_tree, write_csv
from harness.cases import Case, catalog_of, comparisons
from harness.cases.data import CaseData, sample_case
from harness.cases.reference import WEIGHTS, read_reference_weights
from harness.cases.tables import read_table
from harness.checks import CheckContext, CheckResult, gate_record, gates_of
from harness.checks.convergence import diagnose, gate
from harness.checks.parity.bits import Component, compare_prepared, compare_weights, plug_in, short_path
from harness.checks.parity.golden_tables import compare_golden_tables, table_impact
from harness.checks.parity.impact import sampled_impact
from harness.checks.parity.statistical import (
    STAT_K,
    key_figures,
    prototype_convergence,
    prototype_settings,
    statistical_parity,
)
from harness.report.plots import plot_impact, plot_statistical_parity

__all__ = ["STAT_K", "THRESHOLDS", "CaseReport", "check_case", "parity_gates", "run_check"]


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


def _bit_components(data: CaseData, artifact_dir: Path) -> list[Component]:
    """The prepared arrays and the weights tables, bit for bit; FUSION's own written beside them for review."""
    case = data.case
    components: list[Component] = []
    obtained = data.prepared
    obtained.to_npz(artifact_dir / "prepared.npz")
    posterior, reference = data.posterior, data.reference_prepared
    if reference is not None:
        components.append(compare_prepared(obtained, reference))
    if posterior is not None:
        fusion_weights = plug_in(obtained, posterior)
        write_csv(artifact_dir / "weights.csv", fusion_weights)
        ref_weights = data.reference_weights
        if ref_weights is not None:
            label = short_path(case.file(WEIGHTS), case)  # type: ignore[arg-type]
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
                short_path(sampled_table, case),
            )
        )
    return components


def _table_component(
    data: CaseData, artifact_dir: Path, skipped: dict[str, str], plots: list[str]
) -> tuple[list[Component], dict[str, pd.DataFrame]]:
    """The golden tables, and the plug-in impact table (kept as a golden table where the case has one)."""
    components: list[Component] = []
    tables: dict[str, pd.DataFrame] = {}
    if data.case.tables_dir.is_dir():
        tables_component, tables = compare_golden_tables(data)
        components.append(tables_component)
        for name, table in tables.items():
            write_csv(artifact_dir / f"table_{name}.csv", table)
    if data.posterior is not None and "impact" not in tables:
        try:
            tables["impact"] = table_impact(data)
        except InputError as exc:  # compat: fixed may refuse what the prototype silently accepted
            skipped["impact"] = f"compat: fixed cannot prepare this case: {exc}"
    if "impact" in tables:
        plot_impact(tables["impact"], tables.get("sle_impact"), artifact_dir / "impact.png")
        plots.append("impact.png")
    return components, tables


def _provenance(data: CaseData, skipped: dict[str, str]) -> dict[str, Any]:
    case = data.case
    return {
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


def _statistical_component(
    data: CaseData, artifact_dir: Path, thresholds: Thresholds, stat_k: float, provenance: dict[str, Any]
) -> Component:
    """FUSION sampled at the prototype's settings against the prototype's sampled posterior."""
    case, obtained, reference = data.case, data.prepared, data.reference_prepared
    assert data.sampled_posterior is not None
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
            r["quantity"]: f"Δ {r['delta']:+.3g} vs bound {r['tolerance']:.3g}" for r in table.to_dict("records")
        },
        convergence_note=(
            "reported, not gated: the prototype's settings are too short for the gate's ESS floor; "
            "the convergence check gates FUSION at its own settings"
        ),
        convergence={k: {"fusion": v, "prototype": theirs[k]} for k, v in key_figures(ours).items()},
        gate_fusion=gate(ours, thresholds)[1] or "passes",
        gate_prototype=gate_theirs,
    )
    write_csv(artifact_dir / "statistical_parity.csv", table)
    plot_statistical_parity(table, artifact_dir / "statistical_parity.png", stat_k)
    provenance.update(sampler=cfg.inference.sampler, sampling=settings, convergence=key_figures(ours))
    return component


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
    plots: list[str] = []
    skipped = {k: v for k, v in comparisons(case).items() if v is not None}
    progress(f"parity[{case.name}]: prepare (compat: prototype)")
    components = _bit_components(data, artifact_dir)
    if case.tables_dir.is_dir():
        progress(f"parity[{case.name}]: golden tables")
    table_components, tables = _table_component(data, artifact_dir, skipped, plots)
    components += table_components
    provenance = _provenance(data, skipped)
    if data.sampled_posterior is not None:
        progress(f"parity[{case.name}]: sampling at the prototype's settings for statistical parity")
        components.append(_statistical_component(data, artifact_dir, thresholds, stat_k, provenance))
        plots.append("statistical_parity.png")
    if suite == "full" and case.has_projection and data.posterior is not None:
        progress(f"parity[{case.name}]: sampling both compats for the science impact on posterior-mean weights")
        component, sampled_tables = sampled_impact(data, thresholds)
        components.append(component)
        for name, table in sampled_tables.items():
            write_csv(artifact_dir / f"table_{name}.csv", table)
            tables[name] = table
        plot_impact(
            sampled_tables["impact_sampled"], sampled_tables.get("sle_impact_sampled"), artifact_dir / "impact_sampled.png"
        )
        plots.append("impact_sampled.png")
    return CaseReport(case.name, components, config_hash(data.config("prototype")), provenance, plots, tables, skipped)


# --- the check ----------------------------------------------------------------------------------


def thresholds_text(stat_k: float = STAT_K) -> dict[str, str]:
    """What each component compares, for the report (the numbers that gate are in `parity_gates`)."""
    return {
        "prepared": "bit-exact: dtype, shape and every bit of y_obs, sigma_obs, F, speed; n_dhdt, n_vel, member order",
        "plugin_weights": "bit-exact weights and log-likelihoods by member id (the reference's prepared arrays in)",
        "pipeline_weights": "bit-exact weights and log-likelihoods from FUSION's own prepare (as compare_parity.py)",
        "sampled_weights": "bit-exact plug-in weights at the prototype's sampled posterior",
        "golden_tables": "<reference>/tables/*.csv: bit-exact, or the per-column tolerance in harness/checks/parity/golden_tables.py TABLES",
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


def _figures(report: CaseReport) -> tuple[dict[str, Any], list[str]]:
    """The case's components, skipped comparisons and plug-in impact as report figures and messages."""
    figures: dict[str, Any] = {}
    messages: list[str] = []
    for comp in report.components:
        figures[comp.name] = {"passed": comp.passed, **comp.figures}
        messages += [f"{comp.name}: {m}" for m in comp.messages]
    if report.skipped:
        figures["skipped"] = dict(report.skipped)
        messages += [f"skipped {k}: {why}" for k, why in report.skipped.items()]
    impact = report.tables.get("impact")
    if impact is not None:
        figures["impact"] = {
            "max_abs_weight_change": float(impact["delta"].abs().max()),
            "member_max_change": str(impact.loc[impact["delta"].abs().idxmax(), "member_id"]),
            **(
                {"sle": report.tables["sle_impact"].set_index("quantity")["delta"].to_dict()}
                if "sle_impact" in report.tables
                else {"sle": "no projection inputs in this case"}
            ),
        }
    return figures, messages


def run_check(ctx: CheckContext) -> CheckResult:
    """Parity of the context's case, as a `report.json` record."""
    case = catalog_of(ctx).get(ctx.case, ctx.artifact_dir)
    report = check_case(
        case,
        suite=ctx.suite,
        artifact_dir=ctx.artifact_dir,
        progress=ctx.progress,
        thresholds=ctx.gates.convergence,
        stat_k=ctx.gates.parity.stat_k,
    )
    figures, messages = _figures(report)
    stat_k = ctx.gates.parity.stat_k
    return CheckResult(
        name="parity",
        case=ctx.case,
        status="pass" if report.passed else "fail",
        figures=figures,
        thresholds={k: v for k, v in thresholds_text(stat_k).items() if k in figures},
        gates=parity_gates(figures, stat_k),
        messages=messages,
        plots=report.plots,
        config_hash=hashlib.sha256((report.config_hash + ctx.suite).encode()).hexdigest(),
        provenance=report.provenance,
    )
