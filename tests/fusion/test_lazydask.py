"""xarray's dask check without importing `dask.array` (fusion/lazydask.py): the same answers, first
without dask, then with it once something imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_dataarray_imports_no_dask_array_until_dask_is_used_then_dask_works_as_without() -> None:
    """In a fresh process: FUSION's modules install the stand-in; building DataArrays then leaves
    `dask.array` unimported. After `import dask.array`, a masked dask array is still masked to
    NaN (xarray's check the stand-in answers), chunked data stays lazy, and the cache holds
    xarray's own entry again."""
    out = _run(
        """
        import sys
        import numpy as np
        import xarray as xr
        import fusion.projection  # installs the stand-in when it loads
        from fusion.lazydask import dask_array_deferred
        from xarray.namedarray.pycompat import array_type, mod_version

        a = xr.DataArray(np.arange(3.0), dims=("member",), coords={"member": ["a", "b", "c"]})
        xr.Dataset({"a": a}).to_dataarray()
        print("before:", "dask.array" in sys.modules, dask_array_deferred(), array_type("dask"))

        import dask.array as da

        masked = da.from_array(np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False]), asarray=False)
        m = xr.DataArray(masked, dims=("x",))
        lazy = xr.DataArray(da.ones(4, chunks=2), dims=("x",)) * 2
        print("masked:", type(m.data).__module__.split(".")[0], np.isnan(m.values).tolist())
        print("lazy:", lazy.chunks, float(lazy.sum()))
        print("after:", dask_array_deferred(), array_type("dask") == (da.Array,), str(mod_version("dask")) == sys.modules["dask"].__version__)
        """
    )
    assert "before: False True ()" in out
    assert "masked: dask [False, True, False]" in out
    assert "lazy: ((2, 2),) 8.0" in out
    assert "after: False True True" in out


def test_the_stand_in_asks_nothing_of_xarray_that_has_answered_already() -> None:
    """Installed after xarray imported `dask.array` for its check, the stand-in is not installed
    (the real entry stays)."""
    out = _run(
        """
        import numpy as np
        import xarray as xr
        xr.DataArray(np.zeros(2))  # xarray asks now, and imports dask.array
        from fusion.lazydask import dask_array_deferred, defer_dask_array
        defer_dask_array()
        print("deferred:", dask_array_deferred())
        """
    )
    assert "deferred: False" in out


def _module_level_dask_type(path: Path) -> list[int]:
    """Lines where `array_type("dask")` runs outside any function (its tuple kept at import)."""
    text = path.read_text(errors="replace")
    if "array_type(" not in text or "dask" not in text:
        return []
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    hits: list[int] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function = True
        if (
            isinstance(node, ast.Call) and not in_function and getattr(node.func, "id", getattr(node.func, "attr", None)) == "array_type"
            and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "dask"
        ):  # fmt: skip
            hits.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return hits


def test_no_installed_package_keeps_the_dask_type_from_import_time(tmp_path: Path) -> None:
    """The stand-in's one blind spot (fusion/lazydask.py): a module that stores
    `array_type("dask")` when it loads. None of the installed packages does."""
    site = Path(sysconfig.get_paths()["purelib"])
    found = {
        str(path.relative_to(site)): lines
        for path in site.rglob("*.py")
        if "tests" not in path.parts and (lines := _module_level_dask_type(path))
    }
    assert found == {}
    # xarray's own calls are inside functions; a module-level one is found
    probe = site / "xarray" / "core" / "variable.py"
    assert 'array_type("dask")' in probe.read_text() and _module_level_dask_type(probe) == []
    kept = tmp_path / "kept.py"
    kept.write_text('from xarray.namedarray.pycompat import array_type\n\ntry:\n    DASK = array_type("dask")\nexcept ImportError:\n    DASK = ()\n')
    assert _module_level_dask_type(kept) == [4]


def test_a_chunked_prepare_after_the_stand_in_gives_the_in_memory_bits(tmp_path: Path) -> None:
    """A `--chunk-rows` prepare in a process where the stand-in answered first: the in-memory bits,
    and still no `dask.array` (its row blocks hold no dask array; `--scheduler` ships them to
    dask.distributed workers, tests/fusion/data/test_prepare_cluster.py, in a pytest process whose
    test modules installed the stand-in when they loaded)."""
    from fusion.data.synthetic import write_example

    config = write_example(tmp_path / "example")
    out = _run(
        f"""
        import sys
        import numpy as np
        import xarray as xr
        import fusion.inference.posterior  # installs the stand-in when it loads
        from fusion.config import load_config
        from fusion.data.load import load_data
        from fusion.data.prepare import prepare
        from fusion.lazydask import dask_array_deferred

        xr.DataArray(np.zeros(3))
        print("deferred:", dask_array_deferred(), "dask.array" in sys.modules)
        cfg = load_config({str(config)!r})
        whole = prepare(cfg, load_data(cfg), progress=False)
        chunked = prepare(cfg, load_data(cfg, lazy=True), chunk_rows=7, progress=False)
        same = all(getattr(whole, k).tobytes() == getattr(chunked, k).tobytes() for k in ("y_obs", "sigma_obs", "F", "speed", "stream"))
        print("chunked:", "dask.array" in sys.modules, same)
        """
    )
    assert "deferred: True False" in out
    assert "chunked: False True" in out
