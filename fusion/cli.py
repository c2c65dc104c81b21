"""`fusion` command line: example, prepare, weights, run, export.

Bad input exits with status 2 and one line on stderr naming the file and the problem;
outputs are written atomically, so a failed command leaves nothing under its final name.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fusion.errors import DataWarning, InputError

__all__ = ["VersionAction", "main", "package_version"]

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
#: What `fusion run` writes, for its --help (tests hold it to `fusion.pipeline.OUTPUT_FILES`).
RUN_OUTPUTS = """\
writes into the output folder (a failed run leaves no _SUCCESS):
  weights.csv        per member: posterior mean and sd of w, plug-in weight and log-likelihood
  projection.csv     per member: sea-level contribution sle_mm in the target year, weight
  summary.json       weighted SLE distribution (median, mean, sd, interval), weighted mean;
                     likelihood (form, correlation length, n_eff) and sensitivity per form
  projection.png     weighted against unweighted SLE; posterior of the weighted mean
  availability.png   kept observation pixels per stream on the grid
  variogram.png      residual semivariogram and fitted covariance per stream
  sensitivity.png    member weights and 5/50/95 % projection under every likelihood form
  perfect_model.png  the member temperature's inner perfect-model test (each member held out as the truth)
  fit.json           posterior predictive check per stream: residuals, PIT, blocks, worst regions
  residuals.png      standardized residual maps, their histograms, block-PIT ECDF with band
  run_metadata.json  config and hash, versions, input SHA-256s, seeds, diagnostics
  trace.nc           posterior draws and sampler statistics (NetCDF groups)
  _SUCCESS           written last: the folder is complete
"""


def package_version(distribution: str = "fusion") -> str:
    """The installed distribution's version (package metadata), for `--version`. (`importlib.metadata`
    loads here: 0.1 s that the figure worker, which imports this module as its `__main__`, never needs.)"""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _cmd_example(args: argparse.Namespace) -> int:
    from fusion.data.synthetic import write_example

    config = write_example(Path(args.dir))
    print(f"example dataset and config written: {config}")
    return 0


def _prepared(config: Path, chunk_rows: int | None = None, scheduler: str | None = None):
    from fusion.config import load_config
    from fusion.data.load import load_data
    from fusion.data.prepare import prepare

    cfg = load_config(config)
    data = load_data(cfg, lazy=True)  # fields read by blocks of rows: memory bounded by `memory.budget_gb`
    return cfg, prepare(cfg, data, chunk_rows=chunk_rows, scheduler=scheduler, progress=True)  # a terminal only


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows above 0, got {text!r}")
    return value


def _check_scheduler(args: argparse.Namespace) -> None:
    """A bad or unreachable `--scheduler` fails before any input is read."""
    if args.scheduler is not None:
        from fusion.data.cluster import check_scheduler

        check_scheduler(args.scheduler)


def _cmd_prepare(args: argparse.Namespace) -> int:
    _check_scheduler(args)
    _, prepared = _prepared(args.config, args.chunk_rows, args.scheduler)
    prepared.to_npz(args.out)
    print(f"{args.out}: {prepared.n_points} points ({prepared.n_dhdt} dh/dt, {prepared.n_vel} dv/dt), "
          f"{prepared.n_members} members")
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    import pandas as pd

    from fusion.inference.plugin import load_posterior, plug_in_weights
    from fusion.io import write_csv

    posterior = load_posterior(args.trace)  # read before the heavier prepare: a bad trace fails fast
    _, prepared = _prepared(args.config)
    weights, loglik = plug_in_weights(prepared, posterior)
    table = pd.DataFrame({"member_id": list(prepared.member_ids), "weight": weights, "log_likelihood": loglik})
    write_csv(args.out, table)
    print(f"{args.out}: plug-in weights of {len(table)} members")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from fusion.config import load_config

    cfg = load_config(args.config)  # a bad config is reported before anything heavy starts
    _check_scheduler(args)
    from fusion.worker import RunWorker

    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    # the second process starts first: it imports Matplotlib and ArviZ's statistics on the
    # other core while this one imports the pipeline, reads the data and samples
    # (under `compat: fixed` the correlation estimate is its first task: likelihood.form effective)
    with RunWorker(correlation=cfg.compat == "fixed") as worker:
        from fusion.pipeline import run_to_dir

        out = run_to_dir(cfg, args.out, progressbar=progress, worker=worker,
                         chunk_rows=args.chunk_rows, scheduler=args.scheduler)
    summary = Path(out) / "summary.json"
    if summary.exists():
        from fusion.io import read_json

        print(projection_line(read_json(summary)))
    print(f"results written to {out}")
    return 0


def projection_line(summary: dict[str, Any]) -> str:
    """The run's answer in one line (summary.json): the weighted SLE's median and range, and the
    member weighting that gave it, so a terminal shows what the files hold."""
    lq, uq, units = summary.get("lower_q", 0.05), summary.get("upper_q", 0.95), summary.get("units", "mm")
    line = (f"SLE in {summary.get('target_year', 2100):.0f}: median {summary['median']:.1f} {units}, "
            f"{lq:.0%}–{uq:.0%} range {summary['lower']:.1f}–{summary['upper']:.1f} {units}")
    calibration = summary.get("calibration")
    if calibration:
        lam = calibration.get("temperature") or {}
        line += (f" (member weights calibrated by {calibration.get('method')}: "
                 + ", ".join(f"λ_{k} {v:.3g}" for k, v in lam.items())
                 + ("" if calibration.get("confident", True) else "; no confident temperature") + ")")
    return line


def _cmd_export(args: argparse.Namespace) -> int:
    from fusion.errors import InputError
    from fusion.export import export

    samples: int | bool | None = None
    if args.samples is not None:
        if args.format == "posterior":
            if args.samples != "all":
                raise InputError(None, "--samples takes no number with --format posterior (it adds every draw)")
            samples = True
        else:
            try:
                samples = int(args.samples)
            except ValueError:
                raise InputError(None, f"--samples {args.samples!r}: expected a whole number of samples") from None
    out = export(
        args.run_dir, args.format, args.out, samples=samples, years=args.years, baseyear=args.baseyear,
        scenario=args.scenario, seed=args.seed,
    )
    print(f"{out}: {args.format} export of {args.run_dir}")
    return 0


def _chunk_options(p: argparse.ArgumentParser) -> None:
    """How `prepare` runs (never what it gives: the bits are the same), for `prepare` and `run`."""
    p.add_argument("--chunk-rows", type=_positive, default=None, metavar="N",
                   help="stream the grid by blocks of N rows: memory set by N, same bits (default: the whole grid at once)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="run prepare's blocks of rows on this dask.distributed scheduler, e.g. tcp://host:8786; "
                        "workers read the inputs from the same paths (default: in this process; "
                        "blocks of 256 rows unless --chunk-rows)")


class VersionAction(argparse.Action):
    """argparse's `version` action, with the version read when `--version` is given, not each
    time the parser is built (`package_version` loads `importlib.metadata`)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"{parser.prog} {package_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusion", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=VersionAction, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = "the run's YAML config (every key, its default and range: DESIGN.md)"

    p = sub.add_parser("example", help="write the bundled synthetic dataset and a config into DIR")
    p.add_argument("dir", type=Path, help="folder to write into (created if missing)")
    p.set_defaults(func=_cmd_example)

    p = sub.add_parser("prepare", help="write the prepared arrays (.npz)")
    p.add_argument("config", type=Path, help=config_help)
    p.add_argument("--out", type=Path, required=True, help="the .npz file to write (required; no default)")
    _chunk_options(p)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("weights", help="plug-in weights from a saved posterior")
    p.add_argument("config", type=Path, help=config_help)
    p.add_argument("--trace", type=Path, required=True,
                   help="NetCDF file with a 'posterior' group, e.g. a run's trace.nc (required; no default)")
    p.add_argument("--out", type=Path, required=True,
                   help="the CSV to write: member_id, weight, log_likelihood (required; no default)")
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("run", help="the whole pipeline: weights, projection, plot, metadata",
                       description="The whole pipeline: load, prepare, sample, project and write a run folder.",
                       epilog=RUN_OUTPUTS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help=config_help)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: the config's output.dir, itself 'results' beside the config)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show the sampler's progress bar (default: shown only when stderr is a terminal, "
                        "so CI logs stay quiet)")
    _chunk_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("export", help="a finished run for downstream users: posterior container or FACTS file")
    p.add_argument("run_dir", type=Path, help="a finished `fusion run` folder (stamped _SUCCESS)")
    p.add_argument("--format", required=True, choices=("posterior", "facts"),
                   help="posterior: JSON container (mean, cov, provenance); facts: FACTS component NetCDF "
                        "(required; no default)")
    p.add_argument("--out", type=Path, required=True, help="the file to write (required; no default)")
    p.add_argument("--samples", nargs="?", const="all", default=None,
                   help="posterior: include every draw; facts: number of samples (default 20000)")
    p.add_argument("--years", default=None, help="facts: START:END:STEP (default 2020:2100:10)")
    p.add_argument("--baseyear", type=float, default=None, help="facts: year the SLE is relative to (default: the end of the historical run)")
    p.add_argument("--scenario", default=None, help="facts: scenario name stored in the file (default: unspecified)")
    p.add_argument("--seed", type=int, default=0, help="facts: seed of the sample draw (default: 0)")
    p.set_defaults(func=_cmd_export)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """One line per warning, no source location: users act on the message, not our line numbers."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", DataWarning)
            warnings.showwarning = _show_warning
            return int(args.func(args))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C: outputs are written to temporary names, so none is half-written
        print(f"interrupted: fusion {args.command} stopped; no output was completed "
              "(files are written under temporary names; a run folder without _SUCCESS is incomplete)",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def console() -> None:
    """The `fusion` command: `main`, then the end of the process without interpreter teardown.

    When `main` returns, every output is written, closed and stamped, and the worker process
    is done. Tearing down the ~2,300 modules a run loads (HDF5, LLVM, Arrow, ...) would add
    0.4 s to every `fusion run` and change nothing a user sees, so after
    flushing the standard streams the process ends at once with `main`'s exit status. An
    exception from `main` (a bug) ends it the usual way, with its traceback.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
