"""`trace.nc` (fusion/tracefile.py): written without importing dask's `distributed`, and the same file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_write_trace_skips_distributed_and_writes_what_to_netcdf_writes(tmp_path: Path) -> None:
    """In a fresh process: no `distributed` import during the write, none blocked after it, and
    the file reads back as the DataTree `to_netcdf` writes."""
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import xarray as xr
        from fusion.tracefile import write_trace

        rng = np.random.default_rng(0)
        post = xr.Dataset({{"sigma": (("chain", "draw"), rng.random((2, 5)))}})
        stats = xr.Dataset({{"lp": (("chain", "draw"), rng.random((2, 5)))}})
        tree = xr.DataTree.from_dict({{"posterior": post, "sample_stats": stats}})
        write_trace(tree, {str(tmp_path / "a.nc")!r})
        print("during:", [m for m in ("distributed", "dask.distributed") if m in sys.modules])
        import distributed  # the block is lifted: the real package imports
        print("after:", distributed.__name__)
        tree.to_netcdf({str(tmp_path / "b.nc")!r})
        a = xr.open_datatree({str(tmp_path / "a.nc")!r})
        b = xr.open_datatree({str(tmp_path / "b.nc")!r})
        print("equal:", a.identical(b) and a.identical(tree))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "during: []" in done.stdout
    assert "after: distributed" in done.stdout
    assert "equal: True" in done.stdout
