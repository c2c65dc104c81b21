"""The calls ice-fusion's reference documents, each made exactly as written there, from `fusion`.

A script written against ice-fusion must run unchanged: `load_config(path)`, `load_data(cfg)`,
`prepare(cfg, data)`, `sample(cfg, prepared)`, `run(cfg)`, `project(cfg, trace, data)`,
`save_weights(result, path)`, `save_metadata(result, path)`, `plot_projection(result, path)`,
`projection_summary(projection, lower_q=…, upper_q=…)`, `sampler_diagnostics(trace, var_names=…)`,
`weight_stability_across_seeds(weights_list)` and `plug_in_weights(prepared, trace)`. One pass
over the bundled example (few draws) serves every test; each checks what the call returns
against an independent computation, not only that it returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import fusion
from fusion.data.synthetic import write_example
from fusion.errors import ConvergenceWarning, DataWarning

# the example omits ERRY in one year on purpose; that DataWarning is tested where it is raised
pytestmark = pytest.mark.filterwarnings("ignore::fusion.errors.DataWarning")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Session:
    """What an ice-fusion script holds after its first lines, on the example."""

    config_path: Path
    cfg: fusion.Config
    data: Any
    prepared: fusion.Prepared
    trace: xr.DataTree
    result: fusion.Result


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    root = tmp_path_factory.mktemp("api")
    path = write_example(root / "example")
    # as a script would, bar the draws: 2 chains × 60 keep the module at a few seconds
    cfg = fusion.load_config(path).with_updates(inference={"draws": 60, "tune": 60, "chains": 2})
    data = fusion.load_data(cfg)
    prepared = fusion.prepare(cfg, data)
    with pytest.warns(ConvergenceWarning):  # 2 × 60 draws cannot reach the ESS floor
        trace = fusion.sample(cfg, prepared)
        result = fusion.run(cfg)
    return Session(path, cfg, data, prepared, trace, result)


def test_load_config_returns_a_config_and_names_the_path_in_its_error(session: Session, tmp_path: Path) -> None:
    assert isinstance(fusion.load_config(session.config_path), fusion.Config)
    bad = tmp_path / "config.yaml"
    bad.write_text("inference: [1, 2]\n")
    with pytest.raises(ValueError, match=str(bad)):
        fusion.load_config(bad)


def test_load_data_prepare_sample_give_member_labelled_draws(session: Session) -> None:
    ids = ["run1", "run2", "run3", "run4", "run5"]
    assert list(session.prepared.member_ids) == ids
    w = session.trace["posterior"]["w"]
    assert w.dims == ("chain", "draw", "member") and list(w["member"].values) == ids
    assert w.shape == (2, 60, 5)
    np.testing.assert_allclose(w.sum("member"), 1.0, rtol=1e-12)
    assert "diverging" in session.trace["sample_stats"]


def test_run_returns_a_result_whose_weights_follow_its_trace(session: Session) -> None:
    result = session.result
    assert isinstance(result, fusion.Result)
    mean_w = result.trace["posterior"]["w"].mean(("chain", "draw"))
    np.testing.assert_allclose(result.weights["posterior_mean"], mean_w.sel(member=list(result.weights["member_id"])))
    truth = json.loads((session.config_path.parent / "truth.json").read_text())["truth_member"]["id"]
    assert result.weights.loc[result.weights["posterior_mean"].idxmax(), "member_id"] == truth


def test_project_takes_what_load_data_returns(session: Session) -> None:
    """`project(cfg, trace, data)`: per-member SLE 2100 and posterior weights, members from `data`."""
    cfg, trace = session.cfg, session.trace
    proj = fusion.project(cfg, trace, session.data)
    truth = json.loads((session.config_path.parent / "truth.json").read_text())
    sle = {m["id"]: m["sle_mm"] for m in truth["members"]}
    members = [str(m) for m in proj["member"].values]
    assert members == list(session.prepared.member_ids)
    np.testing.assert_allclose(proj["sle_mm"], [sle[m] for m in members], rtol=1e-12)
    posterior_mean = trace["posterior"]["w"].sel(member=members).mean(("chain", "draw"))
    np.testing.assert_array_equal(proj["weight"], posterior_mean)
    assert proj.attrs["target_year"] == 2100.0
    # FUSION's other forms of the third argument give the same projection
    xr.testing.assert_identical(fusion.project(cfg, trace, session.prepared), proj)
    xr.testing.assert_identical(fusion.project(cfg, trace, members), proj)
    xr.testing.assert_identical(fusion.project(cfg, trace), proj)


def test_project_takes_load_datas_mapping_and_follows_its_member_order(session: Session) -> None:
    """`load_data(cfg)` as ice-fusion returns it: {"obs": …, "ensemble": Dataset on `member`}."""
    reordered = ["run3", "run1", "run5", "run2", "run4"]
    data = {"obs": {}, "ensemble": xr.Dataset(coords={"member": reordered})}
    proj = fusion.project(session.cfg, session.trace, data)
    assert [str(m) for m in proj["member"].values] == reordered
    by_list = fusion.project(session.cfg, session.trace, session.prepared)
    xr.testing.assert_allclose(proj, by_list.sel(member=reordered), rtol=1e-12)  # Σ w·SLE: another order
    with pytest.raises(TypeError, match="'ensemble'"):
        fusion.project(session.cfg, session.trace, {"obs": {}})
    with pytest.raises(TypeError, match="string"):
        fusion.project(session.cfg, session.trace, "run1")
    with pytest.raises(ValueError, match="do not match"):
        fusion.project(session.cfg, session.trace, {"ensemble": xr.Dataset(coords={"member": reordered[:4]})})


def test_save_weights_and_save_metadata_write_their_files(session: Session, tmp_path: Path) -> None:
    weights = fusion.save_weights(session.result, tmp_path / "weights.csv")
    table = pd.read_csv(weights)
    assert list(table.columns) == ["member_id", "posterior_mean", "posterior_sd", "point_estimate",
                                   "point_estimate_loglik"]  # fmt: skip
    np.testing.assert_array_equal(table["posterior_mean"], session.result.weights["posterior_mean"])
    meta = json.loads(fusion.save_metadata(session.result, tmp_path / "run_metadata.json").read_text())
    assert meta["config"]["inference"]["draws"] == 60
    assert meta["diagnostics"]["chains"] == 2


def test_plot_projection_takes_a_result_or_a_projection(session: Session, tmp_path: Path) -> None:
    fig = fusion.plot_projection(session.result, tmp_path / "projection.png")
    assert (tmp_path / "projection.png").read_bytes()[:8] == PNG_MAGIC
    ax_cdf, _ = fig.axes
    median = session.result.summary["median"]
    assert f"median {median:.1f} mm" in [t.get_text() for t in ax_cdf.get_legend().get_texts()][0]
    # the projection Dataset draws the same figure
    fusion.plot_projection(session.result.projection, tmp_path / "from_dataset.png")
    assert (tmp_path / "from_dataset.png").read_bytes() == (tmp_path / "projection.png").read_bytes()
    no_projection = fusion.Result(**{**vars(session.result), "projection": None, "summary": None})
    with pytest.raises(ValueError, match="no projection"):
        fusion.plot_projection(no_projection, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_projection_summary_with_ice_fusions_keywords(session: Session) -> None:
    proj = session.result.projection
    s = fusion.projection_summary(proj, lower_q=0.05, upper_q=0.95)
    w = proj["weight"].values / proj["weight"].values.sum()
    sle = proj["sle_mm"].values
    assert s["mean"] == pytest.approx(float(np.dot(w, sle)), rel=1e-12)
    assert s["sd"] == pytest.approx(float(np.sqrt(np.dot(w, (sle - s["mean"]) ** 2))), rel=1e-12)
    assert s["lower"] <= s["median"] <= s["upper"] and s["median"] in set(sle)
    wide = fusion.projection_summary(proj, lower_q=0.0, upper_q=1.0)
    assert (wide["lower"], wide["upper"]) == (sle[w > 0].min(), sle[w > 0].max())


def test_sampler_diagnostics_agree_with_arviz_stats(session: Session) -> None:
    trace = session.trace
    d = fusion.sampler_diagnostics(trace, var_names=["w", "sigma_base_thick"])
    post = trace["posterior"].to_dataset()[["w", "sigma_base_thick"]]
    rhat = azs.rhat(post, method="rank")
    bulk, tail = azs.ess(post, method="bulk"), azs.ess(post, method="tail")
    w_rhat = rhat["w"].where(post["w"].std(("chain", "draw")) > 0, 1.0)  # constant elements: R-hat 1
    assert d["r_hat_max"] == pytest.approx(max(float(w_rhat.max()), float(rhat["sigma_base_thick"])), rel=1e-12)
    assert d["ess_bulk_min"] == pytest.approx(min(float(bulk[v].min()) for v in bulk.data_vars), rel=1e-12)
    assert d["ess_tail_min"] == pytest.approx(min(float(tail[v].min()) for v in tail.data_vars), rel=1e-12)
    assert d["divergences"] == int(trace["sample_stats"]["diverging"].sum())
    assert d["r_hat_max_at"].startswith(("w[", "sigma_base_thick"))
    with pytest.raises(ValueError, match="no_such"):
        fusion.sampler_diagnostics(trace, var_names=["w", "no_such"])


def test_weight_stability_across_seeds_is_a_member_coorded_sd(session: Session) -> None:
    w = session.trace["posterior"]["w"]
    per_chain = [w.isel(chain=c).mean("draw") for c in range(2)]  # two "seeds"
    other = session.result.weights  # a weights.csv-style table, another member order
    runs = [*per_chain, other.iloc[::-1].reset_index(drop=True)]
    sd = fusion.weight_stability_across_seeds(runs)
    assert isinstance(sd, xr.DataArray) and sd.dims == ("member",)
    members = [str(m) for m in w["member"].values]
    assert [str(m) for m in sd["member"].values] == members
    table = other.set_index("member_id")["posterior_mean"]
    expected = np.std([[float(p.sel(member=m)) for p in per_chain] + [table[m]] for m in members], axis=1, ddof=1)
    np.testing.assert_allclose(sd.values, expected, rtol=1e-12)
    assert fusion.weight_stability(runs).max_sd == pytest.approx(float(sd.max()), rel=1e-15)


def test_plug_in_weights_returns_weights_and_loglik(session: Session) -> None:
    weights, loglik = fusion.plug_in_weights(session.prepared, session.trace)
    assert weights.shape == loglik.shape == (5,)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    # softmax of the log-likelihoods: the largest loglik gets the largest weight
    np.testing.assert_allclose(weights, np.exp(loglik - loglik.max()) / np.exp(loglik - loglik.max()).sum(), rtol=1e-9)
    result = session.result  # `run` reports these very figures as each member's point estimate
    np.testing.assert_array_equal(fusion.plug_in_weights(result.prepared, result.trace)[0],
                                  result.weights["point_estimate"])  # fmt: skip


def test_every_call_of_the_table_is_public() -> None:
    table = ("load_config", "load_data", "prepare", "sample", "run", "project", "save_weights", "save_metadata",
             "plot_projection", "projection_summary", "sampler_diagnostics", "weight_stability_across_seeds",
             "plug_in_weights")  # fmt: skip
    assert set(table) <= set(fusion.__all__)
    assert all(callable(getattr(fusion, name)) for name in table)


def test_data_warning_is_the_one_the_example_raises(session: Session) -> None:
    """The module's filter hides one warning only: loading the example again raises it."""
    with pytest.warns(DataWarning, match="ERRY"):
        fusion.load_data(session.cfg)
