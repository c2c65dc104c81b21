"""Every configuration key, its default and its valid range, in one validated table.

The YAML file is the user's contract with a run; errors name the file and the key so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fusion.errors import InputError
from fusion.yamlfile import Scalars, read_yaml_scalars

__all__ = ["Config", "Regrid", "Memory", "load_config", "config_hash"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_number(cls, v: object, info: Any) -> object:
        """`seed: yes` is YAML's True; pydantic would take it as 1, a value nobody wrote."""
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(v, bool) and {int, float} & set(get_args(annotation) or (annotation,)):
            raise ValueError("a boolean is not a number")
        return v


def _location(v: object) -> object:
    """A `dir` stays a string when it is a remote fsspec URL (`Path` would fold `s3://` into `s3:/`);
    `file://` URLs and plain names become local paths."""
    if isinstance(v, str):
        if v.startswith("file://"):
            return Path(v[len("file://"):])
        if "://" in v:
            return v.rstrip("/")
        return Path(v)
    return v


class _Located(_Strict):
    """A section read from a folder, local or remote (`fusion.data.remote`)."""

    dir: Path | str
    storage_options: dict[str, Any] | None = None  # passed to the fsspec filesystem of a URL `dir`

    @field_validator("dir", mode="before")
    @classmethod
    def _url_or_path(cls, v: object) -> object:
        return _location(v)


class _Product(_Located):
    """`product` names the reader (`fusion.data.readers`): its variable names, time and year rules,
    fills, orientation and CRS are the defaults; the explicit keys beside it win. `crs` states the
    files' CRS (e.g. "EPSG:3031") when they do not; `fill_value` one more value meaning missing."""

    product: str = "prototype"
    crs: str | None = None
    fill_value: float | None = None

    @field_validator("product")
    @classmethod
    def _known(cls, v: str) -> str:
        from fusion.data.readers import PRODUCTS

        if v not in PRODUCTS:
            raise ValueError(f"unknown product '{v}' (one of: {', '.join(PRODUCTS)})")
        return v


class ThicknessObs(_Product):
    pattern: str = "elev_antarctica_elevation_*.nc"
    var: str = "height"
    uncertainty_var: str = "absolute_elevation_rmse"
    group: str | None = None  # atl15: `delta_h` (default) or a `dhdt_lag*` group


class VelocityObs(_Product):
    pattern: str = "vel_Antarctica_ice_velocity_*.nc"
    vx_var: str = "VX"
    vy_var: str = "VY"
    vx_err_var: str = "ERRX"
    vy_err_var: str = "ERRY"


class Regrid(_Strict):
    """`observations.regrid`: average finer observations onto the ensemble's cells (fusion.data.regrid)."""

    method: Literal["mean", "conservative"] = "mean"  # both area-weighted; `mean` uses coarsen on whole blocks
    min_valid_fraction: float = Field(0.75, gt=0, le=1)  # share of a cell's area that must be valid
    uncertainty: Literal["correlated", "independent"] = "correlated"  # how a cell mean's σ is formed


class Observations(_Strict):
    version: str = "2026-04-30"
    thickness: ThicknessObs
    velocity: VelocityObs
    regrid: Regrid | None = None  # absent: a grid mismatch is bad input


class Ensemble(_Located):
    pattern: str = "*_regridded.nc"
    thickness_var: str = "h"
    vx_var: str = "ua"
    vy_var: str = "va"
    time_var: str = "time"


class Metric(_Strict):
    thick_unc_threshold: float = Field(50.0, gt=0)  # m/yr: thickness points less certain are masked
    vel_unc_threshold: float = Field(10.0, gt=0)  # m/yr: velocity points less certain are masked
    missing_thick_unc: float = Field(20.0, gt=0)  # m/yr: the thickness uncertainty when none is given
    snap_tolerance_years: float = Field(1.5, ge=0)  # a model step snaps to an observation year this close
    time_tolerance_years: float = Field(0.05, ge=0)  # members' time axes may differ by this much


class Subsample(_Strict):
    size: int = Field(20000, gt=0)  # kept points beyond this many are subsampled
    seed: int = Field(42, ge=0)  # numpy.random.default_rng seed of the subsample


class StreamWeights(_Strict):
    thick: float = Field(0.5, ge=0, le=1)
    vel: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> "StreamWeights":
        if abs(self.thick + self.vel - 1.0) > 1e-9:
            raise ValueError(f"must sum to 1 (thick {self.thick} + vel {self.vel})")
        return self


class Inference(_Strict):
    subsample: Subsample = Subsample()
    draws: int = Field(500, gt=0)  # per chain, after tuning
    tune: int = Field(1000, ge=0)  # tuning steps per chain
    chains: int = Field(4, gt=0)
    cores: int | None = Field(None, gt=0)  # null: the sampler's default
    target_accept: float = Field(0.95, gt=0, lt=1)
    seed: int = Field(42, ge=0)  # the sampler's seed: the same config gives the same bits
    method: Literal["nuts", "laplace"] = "nuts"  # laplace: Gaussian at the MAP (fusion.inference.laplace)
    sampler: Literal["pymc", "nutpie"] = "nutpie"
    stream_weights: StreamWeights = StreamWeights()
    velocity_inflation: float = Field(5.0, ge=0)  # m/yr, added in quadrature to velocity σ_tot
    # nutpie's mass-matrix adaptation; null: `low_rank` under `compat: fixed` (σ_base_vel and
    # β_vel trade off along a ridge once the data inform them: on the 20,000-point case, three
    # seeds, `diag` gave R-hat 1.011-1.018 and bulk ESS 66-94 per chain in 1.15-1.66 s, `low_rank`
    # ≤ 1.009 and 196-253 per chain in 0.67-0.76 s), `diag` under `compat: prototype` (as before)
    mass_matrix: Literal["diag", "low_rank"] | None = None

    def adaptation(self, compat: str) -> str:
        """The mass-matrix adaptation nutpie runs with under `compat`."""
        return self.mass_matrix or ("low_rank" if compat == "fixed" else "diag")


class Likelihood(_Strict):
    """`likelihood.form` (DESIGN.md "Likelihood forms and correlated errors"); `compat: prototype`
    always samples `tempered`. The default, `effective`, is the form the harness's `likelihood`
    check finds calibrated under independent, short- and long-range correlated errors
    (docs/user-guide/likelihood.md, "Evidence"). `correlation_length` is "estimate" (variogram of standardized residuals,
    GSTools) or a length in grid cells used for every stream; `block_min_valid` is the share of
    a square's cells that must be kept for `blocks` to score it."""

    form: Literal["tempered", "independent", "effective", "blocks"] = "effective"
    correlation_length: Literal["estimate"] | float = "estimate"
    block_min_valid: float = Field(0.75, gt=0, le=1)
    sensitivity: bool = True  # summary.json `sensitivity`: weights and projection under every form (Laplace)
    #: the member weights' temperature λ (w ∝ exp(λ·logL_scaled)): "perfect_model" chooses it on every
    #: run by the inner perfect-model test on the run's own ensemble (fusion.inference.calibration),
    #: a number in (0, 1] fixes it, "off" keeps λ = 1 (the form's in-sample weights). `compat:
    #: prototype` never calibrates.
    calibration: Literal["perfect_model", "off"] | float = "perfect_model"

    @field_validator("calibration")
    @classmethod
    def _temperature(cls, v: object) -> object:
        if isinstance(v, float) and not 0 < v <= 1:
            raise ValueError(f"must be 'perfect_model', 'off' or a temperature in (0, 1], got {v}")
        return v

    @field_validator("correlation_length")
    @classmethod
    def _positive(cls, v: object) -> object:
        if isinstance(v, float) and not v > 0:
            raise ValueError(f"must be 'estimate' or a positive number of grid cells, got {v}")
        return v


class Projection(_Strict):
    historical_dir: Path | str = Path("projection/historical")
    forward_dir: Path | str = Path("projection/forward")
    storage_options: dict[str, Any] | None = None  # for URL `historical_dir`/`forward_dir`
    volume_var: str = "totig"  # grounded-ice volume (m³) on `time` in each runNN.nc
    target_year: float = 2100
    lower_q: float = Field(0.05, gt=0, lt=1)  # the projection interval's lower quantile
    upper_q: float = Field(0.95, gt=0, lt=1)

    @field_validator("historical_dir", "forward_dir", mode="before")
    @classmethod
    def _url_or_path(cls, v: object) -> object:
        return _location(v)

    @model_validator(mode="after")
    def _ordered(self) -> "Projection":
        if self.lower_q >= self.upper_q:
            raise ValueError(f"lower_q {self.lower_q} must be below upper_q {self.upper_q}")
        return self


class Output(_Strict):
    dir: Path = Path("results")  # `fusion run`'s folder unless --out says


class Memory(_Strict):
    """`memory.budget_gb`: what `prepare` may hold; its blocks of grid rows follow from it
    (`fusion.data.budget`) unless `--chunk-rows` says. The same bits whatever the budget."""

    budget_gb: float = Field(1.5, gt=0)


class Cache(_Strict):
    """Where remote inputs are kept between runs; `None`: `$FUSION_CACHE_DIR`, else `~/.cache/fusion`."""

    dir: Path | None = None


class Config(_Strict):
    """A validated run configuration; paths are absolute once loaded from a file."""

    compat: Literal["fixed", "prototype"] = "fixed"
    observations: Observations
    ensemble: Ensemble
    metric: Metric = Metric()
    inference: Inference = Inference()
    likelihood: Likelihood = Likelihood()
    projection: Projection = Projection()
    output: Output = Output()
    cache: Cache = Cache()
    memory: Memory = Memory()
    source: Path | None = Field(None, exclude=True)

    @field_validator("compat", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    def resolve(self, base: Path) -> "Config":
        """Return a copy whose relative paths are anchored at `base` (the config's folder)."""

        def fix(p: Path | str | None) -> Path | str | None:
            if p is None or isinstance(p, str):  # a URL (or no value) has nothing to anchor
                return p
            return p if p.is_absolute() else (base / p).resolve()

        obs = self.observations
        return self.model_copy(
            update={
                "observations": obs.model_copy(
                    update={
                        "thickness": obs.thickness.model_copy(update={"dir": fix(obs.thickness.dir)}),
                        "velocity": obs.velocity.model_copy(update={"dir": fix(obs.velocity.dir)}),
                    }
                ),
                "ensemble": self.ensemble.model_copy(update={"dir": fix(self.ensemble.dir)}),
                "projection": self.projection.model_copy(
                    update={
                        "historical_dir": fix(self.projection.historical_dir),
                        "forward_dir": fix(self.projection.forward_dir),
                    }
                ),
                "output": self.output.model_copy(update={"dir": fix(self.output.dir)}),
                "cache": self.cache.model_copy(update={"dir": fix(self.cache.dir)}),
            }
        )

    def with_updates(self, **sections: dict) -> "Config":
        """A copy with nested keys replaced, re-validated (e.g. `inference={"draws": 100}`)."""
        data = self.model_dump(mode="python", exclude_unset=True)  # keys never set keep meaning "the product's default"
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = _deep_merge(data[key], value)
            else:
                data[key] = value
        return Config.model_validate({**data, "source": self.source})


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _describe(err: ValidationError, scalars: Scalars | None = None) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<top level>"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{key}'"
    if kind == "missing":
        return f"missing required key '{key}'"
    scalars = scalars or Scalars()
    if kind in ("string_type", "path_type") and (why := scalars.not_text(key)):
        return f"key '{key}' at {why}"  # `version: 1.10` is the float 1.1: the text written is lost
    if kind == "value_error" and (why := scalars.boolean(key)):
        return f"key '{key}' at {why}"
    return f"key '{key}': {first['msg']}"


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; raise `InputError` (a ValueError) naming file and key.

    Parameters
    ----------
    path : str or Path
        The YAML file. Relative paths inside it are resolved against its folder.

    Returns
    -------
    Config
        The validated configuration, every path absolute, `source` set to the file.

    Raises
    ------
    InputError
        The file is missing or unreadable, a key is unknown or written twice, or a value is of
        the wrong type or out of range; the message names the file and the key.

    Examples
    --------
    >>> fusion.load_config("no-such-config.yaml")
    Traceback (most recent call last):
    ...
    fusion.errors.InputError: no-such-config.yaml: config file not found
    """
    path = Path(path)
    raw, scalars = read_yaml_scalars(path)
    if not isinstance(raw, dict):
        raise InputError(path, "expected a mapping of config keys at the top level")
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise InputError(path, _describe(exc, scalars)) from None
    return cfg.resolve(path.resolve().parent).model_copy(update={"source": path.resolve()})


def config_hash(cfg: Config) -> str:
    """SHA-256 of the resolved config, stable across key order; provenance for every result."""
    data = cfg.model_dump(mode="json", exclude={"cache", "memory"})  # where inputs are cached, and the memory budget, change no result
    for section in (data["observations"]["thickness"], data["observations"]["velocity"], data["ensemble"], data["projection"]):
        if section.get("storage_options") is None:  # configs without remote inputs keep the hash they had
            section.pop("storage_options", None)
    for key, default in (("product", "prototype"), ("crs", None), ("fill_value", None), ("group", None)):
        for stream in ("thickness", "velocity"):  # keys at their default: the hash of configs written before them
            if data["observations"][stream].get(key, default) == default:
                data["observations"][stream].pop(key, None)
    if data["observations"].get("regrid") is None:  # absent key: the hash of configs written before it
        data["observations"].pop("regrid", None)
    if data["inference"].get("mass_matrix") is None:  # the same
        data["inference"].pop("mass_matrix", None)
    # under `compat: prototype` (always `tempered`) the default section leaves older configs'
    # hashes unchanged; under `compat: fixed` it is hashed: its default form became `effective`
    if cfg.likelihood == Likelihood() and cfg.compat == "prototype":
        data.pop("likelihood")
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
