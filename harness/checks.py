"""The contract between the harness runner and each check.

A check is a function `(CheckContext) -> CheckResult`; the runner owns artifacts, the
inventory, run markers and the report, so a check only computes, plots into its folder and
says pass or fail with figures and thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from harness.cases import CaseCatalog

from harness.gates import Gates

__all__ = ["CheckContext", "CheckResult", "Status", "CHECK_NAMES"]

Status = Literal["pass", "fail", "error"]
CHECK_NAMES: tuple[str, ...] = ("parity", "convergence", "sbc", "coverage", "stability", "agreement", "likelihood")


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
    thresholds: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # human lines: what failed, by how much
    plots: list[str] = field(default_factory=list)  # paths relative to the artifact folder
    duration_s: float = 0.0
    config_hash: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"
