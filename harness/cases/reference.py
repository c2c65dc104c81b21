"""Reading what the prototype left in a case's `reference/` folder, without running anything from it.

Arrays are loaded without pickle and NetCDF through xarray; a file of the wrong kind, shape or
dtype, or missing a variable, is an `InputError` naming the file (one line, exit 2 from the CLI).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from fusion.errors import InputError
from fusion.inference.parameters import PARAMS
from harness.cases.tables import parse_table

__all__ = [
    "ARRAYS",
    "POSTERIOR",
    "PREPARED",
    "SAMPLED",
    "WEIGHTS",
    "WEIGHT_COLUMNS",
    "read_posterior",
    "read_reference_prepared",
    "read_reference_weights",
]

PREPARED, WEIGHTS, POSTERIOR, SAMPLED = (
    "prepared.npz",
    "model_weights_table.csv",
    "posterior.nc",
    "sampled_posterior.nc",
)
WEIGHT_COLUMNS: tuple[str, ...] = ("model_id", "weight", "log_likelihood")
ARRAYS: tuple[str, ...] = ("y_obs", "sigma_obs", "F", "speed")


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(path, "holds object arrays that need pickle; refused") from None
        raise InputError(path, f"not a readable .npz ({str(exc).splitlines()[0]})") from None
    except (OSError, EOFError) as exc:
        raise InputError(path, f"not a readable .npz ({type(exc).__name__})") from None


def read_reference_prepared(path: Path) -> Any:
    """The prototype's prepared arrays, checked against DESIGN.md's shapes and dtypes."""
    from fusion.data.prepared import Prepared, positional_stream

    z = _npz_arrays(path)
    missing = [k for k in (*ARRAYS, "n_dhdt", "n_vel") if k not in z]
    if missing:
        raise InputError(path, f"lacks array '{missing[0]}'")
    y = z["y_obs"]
    n = y.shape[0] if y.ndim == 1 else -1
    expect = {"y_obs": ("float32", (n,)), "sigma_obs": ("float32", (n,)), "speed": ("float64", (n,))}
    for key, (dtype, shape) in expect.items():
        a = z[key]
        if a.dtype != np.dtype(dtype) or a.ndim != 1 or a.shape != shape:
            raise InputError(path, f"{key}: {a.dtype} {a.shape}, expected {dtype} 1-D of N = {n}")
    F = z["F"]
    if F.dtype != np.float64 or F.ndim != 2 or F.shape[1] != n:
        raise InputError(path, f"F: {F.dtype} {F.shape}, expected float64 M × N (N = {n})")
    counts = {}
    for key in ("n_dhdt", "n_vel"):
        a = z[key]
        if a.ndim != 0 or a.dtype.kind not in "iu":
            raise InputError(path, f"{key}: expected an integer scalar, got {a.dtype} {a.shape}")
        counts[key] = int(a)
    if counts["n_dhdt"] < 0 or counts["n_vel"] < 0 or counts["n_dhdt"] + counts["n_vel"] != n:
        raise InputError(path, f"n_dhdt {counts['n_dhdt']} + n_vel {counts['n_vel']} != N = {n}")
    if "member_ids" in z:
        ids = z["member_ids"]
        if ids.dtype.kind not in "US" or ids.shape != (F.shape[0],) or len(set(ids.tolist())) != F.shape[0]:
            raise InputError(path, f"member_ids: expected {F.shape[0]} distinct strings, got {ids.dtype} {ids.shape}")
        member_ids = tuple(str(s) for s in ids)
    else:  # the prototype's positional labels, equal to the file-name ids of the shared cases
        member_ids = tuple(f"run{i + 1}" for i in range(F.shape[0]))
    return Prepared(
        y_obs=y,
        sigma_obs=z["sigma_obs"],
        F=F,
        speed=z["speed"],
        n_dhdt=counts["n_dhdt"],
        n_vel=counts["n_vel"],
        member_ids=member_ids,
        stream=positional_stream(n, counts["n_dhdt"]),
        compat="prototype",
    )


def read_reference_weights(path: Path, member_ids: Sequence[str] | None = None) -> Any:
    """The prototype's `model_weights_table.csv` as `member_id, weight, log_likelihood` (any row order).

    The prototype labels members `run{k}` by position k in its sorted file list; with the
    reference's `member_ids` (its file order) position k becomes `member_ids[k-1]`.
    """
    try:
        table = parse_table(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV table ({exc})") from None
    missing = [c for c in WEIGHT_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"lacks column '{missing[0]}' (expected {', '.join(WEIGHT_COLUMNS)})")
    for col in ("weight", "log_likelihood"):
        if table[col].dtype != np.float64:
            raise InputError(path, f"column '{col}' is not numeric")
    ids = [str(v) for v in table["model_id"]]
    if len(set(ids)) != len(ids):
        raise InputError(path, "model_id repeats a member")
    if member_ids is not None:
        positions = [re.fullmatch(r"run(\d+)", i) for i in ids]
        if not all(positions) or sorted(int(m.group(1)) for m in positions) != list(  # type: ignore[union-attr]
            range(1, len(member_ids) + 1)
        ):
            raise InputError(path, f"model_id {ids} is not run1..run{len(member_ids)} (one per member of F)")
        ids = [member_ids[int(m.group(1)) - 1] for m in positions]  # type: ignore[union-attr]
    out = table[list(WEIGHT_COLUMNS)].rename(columns={"model_id": "member_id"})
    out["member_id"] = ids
    return out.reset_index(drop=True)


def read_posterior(path: Path) -> xr.DataTree:
    """A posterior file: group `posterior` with the four noise scalars on (chain, draw)."""
    try:
        with xr.open_datatree(path) as tree:
            tree = tree.load()
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(path, f"not a readable NetCDF posterior ({str(exc).splitlines()[0]})") from None
    if "posterior" not in tree.children:
        raise InputError(path, "no 'posterior' group")
    post = tree["posterior"].to_dataset()
    for name in PARAMS:
        if name not in post:
            raise InputError(path, f"posterior lacks '{name}'")
        if post[name].dims != ("chain", "draw"):
            raise InputError(path, f"posterior '{name}' is on {post[name].dims}, expected ('chain', 'draw')")
    return tree
