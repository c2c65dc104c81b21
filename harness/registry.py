"""The one list of the harness's checks: the CLI, the runner, case.yaml validation, the report and the docs read it.

Adding a check is one module with `run_check(ctx) -> CheckResult` and one `CheckSpec` line in
`CHECKS` (docs/harness/adding-a-check.md). The runner resolves the cases a check runs on (`select`)
and times it; a check always receives one case, never "all".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class CaseCatalog(Protocol):
    """What case selection reads of `harness.cases.CaseCatalog` (no import: the registry sits below it)."""

    @property
    def bundled(self) -> bool: ...

    def names(self, check: str | None = None) -> list[str]: ...

__all__ = [
    "ALL",
    "CHECKS",
    "SUITES",
    "CheckSpec",
    "every_case",
    "example_case",
    "names",
    "per_case_names",
    "small_case_in_quick",
    "spec",
]

SUITES: tuple[str, ...] = ("quick", "full")
ALL = "all"  # the one "case" of a check that makes its own data (sbc, coverage)
EXAMPLE = "example"  # the generated bundled case (its subsample is smaller than its points)

Select = Callable[[str, CaseCatalog, str], list[str]]


def every_case(suite: str, catalog: CaseCatalog, name: str) -> list[str]:
    """Every case of the run that asks for the check."""
    return catalog.names(name)


def small_case_in_quick(suite: str, catalog: CaseCatalog, name: str) -> list[str]:
    """Bundled, quick: the small reference case; full: every bundled case. `--case` folders: each that asks."""
    found = catalog.names(name)
    if not catalog.bundled or suite == "full":
        return found
    return [n for n in found if n == "small"][:1] or found[:1]


def example_case(suite: str, catalog: CaseCatalog, name: str) -> list[str]:
    """Bundled: the generated example. `--case`: each folder that asks."""
    found = catalog.names(name)
    return found if not catalog.bundled else [n for n in found if n == EXAMPLE]


@dataclass(frozen=True)
class CheckSpec:
    """One check: where its `run_check` lives, which cases and suites it runs on, its thresholds section."""

    name: str
    module: str  # imported late, when the check runs
    doc: str  # one line, shown by `harness run --help` and in the docs' checks table
    per_case: bool = False  # runs on case folders (`--case`, case.yaml `checks:`), else on its own data
    select: Select | None = None  # per-case checks: which cases of the run (default: every case asking)
    suites: tuple[str, ...] = SUITES
    gates: str | None = None  # its section of `harness run --config FILE` (harness.gates.Gates field)
    no_case: str = ""  # per-case checks: the report's line when no case of a bundled run asks for it

    def cases(self, suite: str, catalog: CaseCatalog) -> list[str]:
        """The cases the runner plans for this check."""
        if not self.per_case:
            return [ALL]
        return (self.select or every_case)(suite, catalog, self.name)


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("parity", "harness.checks.parity", "FUSION against the prototype's reference files, per case",
              per_case=True, gates="parity"),
    CheckSpec("convergence", "harness.checks.convergence", "R-hat, ESS, divergences, E-BFMI at production settings",
              per_case=True, select=small_case_in_quick, gates="convergence"),
    CheckSpec("sbc", "harness.checks.sbc", "simulation-based calibration of the generative form", gates="sbc"),
    CheckSpec("coverage", "harness.checks.coverage", "predictive coverage and recovery of the true member",
              gates="coverage"),
    CheckSpec("stability", "harness.checks.stability", "member weights across subsample seeds",
              per_case=True, select=example_case, gates="stability"),
    CheckSpec("agreement", "harness.checks.agreement", "the Laplace fast path against NUTS, per case",
              per_case=True, gates="agreement"),
    CheckSpec("adequacy", "harness.checks.adequacy", "does the noise model fit the case's data: block PIT, regions, held-out coverage",
              per_case=True, select=example_case, gates="adequacy"),
    CheckSpec("perfect_model", "harness.checks.perfect_model",
              "each member held out as the truth: weighted coverage and CRPS against the unweighted ensemble",
              per_case=True, select=example_case, gates="perfect_model"),
    CheckSpec("likelihood", "harness.checks.likelihood",
              "which likelihood.form is calibrated under spatially correlated errors (evidence table)",
              gates="likelihood"),
    CheckSpec("drift", "harness.checks.drift", "FUSION's outputs on a case against its baseline (harness baseline)", per_case=True,
              select=lambda suite, catalog, name: [] if catalog.bundled else catalog.names(name), gates="drift",
              no_case="no case of this run has a baseline: drift runs on case folders "
                      "(`harness baseline --case DIR`, then `harness run --case DIR --check drift`)"),
)


def names(suite: str | None = None) -> tuple[str, ...]:
    """Every registered check (of `suite`, when given), in report order."""
    return tuple(c.name for c in CHECKS if suite is None or suite in c.suites)


def per_case_names() -> tuple[str, ...]:
    """The checks a case.yaml may list under `checks:`."""
    return tuple(c.name for c in CHECKS if c.per_case)


def spec(name: str) -> CheckSpec:
    """The registered check `name`; KeyError naming the valid ones."""
    for c in CHECKS:
        if c.name == name:
            return c
    raise KeyError(f"unknown check {name!r}; valid: {', '.join(names())}")
