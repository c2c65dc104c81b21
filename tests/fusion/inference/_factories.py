"""Small synthetic `Prepared` arrays for inference tests: known shapes, duplicate groups, both streams."""

from __future__ import annotations

import numpy as np

from fusion.data.prepared import THICK, VEL, Prepared, positional_stream


def make_prepared(
    n: int = 300, m: int = 4, seed: int = 0, *, compat: str = "fixed", thick_fraction: float = 0.4
) -> Prepared:
    """Fixed: shuffled true labels, thickness speed 0 and a few repeated thickness σ (so groups merge).
    Prototype: positional labels over a shuffled mix, so some 'thickness' points have a speed."""
    rng = np.random.default_rng(seed)
    true = np.where(rng.random(n) < thick_fraction, THICK, VEL).astype(np.int8)
    speed = np.where(true == VEL, rng.gamma(2.0, 150.0, n), 0.0).astype(np.float64)
    thick_sigma = rng.choice([0.5, 2.0, 20.0], n)
    sigma = np.where(true == THICK, thick_sigma, rng.uniform(0.5, 9.0, n)).astype(np.float32)
    y = rng.normal(0.0, 3.0, n).astype(np.float32)
    F = y[None, :] + rng.normal(0.0, 1.0, (m, n)) * (1.0 + np.arange(m))[:, None]
    n_dhdt = int((true == THICK).sum())
    stream = true if compat == "fixed" else positional_stream(n, n_dhdt)
    return Prepared(
        y_obs=y, sigma_obs=sigma, F=F.astype(np.float64), speed=speed, n_dhdt=n_dhdt, n_vel=n - n_dhdt,
        member_ids=tuple(f"run{i + 1}" for i in range(m)), stream=stream, compat=compat,
    )
