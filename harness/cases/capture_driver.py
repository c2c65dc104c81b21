"""Child side of `harness capture`: runs a prototype file unchanged, in the prototype's interpreter.

Run as a script by path (`EXE capture_driver.py SPEC.json`), never imported by FUSION. It may
import only the standard library and what the prototype itself imports (numpy, xarray,
pandas, pymc 5, arviz 0.x) — never `fusion` or `harness`: the reference must be what the
prototype produced, in the prototype's own environment, with nothing recomputed by FUSION.

The prototype's three path "constants" are local variables of `load_and_prepare_data()`, so
they are set by replacing those string constants in the function's code object (found with
`dis`), leaving the file on disk untouched. Everything the prototype prints goes to this
process's stdout (the parent keeps it as `capture.log`). The result — or the reason for a
failure — goes to `SPEC.json`'s `result` file as JSON; the parent turns a failure into one line.
"""

from __future__ import annotations

import dis
import glob
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import traceback
import types
from pathlib import Path

FUNCTIONS = (
    "load_and_prepare_data",
    "prepare_for_inference",
    "build_model_proposal",
    "run_mcmc",
    "compute_model_weights",
    "save_model_weights",
)
PATH_CONSTANTS = ("OBS_THICKNESS_DIR", "OBS_VELOCITY_DIR", "MODEL_DIR")
READ_CONSTANTS = (  # reported, not changed: `harness capture` compares them with the config
    "THICKNESS_PATTERN", "OBS_THICKNESS_VAR", "OBS_THICKNESS_RMSE_VAR",
    "VELOCITY_PATTERN", "OBS_VX_VAR", "OBS_VY_VAR", "OBS_VX_ERR_VAR", "OBS_VY_ERR_VAR",
    "MODEL_PATTERN", "MODEL_THICKNESS_VAR", "MODEL_VX_VAR", "MODEL_VY_VAR",
)
NOISE_SCALARS = ("sigma_base_thick", "sigma_base_vel", "beta_thick", "beta_vel")
PREPARED_KEYS = ("y_obs", "sigma_obs", "F", "speed", "n_dhdt", "n_vel")
_NUMBER = re.compile(r"\d+")


class CaptureError(Exception):
    """A problem the parent reports as one line: `kind` says whose fault it is."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _string_constants(code: types.CodeType) -> dict[str, tuple[int, str]]:
    """Local name → (index in co_consts, value) for every `NAME = "literal"` in the function."""
    found: dict[str, tuple[int, str]] = {}
    previous = None
    for ins in dis.get_instructions(code):
        if ins.opname == "STORE_FAST" and previous is not None and previous.opname == "LOAD_CONST":
            if isinstance(previous.argval, str) and ins.argval not in found:
                found[ins.argval] = (previous.arg, previous.argval)
        previous = ins
    return found


def _set_constants(module: types.ModuleType, values: dict[str, str]) -> dict[str, str]:
    """Point the path constants at `values`; return the prototype's pattern constants as found."""
    fn = module.load_and_prepare_data
    code = fn.__code__
    found = _string_constants(code)
    consts = list(code.co_consts)
    for name, value in values.items():
        if name in found:
            consts[found[name][0]] = value
        elif isinstance(getattr(module, name, None), str):
            setattr(module, name, value)  # a copy that made it a module global
        else:
            raise CaptureError("prototype", f"prototype has no constant {name} in load_and_prepare_data()")
    fn.__code__ = code.replace(co_consts=tuple(consts))
    patterns = {}
    for name in READ_CONSTANTS:
        if name in found:
            patterns[name] = found[name][1]
        elif isinstance(getattr(module, name, None), str):
            patterns[name] = getattr(module, name)
    return patterns


def _import_prototype(path: Path) -> types.ModuleType:
    """Import the file as a module named after it, so its `__main__` block does not run."""
    spec = importlib.util.spec_from_file_location(f"_prototype_{path.stem.replace(' ', '_')}", path)
    if spec is None or spec.loader is None:
        raise CaptureError("prototype", "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # its imports or module-level code: the user's environment, not ours
        traceback.print_exc(file=sys.stdout)
        raise CaptureError("prototype", f"importing the prototype failed: {type(exc).__name__}: {exc}") from None
    missing = [name for name in FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise CaptureError("prototype", f"prototype has no function {missing[0]}()")
    return module


def member_ids(model_dir: str, pattern: str) -> list[str]:
    """`run<N>` from the number in each name of the prototype's sorted model file list."""
    ids = []
    for p in sorted(glob.glob(model_dir + "/" + pattern)):
        m = _NUMBER.search(os.path.basename(p))
        ids.append(f"run{int(m.group())}" if m else os.path.basename(p))
    return ids


def _save_prepared(path: Path, data: dict, ids: list[str]) -> None:
    import numpy as np

    missing = [k for k in PREPARED_KEYS if k not in data]
    if missing:
        raise CaptureError("prototype", f"prepare_for_inference() returned no '{missing[0]}'")
    arrays = {k: np.asarray(data[k]) for k in PREPARED_KEYS}
    arrays["member_ids"] = np.array(ids, dtype=str)
    np.savez(path, **arrays)


def _check_table(path: Path, weights, loglik) -> None:
    """The prototype's CSV must read back to the bits it computed (by position `run{i+1}`)."""
    import csv

    with open(path, newline="") as fh:
        rows = {r["model_id"]: r for r in csv.DictReader(fh)}
    for i, (w, ll) in enumerate(zip(weights, loglik)):
        row = rows.get(f"run{i + 1}")
        if row is None or float(row["weight"]) != float(w) or float(row["log_likelihood"]) != float(ll):
            raise CaptureError("prototype", f"{path.name}: row run{i + 1} does not read back to the computed bits")


def save_trace(trace, path: Path) -> list[str]:
    """Every group the prototype's sampler returned, written by its own ArviZ (or xarray): nothing
    dropped, nothing recomputed. Returns the group names, for `capture.json`.

    PyMC 5 with ArviZ 0.x returns an `InferenceData` (`groups()`, `to_netcdf(filename)`); a newer
    stack returns an `xarray.DataTree`, whose groups are its children.
    """
    children = getattr(trace, "children", None)
    if children is not None and callable(getattr(trace, "to_netcdf", None)):
        groups = [str(name) for name in children]
    elif callable(getattr(trace, "groups", None)) and callable(getattr(trace, "to_netcdf", None)):
        groups = [str(name) for name in trace.groups()]
    else:
        raise CaptureError("prototype", f"run_mcmc() returned a {type(trace).__name__}, not an InferenceData or DataTree")
    if "posterior" not in groups:
        raise CaptureError("prototype", f"run_mcmc() returned a trace without a posterior group (groups: {groups})")
    trace.to_netcdf(str(path))
    return groups


def _posterior_of(path: str):
    import xarray as xr

    try:
        with xr.open_dataset(path, group="posterior") as ds:
            post = ds.load()
    except (OSError, ValueError, KeyError) as exc:
        raise CaptureError("input", f"no readable 'posterior' group ({exc})") from None
    missing = [k for k in NOISE_SCALARS if k not in post]
    if missing:
        raise CaptureError("input", f"posterior lacks {', '.join(missing)}")
    return post


def run(spec: dict) -> dict:
    """Run the prototype's stages as `spec` says; return timings and what was found."""
    ref = Path(spec["reference_dir"])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    module = _import_prototype(Path(spec["prototype"]))
    patterns = _set_constants(
        module,
        {"OBS_THICKNESS_DIR": spec["thickness_dir"], "OBS_VELOCITY_DIR": spec["velocity_dir"], "MODEL_DIR": spec["model_dir"]},
    )
    timings["import"] = time.perf_counter() - t0
    posterior = _posterior_of(spec["posterior"]) if spec["mode"] == "posterior" else None

    def stage(name: str, fn, *args):
        start = time.perf_counter()
        print(f"[capture] {name}", flush=True)
        try:
            out = fn(*args)
        except Exception as exc:  # the prototype's own failure: its last line is what the user sees
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
            last = (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[-1]
            raise CaptureError("prototype", f"prototype failed in {name}(): {last}") from None
        timings[name] = time.perf_counter() - start
        sys.stdout.flush()
        return out

    raw = stage("load_and_prepare_data", module.load_and_prepare_data)
    data = stage("prepare_for_inference", module.prepare_for_inference, raw)
    ids = member_ids(spec["model_dir"], patterns.get("MODEL_PATTERN", spec["model_pattern"]))
    _save_prepared(ref / "prepared.npz", data, ids)
    groups = None
    if spec["mode"] == "sample":
        model = stage("build_model_proposal", module.build_model_proposal, data)
        trace = stage(
            "run_mcmc", module.run_mcmc, model, spec["draws"], spec["tune"], spec["chains"], spec["target_accept"]
        )
        groups = save_trace(trace, ref / "sampled_posterior.nc")
        shutil.copyfile(ref / "sampled_posterior.nc", ref / "posterior.nc")
    else:
        trace = types.SimpleNamespace(posterior=posterior)  # what the prototype reads of a trace: `.posterior`
    weights, loglik = stage("compute_model_weights", module.compute_model_weights, trace, data)
    cwd = os.getcwd()
    os.chdir(ref)
    try:
        stage("save_model_weights", module.save_model_weights, weights, loglik)
    finally:
        os.chdir(cwd)
    table = ref / "model_weights_table.csv"
    if not table.is_file():
        raise CaptureError("prototype", "save_model_weights() wrote no model_weights_table.csv")
    _check_table(table, weights, loglik)
    return {"timings": timings, "prototype_constants": patterns, "member_ids": ids, "trace_groups": groups}


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != here]  # no harness/ module shadowing
    spec = json.loads(Path(argv[1]).read_text())
    result_path = Path(spec["result"])
    try:
        outcome = {"ok": True, **run(spec)}
    except CaptureError as exc:
        outcome = {"ok": False, "kind": exc.kind, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 — anything else is reported, with its traceback in the log
        traceback.print_exc(file=sys.stdout)
        outcome = {"ok": False, "kind": "driver", "message": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    sys.stdout.flush()
    result_path.write_text(json.dumps(outcome))
    return 0 if outcome["ok"] else 3


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
