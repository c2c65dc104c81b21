"""Unit tests of the science-impact tables (`harness.checks.parity.impact`): member weights under
both compats aligned by label, and the weighted SLE-2100 summary read from hand-written volume files.

The SLE of each member is chosen (mm) and written as volume loss through (ρ_ice/ρ_water)/A_ocean;
the weighted quantiles are read off the cumulative weights by hand in each test's docstring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.config import Config
from harness.checks.parity.impact import sle_impact, weights_impact
from tests.helpers import write_nc

MM_PER_M3 = 917.0 / 1028.0 / 3.62e14 * 1000.0  # mm of sea level per m³ of ice lost


def _weights(pairs: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame({"member_id": [m for m, _ in pairs], "weight": [w for _, w in pairs]})


# --- weights_impact ----------------------------------------------------------------------------


def test_weights_align_by_label_in_prototype_order() -> None:
    prototype = _weights([("run2", 0.5), ("run10", 0.25), ("run1", 0.125)])
    fixed = _weights([("run1", 0.25), ("run2", 0.5), ("run10", 0.125)])  # another row order
    table = weights_impact(prototype, fixed)
    assert list(table.columns) == ["member_id", "weight_prototype", "weight_fixed", "delta"]
    assert table["member_id"].tolist() == ["run2", "run10", "run1"]
    assert table["weight_prototype"].tolist() == [0.5, 0.25, 0.125]
    assert table["weight_fixed"].tolist() == [0.5, 0.125, 0.25]
    assert table["delta"].tolist() == [0.0, -0.125, 0.125]
    assert table["delta"].dtype == np.float64


def test_equal_weightings_have_no_impact() -> None:
    w = _weights([("run1", 0.2), ("run2", 0.8)])
    assert weights_impact(w, w.iloc[::-1].reset_index(drop=True))["delta"].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("prototype_ids", "fixed_ids", "named"),
    [
        (["run1", "run2", "run3"], ["run1", "run2"], "['run3']"),  # missing under fixed
        (["run1", "run2"], ["run2", "run1", "run7"], "['run7']"),  # missing under prototype
        (["run1", "run3"], ["run1", "run4"], "['run3', 'run4']"),  # one on each side
    ],
)
def test_a_member_under_only_one_compat_is_an_error_naming_it(
    prototype_ids: list[str], fixed_ids: list[str], named: str
) -> None:
    prototype = _weights([(m, 1.0 / len(prototype_ids)) for m in prototype_ids])
    fixed = _weights([(m, 1.0 / len(fixed_ids)) for m in fixed_ids])
    with pytest.raises(ValueError, match="members present under only one compat") as err:
        weights_impact(prototype, fixed)
    assert str(err.value).endswith(named)


# --- sle_impact --------------------------------------------------------------------------------

SLE = {"run1": 10.0, "run2": 40.0, "run3": 20.0, "run10": 80.0}  # mm in 2100


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """Volume files giving each member its `SLE`: flat history at V0, then the loss by 2100."""
    v0 = 2.6e16
    for member, sle in SLE.items():
        name = f"run{int(member[3:]):02d}.nc"
        for folder, times, volumes in (
            ("hist", [2000.0, 2015.0], [v0, v0]),
            ("fwd", [2015.0, 2060.0, 2100.0], [v0, v0 - 0.5 * sle / MM_PER_M3, v0 - sle / MM_PER_M3]),
        ):
            write_nc(tmp_path / folder / name, {
                "time": (("time",), np.array(times), {}),
                "totig": (("time",), np.array(volumes), {"units": "m3"}),
            })  # fmt: skip
    return Config.model_validate({
        "observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}},
        "ensemble": {"dir": "."},
        "projection": {"historical_dir": str(tmp_path / "hist"), "forward_dir": str(tmp_path / "fwd"),
                       "lower_q": 0.1, "upper_q": 0.9},
    })  # fmt: skip


def test_sle_summary_under_both_weightings(cfg: Config) -> None:
    """Sorted by SLE: run1 10, run3 20, run2 40, run10 80 mm.

    prototype w (.3, .4, .1, .2): cumulative .3 .7 .8 1 → q0.1 10, median 20, q0.9 80; mean 31.
    fixed w (.05, .05, .5, .4): cumulative .05 .1 .6 1 → q0.1 20 (lands on the step), median 40,
    q0.9 80; mean 53.5.
    """
    prototype = _weights([("run2", 0.1), ("run10", 0.2), ("run1", 0.3), ("run3", 0.4)])
    fixed = _weights([("run1", 0.05), ("run3", 0.05), ("run2", 0.5), ("run10", 0.4)])
    table = sle_impact(cfg, prototype, fixed)
    assert list(table.columns) == ["quantity", "prototype", "fixed", "delta"]
    assert table["quantity"].tolist() == ["median_mm", "mean_mm", "lower_q0.1_mm", "upper_q0.9_mm"]
    np.testing.assert_allclose(table["prototype"], [20.0, 31.0, 10.0, 80.0], rtol=1e-12)
    np.testing.assert_allclose(table["fixed"], [40.0, 53.5, 20.0, 80.0], rtol=1e-12)
    np.testing.assert_allclose(table["delta"], [20.0, 22.5, 10.0, 0.0], rtol=1e-12, atol=1e-12)


def test_sle_mean_normalises_weights_that_do_not_sum_to_one(cfg: Config) -> None:
    """Weights 2:2:0:0 on run1, run2 (unnormalised) give the mean (10 + 40)/2 = 25 and median 10."""
    prototype = _weights([("run1", 2.0), ("run2", 2.0), ("run3", 0.0), ("run10", 0.0)])
    table = sle_impact(cfg, prototype, prototype).set_index("quantity")
    assert table.loc["mean_mm", "prototype"] == pytest.approx(25.0, rel=1e-12)
    assert table.loc["median_mm", "prototype"] == pytest.approx(10.0, rel=1e-12)
    assert table["delta"].tolist() == [0.0, 0.0, 0.0, 0.0]
