"""Ensembles without a true member, for the out-of-sample evidence (issue 34).

A real ensemble's members differ from reality, and from each other, by their parameters and by
structural errors of their own. `structural_ensemble` builds one: FUSION's synthetic generator
(`fusion.data.synthetic`, members drawn from its parameter ranges, each member's SLE from the
same parameters) prepared as `fusion run` prepares it, then every member's modelled rates
multiplied by (1 + b·g_m(x)), g_m a smooth unit Gaussian field of its own (GSTools, exponential,
`bias_length` cells): a bias the member's parameters do not explain and its SLE does not share.
The perfect-model test then holds each member out in turn (`harness.sim.perfect_model`), with
observation errors independent or correlated over `noise_length` cells.

`evidence` scores every likelihood form and the calibrated default on such designs: per held-out
member, the correlation is estimated from the pseudo-observations as `fusion run` does, each form
is fitted by Laplace (its mode θ̂), the member weights are the form's at θ̂ (λ = 1), and the
calibrated default is `effective` with the member temperature its inner perfect-model test
chooses on the M − 1 members at that θ̂ (`fusion.inference.calibration`): the run's procedure with
the posterior mean replaced by the mode, so the table costs seconds per design. The tests hold
`fusion.pipeline.run` itself to the same verdicts (tests/harness/test_perfect_model.py).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fusion.data.prepared import THICK, VEL

__all__ = ["EnsembleDesign", "structural_ensemble", "design_noise", "evidence", "EVIDENCE_FORMS"]

#: the evidence's rows: every form at λ = 1, and the calibrated default
EVIDENCE_FORMS: tuple[str, ...] = ("tempered", "independent", "effective", "blocks", "calibrated")

_CONFIG = """\
compat: fixed
observations:
  thickness: {dir: obs/elev}
  velocity: {dir: obs/vel}
ensemble: {dir: ensemble}
inference: {method: laplace, seed: 42}
projection: {historical_dir: projection/historical, forward_dir: projection/forward}
"""


@dataclass(frozen=True)
class EnsembleDesign:
    """A synthetic ensemble of `members` runs on an `ny` × `nx` grid, structural biases of sd
    `bias` (relative) over `bias_length` cells, observation errors correlated over `noise_length`
    cells (0: independent)."""

    seed: int = 0
    members: int = 27
    ny: int = 40
    nx: int = 50
    bias: float = 0.05
    bias_length: float = 15.0
    noise_length: float = 0.0
    years: tuple[int, int] = (2015, 2020)

    @property
    def label(self) -> str:
        errors = "independent" if self.noise_length == 0 else f"ℓ = {self.noise_length:g}"
        return f"{self.members} members, seed {self.seed}, {errors}"


@functools.lru_cache(maxsize=4)
def structural_ensemble(design: EnsembleDesign) -> tuple[Any, Any, Any]:
    """(cfg, prepared with the members' structural biases, every member's SLE) of `design`."""
    import gstools as gs

    from fusion.config import load_config
    from fusion.data.load import load_data
    from fusion.data.prepare import prepare
    from fusion.data.synthetic import SyntheticSpec, generate
    from fusion.projection import member_sle

    spec = SyntheticSpec(
        ny=design.ny, nx=design.nx, members=design.members, years=design.years, seed=design.seed + 1,
        fill_member=None, member_nans=False,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fusion-ensemble-") as tmp:
        root = Path(tmp)
        generate(root, spec)
        (root / "config.yaml").write_text(_CONFIG)
        cfg = load_config(root / "config.yaml")
        prepared = prepare(cfg, load_data(cfg), progress=False)
        sle = member_sle(cfg, prepared.member_ids).load()
    cfg = cfg.model_copy(update={"source": None})
    ny, nx = prepared.layout.grid_shape
    rows, cols = np.divmod(prepared.layout.pixel, nx)
    model = gs.Exponential(dim=2, var=1.0, len_scale=design.bias_length)
    F = np.array(prepared.F, dtype=np.float64, copy=True)
    for m in range(prepared.n_members):
        field = gs.SRF(model, seed=design.seed * 10_007 + m).structured([np.arange(ny), np.arange(nx)])
        F[m] *= 1.0 + design.bias * field[rows, cols]
    return cfg, replace(prepared, F=F), sle


def design_noise(design: EnsembleDesign, prepared: Any, k: int) -> np.ndarray:
    """The pseudo-observation errors of held-out member k (the design's correlation, every stream)."""
    from harness.sim.perfect_model import pseudo_noise

    lengths = {} if design.noise_length == 0 else {s: (design.noise_length, 1.0) for s in (THICK, VEL)}
    return pseudo_noise(prepared, lengths, seed=design.seed * 100_003 + k)


def _form_weights(
    cfg: Any, pseudo: Any, correlations: Any, form: str, sle: np.ndarray
) -> tuple[np.ndarray, tuple[float, float]]:
    """(weights over the pseudo-data's members, the stream temperatures) of one evidence row."""
    from dataclasses import replace as with_

    from fusion.inference.calibration import calibrate, member_contrasts, noise_draws
    from fusion.inference.fused_density import FusedDensity
    from fusion.inference.laplace import _CallbackDensity, fit_laplace
    from fusion.inference.likelihood import form_inputs
    from fusion.inference.noise import NoiseSettings
    from fusion.inference.posterior import member_logliks
    from fusion.inference.parameters import PARAMS

    fitted = "effective" if form == "calibrated" else form
    settings, points, _ = form_inputs(NoiseSettings.from_config(cfg), fitted, pseudo, correlations)
    theta = np.exp(fit_laplace(_CallbackDensity(FusedDensity(points, settings))).mode)
    temperature = (1.0, 1.0)
    if form == "calibrated":
        contrasts = member_contrasts(points, theta, settings, seed=cfg.inference.seed, draws=noise_draws(points.n_members))
        temperature = calibrate(contrasts, sle, points.member_ids, cfg.projection.lower_q, cfg.projection.upper_q).temperature
        settings = with_(settings, member_temperature=temperature)
    w = member_logliks(points, {p: theta[j : j + 1] for j, p in enumerate(PARAMS)}, settings)["w"][0]
    return w, temperature


def evidence(design: EnsembleDesign, forms: tuple[str, ...] = EVIDENCE_FORMS) -> dict[str, dict[str, float]]:
    """Per form: held-out coverage (and the unweighted ensemble's), relative width, CRPS skill,
    members in play and the median temperature, over every member of `design` held out."""
    from fusion.inference.calibration import crps
    from fusion.inference.likelihood import stream_correlations
    from fusion.projection import weighted_quantile

    cfg, prepared, sle_da = structural_ensemble(design)
    sle_all = np.asarray(sle_da.values, dtype=np.float64)
    lq, uq = cfg.projection.lower_q, cfg.projection.upper_q
    rows: dict[str, list[tuple[float, ...]]] = {f: [] for f in forms}
    base: list[tuple[float, ...]] = []
    for k in range(prepared.n_members):
        keep = [j for j in range(prepared.n_members) if j != k]
        y = (np.asarray(prepared.F[k]) + design_noise(design, prepared, k)).astype(prepared.y_obs.dtype)
        pseudo = replace(prepared, y_obs=y, F=np.ascontiguousarray(prepared.F[keep]),
                         member_ids=tuple(prepared.member_ids[j] for j in keep))  # fmt: skip
        sle, truth = sle_all[keep], sle_all[k]
        correlations = stream_correlations(pseudo, "estimate", seed=cfg.inference.seed)
        flat = np.full(len(keep), 1.0 / len(keep))
        lo0, hi0 = weighted_quantile(sle, flat, [lq, uq])
        base.append((lo0 <= truth <= hi0, hi0 - lo0, float(crps(sle, flat[None], np.array([truth]))[0])))
        for form in forms:
            w, lam = _form_weights(cfg, pseudo, correlations, form, sle)
            lo, hi = weighted_quantile(sle, w, [lq, uq])
            rows[form].append((lo <= truth <= hi, hi - lo, float(crps(sle, w[None], np.array([truth]))[0]),
                               1.0 / float(np.sum(w * w)), *lam))  # fmt: skip
    b = np.array(base, dtype=float)
    out = {}
    for form, r in rows.items():
        a = np.array(r, dtype=float)
        out[form] = {
            "inside": int(a[:, 0].sum()), "inside_unweighted": int(b[:, 0].sum()), "n_members": len(r),
            "relative_width": float(a[:, 1].mean() / b[:, 1].mean()),
            "crps": float(a[:, 2].mean()), "crps_unweighted": float(b[:, 2].mean()),
            "crps_skill": float(1.0 - a[:, 2].mean() / b[:, 2].mean()),
            "members_in_play": float(a[:, 3].mean()),
            "temperature_median": {"thick": float(np.median(a[:, 4])), "vel": float(np.median(a[:, 5]))},
        }  # fmt: skip
    return out
