"""`likelihood.form`: each form's weights reach the PyMC model, the fused density nutpie and Laplace
use, and the member log-likelihoods alike; the default is `effective` under compat: fixed and `tempered` under compat: prototype; n_eff
is the brute-force N²/ΣΣρ (location) and N²/ΣΣρ² (scale) over blocks of kept cells."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusion.config import Config, Likelihood, config_hash, load_config
from fusion.data.correlation import CorrelationFit
from fusion.data.prepared import THICK, VEL, PointLayout
from fusion.errors import InputError
from fusion.inference.likelihood import _neff, form_settings, stream_correlations
from fusion.inference.fused_density import FusedDensity
from fusion.inference.noise import NoiseSettings
from fusion.inference.pymc_model import build_model
from fusion.inference.posterior import member_logliks
from tests.fusion.inference._factories import make_prepared

RTOL = 1e-9
BASE = NoiseSettings(alpha_thick=0.3, alpha_vel=0.7)
PREPARED = make_prepared(300, 4, seed=2)
N_POINTS = {s: int(np.count_nonzero(PREPARED.stream == s)) for s in (THICK, VEL)}


def _correlations(length: float = 4.0):
    """A (10 × 30)-cell layout for PREPARED: two blocks per stream, cells distinct within a block."""
    rng = np.random.default_rng(0)
    pixel = np.empty(PREPARED.n_points, dtype=np.int64)
    block = np.empty(PREPARED.n_points, dtype=np.int64)
    for s in (THICK, VEL):
        idx = np.flatnonzero(PREPARED.stream == s)
        half = idx.size // 2
        for b, part in enumerate((idx[:half], idx[half:])):
            pixel[part] = rng.choice(300, part.size, replace=False)
            block[part] = 2 * s + b
    prepared = replace(PREPARED, layout=PointLayout(pixel=pixel, block=block, grid_shape=(10, 30), cell_size=8000.0))
    return prepared, stream_correlations(prepared, length)


FORMS = {
    "independent": form_settings(BASE, "independent", N_POINTS, None),
    "effective": form_settings(BASE, "effective", N_POINTS, _correlations()[1]),
}


def test_tempered_is_the_base_settings_unchanged() -> None:
    assert form_settings(BASE, "tempered", N_POINTS, None) is BASE


@pytest.mark.parametrize("form", FORMS)
def test_fused_density_matches_the_pymc_model_under_every_form(form: str) -> None:
    settings = FORMS[form]
    model = build_model(PREPARED, settings)
    logp = model.compile_logp(mode="FAST_COMPILE")
    dlogp = model.compile_dlogp(mode="FAST_COMPILE")
    fused = FusedDensity(PREPARED, settings)
    for x in np.random.default_rng(3).normal(-1.0, 1.0, (4, 4)):
        point = {v.name: x[i] for i, v in enumerate(model.value_vars)}
        value, grad = fused.logp_grad(x)
        np.testing.assert_allclose(value, logp(point), rtol=RTOL, atol=0)
        np.testing.assert_allclose(grad, dlogp(point), rtol=RTOL, atol=0)
    # and it is another density than the tempered one
    assert not np.isclose(FusedDensity(PREPARED, BASE).logp_grad(x)[0], value)


@pytest.mark.parametrize("form", FORMS)
def test_laplace_samples_the_same_density_as_nuts(form: str) -> None:
    """The Laplace route's `lp` of every draw is the PyMC model's log-density there (one form, both methods)."""
    from fusion.inference.laplace import sample_laplace

    cfg = Config.model_validate(
        {"observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}}, "ensemble": {"dir": "."},
         "inference": {"method": "laplace", "chains": 1, "draws": 5}}
    )  # fmt: skip
    settings = FORMS[form]
    trace = sample_laplace(cfg, PREPARED, settings=settings)
    model = build_model(PREPARED, settings)
    logp = model.compile_logp(mode="FAST_COMPILE")
    post = trace["posterior"]
    for d in range(5):
        point = {v.name: np.log(float(post[v.name.removesuffix("_log__")].values[0, d])) for v in model.value_vars}
        np.testing.assert_allclose(float(trace["sample_stats"]["lp"].values[0, d]), logp(point), rtol=1e-8)
    # the member weights use the form's member factors
    scale = settings.member_scale
    np.testing.assert_allclose(
        post["logL_scaled"].values, scale[0] * post["logL_thick"].values + scale[1] * post["logL_vel"].values, rtol=1e-12
    )


def test_effective_form_uses_the_two_n_eff() -> None:
    prepared, corr = _correlations()
    settings = FORMS["effective"]
    for s in (THICK, VEL):
        assert settings.density_scale[s] == pytest.approx(corr[s].n_eff_scale / N_POINTS[s])
        assert settings.member_scale[s] == pytest.approx(corr[s].n_eff_location / N_POINTS[s])
        assert corr[s].n_eff_location < corr[s].n_eff_scale < N_POINTS[s]  # correlation removes evidence
    # a longer correlation length leaves fewer effective points
    longer = _correlations(8.0)[1]
    assert all(longer[s].n_eff_location < corr[s].n_eff_location for s in (THICK, VEL))
    theta = {p: np.array([1.0, 2.0]) for p in ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")}
    out = member_logliks(PREPARED, theta, settings)
    np.testing.assert_allclose(
        out["logL_scaled"], settings.member_scale[0] * out["logL_thick"] + settings.member_scale[1] * out["logL_vel"]
    )


@pytest.mark.parametrize(("shape", "density", "rel"), [((3, 12, 17), 0.4, 1e-9), ((3, 150, 220), 0.004, 1e-5)])
def test_n_eff_is_the_brute_force_pair_sum(shape, density, rel) -> None:
    """Dense masks and sparse ones (a subsample of a large grid) give the brute-force N²/ΣΣρ,
    N²/ΣΣρ² (ρ < 1e-6 beyond the reach is left out: the sparse case's looser tolerance)."""
    rng = np.random.default_rng(1)
    masks = rng.random(shape) < density
    fit = CorrelationFit(
        model="exponential", length_cells=3.0, length=None, cell_size=None, sill=1.0, nugget=0.0, nu=1.5,
        n_points=0, n_eff_scale=0.0, n_eff_location=0.0,
    )  # fmt: skip
    s1 = s2 = 0.0
    for mask in masks:
        r, c = np.nonzero(mask)
        d = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])
        rho = fit.correlation(d)
        s1, s2 = s1 + rho.sum(), s2 + (rho**2).sum()
    n = masks.sum()
    scale, loc = _neff(fit, masks)
    assert scale == pytest.approx(n * n / s2, rel=rel)
    assert loc == pytest.approx(n * n / s1, rel=rel)
    assert loc < scale < n  # and the correlation is felt


def test_config_default_keeps_old_hashes_and_rejects_bad_forms(tmp_path: Path) -> None:
    body = "observations: {thickness: {dir: a}, velocity: {dir: b}}\nensemble: {dir: c}\n"
    (tmp_path / "plain.yaml").write_text(body)
    (tmp_path / "explicit.yaml").write_text(body + "likelihood: {form: effective}\n")
    (tmp_path / "other.yaml").write_text(body + "likelihood: {form: effective, correlation_length: 4}\n")
    (tmp_path / "tempered.yaml").write_text(body + "likelihood: {form: tempered}\n")
    plain = load_config(tmp_path / "plain.yaml")
    assert plain.likelihood == Likelihood() and plain.likelihood.form == "effective"
    assert config_hash(plain) == config_hash(load_config(tmp_path / "explicit.yaml"))
    assert config_hash(plain) != config_hash(load_config(tmp_path / "other.yaml"))
    assert config_hash(plain) != config_hash(load_config(tmp_path / "tempered.yaml"))
    # the default section is hashed under compat: fixed (its form changed) and dropped under
    # compat: prototype (always tempered), whose configs keep the hash they had before it
    fixed = json.loads(json.dumps(plain.model_dump(mode="json", exclude={"cache"})))
    assert fixed["likelihood"]["form"] == "effective"
    (tmp_path / "proto.yaml").write_text("compat: prototype\n" + body)
    proto = load_config(tmp_path / "proto.yaml")
    data = proto.model_dump(mode="json", exclude={"cache", "memory"})
    for section in (data["observations"]["thickness"], data["observations"]["velocity"], data["ensemble"], data["projection"]):
        section.pop("storage_options", None)
    for stream in ("thickness", "velocity"):  # the products' keys at their defaults (issue 35)
        for key in ("product", "crs", "fill_value", "group"):
            data["observations"][stream].pop(key, None)
    data["observations"].pop("regrid", None)
    data["inference"].pop("mass_matrix")
    data.pop("likelihood")
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert config_hash(proto) == hashlib.sha256(blob.encode()).hexdigest()
    (tmp_path / "bad.yaml").write_text(body + "likelihood: {form: wishful}\n")
    with pytest.raises(InputError, match="likelihood.form"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "neg.yaml").write_text(body + "likelihood: {correlation_length: -2}\n")
    with pytest.raises(InputError, match="likelihood.correlation_length"):
        load_config(tmp_path / "neg.yaml")


def test_prototype_compat_always_samples_tempered(tmp_path: Path) -> None:
    from fusion.inference.likelihood import effective_form

    body = "observations: {thickness: {dir: a}, velocity: {dir: b}}\nensemble: {dir: c}\nlikelihood: {form: independent}\n"
    (tmp_path / "p.yaml").write_text("compat: prototype\n" + body)
    (tmp_path / "f.yaml").write_text(body)
    assert effective_form(load_config(tmp_path / "p.yaml")) == "tempered"
    assert effective_form(load_config(tmp_path / "f.yaml")) == "independent"
    (tmp_path / "d.yaml").write_text(body.replace("likelihood: {form: independent}\n", ""))
    assert effective_form(load_config(tmp_path / "d.yaml")) == "effective"  # the default under compat: fixed


def test_effective_without_a_layout_is_one_clear_error() -> None:
    from fusion.pipeline import _likelihood_settings

    cfg = Config.model_validate(
        {"observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}}, "ensemble": {"dir": "."},
         "likelihood": {"form": "effective"}}
    )  # fmt: skip
    with pytest.raises(InputError, match="likelihood.form effective"):
        _likelihood_settings(cfg, PREPARED, with_projection=False)


def test_stream_correlation_is_the_fitted_gstools_model() -> None:
    """`StreamCorrelation.correlation` (NumPy, for fusion run's main process) is `CorrelationFit.correlation` (GSTools)."""
    fit = CorrelationFit(
        model="exponential", length_cells=3.7, length=None, cell_size=None, sill=1.2, nugget=0.3, nu=1.5,
        n_points=0, n_eff_scale=0.0, n_eff_location=0.0,
    )  # fmt: skip
    corr = _correlations()[1][THICK]
    corr = replace(corr, length_cells=3.7, sill=1.2, nugget=0.3)
    d = np.r_[0.0, np.hypot(*np.divmod(np.arange(1, 200), 13)) / 2.0]
    np.testing.assert_allclose(corr.correlation(d), fit.correlation(d), rtol=1e-13, atol=0)


def test_one_pass_of_the_points_statistics_packs_every_form_as_its_own() -> None:
    """`sensitivity` takes the prepared points' statistics once and gives each form its weights
    (`StreamBlock.with_settings`): the fused density's buffer is the one of fitting that form alone."""
    from fusion.inference.noise import stream_blocks

    statistics = stream_blocks(PREPARED, BASE)
    settings = {"tempered": BASE, **FORMS, "inflated": replace(BASE, velocity_inflation=2.0)}
    packed = set()
    for name, s in settings.items():
        shared = FusedDensity.from_stream_blocks([b.with_settings(s) for b in statistics]).packed()
        assert shared.tobytes() == FusedDensity(PREPARED, s).packed().tobytes(), name
        packed.add(shared.tobytes())
    assert len(packed) == len(settings)  # four different densities, each reproduced


def test_sensitivity_with_the_runs_own_block_means_is_the_same_table() -> None:
    """`formed={"blocks": ...}` (the run's `blocks` points, formed once) gives the table bit for bit,
    and it is those points that are fitted (other points there, another `blocks` entry)."""
    from fusion.inference.likelihood import form_inputs, sensitivity

    prepared, correlations = _correlations(2.0)
    sle = np.linspace(50.0, 80.0, prepared.n_members)
    args = (prepared, BASE, correlations, sle, (0.05, 0.5, 0.95))
    alone = sensitivity(*args, min_valid=0.5, draws=50)
    _, blocks, _ = form_inputs(BASE, "blocks", prepared, correlations, 0.5)
    shared = sensitivity(*args, min_valid=0.5, draws=50, formed={"blocks": blocks})
    assert set(alone["forms"]) == {"tempered", "independent", "effective", "blocks"}
    assert all("weights" in entry for entry in alone["forms"].values()), alone
    assert json.dumps(shared, sort_keys=True) == json.dumps(alone, sort_keys=True)
    moved = sensitivity(*args, min_valid=0.5, draws=50, formed={"blocks": replace(blocks, y_obs=blocks.y_obs + 1)})
    assert moved["forms"]["blocks"] != alone["forms"]["blocks"]
    assert {f: moved["forms"][f] for f in FORMS} == {f: alone["forms"][f] for f in FORMS}
