"""Unit tests of the harness figures (`harness.report.plots`): every `plot_*` writes a PNG that opens,
of the size its figure states, from small hand-made inputs (one member, NaN figures, no projection).

Besides "it opens", each test reads the pixels for what the figure must show: a failed quantity in
red and a passed one in green, one colour per drawn series; sizes are figsize × dpi (no tight bbox).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from scipy import stats

from fusion.diagnostics import Thresholds
from harness.report.plots import (
    plot_agreement,
    plot_convergence,
    plot_coverage,
    plot_impact,
    plot_sbc,
    plot_stability,
    plot_statistical_parity,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Matplotlib's tab10 colours, as bar and marker interiors are drawn (no antialiasing inside)
BLUE, ORANGE, GREEN, RED = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)


def _image(path: Path) -> np.ndarray:
    """The PNG's pixels (rows, cols, RGB), after checking the file really is a PNG."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def _pixels(img: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(img == np.array(colour, dtype=np.uint8), axis=-1).sum())


def _only(folder: Path, *names: str) -> None:
    """The folder holds exactly these files: nothing half-written is left beside them."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


def _nominal(k: float | np.ndarray) -> np.ndarray:
    return 2.0 * stats.norm.cdf(np.asarray(k, dtype=float)) - 1.0


# --- plot_agreement ----------------------------------------------------------------------------


def _agreement(members: list[str], *, projection: bool, nan: bool = False) -> dict[str, Any]:
    value = math.nan if nan else 0.3
    f: dict[str, Any] = {
        "members": members,
        "weights": {
            m: {"nuts_mean": 0.2 + 0.1 * i, "nuts_sd": 0.05,
                "laplace_mean": 0.25 + 0.1 * i, "laplace_sd": 0.04}
            for i, m in enumerate(members)
        },
        "sd_ratio_min": None if nan else 0.8,
        "sd_ratio_max": None if nan else 1.25,
        "max_weight_shift_sd": value,
        "noise_parameters": {
            p: {"nuts_mean": 0.5, "nuts_sd": 0.1, "laplace_mean": 0.55, "laplace_sd": 0.12}
            for p in ("sigma_base_thick", "sigma_base_vel")
        },
        "pareto_k": value,
    }
    if projection:
        rng = np.random.default_rng(3)
        f["_wm"] = (rng.normal(30.0, 2.0, 200), rng.normal(31.0, 2.5, 200))
        f["projection"] = {"weighted_mean_shift_sd": value}
    return f


def test_agreement_figure_draws_both_methods(tmp_path: Path) -> None:
    path = plot_agreement(_agreement(["run1", "run2", "run10"], projection=True), tmp_path / "agreement.png")
    assert path == tmp_path / "agreement.png"
    img = _image(path)
    assert img.shape == (440, 1430, 3)  # 13 × 4 in at 110 dpi
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) > 0  # NUTS and Laplace markers
    _only(tmp_path, "agreement.png")


def test_agreement_figure_of_one_member_without_projection_and_nan_figures(tmp_path: Path) -> None:
    """One member, no projection inputs (a labelled blank panel), pinned weights and NaN figures."""
    path = plot_agreement(_agreement(["run1"], projection=False, nan=True), tmp_path / "a.png")
    img = _image(path)
    assert img.shape == (440, 1430, 3)
    assert _pixels(img, BLUE) > 0
    # the right-hand quarter lies in the blank panel: text only, none of the methods' colours
    right = img[:, 3 * 1430 // 4 :]
    assert _pixels(right, BLUE) == 0 and _pixels(right, ORANGE) == 0
    with_projection = _image(plot_agreement(_agreement(["run1"], projection=True), tmp_path / "b.png"))
    assert _pixels(with_projection[:, 3 * 1430 // 4 :], (255, 255, 255)) < _pixels(right, (255, 255, 255))


# --- plot_convergence --------------------------------------------------------------------------


def _convergence(r_hat: list[float], chains: int = 2) -> dict[str, Any]:
    n = len(r_hat)
    return {
        "per_variable": {
            "w": {"labels": [f"w[run{i + 1}]" for i in range(n)], "r_hat": r_hat,
                  "ess_bulk": [400.0] * n, "ess_tail": [300.0] * n},
        },
        "chains": chains,
        "e_bfmi": [0.9] * chains,
        "divergences": 0,
    }  # fmt: skip


def test_convergence_figure_draws_r_hat_and_e_bfmi(tmp_path: Path) -> None:
    path = plot_convergence(_convergence([1.001, 1.004, 0.999]), tmp_path / "convergence.png", Thresholds())
    img = _image(path)
    assert img.shape == (396, 1210, 3)  # 11 × 3.6 in at 110 dpi
    assert _pixels(img, BLUE) > 0 and _pixels(img, GREEN) > 0  # R-hat bars, E-BFMI bars
    _only(tmp_path, "convergence.png")


def test_convergence_figure_of_one_chain_and_a_nan_r_hat(tmp_path: Path) -> None:
    """A constant quantity (one member: w ≡ 1) has no R-hat; the figure still draws, with one chain."""
    img = _image(plot_convergence(_convergence([math.nan], chains=1), tmp_path / "c.png", Thresholds()))
    assert img.shape == (396, 1210, 3)
    assert _pixels(img, GREEN) > 0  # the E-BFMI bar of the one chain


def test_convergence_figure_of_a_trace_without_variables(tmp_path: Path) -> None:
    """No free quantity to judge (an empty `per_variable`): the figure says so and still draws E-BFMI."""
    figures = {**_convergence([]), "per_variable": {}}
    img = _image(plot_convergence(figures, tmp_path / "c.png", Thresholds()))
    assert img.shape == (396, 1210, 3)
    assert _pixels(img[:, : 1210 // 3], BLUE) == 0 and _pixels(img, GREEN) > 0  # no R-hat bar


# --- plot_coverage -----------------------------------------------------------------------------

KS = (0.5, 1.0, 1.5, 2.0, 2.5)


def _setting(regimes: dict[str, float], worst: int = 3) -> dict[str, Any]:
    """Per regime: a curve `offset` above nominal, and the worst replicate's counts (of 20 held out)."""
    nom = _nominal(np.asarray(KS))
    return {
        "regimes": {
            name: {
                "curve": {str(k): float(min(1.0, v + off)) for k, v in zip(KS, nom)},
                "calibration_error": 2 * abs(off),
                "worst_replicate": worst,
            }
            for name, off in regimes.items()
        },
        "records": [
            {"index": worst,
             "regimes": {name: {"covered": [4, 13, 17, 19, 20], "n_held": 20} for name in regimes}},
        ],
    }


def test_coverage_figure_draws_one_series_per_regime(tmp_path: Path) -> None:
    results = {"generative": _setting({"dense_clean": 0.0, "sparse_clean": 0.02}),
               "physical": _setting({"dense_clean": 0.1, "sparse_clean": 0.15})}  # fmt: skip
    name = plot_coverage(tmp_path, results, KS, _nominal)
    assert name == "coverage_calibration.png"
    img = _image(tmp_path / name)
    assert img.shape == (378, 1170, 3)  # 13 × 4.2 in at 90 dpi
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) > 0
    _only(tmp_path, name)


def test_coverage_figure_of_one_regime_with_a_nan_curve(tmp_path: Path) -> None:
    """One regime: only the first colour is used; a regime with no coverage figures (NaN) still draws."""
    results = {"generative": _setting({"dense_clean": 0.0}), "physical": _setting({"dense_clean": 0.0})}
    results["physical"]["regimes"]["dense_clean"]["curve"] = {str(k): math.nan for k in KS}
    results["physical"]["regimes"]["dense_clean"]["calibration_error"] = math.nan
    img = _image(tmp_path / plot_coverage(tmp_path, results, KS, _nominal))
    assert img.shape == (378, 1170, 3)
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) == 0


# --- plot_impact -------------------------------------------------------------------------------


def _impact(members: list[str]) -> pd.DataFrame:
    n = len(members)
    proto = np.full(n, 1.0 / n)
    fixed = np.linspace(1.0, 2.0, n) / np.linspace(1.0, 2.0, n).sum()
    return pd.DataFrame({"member_id": members, "weight_prototype": proto, "weight_fixed": fixed,
                         "delta": fixed - proto})  # fmt: skip


SLE_TABLE = pd.DataFrame({
    "quantity": ["median_mm", "mean_mm", "lower_q0.05_mm", "upper_q0.95_mm"],
    "prototype": [30.0, 31.0, 10.0, 60.0],
    "fixed": [35.0, 36.0, 12.0, 70.0],
    "delta": [5.0, 5.0, 2.0, 10.0],
})  # fmt: skip


def test_impact_figure_with_the_projection_panel(tmp_path: Path) -> None:
    path = plot_impact(_impact([f"run{i}" for i in range(1, 11)]), SLE_TABLE, tmp_path / "impact.png")
    img = _image(path)
    assert img.shape == (418, 1100, 3)  # 10 × 3.8 in at 110 dpi: weights and projection
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) > 0  # compat prototype, compat fixed
    _only(tmp_path, "impact.png")


def test_impact_figure_of_one_member_without_projection(tmp_path: Path) -> None:
    img = _image(plot_impact(_impact(["run1"]), None, tmp_path / "impact.png"))
    assert img.shape == (418, 660, 3)  # 6 × 3.8 in: the weights panel alone
    assert _pixels(img, BLUE) > 100 and _pixels(img, ORANGE) > 100  # both bars of the one member


# --- plot_statistical_parity -------------------------------------------------------------------


def _parity(passed: list[bool]) -> pd.DataFrame:
    n = len(passed)
    return pd.DataFrame({
        "quantity": [f"q{i}" for i in range(n)],
        "delta": [0.5 if p else 2.0 for p in passed],
        "tolerance": [1.0] * n,
        "passed": passed,
    })  # fmt: skip


def test_parity_figure_colours_each_quantity_by_its_verdict(tmp_path: Path) -> None:
    path = plot_statistical_parity(_parity([True, False, True]), tmp_path / "statistical_parity.png", 4.0)
    img = _image(path)
    assert img.shape == (round((0.35 * 3 + 1.4) * 110), 770, 3)  # 7 × (0.35 n + 1.4) in at 110 dpi
    assert _pixels(img, GREEN) > 0 and _pixels(img, RED) > 0
    _only(tmp_path, "statistical_parity.png")


def test_parity_figure_all_passing_has_no_red(tmp_path: Path) -> None:
    img = _image(plot_statistical_parity(_parity([True, True]), tmp_path / "p.png", 4.0))
    assert _pixels(img, GREEN) > 0 and _pixels(img, RED) == 0


def test_parity_figure_of_no_quantity_and_of_a_nan_ratio(tmp_path: Path) -> None:
    empty = _image(plot_statistical_parity(_parity([]), tmp_path / "empty.png", 4.0))
    assert empty.shape == (round(1.4 * 110), 770, 3)
    assert _pixels(empty, GREEN) == 0 and _pixels(empty, RED) == 0
    nan = _parity([False])
    nan.loc[0, "delta"] = math.nan
    img = _image(plot_statistical_parity(nan, tmp_path / "nan.png", 4.0))
    assert img.shape == (round((0.35 + 1.4) * 110), 770, 3)


# --- plot_sbc ----------------------------------------------------------------------------------


def _band(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 1.0, 21)
    half = 1.5 / math.sqrt(n)
    return x, np.clip(x - half, 0, 1), np.clip(x + half, 0, 1)


def test_sbc_figures_mark_the_rejected_quantity_in_red(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pit = np.column_stack([rng.uniform(size=200), rng.beta(4.0, 4.0, size=200)])  # (n, Q=2)
    quantities = ["beta_vel", "loglik"]
    names = plot_sbc(tmp_path, "generative/dense", pit, [False, True], quantities, 10, _band(200), 0.99)
    assert names == ["rank_hist_generative_dense.png", "ecdf_diff_generative_dense.png"]
    hist = _image(tmp_path / names[0])
    assert hist.shape == (270, 576, 3)  # 3.2 Q × 3 in at 90 dpi
    # the accepted quantity (left panel) in blue, the rejected one (right panel) in red
    blue_cols = np.flatnonzero(np.all(hist == np.array(BLUE, np.uint8), axis=-1).any(axis=0))
    red_cols = np.flatnonzero(np.all(hist == np.array(RED, np.uint8), axis=-1).any(axis=0))
    assert blue_cols.size > 0 and red_cols.size > 0
    assert blue_cols.max() < red_cols.min()
    assert _image(tmp_path / names[1]).shape == (270, 576, 3)
    _only(tmp_path, *names)


def test_sbc_figures_of_a_single_quantity(tmp_path: Path) -> None:
    """Q = 1: `subplots` returns one Axes, not an array."""
    pit = np.random.default_rng(1).uniform(size=(50, 1))
    names = plot_sbc(tmp_path, "tempered", pit, [False], ["loglik"], 5, _band(50), 0.95)
    for name in names:
        assert _image(tmp_path / name).shape == (270, 288, 3)
    assert _pixels(_image(tmp_path / names[0]), RED) == 0


# --- plot_stability ----------------------------------------------------------------------------


def _stability(table: pd.DataFrame) -> dict[str, Any]:
    sd = table.std(axis=0, ddof=1).fillna(0.0) if len(table) > 1 else table.iloc[0] * 0.0
    return {
        "table": table,
        "sd": {m: float(v) for m, v in sd.items()},
        "max_sd": float(sd.max()),
        "max_sd_member": str(sd.idxmax()),
        "modal_top_member": str(table.mean(axis=0).idxmax()),
        "top_agreement": 1.0,
    }


def test_stability_figure_widens_with_the_members(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    members = [f"run{i}" for i in range(1, 11)]
    table = pd.DataFrame(rng.dirichlet(np.ones(10), size=5), index=[42, 43, 44, 45, 46], columns=members)
    name = plot_stability(tmp_path, _stability(table), 0.02)
    assert name == "seed_stability.png"
    img = _image(tmp_path / name)
    assert img.shape == (342, 990, 3)  # max(5, 0.9·10 + 2) = 11 × 3.8 in at 90 dpi
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) > 0  # seeds 42 and 43
    _only(tmp_path, name)


def test_stability_figure_of_one_member_and_one_seed(tmp_path: Path) -> None:
    table = pd.DataFrame({"run1": [1.0]}, index=[42])
    img = _image(tmp_path / plot_stability(tmp_path, _stability(table), 0.02))
    assert img.shape == (342, 450, 3)  # the 5 in minimum width
    assert _pixels(img, BLUE) > 0 and _pixels(img, ORANGE) == 0  # the one seed's colour only
