"""Science impact of the prototype's defects: the same case under `compat: prototype` and `compat: fixed`.

Parity proves FUSION can reproduce the prototype; this table says what reproducing it
costs the science — how far each member's weight and the weighted SLE-2100 median and
interval move once the defects of DESIGN.md are fixed. Both sides use the same noise
parameters (the case's reference posterior), so the movement is due to the data fixes
alone. It is reported (and kept as a golden table), not gated.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusion.diagnostics import THRESHOLDS as THRESHOLDS_CONVERGENCE
from fusion.diagnostics import Thresholds
from harness.cases.data import CaseData, sample_case
from harness.checks.parity.bits import Component


__all__ = ["sampled_impact", "sle_impact", "weights_impact"]


def weights_impact(prototype: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """Per member (aligned by label, prototype order): both weights and fixed − prototype."""
    fixed_by_id = fixed.set_index("member_id")["weight"]
    missing = sorted(set(prototype["member_id"]) ^ set(fixed_by_id.index))
    if missing:
        raise ValueError(f"members present under only one compat: {missing}")
    w_fixed = fixed_by_id.loc[list(prototype["member_id"])].to_numpy(np.float64)
    w_proto = prototype["weight"].to_numpy(np.float64)
    return pd.DataFrame(
        {
            "member_id": list(prototype["member_id"]),
            "weight_prototype": w_proto,
            "weight_fixed": w_fixed,
            "delta": w_fixed - w_proto,
        }
    )


def sle_impact(cfg: Any, prototype: pd.DataFrame, fixed: pd.DataFrame) -> pd.DataFrame:
    """Weighted SLE-2100 median, mean and [lower_q, upper_q] under each weighting, and their change (mm)."""
    from fusion.projection import member_sle, weighted_quantile

    ids = list(prototype["member_id"])
    sle = member_sle(cfg, ids).values
    lq, uq = float(cfg.projection.lower_q), float(cfg.projection.upper_q)
    by_id = fixed.set_index("member_id")["weight"]
    cols: dict[str, list[float]] = {}
    for label, w in (
        ("prototype", prototype["weight"].to_numpy(np.float64)),
        ("fixed", by_id.loc[ids].to_numpy(np.float64)),
    ):
        lo, med, hi = weighted_quantile(sle, w, [lq, 0.5, uq])
        cols[label] = [float(med), float(np.sum(w * sle) / np.sum(w)), float(lo), float(hi)]
    quantities = ["median_mm", "mean_mm", f"lower_q{lq:g}_mm", f"upper_q{uq:g}_mm"]
    table = pd.DataFrame({"quantity": quantities, **cols})
    table["delta"] = table["fixed"] - table["prototype"]
    return table


def sampled_impact(
    data: CaseData, thresholds: Thresholds = THRESHOLDS_CONVERGENCE
) -> tuple[Component, dict[str, pd.DataFrame]]:
    """Full suite: the impact on what `fusion run` reports (posterior-mean `w`), each trace gated
    (a borderline trace is sampled longer before it may fail, as in the convergence check)."""
    from harness.checks.convergence import SETTINGS, decide

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
