"""`fusion` command line: example, prepare, weights, run, export.

Bad input exits with status 2 and one line on stderr naming the file and the problem;
outputs are written atomically, so a failed command leaves nothing under its final name.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fusion.errors import DataWarning, InputError

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def _cmd_example(args: argparse.Namespace) -> int:
    from fusion.data.synthetic import write_example

    config = write_example(Path(args.dir))
    print(f"example dataset and config written: {config}")
    return 0


def _prepared(config: Path):
    from fusion.config import load_config
    from fusion.data.load import load_data
    from fusion.data.prepare import prepare

    cfg = load_config(config)
    return cfg, prepare(cfg, load_data(cfg))


def _cmd_prepare(args: argparse.Namespace) -> int:
    _, prepared = _prepared(args.config)
    prepared.to_npz(args.out)
    print(f"{args.out}: {prepared.n_points} points ({prepared.n_dhdt} dh/dt, {prepared.n_vel} dv/dt), "
          f"{prepared.n_members} members")
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
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
    from fusion.pipeline import run_to_dir

    out = run_to_dir(args.config, args.out)
    print(f"results written to {out}")
    return 0


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusion", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("example", help="write the bundled synthetic dataset and a config into DIR")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=_cmd_example)

    p = sub.add_parser("prepare", help="write the prepared arrays (.npz)")
    p.add_argument("config", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("weights", help="plug-in weights from a saved posterior")
    p.add_argument("config", type=Path)
    p.add_argument("--trace", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("run", help="the whole pipeline: weights, projection, plot, metadata")
    p.add_argument("config", type=Path)
    p.add_argument("--out", type=Path, default=None)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("export", help="a finished run for downstream users: posterior container or FACTS file")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", required=True, choices=("posterior", "facts"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--samples", nargs="?", const="all", default=None,
                   help="posterior: include every draw; facts: number of samples (default 20000)")
    p.add_argument("--years", default=None, help="facts: START:END:STEP (default 2020:2100:10)")
    p.add_argument("--baseyear", type=float, default=None, help="facts: year the SLE is relative to")
    p.add_argument("--scenario", default=None, help="facts: scenario name stored in the file")
    p.add_argument("--seed", type=int, default=0, help="facts: seed of the sample draw")
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


if __name__ == "__main__":
    sys.exit(main())
