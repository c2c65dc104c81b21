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
    """Building a model (the first step towards any of FUSION's PyTensor graphs) sets the flag
    here and, through the environment, in the sampler's child processes; importing the noise
    model's NumPy-only part loads no compiler and leaves the environment alone."""
    probe = (
        "import json, os, sys\n"
        "import fusion.adequacy, fusion.inference.noise, fusion.inference.pymc_model\n"
        "heavy = sorted(m for m in ('numba', 'pymc', 'pytensor', 'nutpie') if m in sys.modules)\n"
        "on_import = os.environ.get('PYTENSOR_FLAGS', '')\n"
        "from fusion.inference.pymc_model import build_model\n"
        "from tests.fusion.inference._factories import make_prepared\n"
        "build_model(make_prepared(50, 3, seed=1))\n"
        "import pytensor\n"
        "print(json.dumps([heavy, on_import, os.environ.get('PYTENSOR_FLAGS', ''), pytensor.config.numba__fastmath]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"} | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy, on_import, after_build, fastmath = json.loads(done.stdout)
    assert heavy == []
    assert on_import == ""
    assert "numba__fastmath=False" in after_build  # inherited by sampler children
    assert fastmath is False
