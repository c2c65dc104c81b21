"""Same inputs, same bits: a kernel compiled fresh equals the same kernel loaded from Numba's cache.

With `fastmath` `reassoc` they differed by a few ULP (measured on this machine), enough for a
seeded NUTS chain to diverge between a cold and a warm cache; see `fusion.inference.fused_kernel`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.paths import repo_root

REPO = repo_root()

_PROBE = """
import numpy as np
from fusion.inference.fused_density import FusedDensity
from tests.fusion.inference._factories import make_prepared
d = FusedDensity(make_prepared(3000, 7, seed=5))
out = []
for s in range(4):
    value, grad = d.logp_grad(np.random.default_rng(s).normal(-1.0, 0.5, 4))
    out += [value.hex()] + [g.hex() for g in grad]
print(" ".join(out))
"""


def _probe(cache: Path) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_cold_and_warm_numba_caches_give_the_same_bits(tmp_path: Path) -> None:
    cold = _probe(tmp_path)  # compiles and writes the cache
    assert any(tmp_path.rglob("*.nbi")), "the probe did not populate the cache"
    warm = _probe(tmp_path)  # loads it
    assert cold == warm


def test_pytensor_graphs_compile_without_fastmath() -> None:
    import pytensor

    import fusion.inference.noise  # noqa: F401 - the import sets it

    assert pytensor.config.numba__fastmath is False
    assert "numba__fastmath=False" in os.environ["PYTENSOR_FLAGS"]  # inherited by sampler children


def test_the_numpy_only_part_of_the_model_sets_the_flag_and_loads_no_compiler() -> None:
    """`fusion.inference.noise` (what `fusion.adequacy` and the figure worker use) sets PyTensor's
    flag as the whole model did, in a fresh process, without loading Numba, PyMC or PyTensor."""
    probe = (
        "import json, os, sys\n"
        "import fusion.adequacy, fusion.inference.noise\n"
        "heavy = sorted(m for m in ('numba', 'pymc', 'pytensor', 'nutpie') if m in sys.modules)\n"
        "print(json.dumps([heavy, os.environ.get('PYTENSOR_FLAGS', '')]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy, flags = json.loads(done.stdout)
    assert heavy == []
    assert "numba__fastmath=False" in flags
