"""What one import changes in the process's global state: run as a script in a fresh process.

    python -P tests/global_state.py [--together] MODULE ...

loads the other packages the MODULEs import as they load, takes a snapshot, then imports each
MODULE in a child forked from there (all in one child with `--together`), takes another, and
prints as JSON {module: one line per difference} (an empty list: none).
The snapshot holds the interpreter-wide settings a library could change (warnings filters,
environment variables, threads and BLAS thread pools, the cyclic collector, signal handlers,
`sys` hooks and paths, logging, NumPy's error and print settings and its global random state,
the locale, the working folder, Matplotlib's rcParams) and, for every module of another
package loaded before, its attributes: each value's identity, and for containers, classes and
configuration-like objects their contents two levels deep, so a write into a private cache
(`pkg._cache[key] = ...`), a replaced function or a patched class method shows.

Importing a submodule binds it as an attribute of its parent package: a new attribute holding a
module is the import itself, not a change. Modules of the standard library are left out (their
compiled-expression and type caches fill with any use); their interpreter-wide settings are in
the list above. The probe's own imports happen before the first snapshot.
"""

from __future__ import annotations

import gc
import importlib
import json
import locale
import logging
import os
import signal
import sys
import sysconfig
import threading
import types
import warnings
from typing import Any

_STDLIB = sysconfig.get_paths()["stdlib"]
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_CLASS_CACHES = ("__slotnames__",)  # `copyreg` caches a class's slot names there on its first copy or pickle


def _is_other_package(name: str, module: object, own: tuple[str, ...]) -> bool:
    top = name.partition(".")[0]
    if top in own or top in ("__main__", "__mp_main__"):
        return False
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return False
    path = getattr(module, "__file__", None) or ""
    return not path.startswith(_STDLIB + os.sep) or "site-packages" in path


def _contents(mapping: Any) -> dict[Any, Any]:
    """{key: value's identity (a scalar: its value)} of a dict or an object's attributes."""
    return {k: v if isinstance(v, _SCALARS) else id(v) for k, v in list(mapping.items())}


def _fingerprint(value: Any, defined_here: bool) -> Any:
    """A comparable summary of a module attribute: a scalar by value, anything else by identity
    and, for containers, classes defined in the module, functions and configuration-like
    objects, their contents (a dict of dicts two levels deep, as configuration trees are)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, types.FunctionType):
        return ("function", id(value), id(value.__code__), id(value.__defaults__), id(value.__kwdefaults__))
    if isinstance(value, (types.ModuleType, types.BuiltinFunctionType)):
        return id(value)
    if isinstance(value, type) and not defined_here:
        return id(value)
    try:
        if isinstance(value, type):
            attrs = {k: v for k, v in _contents(vars(value)).items() if k not in _CLASS_CACHES}
            return ("class", id(value), attrs)
        if isinstance(value, dict):
            return ("dict", id(value), {k: _contents(v) if isinstance(v, dict) else c
                                        for (k, c), v in zip(_contents(value).items(), list(value.values()))})
        if isinstance(value, (list, tuple)):
            return ("sequence", id(value), [v if isinstance(v, _SCALARS) else id(v) for v in value])
        if isinstance(value, (set, frozenset)):
            return ("set", id(value), sorted(map(repr, value)))
        return ("object", id(value), _contents(vars(value)))
    except Exception:  # no __dict__ (slots, C objects), or contents that cannot be listed: identity only
        return id(value)


def _defined_elsewhere(value: Any, module: str) -> bool:
    """A class or function another module defines (a re-export): that module's snapshot holds its contents."""
    return isinstance(value, (type, types.FunctionType)) and getattr(value, "__module__", module) != module


def _modules_state(own: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    state = {}
    for name, module in list(sys.modules.items()):
        if module is None or not _is_other_package(name, module, own):
            continue
        try:
            attrs = dict(vars(module))
        except TypeError:
            continue
        state[name] = {
            k: _fingerprint(v, not _defined_elsewhere(v, name))
            for k, v in attrs.items() if k not in ("__loader__", "__spec__")
        }
    return state


def _threadpools() -> list[tuple[str, int]]:
    from threadpoolctl import threadpool_info

    return sorted((info["filepath"], info["num_threads"]) for info in threadpool_info())


def _logging() -> dict[str, Any]:
    loggers = {"": logging.getLogger()} | {
        name: lg for name, lg in logging.Logger.manager.loggerDict.items() if isinstance(lg, logging.Logger)
    }
    return {
        name: (lg.level, lg.disabled, lg.propagate, [id(h) for h in lg.handlers], [id(f) for f in lg.filters])
        for name, lg in loggers.items()
    }


def _process_state() -> dict[str, Any]:
    umask = os.umask(0o022)
    os.umask(umask)
    state: dict[str, Any] = {
        "warnings.filters": [repr(f) for f in warnings.filters],
        "os.environ": dict(os.environ),
        "threads": sorted(t.name for t in threading.enumerate()),
        "thread pools (threadpoolctl)": _threadpools(),
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count(), len(gc.callbacks)),
        "signal handlers": {
            s.name: repr(signal.getsignal(s))
            for s in signal.Signals
            if s not in (signal.SIGKILL, signal.SIGSTOP)
        },
        "sys": {
            "path": list(sys.path), "meta_path": [repr(f) for f in sys.meta_path],
            "path_hooks": [repr(h) for h in sys.path_hooks], "excepthook": repr(sys.excepthook),
            "displayhook": repr(sys.displayhook), "recursionlimit": sys.getrecursionlimit(),
            "switchinterval": sys.getswitchinterval(), "profile": repr(sys.getprofile()),
            "trace": repr(sys.gettrace()), "dont_write_bytecode": sys.dont_write_bytecode,
            "streams": [id(sys.stdin), id(sys.stdout), id(sys.stderr)],
            "int_max_str_digits": sys.get_int_max_str_digits(),
        },
        "logging": _logging(),
        "locale": locale.setlocale(locale.LC_ALL, None),
        "cwd": os.getcwd(),
        "umask": umask,
    }
    if "numpy" in sys.modules:
        np = sys.modules["numpy"]
        state["numpy"] = {
            "errstate": np.geterr(), "printoptions": repr(np.get_printoptions()),
            "random": repr(np.random.get_state(legacy=False)),
        }
    if "matplotlib" in sys.modules:
        state["matplotlib.rcParams"] = {k: repr(v) for k, v in sys.modules["matplotlib"].rcParams.items()}
    return state


def _differences(before: Any, after: Any, where: str, out: list[str]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys(), key=str):
            if key not in after:
                out.append(f"{where}[{key!r}] removed")
            elif key not in before:
                out.append(f"{where}[{key!r}] added: {str(after[key])[:120]}")
            else:
                _differences(before[key], after[key], f"{where}[{key!r}]", out)
    elif isinstance(before, tuple) and isinstance(after, tuple) and len(before) == len(after) == 3 \
            and before[:2] == after[:2]:
        _differences(before[2], after[2], where, out)  # the same container, other contents
    else:
        out.append(f"{where}: {str(before)[:120]} -> {str(after)[:120]}")


def _in_child(work: Any) -> Any:
    """`work()`'s JSON-able result, computed in a forked child: each import starts from this
    process's state, and none sees another's."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            out = json.dumps(work())
        except BaseException as exc:  # an import that fails is a finding too
            out = json.dumps([f"import failed: {exc!r}"])
        with os.fdopen(write, "w") as pipe:
            pipe.write(out)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def _other_modules_loaded_by(modules: list[str], own: tuple[str, ...]) -> list[str]:
    """The other packages' modules that importing all `modules` loads, in load order."""

    def load() -> list[str]:
        before = set(sys.modules)
        for name in modules:
            importlib.import_module(name)
        loaded = [(n, m) for n, m in sys.modules.items() if n not in before and m is not None]
        return [n for n, m in loaded if _is_other_package(n, m, own)]

    return _in_child(load)


def changes(
    modules: list[str], own: tuple[str, ...] = ("fusion", "harness", "tests"), *, together: bool = False
) -> dict[str, list[str]]:
    """{module: the differences importing it makes} (see the module docstring), each import in a
    child forked from this process once the other packages all of them load are loaded (the
    packages of `modules` themselves count as `own`). `together`: all of them in one child, one
    comparison (a fraction of the CPU; the findings are not told apart by module)."""
    own = (*own, *(m.partition(".")[0] for m in modules))
    for name in _other_modules_loaded_by(modules, own):
        try:
            importlib.import_module(name)
        except ImportError:  # a name a library put in `sys.modules` itself (`cython_runtime`): loaded with it
            pass
    _threadpools()  # threadpoolctl's own import before the first snapshot
    # forking a process whose libraries started threads is safe here: the children only import
    warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
    process, loaded = _process_state(), _modules_state(own)

    def one(*names: str) -> list[str]:
        for name in names:
            importlib.import_module(name)
        found: list[str] = []
        _differences(process, _process_state(), "", found)
        after_all = _modules_state(own)
        for name, attrs in loaded.items():
            before = sys.modules.get(name)
            if before is None:
                found.append(f"sys.modules[{name!r}] removed")
                continue
            lazy = "__getattr__" in vars(before)  # PEP 562: its attributes are bound on first use
            after = {
                k: v for k, v in after_all.get(name, {}).items()
                if k in attrs or not (lazy or isinstance(getattr(before, k, None), types.ModuleType))
            }  # a submodule bound on its parent as it is imported is the import itself
            _differences(attrs, after, name, found)
        return found

    if together:
        return {" ".join(modules): _in_child(lambda: one(*modules))}
    return {module: _in_child(lambda: one(module)) for module in modules}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(changes([a for a in args if a != "--together"], together="--together" in args)))
