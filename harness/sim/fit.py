"""One NUTS fit of FUSION's density on a replicate's data, and its per-fit convergence figures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion.data.prepared import Prepared
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS
from fusion.inference.sampling import arrow_draws, fused_nutpie_model, run_nutpie
from harness.sim.variants import CORRECT, ModelVariant

#: how every simulation fit samples, for the provenance of the checks built on them
SAMPLER = "nutpie on FUSION's FusedDensity as `fusion run` (callbacks built once, data swapped)"


@dataclass(frozen=True)
class Fit:
    """Post-warmup draws (chains, draws, 4) and the sampler statistics the convergence gate needs."""

    draws: np.ndarray
    diverging: np.ndarray  # (chains, draws) bool
    energy: np.ndarray  # (chains, draws)
    n_steps: np.ndarray  # (chains, draws)
    seconds: float

    @property
    def flat(self) -> np.ndarray:
        return self.draws.reshape(-1, self.draws.shape[-1])


def fit(
    prepared: Prepared,
    settings: NoiseSettings,
    *,
    variant: ModelVariant = CORRECT,
    draws: int = 250,
    tune: int = 250,
    chains: int = 2,
    cores: int = 1,
    seed: int = 0,
    target_accept: float = 0.8,
    adaptation: str = "diag",
) -> Fit:
    """One NUTS fit of `variant`'s `FusedDensity(prepared, settings)` through `fusion run`'s nutpie
    path (`fused_nutpie_model`, `run_nutpie`, `arrow_draws`): callbacks built once per process,
    nutpie's raw trace read directly (no ArviZ conversion)."""
    start = time.perf_counter()
    raw = run_nutpie(
        fused_nutpie_model(variant.density(prepared, settings)),
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        target_accept=target_accept,
        adaptation=adaptation,
        raw=True,
    )
    posterior, stats = arrow_draws(raw)
    return Fit(
        draws=np.stack([posterior[p] for p in PARAMS], axis=-1),
        diverging=stats["diverging"].astype(bool),
        energy=stats["energy"],
        n_steps=stats["n_steps"],
        seconds=time.perf_counter() - start,
    )


#: What a replicate stores of `diagnose_draws`: enough for `fusion.diagnostics.gate` and the tables.
_KEPT = (
    "r_hat_max", "r_hat_max_at", "ess_bulk_min", "ess_bulk_min_at", "ess_tail_min", "ess_tail_min_at",
    "ess_bulk_per_chain_min", "ess_tail_per_chain_min", "divergences", "transitions", "e_bfmi_min",
    "e_bfmi_min_chain", "chains",
)


def convergence(quantities: np.ndarray, result: Fit, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The per-fit convergence figures of (Q, chains, draws) quantities, in the vocabulary of
    `fusion.diagnostics` (the release gate's), plus mean leapfrog steps and each bulk ESS."""
    from fusion.diagnostics import diagnose_draws

    names = list(names) if names is not None else [f"q{i}" for i in range(len(quantities))]
    figures = diagnose_draws(dict(zip(names, quantities)), result.diverging, result.energy)
    return {
        **{k: figures[k] for k in _KEPT},
        "mean_steps": float(result.n_steps.mean()),
        "ess_bulk": [float(figures["per_variable"][n]["ess_bulk"][0]) for n in names],
    }
