"""Exceptions and warnings users act on: one line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "ConvergenceWarning", "DataWarning"]


class InputError(ValueError):
    """Bad input. The CLI prints `str(err)` on one line and exits with status 2."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class ConvergenceWarning(UserWarning):
    """The sampler's figures fail a gate (R-hat, ESS, divergences, E-BFMI)."""


class DataWarning(UserWarning):
    """Input is usable but degraded (e.g. a missing error variable replaced by a constant)."""
