"""Parity's bit-exact part: FUSION's plug-in weights as a table, and the comparisons that allow no difference.

Each comparison returns a `Component` (passed, the lines saying why, the figures measured):
the prepared arrays against the reference's (dtype, shape, every bit; the stream counts and the
member order) and a weights table against a reference table (by member id, in any row order).
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.asserts import bitwise_difference, order_difference, weights_problems
from harness.cases import Case
from harness.cases.reference import ARRAYS
from harness.cases.tables import compare_tables

__all__ = ["Component", "compare_prepared", "compare_weights", "plug_in", "short_path", "weights_frame"]


@dataclass
class Component:
    """One judged part of parity: passed or not, the lines that say why, the figures measured."""

    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


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


def short_path(path: Path, case: Case) -> str:
    """`golden/<case>/…` or `<case folder>/…` rather than an absolute path: readable, comparable across machines."""
    parts = Path(path).parts
    if "golden" in parts:
        return str(Path(*parts[parts.index("golden") :]))
    for base in (case.root.parent, case.reference.parent):
        if Path(path).is_relative_to(base):
            return str(Path(path).relative_to(base))
    return str(path)
