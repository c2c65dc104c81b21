"""One NUTS fit of a compiled variant on swapped data, and its per-fit convergence figures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusion.inference.model import PARAMS
from harness.sim.variants import CORRECT, ModelVariant, _compiled


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
    data: dict[str, np.ndarray],
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
    """One NUTS fit of the compiled graph on new data: no recompilation, no ArviZ conversion."""
    import nutpie

    start = time.perf_counter()
    compiled = _compiled(variant)
    known = {var.name for var in compiled.shared_var_keys}  # a planted bug may leave an input unused
    model = compiled.with_data(**{k: v for k, v in data.items() if k in known})
    raw = nutpie.sample(
        model,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        progress_bar=False,
        return_raw_trace=True,
        save_warmup=False,
        target_accept=target_accept,
        adaptation=adaptation,
    )
    draw_batches, stat_batches = raw.get_arrow_trace()
    pos, div, energy, steps = [], [], [], []
    for d, s in zip(draw_batches, stat_batches):
        keep = ~s.column("tuning").to_numpy().astype(bool)
        pos.append(np.stack([np.asarray(d.column(p).to_numpy())[keep] for p in PARAMS], axis=-1))
        div.append(np.asarray(s.column("diverging").to_numpy()).astype(bool)[keep])
        energy.append(np.asarray(s.column("energy").to_numpy())[keep])
        steps.append(np.asarray(s.column("n_steps").to_numpy())[keep])
    n = min(len(x) for x in pos)
    return Fit(
        draws=np.stack([x[:n] for x in pos]),
        diverging=np.stack([x[:n] for x in div]),
        energy=np.stack([x[:n] for x in energy]),
        n_steps=np.stack([x[:n] for x in steps]),
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
