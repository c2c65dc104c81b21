"""Every threshold of the harness, in one place, settable by a YAML file (`harness run --config FILE`).

    convergence:      # the release gate: convergence check, statistical parity, impact table
      r_hat_max: 1.01
      ess_bulk_min: 100    # per chain
    sbc:              # SBC's and coverage's per-fit gate (short chains, looser), and SBC's rank tests
      r_hat_max: 1.05
      alpha: 0.01
      max_rank_w: 0.5      # ranks' χ² non-uniformity (Cohen's w), decided on its interval
      max_replicates: 1000 # undecided adds replicates in batches up to here (harness.verdict)
    parity:
      stat_k: 4.0
    coverage:
      max_calibration_error: 0.05
      max_replicates: 200  # (a) adds replicates in batches up to here while undecided
      mc_alpha: 0.05
    stability:
      max_sd: 0.02
      max_seeds: 40        # undecided adds seeds in batches up to here (harness.verdict)
      mc_alpha: 0.05
    agreement:
      weight_shift_sd_max: 1.0
    likelihood:       # the likelihood-form evidence under correlated errors
      alpha: 0.01
    drift:
      stat_k: 4.0
      max_seeds: 5         # fresh runs at further sampler seeds while undecided
    adequacy:         # posterior predictive check per case (harness.checks.adequacy)
      alpha: 0.01
      max_false_alarm_rate: 0.2  # on data drawn from the model, decided on its interval
      max_replicates: 100        # model-drawn data sets while undecided
    perfect_model:    # each member held out as the truth (harness.checks.perfect_model)
      crps_ratio_max: 1.0
      max_replicates: 10   # noise draws per member while undecided (first 6, then batches of 2)

`convergence` and the per-fit keys of `sbc` are `fusion.diagnostics.Thresholds` fields; the
other sections are the pydantic models below. Anything left out keeps its default (DESIGN.md's);
unknown sections or keys and bad values are errors naming the file. `harness gates` prints the
effective file, which `--config` accepts back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fusion.diagnostics import THRESHOLDS, Thresholds
from fusion.yamlfile import read_yaml

__all__ = [
    "SBC_FIT",
    "SECTIONS",
    "AdequacyGate",
    "AgreementGate",
    "CoverageGate",
    "DriftGate",
    "Gates",
    "LikelihoodGate",
    "ParityGate",
    "SBCRanks",
    "StabilityGate",
    "dump_gates",
    "load_gates",
]

#: Per-fit gate of SBC and coverage: 2 chains of a few hundred draws, where an R-hat of 1.01 is
#: within noise; ESS floors per chain (25 per chain = 50 over the two chains).
SBC_FIT = Thresholds(
    r_hat_max=1.05, ess_bulk_min=25.0, ess_tail_min=25.0, divergences_max=0, e_bfmi_min=0.2, borderline_retries=0
)


class _Section(BaseModel):
    """A config section: unknown keys are errors, numbers stay numbers (no "1.0" strings)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SBCRanks(_Section):
    """SBC's rank tests and its tolerance for failed fits (the per-fit keys are `Thresholds`)."""

    alpha: float = Field(0.01, gt=0, lt=1, description="family-wise false-alarm rate of the ECDF bands (Bonferroni)")
    max_failed_fraction: float = Field(0.05, ge=0, le=1, description="share of fits failing their own gate")
    max_rank_w: float = Field(
        0.5, gt=0, description="largest rank non-uniformity, Cohen's w from the binned χ² (0.5: ranks as far from "
        "uniform as a posterior 0.5 sd off centre or 30 % too narrow)",
    )
    max_replicates: int = Field(1000, ge=1, description="cap on the generative form's replicates while undecided")
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong verdict from Monte-Carlo noise")


class ParityGate(_Section):
    """Statistical parity: |Δmean| ≤ stat_k·√(mcse_fusion² + mcse_prototype²)."""

    stat_k: float = Field(4.0, gt=0)


class CoverageGate(_Section):
    """Check 5: (a) dense_clean calibration error, (b) dense_clean share with the true member first."""

    max_calibration_error: float = Field(0.05, ge=0)
    min_truth_first: float = Field(0.95, ge=0, le=1)
    max_replicates: int = Field(200, ge=1, description="cap on (a)'s replicates when its verdict is undecided")
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong verdict from Monte-Carlo noise")


class StabilityGate(_Section):
    """Check 6: the largest per-member σ of E[w] across subsample seeds, with its χ² interval;
    undecided adds seeds in batches up to `max_seeds` (harness.verdict)."""

    max_sd: float = Field(0.02, ge=0)
    max_seeds: int = Field(40, ge=2, description="cap on subsample seeds when the verdict is undecided")
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong verdict from Monte-Carlo noise")


class AgreementGate(_Section):
    """Laplace against NUTS, in NUTS posterior sd; the sd ratio's range."""

    weight_shift_sd_max: float = Field(1.0, ge=0)
    sd_ratio_min: float = Field(0.5, ge=0)
    sd_ratio_max: float = Field(2.0, ge=0)
    projection_shift_sd_max: float = Field(1.0, ge=0)
    weight_sd_floor: float = Field(
        1e-6, ge=0, description="a weight pinned at 0 or 1 has no spread: shifts are measured in max(NUTS sd, this) "
        "and the sd ratio is gated only where the NUTS sd reaches it",
    )
    projection_sd_floor_mm: float = Field(0.01, ge=0, description="the same floor for the projection's sd, in mm")
    max_draws: int = Field(3000, ge=1, description="cap on draws per chain (both fits) while the weight-shift gate "
                           "is undecided; each further look adds the first look's draws")  # fmt: skip
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong weight-shift verdict from Monte-Carlo noise")


class PerfectModelGate(_Section):
    """Check `perfect_model`: held-out coverage at least the unweighted ensemble's less one member,
    and the CRPS ratio, each decided on its interval over (member, noise draw) pairs; undecided
    adds whole noise draws of every member, `batch` held-out runs' worth, up to `max_replicates`
    held-out runs (harness.verdict). Counted in held-out runs, which set both the intervals' width
    and the cost, so one setting fits 5 members and 27: the first look and each batch round up to
    whole draws, the cap down (never below the first look)."""

    alpha: float = Field(0.05, gt=0, lt=1, description="level of the one-sided binomial test of held-out coverage "
                         "against the unweighted rate (reported, not gated)")  # fmt: skip
    crps_ratio_max: float = Field(1.0, gt=0, description="mean CRPS of the weighted mixture / the unweighted ensemble's")
    # the bundled 5-member example: 3 of 5 inside in every draw against a bound of 2/5 clears at 30
    # runs (6 draws); a full-size 27-member case looks once at 2 draws (54 runs, minutes on 2 cores)
    first: int = Field(30, ge=1, description="held-out runs at the first look (rounded up to whole noise draws)")
    batch: int = Field(10, ge=1, description="held-out runs added at each further look (rounded up to whole draws)")
    max_replicates: int = Field(50, ge=1, description="cap on held-out runs while undecided (rounded down to whole "
                                "draws, at least the first look)")  # fmt: skip
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong verdict from Monte-Carlo noise")


class LikelihoodGate(_Section):
    """Check `likelihood`: the level of its θ rank tests (family-wise, Bonferroni) and of its member-weight reliability z test."""

    alpha: float = Field(0.01, gt=0, lt=1, description="false-alarm rate of each calibration verdict")


class DriftGate(_Section):
    """drift: each sampled output against the case's baseline, |Δmean| ≤ stat_k·√(mcse_fresh² + mcse_baseline²)
    (the scale of the first fresh run), decided on its interval; undecided adds fresh runs at further
    sampler seeds, `batch` at a time, up to `max_seeds` runs (harness.checks.drift, harness.verdict)."""

    stat_k: float = Field(4.0, gt=0)
    batch: int = Field(2, ge=1, description="fresh runs added at each further look")
    max_seeds: int = Field(5, ge=1, description="cap on fresh runs (sampler seeds) while the sampled gate is undecided")
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong verdict from Monte-Carlo noise")


class AdequacyGate(_Section):
    """Posterior predictive check: block-PIT uniformity and regional tests at family-wise `alpha`
    per stream, tiles `block_lengths` correlation lengths wide, held-out coverage at most
    `coverage_tol_*` below nominal; its false-alarm rate on model-drawn data at most
    `max_false_alarm_rate`, decided on its interval (harness.checks.adequacy, harness.verdict)."""

    alpha: float = Field(0.01, gt=0, lt=1)
    block_lengths: float = Field(2.0, gt=0)
    region_boxes: int = Field(4, ge=1)
    uncertainty_bins: int = Field(10, ge=1)
    coverage_tol_1sigma: float = Field(0.1, ge=0, le=1)
    coverage_tol_2sigma: float = Field(0.05, ge=0, le=1)
    holdout_every: int = Field(5, ge=2, description="every k-th tile held out for coverage")
    max_false_alarm_rate: float = Field(
        0.2, gt=0, lt=1, description="share of data sets drawn from the model itself that the check may turn red",
    )
    max_replicates: int = Field(100, ge=1, description="cap on model-drawn data sets while the false-alarm rate is undecided")
    mc_alpha: float = Field(0.05, gt=0, lt=0.5, description="chance, per side, of a wrong verdict from Monte-Carlo noise")


@dataclass(frozen=True)
class Gates:
    """Thresholds per use; the defaults are DESIGN.md's."""

    convergence: Thresholds = THRESHOLDS
    sbc: Thresholds = SBC_FIT
    sbc_ranks: SBCRanks = SBCRanks()
    parity: ParityGate = ParityGate()
    coverage: CoverageGate = CoverageGate()
    stability: StabilityGate = StabilityGate()
    agreement: AgreementGate = AgreementGate()
    likelihood: LikelihoodGate = LikelihoodGate()
    drift: DriftGate = DriftGate()
    adequacy: AdequacyGate = AdequacyGate()
    perfect_model: PerfectModelGate = PerfectModelGate()
    source: str = field(default="defaults", compare=False)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The config file these gates come from: one mapping per section."""
        return {
            "convergence": asdict(self.convergence),
            "sbc": {**asdict(self.sbc), **self.sbc_ranks.model_dump()},
            "parity": self.parity.model_dump(),
            "coverage": self.coverage.model_dump(),
            "stability": self.stability.model_dump(),
            "agreement": self.agreement.model_dump(),
            "likelihood": self.likelihood.model_dump(),
            "drift": self.drift.model_dump(),
            "adequacy": self.adequacy.model_dump(),
            "perfect_model": self.perfect_model.model_dump(),
        }

    def digest(self) -> str:
        """Stable text of the values, for the runner's resume fingerprint."""
        return json.dumps(self.as_dict(), sort_keys=True)


#: section name -> (Gates field, model) for the pydantic sections
_MODELS: dict[str, tuple[str, type[_Section]]] = {
    "parity": ("parity", ParityGate),
    "coverage": ("coverage", CoverageGate),
    "stability": ("stability", StabilityGate),
    "agreement": ("agreement", AgreementGate),
    "likelihood": ("likelihood", LikelihoodGate),
    "drift": ("drift", DriftGate),
    "adequacy": ("adequacy", AdequacyGate),
    "perfect_model": ("perfect_model", PerfectModelGate),
}
SECTIONS: tuple[str, ...] = ("convergence", "sbc", *_MODELS)


def _model(model: type[_Section], values: dict[str, Any], where: str) -> _Section:
    """A validated section; the first problem as one line."""
    try:
        return model(**{str(k): v for k, v in values.items()})
    except ValidationError as exc:
        unknown = sorted(str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden")
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {sorted(model.model_fields)}") from None
        err = exc.errors()[0]
        key = ".".join(map(str, err["loc"]))
        raise ValueError(f"{where}: {key}: {err['msg'].lower()}, got {err['input']!r}") from None


def load_gates(path: Path | None) -> Gates:
    """`Gates` from a YAML file (None: the defaults); ValueError with the file name on bad input."""
    if path is None:
        return Gates()
    data = read_yaml(path, "harness config file") or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = sorted(set(map(str, data)) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; valid: {list(SECTIONS)}")
    for name, values in data.items():
        if not isinstance(values, dict | None):
            raise ValueError(f"{path}: {name} must be a mapping of thresholds")
    out: dict[str, Any] = {}
    out["convergence"] = Thresholds.from_mapping(
        {**asdict(THRESHOLDS), **(data.get("convergence") or {})}, f"{path}: convergence"
    )
    sbc = dict(data.get("sbc") or {})
    fit_keys = {f.name for f in fields(Thresholds)}
    ranks = {k: sbc.pop(k) for k in list(sbc) if k not in fit_keys}
    out["sbc"] = Thresholds.from_mapping({**asdict(SBC_FIT), **sbc}, f"{path}: sbc")
    try:
        out["sbc_ranks"] = _model(SBCRanks, ranks, f"{path}: sbc")
    except ValueError as exc:
        if "unknown key" in str(exc):  # name every valid key of the section, both kinds
            bad = sorted(set(ranks) - set(SBCRanks.model_fields))
            valid = sorted(fit_keys | set(SBCRanks.model_fields))
            raise ValueError(f"{path}: sbc: unknown key(s) {bad}; valid: {valid}") from None
        raise
    for name, (attr, model) in _MODELS.items():
        out[attr] = _model(model, data.get(name) or {}, f"{path}: {name}")
    return Gates(**out, source=str(path))


def dump_gates(gates: Gates) -> str:
    """The effective thresholds as a YAML config file (`harness gates`), accepted back by `--config`."""
    import yaml

    head = f"# harness thresholds ({gates.source}); `harness run --config FILE` accepts this file\n"
    return head + yaml.safe_dump(gates.as_dict(), sort_keys=False, allow_unicode=True)
