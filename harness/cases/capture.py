"""`harness capture`: make a case folder from the prototype itself (DESIGN.md "Cases").

The prototype file runs unchanged, as a child process in the interpreter the team already
runs it with (`--python`), through `capture_driver.py`, which never imports FUSION. What lands
in `reference/` is exactly what the prototype produced; this side only checks the inputs,
records provenance (`capture.json`, `capture.log`) and writes the folder atomically: it is
built under a hidden sibling name, stamped `_SUCCESS` last, then renamed, so nothing ever
appears under the final name unless it is complete.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fusion.config import Config, load_config
from fusion.errors import InputError
from fusion.inference.plugin import load_posterior
from fusion.io import mark_success, sha256_file, write_json, write_text
from harness.cases.capture_driver import FUNCTIONS as REQUIRED_FUNCTIONS
from harness.cases.capture_driver import PATH_CONSTANTS

__all__ = ["CaptureOptions", "capture", "DRIVER", "REQUIRED_FUNCTIONS", "PATH_CONSTANTS"]

DRIVER = Path(__file__).with_name("capture_driver.py")
REQUIRED_PACKAGES = ("numpy", "xarray", "pymc")
REPORTED_PACKAGES = ("numpy", "xarray", "pymc", "pandas", "arviz", "pytensor", "netCDF4", "scipy")
_PROBE = """\
import importlib.util, importlib.metadata as md, json, sys
out = {"python": sys.version.split()[0], "executable": sys.executable, "packages": {}}
for name in %r:
    if importlib.util.find_spec(name) is None:
        out["packages"][name] = None
        continue
    try:
        out["packages"][name] = md.version(name)
    except md.PackageNotFoundError:
        out["packages"][name] = "unknown"
print(json.dumps(out))
"""


@dataclass(frozen=True)
class CaptureOptions:
    config: Path
    prototype: Path
    out: Path
    python: str = sys.executable
    posterior: Path | None = None
    sample: bool = False
    draws: int = 500
    tune: int = 1000
    chains: int = 4


def check_prototype(path: Path) -> None:
    """Name the first missing function or path constant, by reading the file (nothing runs)."""
    if not path.is_file():
        raise InputError(path, "prototype file not found")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"prototype is not readable Python ({type(exc).__name__})") from None
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for name in REQUIRED_FUNCTIONS:
        if name not in functions:
            raise InputError(path, f"prototype has no function {name}()")
    assigned = {
        t.id
        for scope in (tree, functions["load_and_prepare_data"])
        for node in ast.walk(scope)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for name in PATH_CONSTANTS:
        if name not in assigned:
            raise InputError(path, f"prototype has no constant {name} (a string assigned in load_and_prepare_data())")


def probe_interpreter(python: str) -> dict:
    """Version of the interpreter and its packages; refuse one without numpy, xarray or pymc."""
    exe = shutil.which(python) if os.sep not in python else python
    if exe is None or not Path(exe).is_file():
        raise InputError(python, "interpreter not found")
    try:
        done = subprocess.run(
            [exe, "-c", _PROBE % (REPORTED_PACKAGES,)], capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(exe, f"interpreter cannot be run ({type(exc).__name__})") from None
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise InputError(exe, f"interpreter cannot be run (exit status {done.returncode})") from None
    for name in REQUIRED_PACKAGES:
        if info["packages"].get(name) is None:
            raise InputError(exe, f"interpreter lacks the package {name}")
    return info


def _specs(cfg: Config) -> dict[str, Any]:
    return {"observations.thickness": cfg.observations.thickness, "observations.velocity": cfg.observations.velocity,
            "ensemble": cfg.ensemble}


def _inputs(cfg: Config) -> dict[str, str]:
    """SHA-256 of every input, a remote one by its URL (fetched into the cache first)."""
    from fusion.data.remote import is_remote, list_inputs
    from fusion.io import input_digests

    out: dict[str, str] = {}
    for key, spec in _specs(cfg).items():
        if is_remote(spec.dir):
            out.update(input_digests(list_inputs(spec.dir, spec.pattern, key, cfg.source,
                                                 storage_options=spec.storage_options, cache_dir=cfg.cache.dir)))
        else:
            out.update({str(p): sha256_file(p) for p in sorted(Path(spec.dir).glob(spec.pattern)) if p.is_file()})
    return out


def _local_dirs(cfg: Config) -> dict[str, str]:
    """The folders the prototype reads: a URL becomes a local folder of links into the cache."""
    from fusion.data.remote import local_view

    return {key: str(local_view(spec.dir, spec.pattern, key, storage_options=spec.storage_options, cache_dir=cfg.cache.dir))
            for key, spec in _specs(cfg).items()}


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
    return lines[-1] if lines else "(no output)"


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(out, "case folder already exists and is not empty")
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)


def _run_driver(opts: CaptureOptions, exe: str, cfg: Config, case: Path) -> dict:
    """Run the prototype through the driver; its printed log goes to `capture.log` beside the reference."""
    ref = case / "reference"
    ref.mkdir()
    dirs = _local_dirs(cfg)
    spec = {
        "prototype": str(opts.prototype.resolve()),
        "thickness_dir": dirs["observations.thickness"],
        "velocity_dir": dirs["observations.velocity"],
        "model_dir": dirs["ensemble"],
        "model_pattern": cfg.ensemble.pattern,
        "mode": "sample" if opts.sample else "posterior",
        "posterior": str(opts.posterior.resolve()) if opts.posterior else None,
        "draws": opts.draws,
        "tune": opts.tune,
        "chains": opts.chains,
        "target_accept": cfg.inference.target_accept,
        "reference_dir": str(ref),
        "result": str(case / ".driver-result.json"),
    }
    spec_path = case / ".driver-spec.json"
    spec_path.write_text(json.dumps(spec))
    log = case / "capture.log"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen([exe, str(DRIVER), str(spec_path)], stdout=fh, stderr=subprocess.STDOUT, cwd=ref, env=env)
        try:
            status = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: the child must not outlive the capture
                proc.kill()
                proc.wait()
    result_path = Path(spec["result"])
    outcome = json.loads(result_path.read_text()) if result_path.is_file() else None
    spec_path.unlink()
    result_path.unlink(missing_ok=True)
    if outcome is None:
        raise InputError(opts.prototype, f"prototype process exited with status {status}: {_last_line(log)}")
    if not outcome["ok"]:
        where = opts.posterior if outcome["kind"] == "input" else opts.prototype
        raise InputError(where, outcome["message"])
    if opts.posterior is not None:
        shutil.copyfile(opts.posterior, ref / "posterior.nc")
    return outcome


def config_differences(cfg: Config, constants: dict[str, str]) -> dict[str, list[str]]:
    """Prototype constants (only its paths are set) that disagree with the config: FUSION would read other data."""
    obs, ens = cfg.observations, cfg.ensemble
    ours = {
        "THICKNESS_PATTERN": obs.thickness.pattern, "OBS_THICKNESS_VAR": obs.thickness.var,
        "OBS_THICKNESS_RMSE_VAR": obs.thickness.uncertainty_var, "VELOCITY_PATTERN": obs.velocity.pattern,
        "OBS_VX_VAR": obs.velocity.vx_var, "OBS_VY_VAR": obs.velocity.vy_var, "OBS_VX_ERR_VAR": obs.velocity.vx_err_var,
        "OBS_VY_ERR_VAR": obs.velocity.vy_err_var, "MODEL_PATTERN": ens.pattern, "MODEL_THICKNESS_VAR": ens.thickness_var,
        "MODEL_VX_VAR": ens.vx_var, "MODEL_VY_VAR": ens.vy_var,
    }  # fmt: skip
    return {k: [constants[k], v] for k, v in ours.items() if k in constants and constants[k] != v}


def _relative(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target, start)
    except ValueError:  # another drive on Windows
        return str(target)


def capture(opts: CaptureOptions) -> Path:
    """Validate the inputs, run the prototype, and write the case folder atomically; return it."""
    started = time.time()
    if opts.sample == (opts.posterior is not None):
        raise InputError(None, "give exactly one of --posterior TRACE.nc or --sample")
    for name in ("draws", "chains"):
        if getattr(opts, name) < 1:
            raise InputError(None, f"--{name} must be at least 1")
    if opts.tune < 0:
        raise InputError(None, "--tune must not be negative")
    cfg = load_config(opts.config)
    check_prototype(opts.prototype)
    if opts.posterior is not None:
        load_posterior(opts.posterior)
    out = opts.out.absolute()
    _check_out(out)
    interpreter = probe_interpreter(opts.python)
    inputs = _inputs(cfg)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.capture-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; a case folder is shared
    try:
        outcome = _run_driver(opts, interpreter["executable"], cfg, tmp)
        settings = {
            "mode": "sample" if opts.sample else "posterior",
            "target_accept": cfg.inference.target_accept,
            **({"draws": opts.draws, "tune": opts.tune, "chains": opts.chains} if opts.sample else {}),
        }
        record = {
            "prototype": {"path": str(opts.prototype.resolve()), "sha256": sha256_file(opts.prototype)},
            "prototype_constants": outcome["prototype_constants"],
            "config_differs": config_differences(cfg, outcome["prototype_constants"]),
            "interpreter": interpreter,
            "config": {"path": str(Path(opts.config).resolve()), "sha256": sha256_file(opts.config)},
            "inputs": inputs,
            "posterior": (
                {"path": str(opts.posterior.resolve()), "sha256": sha256_file(opts.posterior)} if opts.posterior else None
            ),
            "settings": settings,
            "member_ids": outcome["member_ids"],
            "trace_groups": outcome["trace_groups"],  # what the prototype's sampler returned, all kept (--sample)
            "wall_seconds": {**outcome["timings"], "total": time.time() - started},
            "log": "capture.log",
        }
        write_json(tmp / "capture.json", record)
        case_yaml = {"name": out.name, "config": _relative(Path(opts.config).resolve(), out), "reference": "reference"}
        write_text(tmp / "case.yaml", yaml.safe_dump(case_yaml, sort_keys=False))
        mark_success(tmp)
        if out.exists():
            out.rmdir()  # empty (checked above): the rename needs the name free
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
