"""Rank statistics shared by SBC's uniformity test and its plots: one binning of normalised ranks."""

from __future__ import annotations

import numpy as np

__all__ = ["rank_counts"]


def rank_counts(pit: np.ndarray, bins: int) -> np.ndarray:
    """Counts of normalised ranks (in [0, 1]) in `bins` equal bins; a rank of exactly 1 goes in the last."""
    return np.bincount(np.minimum((np.asarray(pit) * bins).astype(int), bins - 1), minlength=bins)
