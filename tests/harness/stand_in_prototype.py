"""A stand-in for the research prototype, written for the `harness capture` tests.

It exposes the names `harness capture` drives — the three path constants as local strings of
`load_and_prepare_data()`, and the six functions — and returns prototype-shaped results on a
tiny dataset in the prototype's file layout. Its arithmetic is its own (thickness change
between the first and last step), not the prototype's; but it samples with PyMC's `pm.sample`
as the prototype does, so its trace carries every group the real one carries (`posterior`,
`sample_stats`, ...), and a capture that drops one is seen. Environment knobs let
a test plant faults: STAND_IN_FAIL=<function name> raises there, STAND_IN_SLEEP=<s> stalls the
load, STAND_IN_ROUND=1 writes the weights table rounded.
"""

import csv
import glob
import os
import time
from pathlib import Path

import numpy as np
import xarray as xr


def _planted(name):
    if os.environ.get("STAND_IN_FAIL") == name:
        raise RuntimeError(f"stand-in failure planted in {name}")


def load_and_prepare_data():
    OBS_THICKNESS_DIR = "/placeholder/obs/elev"
    OBS_VELOCITY_DIR = "/placeholder/obs/vel"
    MODEL_DIR = "/placeholder/ensemble"
    MODEL_PATTERN = "*_regridded.nc"
    OBS_THICKNESS_VAR = "height"
    _planted("load_and_prepare_data")
    time.sleep(float(os.environ.get("STAND_IN_SLEEP", "0")))
    elev = sorted(Path(OBS_THICKNESS_DIR).glob("*.nc"))
    vel = sorted(Path(OBS_VELOCITY_DIR).glob("*.nc"))
    models = sorted(glob.glob(MODEL_DIR + "/" + MODEL_PATTERN))
    print(f"stand-in: {len(elev)} elevation, {len(vel)} velocity, {len(models)} model files")
    if not elev or not models:
        raise ValueError(f"No input files found under {OBS_THICKNESS_DIR} or {MODEL_DIR}")
    with xr.open_dataset(elev[0]) as first, xr.open_dataset(elev[-1]) as last:
        obs = (np.squeeze(last[OBS_THICKNESS_VAR].values) - np.squeeze(first[OBS_THICKNESS_VAR].values)).astype("float32")
    changes = []
    for path in models:
        with xr.open_dataset(path, decode_times=False) as ds:
            h = ds["h"].values.astype("float32")
        changes.append(h[-1] - h[0])
    return {"obs": obs, "models": np.stack(changes), "M": len(models)}


def prepare_for_inference(raw):
    _planted("prepare_for_inference")
    y = raw["obs"].reshape(-1)
    F = raw["models"].reshape(raw["M"], -1)
    keep = np.isfinite(y) & np.all(np.isfinite(F), axis=0)
    n = int(keep.sum())
    return {
        "y_obs": y[keep],
        "sigma_obs": np.full(n, 0.5, dtype="float32"),
        "F": F[:, keep].astype(float),
        "speed": np.zeros(n),
        "M": raw["M"],
        "n_obs": n,
        "n_dhdt": n,
        "n_vel": 0,
    }


def build_model_proposal(data):
    """The prototype's model shape, small: four HalfNormal noise scalars and a tempered potential."""
    _planted("build_model_proposal")
    import pymc as pm

    y = data["y_obs"].astype(float)
    F = data["F"].astype(float)
    sig_obs = data["sigma_obs"].astype(float)
    with pm.Model() as model:
        sigma_base_thick = pm.HalfNormal("sigma_base_thick", sigma=0.5)
        pm.HalfNormal("sigma_base_vel", sigma=0.6)
        beta_thick = pm.HalfNormal("beta_thick", sigma=0.1)
        pm.HalfNormal("beta_vel", sigma=0.1)
        sigma_tot = pm.math.sqrt(sig_obs**2 + sigma_base_thick**2 * (1.0 + beta_thick * data["speed"]))
        loglik = pm.math.stack(
            [pm.logp(pm.Normal.dist(mu=0.0, sigma=sigma_tot), y - F[m]).sum() for m in range(F.shape[0])]
        ) / max(data["n_obs"], 1)
        pm.Potential("joint_loglik", loglik.sum())
        w = pm.math.exp(loglik - pm.math.max(loglik))
        pm.Deterministic("w", w / pm.math.sum(w))
    return model


def run_mcmc(model, draws=500, tune=1000, chains=4, target_accept=0.95):
    """`pm.sample` as the prototype calls it, so the trace is whatever PyMC returns (every group)."""
    _planted("run_mcmc")
    import pymc as pm

    with model:
        return pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=1,
            target_accept=target_accept,
            random_seed=draws + 7 * chains,
            progressbar=False,
            return_inferencedata=True,
        )


def compute_model_weights(trace, data):
    _planted("compute_model_weights")
    scale = float(trace.posterior["sigma_base_thick"].mean(dim=("chain", "draw")).values)
    sigma2 = data["sigma_obs"].astype(float) ** 2 + scale**2
    loglik = np.array([-0.5 * np.sum((data["y_obs"] - f) ** 2 / sigma2) for f in data["F"]]) / max(data["n_obs"], 1)
    w = np.exp(loglik - loglik.max())
    return w / w.sum(), loglik


def save_model_weights(weights, loglik):
    rounded = os.environ.get("STAND_IN_ROUND") == "1"
    fmt = (lambda v: f"{v:.6g}") if rounded else repr
    rows = sorted(range(len(weights)), key=lambda i: -weights[i])
    with open("model_weights_table.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["model_id", "weight", "log_likelihood"])
        for i in rows:
            out.writerow([f"run{i + 1}", fmt(float(weights[i])), fmt(float(loglik[i]))])
    print("Saved model_weights_table.csv")
