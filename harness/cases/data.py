"""The data of one case, computed once on first use, and FUSION's sampler on it (memoised).

Every per-case check reads its case through `CaseData`: FUSION's prepared arrays under both
compats (with their data warnings collected for the report, not raised), and the reference
files the prototype left; `sample_case` samples as `fusion run` does, under the config's
likelihood form.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import cached_property
from typing import Any

import xarray as xr

from harness.cases import Case
from harness.cases.digest import array_sha256
from harness.cases.reference import (
    ARRAYS,
    POSTERIOR,
    PREPARED,
    SAMPLED,
    WEIGHTS,
    read_posterior,
    read_reference_prepared,
    read_reference_weights,
)

__all__ = ["CaseData", "sample_case"]


def _prepare(cfg: Any) -> tuple[Any, list[str]]:
    """FUSION's `load_data → prepare`, with its data warnings collected for the report, not raised."""
    from fusion.data import load, prepare

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = prepare.prepare(cfg, load.load_data(cfg))
    return prepared, [f"{w.category.__name__}: {w.message}" for w in caught]


class CaseData:
    """Everything the checks read for one case, each computed once and on first use."""

    def __init__(self, case: Case, base_config: Any | None = None) -> None:
        self.case = case
        self.base_config = base_config  # a loaded Config to use instead of the case's own
        self.warnings: dict[str, list[str]] = {}

    def config(self, compat: str) -> Any:
        base = self.base_config if self.base_config is not None else self.case.settings
        return base.with_updates(compat=compat)

    @cached_property
    def prepared(self) -> Any:
        """FUSION's prepared arrays under `compat: prototype`."""
        prepared, self.warnings["prototype"] = _prepare(self.config("prototype"))
        return prepared

    @cached_property
    def prepared_fixed(self) -> Any:
        prepared, self.warnings["fixed"] = _prepare(self.config("fixed"))
        return prepared

    @cached_property
    def posterior(self) -> xr.Dataset | None:
        """The posterior the prototype's plug-in weights were computed at."""
        path = self.case.file(POSTERIOR)
        return read_posterior(path)["posterior"].to_dataset() if path else None

    @cached_property
    def reference_prepared(self) -> Any | None:
        path = self.case.file(PREPARED)
        return read_reference_prepared(path) if path else None

    @cached_property
    def reference_weights(self) -> Any | None:
        path = self.case.file(WEIGHTS)
        if path is None:
            return None
        ref = self.reference_prepared
        return read_reference_weights(path, ref.member_ids if ref is not None else None)

    @cached_property
    def sampled_posterior(self) -> xr.DataTree | None:
        """The prototype's own sampled posterior (statistical parity)."""
        path = self.case.file(SAMPLED)
        return read_posterior(path) if path else None


# --- sampling a case --------------------------------------------------------------------------------


_TRACE_CACHE: dict[str, xr.DataTree] = {}


def _prepared_key(prepared: Any) -> str:
    """The memo key of a prepared data set: each array's digest, the members and the compat."""
    parts = [array_sha256(getattr(prepared, array)) for array in (*ARRAYS, "stream")]
    parts += [",".join(prepared.member_ids), str(prepared.compat)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def sample_case(cfg: Any, prepared: Any) -> xr.DataTree:
    """FUSION's sampler on `prepared` under the config's likelihood form, as `fusion run` samples it;
    memoised on config and data content (a rerun gives the same bits anyway)."""
    from fusion.config import config_hash
    from fusion.inference import sampling
    from fusion.pipeline import likelihood_inputs

    key = config_hash(cfg) + _prepared_key(prepared)
    if key not in _TRACE_CACHE:
        settings, points = likelihood_inputs(cfg, prepared)
        _TRACE_CACHE[key] = sampling.sample(cfg, points, progressbar=False, settings=settings)
    return _TRACE_CACHE[key]
