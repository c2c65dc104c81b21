"""The public API (`fusion.__all__`) follows one docstring convention, numpydoc, which the API
reference (docs/api/index.md) renders: every name has a docstring, and every function documents
each of its parameters by name (numpydoc PR01/PR02) and what it returns (RT01)."""

from __future__ import annotations

import inspect

import numpydoc.validate

import fusion

CHECKED = {"GL08", "PR01", "PR02", "RT01"}  # no docstring; parameter undocumented; unknown; no Returns


def test_every_public_function_has_a_numpydoc_docstring() -> None:
    problems = []
    for name in fusion.__all__:
        obj = getattr(fusion, name)
        codes = CHECKED if inspect.isfunction(obj) else {"GL08"}  # classes: their fields are the config/reference pages
        problems += [f"fusion.{name}: {code} {message}" for code, message in numpydoc.validate.validate(f"fusion.{name}")["errors"]
                     if code in codes]
    assert problems == []


def scaled_for_the_check(x: float, factor: float) -> float:
    """Scale `x` (documents `x` only: what the check must catch).

    Parameters
    ----------
    x : float
        The value.

    Returns
    -------
    float
        `x` times `factor`.
    """
    return x * factor


def test_the_check_names_an_undocumented_parameter() -> None:
    errors = numpydoc.validate.validate(f"{__name__}.scaled_for_the_check")["errors"]
    assert [code for code, message in errors if code in CHECKED and "factor" in message] == ["PR01"]
