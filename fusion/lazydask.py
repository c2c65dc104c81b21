"""xarray's "is this a dask array?" check, answered without importing `dask.array` (0.3 s of CPU).

xarray builds every Variable through `as_compatible_data`, which asks whether the data is a
masked dask array: `isinstance(data, array_type("dask"))`. The first such question in a process
imports `dask.array` whenever dask is installed, to learn its `Array` class, and caches the
answer (`xarray.namedarray.pycompat._cached_duck_array_modules`). In `fusion run`'s main process
that is the first DataArray it builds (the members' SLE), and nothing there ever holds a dask
array: `prepare` uses dask only with `--chunk-rows`/`--scheduler`, which import `dask.array`
themselves before any of this.

xarray has no switch for this (its code and issue tracker were checked: version 2026.9). So
`defer_dask_array` puts a stand-in in that cache. An object is an instance of
`dask.array.Array` only if `dask.array` has been imported (the class lives there), so while it
has not been, the stand-in answers `()`, the type tuple no object is an instance of, which is
exactly what the real entry would have answered. Once anything imports `dask.array` (a
`--chunk-rows` run, a Zarr or remote input opened with dask, a user's notebook), the stand-in
builds the real entry, hands it every question from then on and replaces itself in the cache.
Its other fields (`module`, `version`, `available`) come from the real entry at once.

What it cannot see: code that keeps `array_type("dask")`'s tuple at import time while
`dask.array` is not loaded would keep `()`. No package installed with FUSION does (xarray asks
inside functions; a test checks the installed packages' sources). If xarray renames its cache,
nothing is installed and xarray imports `dask.array` as before (the test of the stand-in fails,
so the change is seen).
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["defer_dask_array", "dask_array_deferred"]


def _cache() -> dict[str, Any] | None:
    """xarray's per-module cache of duck-array types, or None if this xarray has none."""
    from xarray.namedarray import pycompat

    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if not isinstance(cache, dict) or not hasattr(pycompat, "DuckArrayModule"):
        return None
    return cache


class _DaskUntilImported:
    """The cache entry for "dask" until `dask.array` is imported, then the real one."""

    def __init__(self, cache: dict[str, Any]) -> None:
        self._cache = cache

    @property
    def type(self) -> tuple[type, ...]:
        if "dask.array" not in sys.modules:
            return ()  # no dask array can exist before its module does
        return self._real().type

    def __getattr__(self, name: str) -> Any:  # module, version, available: the real answers
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._real(), name)

    def _real(self) -> Any:
        from xarray.namedarray.pycompat import DuckArrayModule

        real = DuckArrayModule("dask")
        if real.type and self._cache.get("dask") is self:  # not an answer taken mid-import of dask.array
            self._cache["dask"] = real
        return real


def defer_dask_array() -> None:
    """Let xarray check for dask arrays without importing `dask.array` until one can exist.

    Idempotent; does nothing once xarray has asked (the cache holds the real entry already).
    """
    cache = _cache()
    if cache is not None and "dask" not in cache:
        cache["dask"] = _DaskUntilImported(cache)


def dask_array_deferred() -> bool:
    """Whether xarray's dask entry is still the stand-in (no `dask.array` import paid yet)."""
    cache = _cache()
    return cache is not None and isinstance(cache.get("dask"), _DaskUntilImported)
