"""FUSION's reading of nutpie's raw trace, and importing nutpie without ArviZ's umbrella package."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from fusion.inference.fused_density import FusedDensity
from fusion.inference.noise import NoiseSettings
from fusion.inference.parameters import PARAMS
from fusion.inference.sampling import arrow_draws, fused_nutpie_model, import_nutpie
from tests.fusion.inference._factories import make_prepared


def _sample(raw: bool):
    nutpie = import_nutpie()
    model = fused_nutpie_model(FusedDensity(make_prepared(300, 3, seed=2), NoiseSettings()))
    return nutpie.sample(
        model, draws=40, tune=30, chains=2, cores=1, seed=9, progress_bar=False, save_warmup=False,
        return_raw_trace=raw,
    )


def test_raw_trace_reads_as_nutpie_converts_it() -> None:
    """Same draws, same statistics, same dtypes as nutpie's own conversion (which loads `arviz`)."""
    posterior, stats = arrow_draws(_sample(raw=True))
    reference = _sample(raw=False)
    ref_post, ref_stats = reference["posterior"].to_dataset(), reference["sample_stats"].to_dataset()
    assert set(posterior) == set(PARAMS)
    for name in PARAMS:
        assert posterior[name].shape == (2, 40)
        np.testing.assert_array_equal(posterior[name], ref_post[name].values)
    scalar_stats = {n for n, v in ref_stats.data_vars.items() if v.dims == ("chain", "draw") and v.dtype != object}
    assert scalar_stats <= set(stats)
    for name in scalar_stats:
        assert stats[name].dtype == ref_stats[name].dtype, name
        np.testing.assert_array_equal(stats[name], ref_stats[name].values, err_msg=name)


def test_chains_of_different_lengths_are_an_error() -> None:
    raw = _sample(raw=True)

    class Truncated:
        def get_arrow_trace(self):
            draws, stats = raw.get_arrow_trace()
            return [draws[0], draws[1].slice(0, 50)], [stats[0], stats[1].slice(0, 50)]

    try:
        arrow_draws(Truncated())
    except RuntimeError as exc:
        assert "different lengths" in str(exc)
    else:
        raise AssertionError("a truncated chain was accepted")


def test_nutpie_loads_without_arviz_and_arviz_still_works_after() -> None:
    """In a fresh interpreter: nutpie imported, ArviZ's plotting stack not; then `arviz` in full."""
    script = textwrap.dedent(
        """
        import inspect, sys
        from fusion.inference.sampling import import_nutpie
        import_nutpie()
        assert "nutpie" in sys.modules
        heavy = [m for m in ("arviz_plots", "arviz_stats", "matplotlib.pyplot") if m in sys.modules]
        assert not heavy, heavy
        inspect.getmodule(inspect)  # walks sys.modules asking for __file__: must not load arviz
        assert "arviz_plots" not in sys.modules
        stand_in = sys.modules["nutpie.sample"].arviz  # the module, not the function `nutpie.sample`
        assert callable(stand_in.from_dict)  # the stand-in hands over on first use
        import arviz
        assert arviz is not stand_in and hasattr(arviz, "__file__")
        assert "arviz_plots" in sys.modules
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
