"""Case folders: the one place that reads a case and finds the bundled ones.

A case (DESIGN.md, "Cases: the harness on a team's own data") is a folder with `case.yaml`
(name, config, reference, checks, baseline) and a `reference/` folder holding what the prototype
produced; `baselines/` holds what FUSION itself said on it (harness.cases.baseline_store), for `drift`,
which is among the default checks only when a baseline exists. Every per-case check (parity,
convergence, stability, agreement, drift) gets its case here, so a team's own folder and the
bundled `fixtures/cases/<name>/` take the same code path.

Reading a case runs nothing from it: YAML is safe-loaded and arrays are loaded without
pickle; a file that needs either, unknown keys, a missing config or a reference file of
the wrong shape or dtype is an `InputError` naming the file (one line, exit 2 from the
CLI). Everything is validated when the case is loaded, before any check starts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any


from fusion.errors import InputError
from fusion.io import is_complete, mark_success, sha256_file, sha256_tree, write_text
from harness.cases.baseline_store import RECORD, baselines_dir, has_baselines, select_baseline
from harness.cases.reference import (
    POSTERIOR,
    PREPARED,
    SAMPLED,
    WEIGHTS,
    read_posterior,
    read_reference_prepared,
    read_reference_weights,
)
from harness.registry import EXAMPLE, per_case_names

if TYPE_CHECKING:
    from fusion.yamlfile import Scalars

__all__ = [
    "CASE_FILE",
    "EXAMPLE",
    "PER_CASE_CHECKS",
    "Case",
    "CaseCatalog",
    "bundled_case",
    "bundled_names",
    "load_case",
    "load_cases",
]

CASE_FILE = "case.yaml"
CASE_KEYS: tuple[str, ...] = ("name", "config", "reference", "checks", "baseline")
PER_CASE_CHECKS: tuple[str, ...] = per_case_names()  # what case.yaml `checks:` may list (harness.registry)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Case:
    """Where one case's config and reference files are, and which per-case checks it asks for."""

    name: str
    root: Path  # the folder holding case.yaml
    config: Path
    reference: Path
    checks: tuple[str, ...] = PER_CASE_CHECKS
    projection: bool | None = None  # None: whether the config's projection inputs exist
    baseline: str | None = None  # case.yaml `baseline:`: the one `drift` compares with (default: the latest)
    unavailable: tuple[tuple[str, str], ...] = ()  # (check, why) left out of the default `checks`

    def file(self, *parts: str) -> Path | None:
        """A reference file, or None when the case does not hold it."""
        path = self.reference.joinpath(*parts)
        return path if path.is_file() else None

    @property
    def tables_dir(self) -> Path:
        """Reviewed golden tables of FUSION's outputs for this case (bundled cases keep them here)."""
        return self.reference / "tables"

    def table_path(self, table: str) -> Path:
        return self.tables_dir / f"{table}.csv"

    @cached_property
    def settings(self) -> Any:
        """The case's FUSION config as written (checks override compat and sampler settings)."""
        from fusion.config import load_config

        return load_config(self.config)

    @property
    def has_projection(self) -> bool:
        if self.projection is not None:
            return self.projection
        from fusion.data.remote import is_remote

        folder = self.settings.projection.historical_dir
        return is_remote(folder) or Path(folder).is_dir()

    def input_dirs(self) -> list[Path]:
        cfg = self.settings
        dirs = [cfg.observations.thickness.dir, cfg.observations.velocity.dir, cfg.ensemble.dir]
        if self.has_projection:
            dirs += [cfg.projection.historical_dir, cfg.projection.forward_dir]
        return [Path(d) for d in dirs if not (isinstance(d, str) and "://" in d) and Path(d).is_dir()]  # URLs: below

    def inputs_sha256(self) -> dict[str, str]:
        """SHA-256 of every input file (provenance; each file hashed once per process)."""
        out = {str(p): _file_digest(p) for d in self.input_dirs() for p in sorted(d.rglob("*")) if p.is_file()}
        return {**out, **self._remote_inputs_sha256()}

    def _remote_inputs_sha256(self) -> dict[str, str]:
        """Inputs at a URL, by URL, through FUSION's cache (a second call downloads nothing)."""
        from fusion.data.remote import is_remote, list_inputs
        from fusion.io import input_digests

        cfg = self.settings
        sections = [("observations.thickness", cfg.observations.thickness), ("observations.velocity", cfg.observations.velocity),
                    ("ensemble", cfg.ensemble)]
        found = [list_inputs(s.dir, s.pattern, key, cfg.source, storage_options=s.storage_options, cache_dir=cfg.cache.dir)
                 for key, s in sections if is_remote(s.dir)]
        if self.has_projection:
            found += [list_inputs(d, "*.nc", key, cfg.source, storage_options=cfg.projection.storage_options,
                                  cache_dir=cfg.cache.dir)
                      for key, d in (("projection.historical_dir", cfg.projection.historical_dir),
                                     ("projection.forward_dir", cfg.projection.forward_dir)) if is_remote(d)]
        return input_digests(p for paths in found for p in paths)

    def fingerprint(self) -> str:
        """What a stored result on this case depends on: case.yaml, config, reference files and inputs."""
        h = hashlib.sha256(f"{self.name}|{sorted(self.checks)}\n".encode())
        files = [self.root / CASE_FILE, self.config]
        if self.reference.is_dir():
            files += sorted(p for p in self.reference.rglob("*") if p.is_file())
        for p in files:
            if p.is_file():
                h.update(f"{p.name}:{_file_digest(p)}\n".encode())
        for path, digest in self.inputs_sha256().items():
            h.update(f"{Path(path).name}:{digest}\n".encode())
        for p in sorted(baselines_dir(self.root).glob(f"*/{RECORD}")):  # a re-baseline is other work for drift
            h.update(f"{p.parent.name}:{_file_digest(p)}\n".encode())
        return h.hexdigest()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


# --- reading case.yaml ------------------------------------------------------------------------


def _read_yaml(path: Path) -> tuple[dict[str, Any], Scalars]:
    from fusion.yamlfile import read_yaml_scalars

    raw, scalars = read_yaml_scalars(path, "case.yaml")
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InputError(path, "expected a mapping with keys name, config, reference, checks")
    unknown = [str(k) for k in raw if k not in CASE_KEYS]
    if unknown:
        raise InputError(path, f"unknown key '{unknown[0]}'; valid: {', '.join(CASE_KEYS)}")
    return raw, scalars


def _string(path: Path, raw: dict[str, Any], key: str, default: str | None, scalars: Scalars) -> str:
    value = raw.get(key, default)
    if value is None:
        raise InputError(path, f"missing required key '{key}'")
    if not isinstance(value, str) and (why := scalars.not_text(key)):
        raise InputError(path, f"key '{key}' at {why}")  # `name: 2026`, `name: no`
    if not isinstance(value, str) or not value.strip():
        raise InputError(path, f"key '{key}': expected a non-empty string, got {value!r}")
    return value


def load_case(folder: str | Path, *, require_comparison: bool = True) -> Case:
    """Read and validate a case folder; every problem is an `InputError` naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "case folder not found")
    folder = folder.resolve()
    path = folder / CASE_FILE
    raw, scalars = _read_yaml(path)
    name = _string(path, raw, "name", folder.resolve().name, scalars)
    if not _NAME.match(name):
        raise InputError(path, f"key 'name': {name!r} is not a plain name (letters, digits, '.', '_', '-')")
    config = (folder / _string(path, raw, "config", None, scalars)).resolve()
    if not config.is_file():
        raise InputError(path, f"key 'config': {config} not found")
    reference = (folder / _string(path, raw, "reference", "reference", scalars)).resolve()
    named = _string(path, raw, "baseline", None, scalars) if "baseline" in raw else None
    with_baseline = named is not None or has_baselines(folder)
    unavailable = () if with_baseline else (
        ("drift", f"{baselines_dir(folder)}: no baseline; record one with `harness baseline --case {folder}`"),
    )
    checks_raw = raw.get("checks", [c for c in PER_CASE_CHECKS if c not in dict(unavailable)])
    if not isinstance(checks_raw, list) or not checks_raw or not all(isinstance(c, str) for c in checks_raw):
        raise InputError(path, f"key 'checks': expected a list of {', '.join(PER_CASE_CHECKS)}")
    bad = [c for c in checks_raw if c not in PER_CASE_CHECKS]
    if bad:
        raise InputError(path, f"key 'checks': unknown check '{bad[0]}'; valid: {', '.join(PER_CASE_CHECKS)}")
    case = Case(name, folder, config, reference, tuple(dict.fromkeys(checks_raw)), baseline=named,
                unavailable=unavailable)
    case.settings  # noqa: B018 — a config error is bad input of this case, now, not mid-run
    if with_baseline or (require_comparison and "drift" in case.checks):  # missing, corrupt or foreign: bad input, now
        select_baseline(folder, name, named, path)
    if reference.exists() and not reference.is_dir():
        raise InputError(reference, "reference is not a folder")
    validate_reference(case)
    if require_comparison and "parity" in case.checks and not has_comparison(case):
        raise InputError(
            reference,
            f"nothing to compare: no {PREPARED}, no {WEIGHTS} with {POSTERIOR}, no {SAMPLED}"
            + ("" if "checks" in raw else " (or list the checks without parity in case.yaml)"),
        )
    return case


def load_cases(folders: Iterable[str | Path]) -> list[Case]:
    """Several case folders; two with the same name are an error naming both."""
    seen: dict[str, Case] = {}
    for folder in folders:
        case = load_case(folder)
        if case.name in seen:
            raise InputError(
                case.root / CASE_FILE,
                f"case name {case.name!r} is also the name of {seen[case.name].root / CASE_FILE}",
            )
        seen[case.name] = case
    return list(seen.values())


# --- reference files: shape, dtype, no pickle -----------------------------------------------------


def validate_reference(case: Case) -> None:
    """Read every reference file once, so a wrong one fails before any check starts."""
    prepared = read_reference_prepared(case.file(PREPARED)) if case.file(PREPARED) else None  # type: ignore[arg-type]
    if case.file(WEIGHTS):
        table = read_reference_weights(case.file(WEIGHTS), prepared.member_ids if prepared else None)  # type: ignore[arg-type]
        if prepared is not None and len(table) != prepared.n_members:
            raise InputError(case.file(WEIGHTS), f"{len(table)} members, but F has {prepared.n_members}")
    for name in (POSTERIOR, SAMPLED):
        if case.file(name):
            read_posterior(case.file(name))  # type: ignore[arg-type]


def comparisons(case: Case) -> dict[str, str | None]:
    """Each parity comparison: None if the case holds what it needs, else why it is skipped."""
    has = {f: case.file(f) is not None for f in (PREPARED, WEIGHTS, POSTERIOR, SAMPLED)}
    skipped = {
        "prepared": None if has[PREPARED] else f"no {PREPARED} in the reference",
        "plugin_weights": None
        if has[PREPARED] and has[WEIGHTS] and has[POSTERIOR]
        else f"needs {PREPARED}, {WEIGHTS} and {POSTERIOR}",
        "pipeline_weights": None if has[WEIGHTS] and has[POSTERIOR] else f"needs {WEIGHTS} and {POSTERIOR}",
        "statistical": None if has[SAMPLED] else f"no {SAMPLED} in the reference",
        "golden_tables": None if case.tables_dir.is_dir() else "no tables/ of reviewed golden tables",
    }
    return skipped


def has_comparison(case: Case) -> bool:
    return any(reason is None for reason in comparisons(case).values())


# --- bundled cases --------------------------------------------------------------------------------


def bundled_names(golden_dir: Path, fixtures_dir: Path) -> list[str]:
    """`fixtures/cases/<name>/case.yaml` in name order, then the generated `example` (if golden/example exists)."""
    root = Path(fixtures_dir) / "cases"
    names = sorted(p.parent.name for p in root.glob(f"*/{CASE_FILE}")) if root.is_dir() else []
    if (Path(golden_dir) / EXAMPLE).is_dir():
        names.append(EXAMPLE)
    return names


def bundled_case(name: str, golden_dir: Path, fixtures_dir: Path, workdir: Path | None) -> Case:
    """A bundled case. The example is generated, not committed: its inputs and case.yaml are
    written into `workdir/example` (once; reused on resume) with `reference:` pointing at
    `golden/example` (its golden tables and the posterior they use). With `workdir=None`
    nothing is written (enough to ask which tables apply)."""
    if name != EXAMPLE:
        return load_case(Path(fixtures_dir) / "cases" / name)
    reference = (Path(golden_dir) / EXAMPLE).resolve()
    if workdir is None:
        root = Path(".").resolve() / EXAMPLE
        return Case(EXAMPLE, root, root / "config.yaml", reference, projection=True)
    from fusion.data.synthetic import write_example

    root = Path(workdir) / EXAMPLE
    if not is_complete(root):
        config = write_example(root)
        write_text(
            root / CASE_FILE,
            f"# generated by harness.cases.bundled_case\nname: {EXAMPLE}\nconfig: {config.name}\n"
            f"reference: {reference}\n"
        )
        mark_success(root)
    return load_case(root)


class CaseCatalog:
    """The cases a run works on: the bundled ones, or the folders given with `--case`."""

    def __init__(
        self, golden_dir: Path, fixtures_dir: Path, user_cases: Sequence[Case] = ()
    ) -> None:
        self.golden_dir, self.fixtures_dir = Path(golden_dir), Path(fixtures_dir)
        self.user = {c.name: c for c in user_cases}

    @classmethod
    def from_folders(cls, golden_dir: Path, fixtures_dir: Path, folders: Sequence[Path]) -> CaseCatalog:
        return cls(golden_dir, fixtures_dir, load_cases(folders))

    @property
    def bundled(self) -> bool:
        return not self.user

    def names(self, check: str | None = None) -> list[str]:
        """Every case, or those whose `checks:` list `check`."""
        if self.bundled:
            return bundled_names(self.golden_dir, self.fixtures_dir)
        return [n for n, c in self.user.items() if check is None or check in c.checks]

    def get(self, name: str, workdir: Path | None) -> Case:
        if name in self.user:
            return self.user[name]
        if not self.bundled:
            raise KeyError(f"no case {name!r} among {sorted(self.user)}")
        return bundled_case(name, self.golden_dir, self.fixtures_dir, workdir)

    def fingerprint_parts(self) -> list[tuple[str, str]]:
        """(label, digest) of what stored results depend on besides the code."""
        if not self.bundled:
            return [(f"case:{n}", c.fingerprint()) for n, c in sorted(self.user.items())]
        parts = []
        for folder in (self.golden_dir, self.fixtures_dir):
            if folder.is_dir():
                parts += [(f"{folder.name}/{rel}", d) for rel, d in sha256_tree(folder).items()]
        return parts


def catalog_of(ctx: Any) -> CaseCatalog:
    """The run's catalog, or the bundled one for a context built without it (tests)."""
    catalog = getattr(ctx, "catalog", None)
    return catalog if catalog is not None else CaseCatalog(ctx.golden_dir, ctx.fixtures_dir)


