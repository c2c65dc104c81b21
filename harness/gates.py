"""The harness's thresholds, from an optional YAML config file (`harness run --config FILE`).

    convergence:      # the release gate: convergence check, statistical parity, impact table
      r_hat_max: 1.01
      ess_bulk_min: 100    # per chain
    sbc:              # SBC's and coverage's per-fit gate (short chains, looser)
      r_hat_max: 1.05

Every key is a `fusion.diagnostics.Thresholds` field; anything left out keeps its default.
Unknown sections or keys and bad values are errors naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fusion.diagnostics import THRESHOLDS, Thresholds
from fusion.yamlfile import read_yaml

__all__ = ["Gates", "SBC_FIT", "load_gates"]

#: Per-fit gate of SBC and coverage: 2 chains of a few hundred draws, where an R-hat of 1.01 is
#: within noise; ESS floors per chain (25 per chain = 50 over the two chains).
SBC_FIT = Thresholds(
    r_hat_max=1.05, ess_bulk_min=25.0, ess_tail_min=25.0, divergences_max=0, e_bfmi_min=0.2, borderline_retries=0
)


@dataclass(frozen=True)
class Gates:
    """Thresholds per use; the defaults are DESIGN.md's."""

    convergence: Thresholds = THRESHOLDS
    sbc: Thresholds = SBC_FIT
    source: str = field(default="defaults", compare=False)

    def digest(self) -> str:
        """Stable text of the values, for the runner's resume fingerprint."""
        return json.dumps({"convergence": asdict(self.convergence), "sbc": asdict(self.sbc)}, sort_keys=True)


def load_gates(path: Path | None) -> Gates:
    """`Gates` from a YAML file (None: the defaults); ValueError with the file name on bad input."""
    if path is None:
        return Gates()
    data = read_yaml(path, "harness config file") or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with sections 'convergence' and/or 'sbc'")
    unknown = sorted(set(map(str, data)) - {"convergence", "sbc"})
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}; valid: ['convergence', 'sbc']")
    sections = {}
    for name, base in (("convergence", THRESHOLDS), ("sbc", SBC_FIT)):
        values = data.get(name) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: {name} must be a mapping of thresholds")
        sections[name] = Thresholds.from_mapping({**asdict(base), **values}, f"{path}: {name}")
    return Gates(**sections, source=str(path))
