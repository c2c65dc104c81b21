"""Parity's golden tables: FUSION's version of each reviewed table a case keeps under `tables/`, and the comparison.

A table is bit-exact unless its spec names a per-column tolerance (`TABLES`); which tables a
case has is decided from its files alone, so pytest can parametrize over them at collection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.cases import Case
from harness.cases.data import CaseData
from harness.cases.reference import ARRAYS, POSTERIOR, SAMPLED
from harness.cases.digest import array_sha256
from harness.cases.tables import Tolerance, compare_tables, read_table
from harness.checks.parity.bits import Component, plug_in, short_path

__all__ = ["TABLES", "TableSpec", "applicable_tables", "compare_golden_tables"]


@dataclass(frozen=True)
class TableSpec:
    """One golden table: how FUSION's version is built, its row key, per-column tolerances, which cases have it."""

    name: str
    build: Callable[[CaseData], pd.DataFrame]
    key: str | None
    tolerances: dict[str, Tolerance]
    applies: Callable[[Case], bool]  # decided from the case's files alone (also at test collection)
    about: str


def table_prepared(data: CaseData) -> pd.DataFrame:
    """Dtype, shape and SHA-256 of every prepared array under `compat: prototype` (bit-exact by digest)."""
    p = data.prepared
    rows: list[tuple[str, str]] = []
    for array in ARRAYS:
        values = np.asarray(getattr(p, array))
        rows += [
            (f"{array}.dtype", str(values.dtype)),
            (f"{array}.shape", "x".join(map(str, values.shape))),
            (f"{array}.sha256", array_sha256(values, layout=False)),
        ]
    rows += [("n_dhdt", str(p.n_dhdt)), ("n_vel", str(p.n_vel)), ("member_ids", " ".join(p.member_ids))]
    return pd.DataFrame(rows, columns=["item", "value"])


def table_weights(data: CaseData) -> pd.DataFrame:
    return plug_in(data.prepared, data.posterior)


def table_weights_sampled(data: CaseData) -> pd.DataFrame:
    assert data.sampled_posterior is not None
    return plug_in(data.prepared, data.sampled_posterior["posterior"].to_dataset())


def table_impact(data: CaseData) -> pd.DataFrame:
    from harness.checks.parity.impact import weights_impact

    return weights_impact(
        plug_in(data.prepared, data.posterior), plug_in(data.prepared_fixed, data.posterior)
    )


def table_sle_impact(data: CaseData) -> pd.DataFrame:
    from harness.checks.parity.impact import sle_impact

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
            table, golden, key=spec.key, tolerances=spec.tolerances, name=short_path(path, data.case)
        )
        figures[spec.name] = (
            "equal" if diff.equal else f"{len(diff.cells)} cells, {len(diff.structure)} structural"
        )
        messages += diff.messages()
    return Component("golden_tables", not messages, messages, figures), built
