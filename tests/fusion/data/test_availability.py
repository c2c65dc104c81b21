"""The availability record: it adds up, matches the prototype's counts, and names each drop's first rule."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fusion.config import load_config
from fusion.data.availability import RULES
from fusion.figures.availability import plot_availability
from fusion.data.load import load_data
from fusion.data.prepare import prepare
from fusion.data.prepared import Prepared
from fusion.errors import InputError
from tests.helpers import REFERENCE_CASES, TinyCase, golden_case
from tests.fusion.data.test_prepare import _reference_config


def assert_adds_up(p: Prepared) -> None:
    """Every point on the grid is dropped once or kept; intervals sum to streams; subsample within kept."""
    rec = p.availability.record
    assert rec["rule_order"] == list(RULES)
    total_kept = total_sub = 0
    for name, s in rec["streams"].items():
        assert s["pixels"] == sum(s["dropped"].values()) + s["kept"], name
        assert 0 <= s["subsampled"] <= s["kept"], name
        for key in ("pixels", "kept", "subsampled"):
            assert s[key] == sum(r[key] for r in s["intervals"]), (name, key)
        for rule in RULES:
            assert s["dropped"][rule] == sum(r["dropped"][rule] for r in s["intervals"]), (name, rule)
        for r in s["intervals"]:
            assert r["pixels"] == sum(r["dropped"].values()) + r["kept"], (name, r)
            assert all(v >= 0 for v in r["dropped"].values())
            assert (r["skipped"] is not None) == (r["kept"] == 0), (name, r)
        if name in p.availability.maps:
            assert int(p.availability.maps[name].sum()) == s["kept"], name
        total_kept += s["kept"]
        total_sub += s["subsampled"]
    assert total_kept == p.meta["n_total_before_subsample"]
    assert total_sub == p.n_points
    # both compats: n_dhdt counts the chosen points that really are thickness (prototype: indices below n_dhdt_full)
    assert rec["streams"]["thick"]["subsampled"] == p.n_dhdt


@pytest.mark.parametrize("case", REFERENCE_CASES)
@pytest.mark.parametrize("compat", ["prototype", "fixed"])
def test_reference_cases_add_up_and_match_the_prototype_counts(tmp_path, case: str, compat: str) -> None:
    """Reference: ../shared/reference/<case>/prototype/prepared_meta.json and prepared.npz (the prototype's own counts)."""
    cfg = _reference_config(tmp_path, case, compat=compat)
    p = prepare(cfg, load_data(cfg))
    assert_adds_up(p)
    meta = json.loads((golden_case(case) / "prepared_meta.json").read_text())
    streams = p.availability.record["streams"]
    if compat == "prototype":
        assert streams["thick"]["kept"] == meta["n_dhdt_full"]
        assert streams["vel"]["kept"] == meta["n_vel_full"]
        with np.load(golden_case(case) / "prepared.npz") as ref:
            # before subsampling, the counts the prototype saved; after, its n_dhdt (= chosen indices below n_dhdt_full)
            assert streams["thick"]["kept"] + streams["vel"]["kept"] == int(ref["n_total_before_subsample"])
            assert streams["thick"]["subsampled"] == int(ref["n_dhdt"])
            assert streams["vel"]["subsampled"] == int(ref["n_vel"])


def test_bundled_example_adds_up_and_names_its_missing_error(tmp_path) -> None:
    from fusion.data.synthetic import write_example

    cfg = load_config(write_example(tmp_path / "example"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example's missing ERRY warning is by design
        p = prepare(cfg, load_data(cfg))
    assert_adds_up(p)
    # the year without ERRY (constant 10 m/yr → √200 > 10) drops whole y-components over threshold
    assert p.availability.record["streams"]["vel"]["dropped"]["uncertainty_over_threshold"] > 0


def test_skipped_interval_named_with_its_reason(tiny) -> None:
    case = tiny(years=(2015, 2016, 2017, 2018))
    (case.root / "obs/elev/elev_antarctica_elevation_2017.nc").unlink()
    cfg = load_config(case.config("fixed"))
    p = prepare(cfg, load_data(cfg))
    assert_adds_up(p)
    rows = p.availability.record["streams"]["thick"]["intervals"]
    assert [r["skipped"] for r in rows] == [None, "both ends snap to the observation year 2016", None]
    assert rows[1]["dropped"]["observation_missing"] == case.ny * case.nx


def test_interval_emptied_by_a_member_names_it(tiny) -> None:
    case = tiny()
    g = np.ones((3, case.ny, case.nx))
    h = 100.0 * g
    h[2] = np.nan  # member 2 has no finite thickness at its last step: the second interval goes
    case.member(2, np.array([2015.0, 2016.0, 2017.0]), h, 50 * g, 20 * g)
    cfg = load_config(case.config("fixed"))
    p = prepare(cfg, load_data(cfg))
    assert_adds_up(p)
    second = p.availability.record["streams"]["thick"]["intervals"][1]
    assert second["kept"] == 0 and second["dropped"]["member_nonfinite"] == case.ny * case.nx
    assert "emptied by member run2" in second["skipped"]


def test_npz_carries_the_record_and_the_arrays_are_unchanged(tmp_path, tiny) -> None:
    cfg = load_config(tiny().config("prototype"))
    p = prepare(cfg, load_data(cfg))
    back = Prepared.from_npz(p.to_npz(tmp_path / "p.npz"))
    assert back.availability.record == json.loads(json.dumps(p.availability.record))
    with np.load(tmp_path / "p.npz") as z:
        assert z["availability"].dtype.kind == "U"  # plain text: loads without pickle


def test_plot_availability_draws_maps_and_bars(tmp_path, tiny) -> None:
    cfg = load_config(tiny().config("fixed"))
    p = prepare(cfg, load_data(cfg))
    fig = plot_availability(p.availability, tmp_path / "availability.png")
    assert (tmp_path / "availability.png").stat().st_size > 0
    titles = " ".join(ax.get_title() for ax in fig.get_axes())
    assert "thickness" in titles and "velocity" in titles and "per interval" in titles
    plot_availability(None, tmp_path / "none.png")  # arrays loaded from a file: a labelled blank
    assert (tmp_path / "none.png").stat().st_size > 0


# --- property: random gaps in every input, against a point-by-point oracle of the first rule ----

_NY, _NX, _YEARS = 2, 3, (2015, 2016, 2017)


def _oracle(obs: dict[str, np.ndarray], members: list[dict[str, np.ndarray]]) -> dict[str, dict[str, int]]:
    """First failing rule per point, looping over points in plain Python (the rules as DESIGN.md states them)."""
    counts = {s: dict.fromkeys([*RULES, "kept"], 0) for s in ("thick", "vel")}
    speed_ok = np.any(np.isfinite(obs["vx"]) & np.isfinite(obs["vy"]), axis=0)  # nanmean over years is finite
    for i in range(len(_YEARS) - 1):
        for stream, value, err, field, thr in (
            ("thick", "h", "rmse", "h", 50.0),
            ("vel", "vx", "ex", "ua", 10.0),
            ("vel", "vy", "ey", "va", 10.0),
        ):
            for y in range(_NY):
                for x in range(_NX):
                    a, b = obs[value][i, y, x], obs[value][i + 1, y, x]
                    e1, e2 = obs[err][i, y, x], obs[err][i + 1, y, x]
                    sigma = np.sqrt(np.float32(e1) ** 2 + np.float32(e2) ** 2)
                    member_ok = all(
                        np.isfinite(m[field][i, y, x]) and np.isfinite(m[field][i + 1, y, x]) for m in members
                    )
                    if not (np.isfinite(a) and np.isfinite(b)):
                        rule = "observation_missing"
                    elif not np.isfinite(sigma):
                        rule = "uncertainty_missing"
                    elif not sigma < thr:
                        rule = "uncertainty_over_threshold"
                    elif stream == "vel" and not speed_ok[y, x]:
                        rule = "speed_missing"
                    elif not member_ok:
                        rule = "member_nonfinite"
                    else:
                        rule = "kept"
                    counts[stream][rule] += 1
    return counts


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    shape = (len(_YEARS), _NY, _NX)

    def gaps(value: float, p_nan: float) -> np.ndarray:
        u = draw(arrays(np.float64, shape, elements=st.floats(0, 1)))
        return np.where(u < p_nan, np.nan, value)

    def either(low: float, high: float, p_high: float) -> np.ndarray:
        u = draw(arrays(np.float64, shape, elements=st.floats(0, 1)))
        return np.where(u < p_high, high, low)

    # never borderline: thickness σ = √(r1² + r2²) is 0.71, 40.0 or 56.6 against 50;
    # velocity √(e1² + e2²) is 1.41 or ≥ 20 against 10
    obs = {
        "h": gaps(100.0, 0.25),
        "rmse": either(0.5, 40.0, 0.4),
        "vx": gaps(50.0, 0.25),
        "vy": gaps(20.0, 0.25),
        "ex": gaps(1.0, 0.15),
        "ey": np.where(np.isnan(gaps(1.0, 0.15)), np.nan, either(1.0, 20.0, 0.2)),
    }
    members = [{f: gaps(v + k, 0.1) for f, v in (("h", 100.0), ("ua", 50.0), ("va", 20.0))} for k in range(2)]
    return obs, members


def _write(root: Path, obs: dict[str, np.ndarray], members: list[dict[str, np.ndarray]]) -> TinyCase:
    case = TinyCase(root)
    for i, yr in enumerate(_YEARS):
        case.thickness(yr, obs["h"][i], obs["rmse"][i])
        case.velocity(yr, obs["vx"][i], obs["vy"][i], obs["ex"][i], obs["ey"][i])
    for k, m in enumerate(members):
        case.member(k + 1, np.array(_YEARS, dtype=float), m["h"], m["ua"], m["va"])
    return case


@settings(max_examples=25, deadline=None)
@given(_inputs())
def test_counts_match_a_point_by_point_oracle(tmp_path_factory, inputs) -> None:
    obs, members = inputs
    case = _write(tmp_path_factory.mktemp("avail"), obs, members)
    expected = _oracle(obs, members)
    cfg = load_config(case.config("prototype"))
    try:
        data = load_data(cfg)
    except InputError:
        return  # a year whose field is all NaN is refused at load time (tested elsewhere)
    if expected["thick"]["kept"] + expected["vel"]["kept"] == 0:
        with pytest.raises(InputError, match="no valid points"):
            prepare(cfg, data)
        return
    p = prepare(cfg, data)
    assert_adds_up(p)
    for name, s in p.availability.record["streams"].items():
        got = {**s["dropped"], "kept": s["kept"]}
        assert got == expected[name], name
