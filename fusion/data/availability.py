"""Which observation points survived the masks, where, and why the others did not.

Every number FUSION reports rests on the points `prepare` kept. `prepare` counts them while it
masks (no second pass over the data): per stream and interval, the points on the grid, those
dropped by each mask rule — each point counted once, under the FIRST rule in `RULES` that
drops it — those kept (before the subsample; under `compat: prototype` the totals are the
prototype's `n_dhdt`/`n_vel` before subsampling) and those the subsample chose. A velocity
point is one grid cell and one component (x or y), so a velocity interval holds two points
per cell, as the prototype's layout does. Intervals with nothing kept are named as skipped,
with the reason. The record is the `"availability"` entry of `run_metadata.json`; the
per-cell kept counts (`maps`) are drawn as `availability.png` (`fusion.figures.availability`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RULES", "RULE_LABELS", "STREAM_NAMES", "Availability", "availability_record"]

RULES: tuple[str, ...] = (
    "observation_missing",
    "uncertainty_missing",
    "uncertainty_over_threshold",
    "speed_missing",
    "member_nonfinite",
)
RULE_LABELS: dict[str, str] = {
    "observation_missing": "observation missing",
    "uncertainty_missing": "uncertainty missing",
    "uncertainty_over_threshold": "uncertainty over threshold",
    "speed_missing": "speed missing",
    "member_nonfinite": "a member not finite",
}
STREAM_NAMES: tuple[str, ...] = ("thick", "vel")  # index = the stream label (THICK 0, VEL 1)


@dataclass(frozen=True)
class Availability:
    """The availability record (JSON-ready) and, when known, kept points per grid cell per stream."""

    record: dict[str, Any]
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # stream -> (ny, nx) kept counts


def availability_record(
    *,
    block_stream: Sequence[int],
    block_interval: Sequence[int],
    intervals: Sequence[tuple[float, float]],
    pixels_per_block: int,
    kept_after: np.ndarray,
    subsampled: np.ndarray,
    notes: Sequence[str | None],
    emptied_by: dict[int, str],
) -> dict[str, Any]:
    """Assemble the record from per-block counts taken while masking.

    `kept_after[k, b]` is how many points of block `b` survive rules `RULES[:k + 1]`, so the
    points dropped under rule k are `kept_after[k - 1] - kept_after[k]` (the grid before the
    first). `subsampled[b]` counts the chosen points; `notes[b]` says why a block's observed
    rate is all missing (snapping); `emptied_by[b]` names the member after which it was empty.
    """
    kept_after = np.asarray(kept_after, dtype=np.int64)
    before = np.vstack([np.full(kept_after.shape[1], pixels_per_block, dtype=np.int64), kept_after[:-1]])
    dropped = before - kept_after  # (rules, blocks)
    streams: dict[str, Any] = {}
    for s, name in enumerate(STREAM_NAMES):
        rows = []
        for i, (start, end) in enumerate(intervals):
            bl = [b for b in range(len(block_stream)) if block_stream[b] == s and block_interval[b] == i]
            if not bl:
                continue
            drop = {r: int(dropped[k, bl].sum()) for k, r in enumerate(RULES)}
            kept = int(kept_after[-1, bl].sum())
            rows.append(
                {
                    "start": float(start),
                    "end": float(end),
                    "pixels": pixels_per_block * len(bl),
                    "dropped": drop,
                    "kept": kept,
                    "subsampled": int(np.asarray(subsampled)[bl].sum()),
                    "skipped": None
                    if kept
                    else _skip_reason(drop, [notes[b] for b in bl], [emptied_by.get(b) for b in bl]),
                }
            )
        streams[name] = {
            "pixels": sum(r["pixels"] for r in rows),
            "dropped": {r: sum(row["dropped"][r] for row in rows) for r in RULES},
            "kept": sum(r["kept"] for r in rows),
            "subsampled": sum(r["subsampled"] for r in rows),
            "intervals": rows,
        }
    return {"rule_order": list(RULES), "streams": streams}


def _skip_reason(dropped: dict[str, int], notes: list[str | None], emptied: list[str | None]) -> str:
    """Why nothing is left: the snapping note if the observation was never there, else the rules that emptied it."""
    found = [n for n in dict.fromkeys(notes) if n]
    if found:
        return "; ".join(found)
    parts = [f"{RULE_LABELS[r]} {n}" for r, n in dropped.items() if n]
    reason = "nothing kept: " + ", ".join(parts) if parts else "nothing on the grid"
    members = [m for m in dict.fromkeys(emptied) if m]
    if members:
        reason += f" (emptied by member {', '.join(members)})"
    return reason
