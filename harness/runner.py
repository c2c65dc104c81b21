"""Run the checks of a suite into an output folder, resumably, and leave one verdict.

Layout of `--out DIR`:

    DIR/<check>/<case>/      the check's artifacts, `result.json`, then `_SUCCESS`
    DIR/runs.json            inventory: one record per (check, case, config hash), sorted
    DIR/report.json, report.md, report.html (report.png: its screenshot, by the CLI)
    DIR/signoff.json         sign-offs recorded by `harness signoff`
    DIR/_RUN_SUCCESS | _RUN_PARTIAL | _RUN_FAILED    exactly one, written last

Each check folder is a result folder of `harness.result_store`: a folder stamped `_SUCCESS` whose
`result.json` carries the key of the same check, case and suite, the same cases (golden files
and fixtures for the bundled cases, each folder's content for `--case` runs), the same gates
and the same code is not redone; anything else is. A check that raises is recorded as
`error` and not stamped, so the next run retries it.
Verdicts: SUCCESS — every planned check ran and passed; FAILED — at least one gate is
red, or undecided at its cap (`harness.verdict`; unless `allow_undecided`); PARTIAL — nothing
is red but something did not finish (an error, a missing check module, an interruption).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib
import platform
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from fusion.errors import InputError
from fusion.io import clear_success, write_text
from harness.report import records
from harness import registry as checks_registry
from harness.cases import CaseCatalog
from harness.checks import CheckContext, CheckResult
from harness.gates import Gates
from harness.paths import repo_root
from harness.runlog import LOCK_FILE, clear_run_markers, locked, set_run_marker, upsert_inventory
from harness.result_store import load_result, result_key, save_result, source_digest

__all__ = [
    "SUITES",
    "BadInput",
    "Entry",
    "Planned",
    "RunInterrupted",
    "RunOptions",
    "RunOutcome",
    "fingerprint",
    "plan",
    "repo_root",
    "run",
]

SUITES: tuple[str, ...] = checks_registry.SUITES
#: a check's result may depend on any module of either package
CODE_PATHS: tuple[str, ...] = ("fusion", "harness")
_VERSIONED = (
    "fusion",
    "numpy",
    "scipy",
    "pandas",
    "xarray",
    "pymc",
    "pytensor",
    "arviz-base",
    "arviz-stats",
    "netCDF4",
    "nutpie",
    "syrupy",
)


class BadInput(ValueError):
    """A problem with the command line or the tree it points at; the CLI prints it on one line, exit 2."""


class RunInterrupted(BaseException):
    """SIGTERM during a run: finish the bookkeeping (no stamp for the current check), then stop."""


@dataclass(frozen=True)
class RunOptions:
    out: Path
    suite: str = "quick"
    checks: tuple[str, ...] = field(default_factory=checks_registry.names)  # default: every registered check
    scheduler: str | None = None
    gates: Gates = Gates()
    golden_dir: Path = field(default_factory=lambda: repo_root() / "golden")
    fixtures_dir: Path = field(default_factory=lambda: repo_root() / "fixtures")
    case_dirs: tuple[Path, ...] = ()  # `--case`: per-case checks run on these instead of the bundled cases
    allow_undecided: bool = False  # `--allow-undecided`: a gate still undecided at its cap does not fail the run


@dataclass
class Planned:
    check: str
    case: str
    folder: Path


Entry = records.Entry  # the record type lives below the runner and the report (no import cycle)


@dataclass
class RunOutcome:
    entries: list[Entry]
    marker: str
    exit_code: int
    out: Path


CheckFn = Callable[[CheckContext], CheckResult]


def _inputs(options: RunOptions, catalog: CaseCatalog) -> dict[str, Any]:
    """What stored results depend on besides the code: the cases' digests and the gates."""
    # other thresholds, other verdicts: nothing reused
    return {"cases": catalog.fingerprint_parts(), "gates": options.gates.digest()}


def fingerprint(options: RunOptions, catalog: CaseCatalog | None = None) -> str:
    """The run's key in the result store: its cases and gates and the code (fusion/, harness/ as installed)."""
    catalog = catalog if catalog is not None else CaseCatalog(options.golden_dir, options.fixtures_dir)
    return result_key(_inputs(options, catalog), source_digest(CODE_PATHS))


def check_key(item: Planned, suite: str, fp: str) -> str:
    """The key a check folder is stored under: the run's fingerprint narrowed to one check, case and suite."""
    return result_key({"check": item.check, "case": item.case, "suite": suite}, fp)


def catalog_for(options: RunOptions) -> CaseCatalog:
    """The run's cases: the `--case` folders (validated now: bad input stops the run before it starts) or the bundled ones."""
    try:
        return CaseCatalog.from_folders(options.golden_dir, options.fixtures_dir, options.case_dirs)
    except InputError as exc:
        raise BadInput(str(exc)) from None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _load(name: str, registry: Mapping[str, CheckFn | ModuleType] | None) -> CheckFn | ModuleType:
    if registry is not None and name in registry:
        return registry[name]
    return importlib.import_module(checks_registry.spec(name).module)


def plan(
    options: RunOptions,
    registry: Mapping[str, CheckFn | ModuleType] | None = None,
    catalog: CaseCatalog | None = None,
) -> tuple[list[Planned], list[Entry]]:
    """(check, case) pairs in suite order; checks that cannot even be planned come back as error entries.

    The registry says which cases each check runs on; with `--case` folders, a per-case check no
    folder asks for (case.yaml `checks:`) is not planned.
    """
    catalog = catalog if catalog is not None else catalog_for(options)
    planned: list[Planned] = []
    errors: list[Entry] = []
    for name in options.checks:
        try:
            target = _load(name, registry)  # a check whose module cannot load is an error entry now
            if name not in checks_registry.names(options.suite):
                continue
            if registry is not None and name in registry:  # a test's stand-in: its own `cases`, else "all"
                case_fn = getattr(target, "cases", None)
                cases = list(case_fn(options.suite, catalog)) if case_fn else [checks_registry.ALL]
            else:
                cases = checks_registry.spec(name).cases(options.suite, catalog)
            if not cases and not catalog.bundled:
                continue
        except Exception as exc:  # noqa: BLE001 — a broken check must not stop the others
            folder = options.out / name / "all"
            errors.append(Entry(_error_result(name, "all", exc, "cannot be planned"), folder, ran=False))
            continue
        planned += [Planned(name, case, options.out / name / case) for case in cases or ["all"]]
    return planned, errors


def _error_result(name: str, case: str, exc: BaseException, what: str) -> CheckResult:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return CheckResult(
        name=name, case=case, status="error", messages=[f"{what}: {type(exc).__name__}: {first}"]
    )


def _stored(folder: Path, key: str) -> CheckResult | None:
    """The check result stored in `folder` under `key`, if complete and readable as a `CheckResult`."""
    data = load_result(folder, key)
    if data is None:
        return None
    fields = {f.name for f in dataclasses.fields(CheckResult)}
    try:
        return CheckResult(**{k: v for k, v in data.items() if k in fields})
    except TypeError:
        return None


def _no_case(item: Planned, registry: Any) -> bool:
    """A registered per-case check planned on the bundled run without a case (a check never receives "all")."""
    if item.case != checks_registry.ALL or (registry is not None and item.check in registry):
        return False
    return checks_registry.spec(item.check).per_case


def _no_case_result(name: str) -> CheckResult:
    note = checks_registry.spec(name).no_case or "no case of this run asks for it"
    return CheckResult(name=name, case=checks_registry.ALL, status="pass", figures={"cases_compared": 0}, messages=[note])


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def run(
    options: RunOptions,
    *,
    registry: Mapping[str, CheckFn | ModuleType] | None = None,
    progress: Callable[[str], None] = print,
) -> RunOutcome:
    """Run (or resume) every planned check, then write the report and exactly one run marker."""
    from harness.report.write import write_report

    if options.suite not in SUITES:
        raise BadInput(f"unknown suite {options.suite!r}; valid: {', '.join(SUITES)}")
    known = checks_registry.names()
    unknown = [c for c in options.checks if c not in known]
    if unknown:
        raise BadInput(f"unknown check {unknown[0]!r}; valid: {', '.join(known)}")
    out = Path(options.out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a folder")
    if not options.case_dirs:  # the bundled cases live in a checkout; `--case` runs need neither folder
        for label, folder in (("golden", options.golden_dir), ("fixtures", options.fixtures_dir)):
            if not Path(folder).is_dir():
                raise BadInput(f"{folder}: {label} folder not found")
    catalog = catalog_for(options)
    per_case = checks_registry.per_case_names()
    if options.case_dirs and not any(c not in per_case or catalog.names(c) for c in options.checks):
        why = [why for case in catalog.user.values() for c, why in case.unavailable if c in options.checks]
        raise BadInput(
            f"nothing to run: no --case folder lists {', '.join(options.checks)} under `checks:` in its case.yaml"
            + (f" ({'; '.join(why)})" if why else "")
        )
    out.mkdir(parents=True, exist_ok=True)
    try:
        with locked(out / LOCK_FILE, blocking=False):
            return _run_locked(options, out, registry, progress, write_report, catalog)
    except BlockingIOError:
        raise BadInput(f"{out}: another harness run is writing to this folder") from None


def _execute(item: Planned, ctx: CheckContext, registry: Any) -> tuple[CheckResult, bool]:
    """Run one planned check, timed; anything it raises becomes an error record. (result, interrupted)."""
    interrupted = False
    start = time.perf_counter()
    try:
        if _no_case(item, registry):  # a per-case check no case of the run asks for: the runner says so
            result = _no_case_result(item.check)
        else:
            target = _load(item.check, registry)
            fn = target if callable(target) and not isinstance(target, ModuleType) else target.run_check
            result = fn(ctx)
        if not isinstance(result, CheckResult):
            raise TypeError(f"run_check returned {type(result).__name__}, not CheckResult")
    except (KeyboardInterrupt, RunInterrupted) as exc:
        interrupted = True
        result = _error_result(item.check, item.case, exc, "interrupted")
    except Exception as exc:  # noqa: BLE001 — recorded as an error, the run goes on
        result = _error_result(item.check, item.case, exc, "raised")
        write_text(item.folder / "error.txt", traceback.format_exc())
    result.duration_s = time.perf_counter() - start  # the runner times every check
    result.name, result.case = item.check, item.case  # folders and inventory are keyed by the plan
    return result, interrupted


def _record(out: Path, item: Planned, result: CheckResult, key: str, suite: str, fp: str, env: Any, start_at: str) -> None:
    """Store the check's result (complete only when it passed or failed) and its line of the inventory."""
    if not result.config_hash:
        result.config_hash = hashlib.sha256(f"{item.check}|{item.case}|{suite}".encode()).hexdigest()
    result.provenance = {**result.provenance, "versions": env, "fingerprint": fp}
    save_result(
        item.folder,
        {**dataclasses.asdict(result), "suite": suite, "fingerprint": fp, "started_at": start_at, "finished_at": _now()},
        key,
        complete=result.status in ("pass", "fail", "undecided"),  # an error or an interruption is retried
    )
    upsert_inventory(
        out,
        {
            "check": item.check,
            "case": item.case,
            "config_hash": result.config_hash,
            "status": result.status,
            "suite": suite,
            "duration_s": result.duration_s,
            "finished_at": _now(),
            "artifact_dir": str(item.folder.relative_to(out)),
            "fingerprint": fp,
        },
    )


def _verdict(entries: list[Entry], allow_undecided: bool = False) -> tuple[str, int]:
    """The run's one marker and exit code: success only when every check passed; a check still
    undecided at its cap fails the run (a release must not pass on a coin flip) unless allowed."""
    statuses = [e.result.status for e in entries]
    ok = ("pass", "undecided") if allow_undecided else ("pass",)
    if statuses and all(s in ok for s in statuses):
        return "_RUN_SUCCESS", 0
    if "fail" in statuses or "undecided" in statuses and "error" not in statuses:
        return "_RUN_FAILED", 1
    return "_RUN_PARTIAL", 1


def _run_locked(
    options: RunOptions,
    out: Path,
    registry: Any,
    progress: Callable[[str], None],
    write_report: Any,
    catalog: CaseCatalog,
) -> RunOutcome:
    clear_run_markers(out)
    started, t0 = _now(), time.perf_counter()
    fp = fingerprint(options, catalog)
    env = versions()
    planned, entries = plan(options, registry, catalog)
    interrupted = False
    for i, item in enumerate(planned):
        tag = f"[{i + 1}/{len(planned)}] {item.check}[{item.case}]"
        if interrupted:
            result = CheckResult(
                name=item.check, case=item.case, status="error", messages=["not run: the run was interrupted"]
            )
            entries.append(Entry(result, item.folder, ran=False))
            continue
        key = check_key(item, options.suite, fp)
        stored = _stored(item.folder, key)
        if stored is not None:
            progress(f"{tag}: done before ({stored.status}), skipped")
            entries.append(Entry(stored, item.folder, resumed=True))
            continue
        clear_success(item.folder)  # a crash while the check runs must not leave the old stamp
        item.folder.mkdir(parents=True, exist_ok=True)
        progress(f"{tag}: running")
        ctx = CheckContext(
            suite=options.suite,
            artifact_dir=item.folder,
            golden_dir=options.golden_dir,  # type: ignore[arg-type]
            fixtures_dir=options.fixtures_dir,
            scheduler=options.scheduler,
            case=item.case,
            progress=progress,
            gates=options.gates,
            catalog=catalog,
        )
        start_at = _now()
        result, interrupted = _execute(item, ctx, registry)
        _record(out, item, result, key, options.suite, fp, env, start_at)
        progress(
            f"{tag}: {result.status.upper()}"
            f" in {result.duration_s:.1f} s" + (f" — {result.messages[0]}" if result.messages else "")
        )
        entries.append(Entry(result, item.folder))

    marker, code = _verdict(entries, options.allow_undecided)
    info = {
        "suite": options.suite,
        "checks": list(options.checks),
        "cases": [str(c) for c in options.case_dirs] or "bundled",
        "started_at": started,
        "finished_at": _now(),
        "duration_s": time.perf_counter() - t0,
        "marker": marker,
        "fingerprint": fp,
        "versions": env,
        "scheduler": options.scheduler,
        "allow_undecided": options.allow_undecided,
        "interrupted": interrupted,
        "out": str(out),
    }
    write_report(out, info, entries)
    set_run_marker(out, marker)
    return RunOutcome(entries, marker, code, out)
