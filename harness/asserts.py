"""Graded asserts that say where two results part ways, not merely that they do.

Parity failures are read by people deciding whether a release may go out: a message
naming the array, the first differing index, both values and their distance in ULP
turns "arrays differ" into a diagnosis (one ULP: a reduction order; millions: a bug).
The functions that find differences return them, so checks can report without raising;
the `assert_*` wrappers raise `AssertionError` with the same text for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Difference",
    "assert_bitwise_equal",
    "assert_valid_weights",
    "bitwise_difference",
    "order_difference",
    "ulp_distance",
    "weights_problems",
]


@dataclass(frozen=True)
class Difference:
    """The first place where `actual` and `expected` disagree, and how many places do."""

    name: str
    kind: str  # "dtype", "shape" or "value"
    message: str
    index: tuple[int, ...] | None = None
    actual: object = None
    expected: object = None
    ulp: int | None = None
    n_different: int = 0


def _ordered_ints(values: np.ndarray) -> np.ndarray:
    """Map IEEE floats onto integers whose order and spacing follow the float line (one step per ULP)."""
    width = values.dtype.itemsize
    ints = np.ascontiguousarray(values).view(f"i{width}").astype(object)
    lowest = -(2 ** (8 * width - 1))
    return np.array([lowest - i if i < 0 else i for i in ints.reshape(-1)], dtype=object).reshape(
        values.shape
    )


def ulp_distance(
    a: float | np.floating, b: float | np.floating, dtype: np.dtype | type | None = None
) -> int | None:
    """Number of representable floats between `a` and `b` in `dtype` (default: `a`'s); None if either is NaN."""
    dt = np.dtype(dtype if dtype is not None else getattr(a, "dtype", np.float64))
    if dt.kind != "f":
        return None
    x, y = np.asarray([a], dtype=dt), np.asarray([b], dtype=dt)
    if np.isnan(x[0]) or np.isnan(y[0]):
        return None
    return int(abs(_ordered_ints(x)[0] - _ordered_ints(y)[0]))


def _bits(values: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.dtype.kind in "fiub":
        return flat.view(f"u{flat.dtype.itemsize}") if flat.dtype.itemsize in (1, 2, 4, 8) else flat
    return flat


def _show(value: object) -> str:
    if isinstance(value, np.floating):
        return f"{float(value)!r} ({value.dtype})"
    if isinstance(value, np.generic):
        return repr(value.item())
    return repr(value)


def bitwise_difference(actual: object, expected: object, name: str = "array") -> Difference | None:
    """Compare dtype, shape and every bit (so -0.0 ≠ 0.0 and NaN payloads count); None when identical."""
    a, e = np.asarray(actual), np.asarray(expected)
    if a.dtype != e.dtype:
        return Difference(name, "dtype", f"{name}: dtype {a.dtype} != expected {e.dtype}")
    if a.shape != e.shape:
        return Difference(name, "shape", f"{name}: shape {a.shape} != expected {e.shape}")
    if a.dtype.kind in "US" or a.dtype == object:
        differs = (a != e).reshape(-1)
    else:
        differs = _bits(a) != _bits(e)
    n = int(np.count_nonzero(differs))
    if n == 0:
        return None
    flat_i = int(np.argmax(differs))
    index = tuple(int(i) for i in np.unravel_index(flat_i, a.shape)) if a.ndim else ()
    av, ev = a.reshape(-1)[flat_i], e.reshape(-1)[flat_i]
    ulp = ulp_distance(av, ev, a.dtype) if a.dtype.kind == "f" else None
    where = f"[{', '.join(map(str, index))}]" if index else ""
    ulp_text = f", {ulp} ULP apart" if ulp is not None else ""
    message = (
        f"{name}: {n} of {a.size} values differ; first at {name}{where}: "
        f"actual {_show(av)} vs expected {_show(ev)}{ulp_text}"
    )
    return Difference(name, "value", message, index=index, actual=av, expected=ev, ulp=ulp, n_different=n)


def order_difference(actual: Sequence[object], expected: Sequence[object]) -> tuple[int, str, str] | None:
    """Where two label orders (rows, members) first part ways: (position, actual label, expected label).

    A sequence that ends first shows `<none>` there; None when both are the same labels in the same order.
    """
    actual, expected = [str(v) for v in actual], [str(v) for v in expected]
    if actual == expected:
        return None
    first = next(
        (i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
        min(len(actual), len(expected)),
    )

    def at(labels: list[str]) -> str:
        return labels[first] if first < len(labels) else "<none>"

    return first, at(actual), at(expected)


def assert_bitwise_equal(actual: object, expected: object, name: str = "array") -> None:
    """Raise `AssertionError` naming the array, first differing index, both values and their ULP distance."""
    __tracebackhide__ = True
    diff = bitwise_difference(actual, expected, name)
    if diff is not None:
        raise AssertionError(diff.message)


def weights_problems(
    weights: object, member_ids: Sequence[str] | None = None, *, atol: float = 1e-12, name: str = "weights"
) -> list[str]:
    """Everything wrong with a weight vector: non-finite, negative, not summing to 1, labels not unique or not aligned."""
    w = np.asarray(weights, dtype=np.float64)
    problems: list[str] = []
    if w.ndim != 1 or w.size == 0:
        return [f"{name}: expected a non-empty 1-D vector, got shape {w.shape}"]
    bad = np.flatnonzero(~np.isfinite(w))
    if bad.size:
        problems.append(f"{name}: {bad.size} non-finite values, first at [{bad[0]}]: {w[bad[0]]!r}")
    neg = np.flatnonzero(w < 0)
    if neg.size:
        problems.append(f"{name}: {neg.size} negative values, first at [{neg[0]}]: {w[neg[0]]!r}")
    total = float(np.sum(w))
    if np.isfinite(total) and abs(total - 1.0) > atol:
        problems.append(f"{name}: sum {total!r} != 1 (off by {total - 1.0:.3g}, tolerance {atol:g})")
    if member_ids is not None:
        ids = list(member_ids)
        if len(ids) != w.size:
            problems.append(f"{name}: {w.size} weights for {len(ids)} member ids")
        seen: set[str] = set()
        dupes = sorted({m for m in ids if m in seen or seen.add(m)})
        if dupes:
            problems.append(f"{name}: duplicate member ids {dupes}")
    return problems


def assert_valid_weights(
    weights: object, member_ids: Sequence[str] | None = None, *, atol: float = 1e-12
) -> None:
    """Domain assert for member weights: finite, ≥ 0, sum to 1, one unique label per weight."""
    __tracebackhide__ = True
    problems = weights_problems(weights, member_ids, atol=atol)
    if problems:
        raise AssertionError("; ".join(problems))
