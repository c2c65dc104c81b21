"""`harness run [--suite quick|full] [--check NAME ...] [--case DIR ...] [--out DIR] [--scheduler ADDRESS]`; `harness capture`.

One subparser per command; a new command adds its parser in `_parser` and its handler in `COMMANDS`.

Exit 0 only when every check passes, 1 when one fails (or could not finish), 2 on bad
input — with one line on stderr naming what is wrong and no output folder left behind.
SIGTERM is turned into an orderly stop: the check being run is not stamped, the report
and a `_RUN_PARTIAL` marker are written, and a rerun with the same `--out` resumes.
`harness signoff OUT_DIR --name NAME --decision approve|reject [--note TEXT]` records a
sign-off of a finished run (harness.report.signoff); `harness baseline --case DIR [--accept --name NAME --note
TEXT]` records FUSION's outputs on a case for the `drift` check (harness.cases.baseline).
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

from harness import registry

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
_SCHEDULER = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?[^\s:/]+(?::\d{1,5})?/?$")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr (exit 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        print(f"harness: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    from fusion.cli import VersionAction
    from harness.gates import SECTIONS

    p = _Parser(
        prog="harness", description="FUSION validation harness: parity, convergence, calibration, stability."
    )
    p.add_argument("--version", action=VersionAction, help="print the installed version and exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run the checks of a suite and write the report folder")
    r.add_argument("--suite", default="quick", help="quick (CI, minutes) or full (long checks) (default: quick)")
    r.add_argument(
        "--check",
        action="append",
        dest="checks",
        metavar="NAME",
        help="run only this check (repeatable): "
        + "; ".join(f"{c.name} ({c.doc})" for c in registry.CHECKS)
        + " (default: every check of the suite)",
    )
    r.add_argument(
        "--case",
        action="append",
        dest="cases",
        type=Path,
        default=[],
        metavar="DIR",
        help=f"a case folder (case.yaml + reference/; repeatable): {', '.join(registry.per_case_names())} run "
        "on these instead of the bundled cases (default: the bundled cases)",
    )
    r.add_argument(
        "--out", type=Path, default=Path("harness-out"), help="report folder (default: harness-out)"
    )
    r.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="dask.distributed scheduler for checks that fan out, e.g. tcp://host:8786 "
        "(default: none, local processes)",
    )
    r.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"YAML thresholds: sections {', '.join(SECTIONS)}, as `harness gates` prints them "
        "(default: DESIGN.md's; see harness/gates.py)",
    )
    r.add_argument(
        "--allow-undecided",
        action="store_true",
        help="a statistical gate still undecided at its cap (its interval holds the bound) does not fail "
        "the run; it is still shown as UNDECIDED (default: it fails the run, exit 1)",
    )
    g = sub.add_parser("gates", help="print the effective thresholds as a YAML file `run --config` accepts back")
    g.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="YAML thresholds to start from (default: DESIGN.md's)")
    _add_capture(sub)
    _add_signoff(sub)
    _add_baseline(sub)
    return p


def _add_capture(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("capture", help="make a case folder by running the prototype itself")
    c.add_argument("config", type=Path, help="FUSION config naming the inputs (its observation and ensemble folders)")
    c.add_argument("--prototype", type=Path, required=True, metavar="FILE", help="the prototype's full_model.py, run unchanged (required; no default)")
    c.add_argument("--out", type=Path, required=True, metavar="CASE_DIR", help="case folder to create; must not exist or be empty (required; no default)")
    c.add_argument("--python", default=sys.executable, metavar="EXE", help="interpreter to run the prototype in (default: this Python)")
    c.add_argument("--posterior", type=Path, default=None, metavar="TRACE.nc", help="the prototype's weights at this posterior, no sampling (default: none)")
    c.add_argument("--sample", action="store_true", help="run the prototype's own sampler; its posterior becomes the reference (default: off)")
    c.add_argument("--draws", type=int, default=500, help="with --sample: draws per chain (default: 500)")
    c.add_argument("--tune", type=int, default=1000, help="with --sample: tuning steps per chain (default: 1000)")
    c.add_argument("--chains", type=int, default=4, help="with --sample: chains (default: 4)")


def _capture(args: argparse.Namespace) -> int:
    from fusion.errors import InputError
    from harness.cases.capture import CaptureOptions, capture

    opts = CaptureOptions(
        config=args.config, prototype=args.prototype, out=args.out, python=args.python,
        posterior=args.posterior, sample=args.sample, draws=args.draws, tune=args.tune, chains=args.chains,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm_capture)
    try:
        out = capture(opts)
    except InputError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        signal.signal(signal.SIGTERM, previous)
    import json

    for name, (theirs, ours) in json.loads((out / "capture.json").read_text())["config_differs"].items():
        print(f"harness: warning: prototype {name} is {theirs!r} but the config says {ours!r}", file=sys.stderr)
    print(f"harness: case captured → {out}")
    return EXIT_OK


def _on_sigterm_capture(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through capture(): child killed, temporary folder removed


def _validate(args: argparse.Namespace) -> None:
    from harness.runner import SUITES, BadInput

    if args.suite not in SUITES:
        raise BadInput(f"--suite: unknown suite {args.suite!r}; valid: {', '.join(SUITES)}")
    known = registry.names()
    for name in args.checks or []:
        if name not in known:
            raise BadInput(f"--check: unknown check {name!r}; valid: {', '.join(known)}")
    if args.scheduler is not None and not _SCHEDULER.match(args.scheduler):
        raise BadInput(f"--scheduler: {args.scheduler!r} is not an address like tcp://host:8786")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a folder")
    parent = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise BadInput(f"{parent}: not a folder, cannot create {out}")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    from harness.runner import RunInterrupted

    raise RunInterrupted(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point `harness`."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (one line, status 2) and --help (status 0)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    return COMMANDS[args.command](args)


def _run(args: argparse.Namespace) -> int:
    """`harness run`: plan, run or resume the checks, write the report; exit 0/1/2."""
    from harness.gates import load_gates
    from harness.runner import BadInput, RunOptions, run

    out: Path = args.out
    existed = out.exists()
    try:
        _validate(args)
        checks = tuple(dict.fromkeys(args.checks)) if args.checks else registry.names()
        try:
            gates = load_gates(args.config)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        options = RunOptions(
            out=out,
            suite=args.suite,
            checks=checks,
            scheduler=args.scheduler,
            case_dirs=tuple(args.cases),
            gates=gates,
            allow_undecided=args.allow_undecided,
        )
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            outcome = run(options)
        finally:
            signal.signal(signal.SIGTERM, previous)
    except BadInput as exc:
        if not existed and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _keep_screenshot(out)
    counts: dict[str, int] = {}
    for entry in outcome.entries:
        counts[entry.result.status] = counts.get(entry.result.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(
        f"harness: {outcome.marker.strip('_').replace('RUN_', '').lower()} ({summary}) → {out / 'report.md'}"
    )
    return outcome.exit_code


def _gates(args: argparse.Namespace) -> int:
    """`harness gates [--config FILE]`: the effective thresholds on stdout, as YAML; exit 2 on a bad file."""
    from harness.gates import dump_gates, load_gates

    try:
        gates = load_gates(args.config)
    except ValueError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(dump_gates(gates))
    return EXIT_OK


def _add_signoff(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("signoff", help="record a sign-off of a finished run and re-render its reports")
    s.add_argument("out", type=Path, metavar="OUT_DIR", help="the folder a finished `harness run` wrote (holds its run marker)")
    s.add_argument("--name", required=True, help="who signs, as shown in the reports (required; no default)")
    s.add_argument("--decision", required=True, choices=("approve", "reject"), help="approve (only a _RUN_SUCCESS run) or reject (required; no default)")
    s.add_argument("--note", default=None, help="free text shown in the reports (default: none)")


def _keep_screenshot(out: Path) -> None:
    """`report.png` beside `report.html` when Chromium is installed (best effort: the exit status stays)."""
    import subprocess

    from harness.report.browser import BrowserError, find_chromium, screenshot

    if find_chromium() is None or not (out / "report.html").is_file():
        return
    try:
        screenshot(out / "report.html", out / "report.png")
    except (BrowserError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"harness: report.png not written ({exc})")


def _signoff(args: argparse.Namespace) -> int:
    """`harness signoff`: one line on success, one line on stderr and exit 2 when refused."""
    from harness.report.signoff import SignoffRefused, sign

    try:
        rec = sign(args.out, args.name, args.decision, args.note)
    except SignoffRefused as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _keep_screenshot(args.out)
    where = args.out / "signoff.json"
    print(f"harness: {rec['decision']} by {rec['name']} recorded in {where}; reports re-rendered")
    return EXIT_OK


def _add_baseline(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("baseline", help="record FUSION's outputs on a case as the baseline the drift check compares with")
    b.add_argument("--case", type=Path, required=True, metavar="DIR", help="the case folder (case.yaml); the baseline goes to DIR/baselines/<fusion version>-<config hash>/ (required; no default)")
    b.add_argument("--accept", action="store_true", help="re-baseline after reviewing a drift report; needs --name and --note (default: only a first baseline is recorded)")
    b.add_argument("--name", default=None, help="with --accept: who reviewed the change (required with --accept; no default)")
    b.add_argument("--note", default=None, help="with --accept: why the change is expected (required with --accept; no default)")


def _baseline(args: argparse.Namespace) -> int:
    """`harness baseline`: one line on success; bad input is one line on stderr, exit 2, nothing written."""
    from fusion.errors import InputError
    from harness.cases.baseline import Acceptance, make_baseline

    try:
        if not args.accept and (args.name is not None or args.note is not None):
            raise InputError(None, "--name and --note sign an --accept; a first baseline takes neither")
        accept = Acceptance(args.name or "", args.note or "") if args.accept else None
        done = make_baseline(args.case, accept, progress=lambda line: print(f"harness: {line}", file=sys.stderr),
                             progressbar=sys.stderr.isatty())
    except InputError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    how = f"accepted by {accept.name}" if accept is not None else "first baseline"
    print(f"harness: baseline {done.id} recorded ({how}) → {done.path}")
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "gates": _gates,
    "capture": _capture,
    "signoff": _signoff,
    "baseline": _baseline,
}


if __name__ == "__main__":
    raise SystemExit(main())
