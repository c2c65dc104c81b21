"""Check `adequacy` (issue 20): it passes on data drawn from the model itself and turns red, naming
stream and region, on each planted misfit.

Every data set is the bundled example's points and design (its grid, streams, intervals, σ_obs,
speed), with every member's residual drawn from the generative form N(0, σ_tot(θ*)) at a θ* of
small model error, so the stated uncertainty carries the noise; the planted misfits change the
observations or their stated σ afterwards. Fits are the Laplace fast path under
`likelihood.form: effective` (seconds); the false-alarm rate over many seeds is a `full` test.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from fusion import load_config, load_data, prepare
from fusion.data.prepared import THICK, VEL
from fusion.data.synthetic import write_example
from harness.checks.adequacy import adequacy_gates, evaluate, fast_fit, model_data, stream_figures
from harness.gates import AdequacyGate

THETA = np.array([0.1, 0.5, 0.0, 0.01])  # σ_base_thick, σ_base_vel, β_thick, β_vel: the stated σ dominates


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory):
    """(config under `effective` with Laplace fits, the example's prepared points, the planted region)."""
    config = write_example(tmp_path_factory.mktemp("adequacy") / "example")
    cfg = load_config(config).with_updates(likelihood={"form": "effective"}, inference={"method": "laplace"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example's missing ERRY year, tested where it is raised
        prepared = prepare(cfg, load_data(cfg))
    ny, nx = prepared.layout.grid_shape
    row, col = prepared.layout.pixel // nx, prepared.layout.pixel % nx
    box = (row >= ny // 4) & (row < ny // 2) & (col >= nx // 4) & (col < nx // 2)  # grid box (1, 1) of 4 × 4
    return cfg, prepared, box, (col - nx // 4) / (nx / 4)


def drawn(example, seed: int):
    from fusion.inference.noise import NoiseSettings

    cfg, prepared, *_ = example
    return model_data(prepared, THETA, NoiseSettings.from_config(cfg), np.random.default_rng(seed))


def red(cfg, prepared, sle=None) -> tuple[list[str], dict]:
    gate = AdequacyGate()
    figures = stream_figures(evaluate(cfg, prepared, gate, fit=fast_fit, sle=sle))
    return [g["figure"] for g in adequacy_gates({"streams": figures}, gate) if not g["passed"]], figures


@pytest.mark.parametrize("seed", [0, 1])
def test_data_drawn_from_the_model_pass(example, seed: int) -> None:
    cfg = example[0]
    failed, figures = red(cfg, drawn(example, seed))
    assert failed == [], (failed, figures)
    for name in ("thick", "vel"):  # held-out coverage measured, not short of nominal (members exchangeable: a mixture over-covers)
        assert figures[name]["heldout_1sigma"] >= 0.6827 - 0.1 and figures[name]["heldout_points"] > 100


def test_a_regional_trend_the_members_lack_is_red_and_named(example) -> None:
    cfg, _, box, ramp = example
    data = drawn(example, 0)
    from fusion.adequacy import sigma_tot2
    from fusion.inference.noise import NoiseSettings

    sd = np.sqrt(sigma_tot2(data, THETA[None], NoiseSettings.from_config(cfg)))[0]
    y = data.y_obs + np.where(box & (data.stream == THICK), 1.5 * sd * ramp, 0.0)  # 0 → 1.5 σ across the box
    failed, figures = red(cfg, dataclasses.replace(data, y_obs=y.astype(np.float32)))
    assert "thick: worst region / σ_obs bin p (Bonferroni)" in failed
    assert not [f for f in failed if f.startswith("vel")]
    assert any("thick, box (1, 1)" in f and "trend" in f for f in figures["thick"]["failures"]), figures["thick"]


def test_uncertainties_halved_in_one_region_are_red_and_named(example) -> None:
    cfg, _, box, _ = example
    data = drawn(example, 0)
    stated = np.where(box & (data.stream == THICK), 0.5 * data.sigma_obs, data.sigma_obs).astype(np.float32)
    failed, figures = red(cfg, dataclasses.replace(data, sigma_obs=stated))
    assert "thick: worst region / σ_obs bin p (Bonferroni)" in failed
    assert any("thick, box (1, 1)" in f and "over-dispersed" in f for f in figures["thick"]["failures"]), figures["thick"]


def test_velocity_errors_three_times_the_reported_ones_are_red_and_named(example) -> None:
    """σ_model absorbs most of it (σ_base_vel is refitted far beyond its prior); what is left is a
    spread that grows faster than the stated σ_obs, which the top σ_obs bins show."""
    cfg = example[0]
    data = drawn(example, 0)
    vel = data.stream == VEL
    extra = np.sqrt(8.0) * data.sigma_obs * np.random.default_rng(9).standard_normal(data.n_points)  # total 3σ_obs
    failed, figures = red(cfg, dataclasses.replace(data, y_obs=(data.y_obs + np.where(vel, extra, 0.0)).astype(np.float32)))
    assert failed and all(f.startswith("vel") for f in failed), failed
    assert any(f.startswith("vel, σ_obs") and "over-dispersed" in f for f in figures["vel"]["failures"])


def test_tempered_form_is_reported_not_gated(example) -> None:
    cfg, prepared, *_ = example
    assert adequacy_gates({"gated": False, "streams": {"thick": {"worst_p": 0.0}}}, AdequacyGate()) == []
    ev = evaluate(cfg.with_updates(likelihood={"form": "tempered"}), drawn(example, 0), AdequacyGate(), fit=fast_fit)
    assert ev.form == "tempered" and not ev.gated


@pytest.mark.full
def test_false_alarm_rate_on_data_drawn_from_the_model(example) -> None:
    """40 seeds: the share red stays within the design bound's reach (2α = 0.02 by Bonferroni,
    plus the coverage gates); printed for the README's figure."""
    from harness.checks.adequacy import Evaluation, false_alarms

    cfg, prepared, *_ = example
    ev = Evaluation(None, {}, "effective", THETA, {}, True)  # type: ignore[arg-type]
    found = false_alarms(cfg, prepared, ev, AdequacyGate(), 40, seed=11)
    print("false alarms", found)
    assert found["replicates"] == 40 and found["rate"] <= 0.1, found


def test_the_report_page_shows_the_maps_ecdf_and_sensitivity_in_chromium(example, tmp_path: Path) -> None:
    """The check's figures (residuals.png: maps, histograms, block PIT ECDF; sensitivity.png)
    decoded by headless Chromium in report.html, and the failing region named on the page."""
    from types import SimpleNamespace

    from fusion.figures.adequacy import residuals_png
    from fusion.io import write_bytes, write_png
    from fusion.figures.likelihood import plot_sensitivity
    from harness.report import browser
    from harness import runner
    from harness.checks import CheckResult
    from tests.harness.test_report_page import decoded_widths, visible_text

    if browser.find_chromium() is None:
        pytest.fail(f"headless Chromium is required for the report-page test: {browser.INSTALL_HINT}")
    cfg, _, box, _ = example
    data = drawn(example, 0)
    stated = np.where(box & (data.stream == THICK), 0.5 * data.sigma_obs, data.sigma_obs).astype(np.float32)
    planted = dataclasses.replace(data, sigma_obs=stated)
    gate = AdequacyGate()
    ev = evaluate(cfg, planted, gate, fit=fast_fit)
    table = {"forms": {f: {"weights": dict(zip(planted.member_ids, [0.2] * 5)), "lower": 1.0, "median": 2.0, "upper": 3.0}
                       for f in ("tempered", "independent", "effective")}}  # fmt: skip

    def check(ctx):
        write_bytes(ctx.artifact_dir / "residuals.png", residuals_png(planted, ev.assessment))
        write_png(ctx.artifact_dir / "sensitivity.png", plot_sensitivity({"sensitivity": table, "likelihood": {"form": "effective"}}))
        figures = {"gated": True, "streams": stream_figures(ev)}
        gates = adequacy_gates(figures, gate)
        messages = [f for s in figures["streams"].values() for f in s["failures"]]
        return CheckResult(name="adequacy", case=ctx.case, status="fail" if messages else "pass", figures=figures,
                           gates=gates, messages=messages, plots=["residuals.png", "sensitivity.png"])  # fmt: skip

    registry = {"adequacy": SimpleNamespace(cases=lambda suite, catalog: ["example"], run_check=check)}
    out = tmp_path / "run"
    outcome = runner.run(runner.RunOptions(out=out, checks=("adequacy",)), registry=registry, progress=lambda line: None)
    assert outcome.marker == "_RUN_FAILED"
    widths = decoded_widths(out / "report.html", tmp_path)
    assert len(widths) == 2 and all(w > 600 for w in widths), widths
    text = " ".join(visible_text(browser.dump_dom(out / "report.html")))
    assert "thick, box (1, 1) (rows 7–14, cols 10–19): over-dispersed" in text


def test_under_blocks_the_fit_and_the_held_out_refit_sample_the_block_means(example) -> None:
    """`likelihood.form: blocks` samples square means (as `fusion run` does, `form_inputs`), in the
    fit and in the refit without the held-out tiles; the predictive is still judged on the points."""
    cfg, data, *_ = example  # the example's own residuals: correlated over a few cells (ℓ ≈ 5 and 2)
    cfg = cfg.with_updates(likelihood={"form": "blocks"})
    seen: list[int] = []

    def recording_fit(cfg, sampled, settings):
        seen.append(sampled.n_points)
        return fast_fit(cfg, sampled, settings)

    ev = evaluate(cfg, data, AdequacyGate(), fit=recording_fit)
    assert len(seen) == 2 and ev.form == "blocks"
    assert seen[1] < seen[0] < data.n_points / 4, (seen, data.n_points)  # block means, fewer without the held-out tiles
    figures = stream_figures(ev)
    assert figures["thick"]["n_points"] == int(np.count_nonzero(data.stream == THICK))  # judged on the points
    assert figures["thick"]["heldout_points"] > 100


@pytest.fixture(scope="module")
def structural():
    """A case without a true member (issue 34): the observations are one member's rates plus
    errors correlated over 6 cells at the stated σ_obs, weighed against the other members, which
    differ from it by their parameters and smooth structural biases (harness.sim.ensembles)."""
    from harness.sim.ensembles import EnsembleDesign, design_noise, structural_ensemble

    design = EnsembleDesign(seed=0, members=9, ny=30, nx=40, noise_length=6.0)
    cfg, prepared, sle = structural_ensemble(design)
    k = 4
    keep = [j for j in range(prepared.n_members) if j != k]
    y = (prepared.F[k] + design_noise(design, prepared, k)).astype(np.float32)
    held_out = dataclasses.replace(prepared, y_obs=y, F=np.ascontiguousarray(prepared.F[keep]),
                                   member_ids=tuple(prepared.member_ids[j] for j in keep))  # fmt: skip
    ny, nx = prepared.layout.grid_shape
    row, col = prepared.layout.pixel // nx, prepared.layout.pixel % nx
    box = (row >= ny // 4) & (row < ny // 2) & (col >= nx // 4) & (col < nx // 2)
    return cfg.with_updates(likelihood={"form": "effective"}), held_out, box, (col - nx // 4) / (nx / 4), sle


def test_an_ensemble_without_a_true_member_and_nothing_planted_passes(structural) -> None:
    cfg, data, *_, sle = structural
    failed, figures = red(cfg, data, sle)
    assert failed == [], (failed, figures)
    # the noise model's own weights (the nearest member) call the members' structural error a misfit
    noise_only, _ = red(cfg.with_updates(likelihood={"calibration": "off"}), data, sle)
    assert "thick: block PIT ECDF outside band (tails/bias side)" in noise_only


def test_without_a_true_member_a_regional_trend_and_tripled_velocity_errors_stay_red(structural) -> None:
    cfg, data, box, ramp, sle = structural
    thick = data.stream == THICK
    resid = data.y_obs[thick] - data.F[:, thick]
    sd = float(np.sqrt(np.min(np.mean(resid**2, axis=1))))  # about the nearest member: what σ_tot absorbs
    y = data.y_obs + np.where(box & thick, 1.5 * sd * ramp, 0.0)  # 0 → 1.5 σ across the box
    failed, _ = red(cfg, dataclasses.replace(data, y_obs=y.astype(np.float32)), sle)
    assert any(f.startswith("thick") for f in failed), failed
    vel = data.stream == VEL
    extra = np.sqrt(8.0) * data.sigma_obs * np.random.default_rng(9).standard_normal(data.n_points)
    failed, _ = red(cfg, dataclasses.replace(data, y_obs=(data.y_obs + np.where(vel, extra, 0.0)).astype(np.float32)), sle)
    assert any(f.startswith("vel") for f in failed), failed
