"""FUSION leaves other libraries alone: importing it changes no global state, and no module writes
into another package's private (underscore) attributes.

The first tests import `fusion` and every public submodule in a fresh process forked from one
that has loaded the other packages they use and no FUSION module (tests/global_state.py says
what it compares): all of them in one such process in the default run, each in its own under
the `full` marker. The second reads the sources of `fusion/` and `harness/`: an assignment,
`del`, `setattr` or item write on `x._name` where `x` is not `self`/`cls` and `_name` is no
attribute of FUSION's own classes is a write into another package's internals.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.paths import repo_root

REPO = repo_root()
PROBE = REPO / "tests" / "global_state.py"

#: What other packages do to their own state when FUSION uses their public API at import (each
#: entry: where, and why it is theirs): Numba's registries fill as a module defines its first
#: jitted function (`@njit`), pydantic loads its plugins as the first model class is defined.
#: A change anywhere else, or made by FUSION's code into these, fails.
LIBRARY_BOOKKEEPING = (
    "numba.core.types.abstract['_typecache']",  # the Dispatcher type interned per jitted function
    "numba.core.event['_registered']",  # the compiler lock's event listener, made once
    "numba.core.externals['c_math_functions']['_installed']",  # libm's symbols, bound once
    "numba.core.registry['cpu_target']",  # the CPU target's typing and lowering contexts, made once
    "numba.np.ufunc.ufuncbuilder['cpu_target']",  # the same target object, bound there too
    "pydantic.plugin._loader['_plugins']",  # plugins looked up once, on the first model class
)


def _public_modules(package: str) -> list[str]:
    names = []
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(p.startswith("_") for p in parts):
            names.append(".".join(parts))
    return names


def _changes(
    modules: list[str], pythonpath: tuple[Path, ...] = (), *, together: bool = False
) -> dict[str, list[str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(map(str, [*pythonpath, REPO]))
    flags = ["--together"] if together else []
    done = subprocess.run([sys.executable, "-P", str(PROBE), *flags, *modules], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _unexplained(found: list[str]) -> list[str]:
    return [line for line in found if not line.startswith(LIBRARY_BOOKKEEPING)]


def test_importing_fusion_and_all_its_public_modules_changes_no_global_state() -> None:
    """All of them imported in one fresh process, compared once (the quick form of the next test)."""
    modules = _public_modules("fusion")
    assert {"fusion", "fusion.cli", "fusion.projection", "fusion.inference.posterior"} <= set(modules)
    (found,) = _changes(modules, together=True).values()
    assert _unexplained(found) == []


@pytest.mark.full
def test_importing_fusion_and_each_public_module_changes_no_global_state() -> None:
    """Each module in its own fresh process: a finding names the module (about 25 s of CPU)."""
    modules = _public_modules("fusion")
    found = _changes(modules)
    assert sorted(found) == sorted(modules)  # each was imported and compared
    assert {m: _unexplained(lines) for m, lines in found.items() if _unexplained(lines)} == {}


def test_the_probe_sees_each_kind_of_change(tmp_path: Path) -> None:
    """Planted modules: each change the first test guards against is reported, under its name."""
    plants = {
        # what fusion/lazydask.py did: a stand-in in xarray's private cache of duck-array types
        "plant_cache": (
            "from xarray.namedarray import pycompat\npycompat._cached_duck_array_modules['dask'] = object()\n"
        ),
        "plant_patch": "import xarray\nxarray.DataArray.weights_of = lambda self: None\n",
        "plant_env": "import os\nos.environ['OPENBLAS_NUM_THREADS'] = '1'\n",
        "plant_warnings": "import warnings\nwarnings.simplefilter('ignore', RuntimeWarning)\n",
        "plant_gc": "import gc\ngc.freeze()\n",
        "plant_threads": "import numpy, threadpoolctl\nthreadpoolctl.threadpool_limits(1)\n",
        "plant_quiet": "import xarray\n",  # imports a library and changes nothing
    }
    for name, source in plants.items():
        (tmp_path / f"{name}.py").write_text(source)
    found = _changes(list(plants), [tmp_path])
    assert any("_cached_duck_array_modules" in line and "'dask'" in line for line in found["plant_cache"])
    patched = "xarray.core.dataarray['DataArray']['weights_of'] added"
    assert any(line.startswith(patched) for line in found["plant_patch"])
    assert any("OPENBLAS_NUM_THREADS" in line for line in found["plant_env"])
    assert any(line.startswith("['warnings.filters']") for line in found["plant_warnings"])
    assert any(line.startswith("['gc']") for line in found["plant_gc"])
    assert any(line.startswith("['thread pools (threadpoolctl)']") for line in found["plant_threads"])
    assert found["plant_quiet"] == []


# ---- writes into another package's private attributes, read from the sources ----------------

_OWNER_NAMES = ("self", "cls")


def _own_private_names(trees: list[ast.Module]) -> set[str]:
    """Underscore attributes FUSION's own objects have: set on `self`/`cls`, or named in a
    class body (attributes, methods, `__slots__`)."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            on_owner = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if on_owner and node.value.id in _OWNER_NAMES:
                names.add(node.attr)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    for target in getattr(item, "targets", [getattr(item, "target", None)]):
                        if isinstance(target, ast.Name):
                            names.add(target.id)
    return {n for n in names if n.startswith("_")}


def _private_writes(tree: ast.Module, own: set[str]) -> list[tuple[int, str]]:
    """(line, code) of each write into `x._name` (not `self`/`cls`, `_name` not in `own`):
    assignment, augmented assignment, `del`, item assignment, `setattr`/`delattr`."""

    def foreign(node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            and node.attr not in own
            and not (isinstance(node.value, ast.Name) and node.value.id in _OWNER_NAMES)
        )  # fmt: skip

    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"setattr", "delattr"}:
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("_"):
                if not name.value.startswith("__") and name.value not in own:
                    found.append((node.lineno, ast.unparse(node)))
            continue
        for target in targets:
            while isinstance(target, ast.Subscript):  # `x._cache[key] = ...` writes into x._cache
                target = target.value
            for part in target.elts if isinstance(target, ast.Tuple) else [target]:
                if foreign(part):
                    found.append((node.lineno, ast.unparse(node).splitlines()[0]))
    return found


def _sources() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text())
        for package in ("fusion", "harness")
        for path in sorted((REPO / package).rglob("*.py"))
    }


def test_no_module_writes_into_another_packages_private_attributes() -> None:
    sources = _sources()
    assert len(sources) > 50  # the scan found both packages
    own = _own_private_names(list(sources.values()))
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {code}"
        for path, tree in sources.items()
        for line, code in _private_writes(tree, own)
    ]
    assert offenders == []


def test_the_scan_finds_each_form_of_private_write() -> None:
    planted = ast.parse(textwrap.dedent(
        """
        from xarray.namedarray import pycompat
        import tqdm

        pycompat._cached_duck_array_modules["dask"] = None
        bar = tqdm.tqdm()
        bar._time = lambda: 0.0
        bar.pos._x, y = 1, 2
        setattr(pycompat, "_cached_duck_array_modules", {})
        del pycompat._cache
        pycompat._count += 1

        class Own:
            def __init__(self):
                self._mine = 1  # its own attribute: allowed
            def copy(self):
                other = Own()
                other._mine = 2  # an attribute of FUSION's class: allowed
                return other
        """
    ))  # fmt: skip
    found = _private_writes(planted, _own_private_names([planted]))
    assert sorted(line for line, _ in found) == [5, 7, 8, 9, 10, 11]
