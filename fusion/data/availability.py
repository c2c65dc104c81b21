"""Which observation points survived the masks, where, and why the others did not.

Every number FUSION reports rests on the points `prepare` kept. `prepare` counts them while it
masks (no second pass over the data): per stream and interval, the points on the grid, those
dropped by each mask rule — each point counted once, under the FIRST rule in `RULES` that
drops it — those kept (before the subsample; under `compat: prototype` the totals are the
prototype's `n_dhdt`/`n_vel` before subsampling) and those the subsample chose. A velocity
point is one grid cell and one component (x or y), so a velocity interval holds two points
per cell, as the prototype's layout does. Intervals with nothing kept are named as skipped,
with the reason. The record is the `"availability"` entry of `run_metadata.json`; the
per-cell kept counts (`maps`) are drawn by `plot_availability` as `availability.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RULES", "RULE_LABELS", "STREAM_NAMES", "Availability", "availability_record", "plot_availability"]

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


def plot_availability(availability: Availability | None, path: str | Path | None = None) -> Any:
    """Kept points per grid cell for each stream, and per interval the kept and dropped counts by rule.

    Object-oriented Matplotlib (no pyplot state); written atomically with `fusion.io.write_png`.
    """
    from matplotlib.figure import Figure

    from fusion.io import write_png
    from fusion.plot_parts import MAP_TICKS, colorbar_beside, few_ticks

    # fixed margins, no layout engine: a constrained layout lays out every tick label several
    # times per save (measured: 0.10 s of this figure's 0.37 s); few ticks and colour bars beside
    # the maps (fusion.plot_parts)
    fig = Figure(figsize=(12, 7.5))
    if availability is None:
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "availability not recorded\n(prepared arrays were loaded from a file)", ha="center")
    else:
        rec = availability.record["streams"]
        grid_spec = fig.add_gridspec(
            2, len(STREAM_NAMES), left=0.055, right=0.97, bottom=0.1, top=0.95, hspace=0.32, wspace=0.12
        )
        titles = {
            "thick": "thickness: intervals kept per cell",
            "vel": "velocity: interval × component kept per cell",
        }
        for column, name in enumerate(STREAM_NAMES):
            ax = fig.add_subplot(grid_spec[0, column])
            grid = availability.maps.get(name)
            if grid is None:
                ax.axis("off")
                continue
            n_max = max(1, len(rec[name]["intervals"]) * (2 if name == "vel" else 1))
            im = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0, vmax=n_max, interpolation="nearest")
            ax.set_title(
                f"{titles[name]} (kept {rec[name]['kept']:,} of {rec[name]['pixels']:,})", fontsize=9
            )
            ax.set_xlabel("x (cell)")
            ax.set_ylabel("y (cell)")
            few_ticks(ax, MAP_TICKS)
            colorbar_beside(fig, im, ax, height=0.85)
        bars = fig.add_subplot(grid_spec[1, :])
        bars.set_position([0.065, 0.1, 0.59, 0.34])  # the legend takes the right-hand third
        _bar_chart(bars, rec)
    if path is not None:
        write_png(path, fig)
    return fig


def _bar_chart(ax: Any, streams: dict[str, Any]) -> None:
    """Stacked bars per interval and stream: kept (subsampled darker), then each rule's drops."""
    colours = ["tab:grey", "tab:orange", "tab:red", "tab:purple", "tab:brown"]
    width = 0.4
    labels = []
    for s, name in enumerate(STREAM_NAMES):
        rows = streams[name]["intervals"]
        xs = np.arange(len(rows)) + (s - 0.5) * width
        kept = np.array([r["kept"] for r in rows], dtype=float)
        sub = np.array([r["subsampled"] for r in rows], dtype=float)
        colour = "tab:green" if s == 0 else "tab:blue"
        ax.bar(xs, sub, width, facecolor=colour, label=f"{name}: subsampled")
        ax.bar(xs, kept - sub, width, bottom=sub, facecolor=colour, alpha=0.45, label=f"{name}: kept, not subsampled")
        bottom = kept.copy()
        for k, rule in enumerate(RULES):
            vals = np.array([r["dropped"][rule] for r in rows], dtype=float)
            if vals.any():
                ax.bar(xs, vals, width, bottom=bottom, facecolor=colours[k], hatch="//" if s else None,
                       label=f"{name}: {RULE_LABELS[rule]}")  # fmt: skip
                bottom += vals
        for x, r in zip(xs, rows):
            if r["skipped"]:
                ax.text(x, r["pixels"], "skipped", rotation=90, ha="center", va="bottom", fontsize=7)
        if not labels:
            labels = [f"{r['start']:.2f}\n–{r['end']:.2f}" for r in rows]
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_xlabel("model interval (left bar thickness, right bar velocity)")
    ax.set_ylabel("points")
    ax.set_title(
        "per interval: kept and subsampled points, and the first rule that dropped each other point",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
