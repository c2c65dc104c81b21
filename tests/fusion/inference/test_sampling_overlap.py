"""Work done while nutpie's chains run: done once, never changes the draws, and its failure stops them."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fusion.config import Config
from fusion.inference.parameters import PARAMS
from fusion.inference.sampling import sample
from tests.fusion.inference._factories import make_prepared

PREPARED = make_prepared(400, 4, seed=5)
CFG = Config.model_validate(
    {"observations": {"thickness": {"dir": "."}, "velocity": {"dir": "."}}, "ensemble": {"dir": "."}}
).with_updates(inference={"draws": 300, "tune": 300, "chains": 2, "seed": 11, "sampler": "nutpie"})


def test_work_while_sampling_runs_once_and_leaves_the_draws_alone() -> None:
    plain = sample(CFG, PREPARED, progressbar=False)
    calls: list[str] = []

    def work() -> None:
        calls.append(threading.current_thread().name)

    overlapped = sample(CFG, PREPARED, progressbar=False, while_sampling=work)
    assert calls == [threading.main_thread().name]
    for name in PARAMS:
        np.testing.assert_array_equal(overlapped["posterior"][name].values, plain["posterior"][name].values)
    np.testing.assert_array_equal(
        overlapped["sample_stats"]["energy"].values, plain["sample_stats"]["energy"].values
    )


def test_a_failure_while_sampling_cancels_the_chains_and_propagates() -> None:
    class Planted(RuntimeError):
        pass

    def fail() -> None:
        raise Planted("projection file missing")

    with pytest.raises(Planted, match="projection file missing"):
        sample(CFG, PREPARED, progressbar=False, while_sampling=fail)
    # the process is still usable: the cancelled sampler left no threads holding the next run up
    again = sample(CFG.with_updates(inference={"draws": 20, "tune": 20}), PREPARED, progressbar=False)
    assert again["posterior"]["sigma_base_thick"].shape == (2, 20)


def test_warming_the_sampler_loads_the_compiled_entries_the_run_then_uses() -> None:
    """`warm_sampler` (run while the worker estimates the correlation) is only worth its time if
    sampling then finds every kernel loaded: no new compiled signature appears afterwards."""
    from fusion.inference import fused_kernel, posterior
    from fusion.inference.sampling import warm_sampler

    warm_sampler(CFG)
    loaded = list(posterior._inverse_variances.signatures)  # noqa: SLF001 - the kernel warmed
    assert len(loaded) == 1
    assert fused_kernel.c_callbacks.cache_info().currsize == 1
    sample(CFG.with_updates(inference={"draws": 20, "tune": 20}), PREPARED, progressbar=False)
    assert posterior._inverse_variances.signatures == loaded  # noqa: SLF001
    assert fused_kernel.c_callbacks.cache_info().misses == 1


def test_the_draws_are_handed_over_before_the_member_weights_and_give_the_same_weights() -> None:
    """`fusion run` starts the posterior predictive check from `on_draws`, before every draw's w
    exists: the weights it computes for the thinned rows are the trace's rows, bit for bit."""
    from fusion.adequacy import thin_draws
    from fusion.inference.noise import NoiseSettings
    from fusion.pipeline import _thinned_weights

    settings = NoiseSettings.from_config(CFG)
    seen = []
    trace = sample(CFG, PREPARED, progressbar=False, settings=settings, on_draws=seen.append)
    assert len(seen) == 1 and "sample_stats" in seen[0].children
    early_posterior = seen[0]["posterior"].to_dataset()
    assert "w" not in early_posterior and set(PARAMS) <= set(early_posterior.data_vars)
    np.testing.assert_array_equal(early_posterior[PARAMS[0]].values, trace["posterior"][PARAMS[0]].values)
    theta, early = thin_draws(early_posterior, 20, PREPARED.member_ids, lambda th: _thinned_weights(PREPARED, th, settings))
    theta_then, then = thin_draws(trace["posterior"].to_dataset(), 20, PREPARED.member_ids)
    np.testing.assert_array_equal(theta, theta_then)
    np.testing.assert_array_equal(early, then)
