"""prepare: bit-exact parity with the prototype, and the behaviour of each rule on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from fusion.config import load_config
from fusion.data.load import load_data
from fusion.data.prepare import prepare, snap_year
from fusion.data.prepared import THICK, VEL, Prepared
from fusion.errors import InputError
from tests.helpers import REFERENCE_CASES, golden_case, reference_inputs


def _reference_config(tmp_path, case: str, compat: str = "prototype", **extra):
    base = reference_inputs(case)
    path = tmp_path / f"{case}.yaml"
    body = {
        "compat": compat,
        "observations": {"thickness": {"dir": str(base / "obs/elev")}, "velocity": {"dir": str(base / "obs/vel")}},
        "ensemble": {"dir": str(base / "ensemble")},
        **extra,
    }
    path.write_text(yaml.safe_dump(body))
    return load_config(path)


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_prototype_arrays_are_bit_exact(tmp_path, case: str) -> None:
    """Reference: ../shared/reference/<case>/prototype/prepared.npz (prototype full_model.py, numpy 2.4.6)."""
    cfg = _reference_config(tmp_path, case)
    got = prepare(cfg, load_data(cfg))
    with np.load(golden_case(case) / "prepared.npz") as ref:
        for name in ("y_obs", "sigma_obs", "F", "speed"):
            mine, theirs = getattr(got, name), ref[name]
            assert mine.dtype == theirs.dtype, name
            assert mine.shape == theirs.shape, name
            assert np.ascontiguousarray(mine).tobytes() == np.ascontiguousarray(theirs).tobytes(), name
        assert (got.n_dhdt, got.n_vel) == (int(ref["n_dhdt"]), int(ref["n_vel"]))
        assert got.meta["n_total_before_subsample"] == int(ref["n_total_before_subsample"])
        np.testing.assert_array_equal(got.meta["interval_tmid"], ref["interval_tmid"])


def test_fixed_labels_travel_through_the_subsample(tmp_path) -> None:
    proto_cfg = _reference_config(tmp_path, "subsample")
    fixed_cfg = _reference_config(tmp_path, "subsample", compat="fixed")
    proto = prepare(proto_cfg, load_data(proto_cfg))
    fixed = prepare(fixed_cfg, load_data(fixed_cfg))
    # same points chosen; the prototype's positional labels mislabel many of them
    assert fixed.n_points == proto.n_points == 20000
    assert proto.meta["mislabelled_points"] > 1000
    assert fixed.meta["mislabelled_points"] == 0
    # a true thickness point has speed 0; velocity points have positive speed
    assert np.all(fixed.speed[fixed.stream == THICK] == 0)
    assert np.all(fixed.speed[fixed.stream == VEL] > 0)
    assert np.any(proto.speed[proto.stream == THICK] > 0)
    assert fixed.n_dhdt == int(np.count_nonzero(fixed.stream == THICK))


def test_layout_thickness_first_then_velocity_x_then_y_by_interval(tiny) -> None:
    case = tiny()
    cfg = load_config(case.config())
    p = prepare(cfg, load_data(cfg))
    n_pix = case.ny * case.nx
    # 2 intervals: thickness (2 blocks), then per interval vx block then vy block
    assert p.n_points == 6 * n_pix and p.n_dhdt == 2 * n_pix
    np.testing.assert_array_equal(p.y_obs[: 2 * n_pix], -1.0)
    np.testing.assert_array_equal(p.y_obs[2 * n_pix :], 2.0)
    # member 2 has rates 1.1× member 1's; thickness rates are negative
    np.testing.assert_allclose(p.F[1] / p.F[0], 1.1, rtol=1e-5)
    np.testing.assert_allclose(p.speed[2 * n_pix :], np.mean([np.hypot(50 + 2 * i, 20 + 2 * i) for i in range(3)]), rtol=1e-6)
    assert p.y_obs.dtype == np.float32 and p.sigma_obs.dtype == np.float32
    assert p.F.dtype == np.float64 and p.speed.dtype == np.float64


def test_mask_drops_nan_and_uncertainty_above_threshold(tiny) -> None:
    case = tiny()
    g = np.ones((case.ny, case.nx))
    vx = 50.0 * g
    vx[0, 0] = np.nan
    err = 1.0 * g
    err[1, 2] = 100.0  # → sqrt(100² + 1²)/1 > 10: both intervals touching 2015 lose that pixel's vx
    case.velocity(2015, vx, 20.0 * g, err, g)
    cfg = load_config(case.config())
    p = prepare(cfg, load_data(cfg))
    n_pix = case.ny * case.nx
    assert p.n_dhdt == 2 * n_pix
    # interval 0 vx loses two pixels (NaN obs, high error); everything else is complete
    assert p.n_vel == 4 * n_pix - 2


def test_thickness_uncertainty_all_nan_becomes_missing_value(tiny) -> None:
    case = tiny()
    g = np.ones((case.ny, case.nx))
    for i, yr in enumerate((2015, 2016, 2017)):
        case.thickness(yr, 100.0 * g - i, None)
    cfg = load_config(case.config())
    p = prepare(cfg, load_data(cfg))
    np.testing.assert_array_equal(p.sigma_obs[: p.n_dhdt], np.float32(20.0))


def test_thickness_uncertainty_gaps_get_the_median(tiny) -> None:
    case = tiny()
    g = np.ones((case.ny, case.nx))
    rmse = 0.5 * g
    rmse[0, 1] = np.nan
    case.thickness(2016, 99.0 * g, rmse)
    cfg = load_config(case.config())
    p = prepare(cfg, load_data(cfg))
    thick = p.sigma_obs[: p.n_dhdt]
    assert np.all(np.isfinite(thick))
    np.testing.assert_array_equal(np.unique(thick), [np.float32(np.sqrt(np.float32(0.5) ** 2 * 2))])


def test_snap_year_within_tolerance_else_none() -> None:
    years = np.array([2015.0, 2016.0, 2018.0])
    assert snap_year(years, 2015.996, 1.5) == 2016
    assert snap_year(years, 2017.0, 1.5) == 2016  # tie: the first (earlier) year
    assert snap_year(years, 2019.6, 1.5) is None
    assert snap_year(years, 2019.5, 1.5) == 2018


def test_observation_gap_prototype_zero_rate_fixed_drops_interval(tiny, tmp_path) -> None:
    case = tiny(years=(2015, 2016, 2017, 2018))
    (case.root / "obs/elev/elev_antarctica_elevation_2017.nc").unlink()
    proto_cfg = load_config(case.config("prototype"))
    proto = prepare(proto_cfg, load_data(proto_cfg))
    n_pix = case.ny * case.nx
    # heights 100, 99, -, 97. Intervals 2015→16; 2016→17 (2017.0 ties and snaps to 2016: rate 0);
    # 2017→18 (snaps 2016→2018, a two-year change over one model year)
    np.testing.assert_array_equal(proto.y_obs[n_pix : 2 * n_pix], 0.0)
    np.testing.assert_array_equal(proto.y_obs[2 * n_pix : 3 * n_pix], -2.0)
    fixed_cfg = load_config(case.config("fixed"))
    fixed = prepare(fixed_cfg, load_data(fixed_cfg))
    thick = fixed.y_obs[fixed.stream == THICK]
    assert thick.size == 2 * n_pix  # the zero-gap interval is dropped
    np.testing.assert_array_equal(thick, -1.0)  # 2016→2018: 99→97 divided by the two-year gap


def test_fixed_rejects_member_time_axis_off_reference(tiny) -> None:
    case = tiny()
    g = np.ones((3, case.ny, case.nx))
    case.member(2, np.array([2015.0, 2016.2, 2017.0]), 100 * g, 50 * g, 20 * g)
    cfg = load_config(case.config("fixed"))
    with pytest.raises(InputError, match=r"run02_regridded.nc: time axis disagrees"):
        prepare(cfg, load_data(cfg))
    proto_cfg = load_config(case.config("prototype"))
    assert prepare(proto_cfg, load_data(proto_cfg)).n_members == 2  # the prototype relabels unchecked


def test_fixed_accepts_day00_shift_within_tolerance(tiny) -> None:
    case = tiny()
    g = np.ones((3, case.ny, case.nx))
    seconds = np.array([(365 * 15 + 4 + 1) * 86400.0 + 365.2425 * 86400 * k for k in range(3)])
    case.member(2, seconds, 100 * g, 50 * g, 20 * g, units="seconds since 2000-01-00 00:00:00")
    cfg = load_config(case.config("fixed"))
    assert prepare(cfg, load_data(cfg)).n_members == 2


def test_prepared_npz_round_trip(tmp_path, tiny) -> None:
    case = tiny()
    cfg = load_config(case.config("fixed"))
    p = prepare(cfg, load_data(cfg))
    back = Prepared.from_npz(p.to_npz(tmp_path / "p.npz"))
    for name in ("y_obs", "sigma_obs", "F", "speed", "stream"):
        np.testing.assert_array_equal(getattr(back, name), getattr(p, name))
    assert back.member_ids == ("run1", "run2") and back.compat == "fixed"
