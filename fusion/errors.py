"""Exceptions and warnings users act on: one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "ConvergenceWarning", "DataWarning"]


class InputError(ValueError):
    """Bad input. The CLI prints `str(err)` on one line and exits with status 2."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        # a remote input is named by its URL: a cached copy's path carries it as `.url`, and a
        # URL string is kept whole (`Path` would fold `s3://` into `s3:/`)
        url = getattr(path, "url", None) or (path if isinstance(path, str) and "://" in path else None)
        self.path = None if path is None or (url is not None and isinstance(path, str)) else Path(path)
        self.url: str | None = url
        self.problem = problem
        self._given = path
        where = url or self.path
        super().__init__(f"{where}: {problem}" if where is not None else problem)

    def __reduce__(self):  # noqa: ANN204
        """Rebuilt from what it was made of, so one raised on a dask worker reaches the client whole."""
        return type(self), (self._given, self.problem)


class ConvergenceWarning(UserWarning):
    """The sampler's figures fail a gate (R-hat, ESS, divergences, E-BFMI)."""


class DataWarning(UserWarning):
    """Input is usable but degraded (e.g. a missing error variable replaced by a constant)."""
