"""The contract between the harness runner and each check.

A check is a function `(CheckContext) -> CheckResult`; the runner owns artifacts, the
inventory, run markers, timing and the report, so a check only computes, plots into its folder
and says pass or fail with figures and gate records (`gate_record`): each gated figure with its
comparison, bound, value, margin and unit, which the report renders as they are.

Adding a check is one module here and one `CheckSpec` line in `harness.registry.CHECKS`
(docs/harness/adding-a-check.md):

    # harness/checks/mycheck.py
    def run_check(ctx: CheckContext) -> CheckResult:
        x = measure(ctx.case, ctx.artifact_dir)   # one case, never "all"; the runner times the call
        gates = gates_of(gate_record("x", "≤", 0.4, x, "units"))
        return CheckResult(name="mycheck", case=ctx.case, figures={"x": x}, gates=gates,
                           status=status_of(gates))

    CheckSpec("mycheck", "harness.checks.mycheck", "what it gates, in one line", per_case=True)

It then appears in `harness run --help`, runs, and gets its rows in report.md and report.html;
its thresholds, if any, are a section of `harness.gates.Gates` named by `gates=`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
import math
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.cases import CaseCatalog

from harness.gates import Gates
from harness.registry import names

__all__ = ["CheckContext", "CheckResult", "Status", "CHECK_NAMES", "gate_record", "gate_verdict", "gates_of", "status_of"]

Status = Literal["pass", "fail", "undecided", "error"]  # undecided: `harness.verdict`, at the cap
Comparison = Literal["≤", "≥"]
CHECK_NAMES: tuple[str, ...] = names()  # the registry's, at import (harness.registry.names() reads it live)


def gate_record(
    figure: str,
    comparison: Comparison,
    bound: float,
    value: Any,
    unit: str = "",
    passed: bool | None = None,
) -> dict[str, Any] | None:
    """One gate record; None when the value is not a finite number (the figure was not measured).

    Margin is how far inside the bound the value is (negative: outside), in the figure's unit;
    `passed` defaults to margin ≥ 0 (a check whose verdict has more to it passes its own).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    margin = bound - value if comparison == "≤" else value - bound
    return {
        "figure": figure,
        "comparison": comparison,
        "bound": float(bound),
        "value": value,
        "margin": margin,
        "unit": unit,
        "passed": bool(margin >= 0) if passed is None else bool(passed),
        "threshold": f"{comparison} {bound:g}" + (f" {unit}" if unit else ""),
    }


def gates_of(*found: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The measured gates among `found` (drops the figures that were not measured)."""
    return [g for g in found if g is not None]


def gate_verdict(g: dict[str, Any]) -> str:
    """`pass`, `fail` or `undecided` (a gate with no interval is decided by its value alone)."""
    return str(g.get("verdict") or ("pass" if g["passed"] else "fail"))


def status_of(gates: list[dict[str, Any]]) -> Status:
    """A check's status from its gate records: any `fail` fails, else any `undecided`, else `pass`."""
    from harness.verdict import worst

    return worst([gate_verdict(g) for g in gates])


@dataclass(frozen=True)
class CheckContext:
    """What a check may use: its suite, its own artifact folder, the run's cases, an optional dask scheduler.

    `case` names one case of `catalog` (the bundled cases, or the `--case` folders); a per-case
    check gets the case itself with `harness.cases.catalog_of(ctx).get(ctx.case, ctx.artifact_dir)`.
    """

    suite: Literal["quick", "full"]
    artifact_dir: Path  # the check writes plots/tables here; the runner stamps _SUCCESS
    golden_dir: Path
    fixtures_dir: Path
    scheduler: str | None = None
    case: str = "all"
    progress: Callable[[str], None] = print
    gates: Gates = Gates()  # thresholds: defaults, or `harness run --config FILE`
    catalog: CaseCatalog | None = None  # None: the bundled cases under golden_dir/fixtures_dir


@dataclass
class CheckResult:
    """One record of `report.json`: status, the figures measured and the thresholds they met."""

    name: str
    case: str
    status: Status
    figures: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)  # settings shown beside the figures
    gates: list[dict[str, Any]] = field(default_factory=list)  # `gate_record`s: what decided the status
    messages: list[str] = field(default_factory=list)  # human lines: what failed, by how much
    plots: list[str] = field(default_factory=list)  # paths relative to the artifact folder
    tables: list[dict[str, Any]] = field(default_factory=list)  # {"title", "header", "rows"[, "classes"]}, as is
    duration_s: float = 0.0
    config_hash: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"
