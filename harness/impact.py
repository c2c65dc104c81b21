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


__all__ = ["sle_impact", "weights_impact"]


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
