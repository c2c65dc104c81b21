"""Pages of FUSION's documentation that are generated at build time, so they cannot drift.

- `{config-reference}`: every key of `fusion.config.Config`, walked from the pydantic models
  (type, default, range) with the key's `description`, else the comment written beside it in
  `fusion/config.py`.
- `{fusion-api}`: the reference of every name in `fusion.__all__`, from its docstring.
- `{cli-help} fusion` / `{cli-help} harness`: each command's `--help`, from the CLI's own parser.
- `{harness-checks}`, `{harness-gates}`: the checks of `harness/registry.py` and the default
  thresholds of `harness/gates.py`, as `harness gates` prints them.
- `{benchmark-tables}`: the tables of the saved pytest-benchmark JSON under
  `benchmarks/baselines/`, rendered by `benchmarks/tables.py` (date, CPU, load, the ratio
  measured in the same run).
- After an HTML build, every internal link and anchor of the built pages is checked
  (`check_internal_links`): a link to a missing page or id is a warning, an error under `-W`.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import types
import typing
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from harness.paths import repo_root

logger = logging.getLogger(__name__)
REPO = repo_root()


# ---- configuration reference -------------------------------------------------------------

def _field_comments(model: type) -> dict[str, str]:
    """The comment beside each field in the model's source: trailing `# ...` on the field's
    line, after any full-line comments right above it (the only description config.py has)."""
    try:
        lines, _ = inspect.getsourcelines(model)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").rstrip())
            continue
        match = re.match(r"\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$", line.rstrip())
        if match and match.group(1) in model.model_fields:
            comments[match.group(1)] = " ".join(above + ([match.group(2)] if match.group(2) else []))
        above = []
    return comments


def _is_model(tp: object) -> bool:
    from pydantic import BaseModel

    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _type_name(tp: object) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    if _is_model(tp):
        return "section"
    return {"Path": "path", "str": "text", "int": "integer", "float": "number", "bool": "boolean"}.get(
        getattr(tp, "__name__", str(tp)), getattr(tp, "__name__", str(tp)))


def _default(field: object) -> str:
    if field.is_required():
        return "**required**"
    value = field.default
    if _is_model(type(value)):
        return "(section)"
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value)}`"


def _range(field: object) -> str:
    words = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    parts = [f"{sign} {getattr(m, key)}" for m in field.metadata for key, sign in words.items() if hasattr(m, key)]
    return ", ".join(parts)


def _sections(model: type, path: str) -> list[tuple[str, type]]:
    """(dotted path, model) of the model and of every section below it, depth first."""
    found = [(path, model)]
    for name, field in model.model_fields.items():
        for tp in (field.annotation, *typing.get_args(field.annotation)):
            if _is_model(tp):
                found += _sections(tp, f"{path}.{name}" if path else name)
    return found


def config_reference_markdown() -> list[str]:
    """Markdown: per section of the config, its docstring and one row per key."""
    from fusion.config import Config

    lines: list[str] = []
    for path, model in _sections(Config, ""):
        comments = {k: v for base in reversed(model.__mro__) if _is_model(base) and base.__module__ == model.__module__
                    for k, v in _field_comments(base).items()}
        title = f"`{path}`" if path else "top level"
        lines += [f"**{title}**", ""]
        doc = inspect.getdoc(model) if model.__doc__ else ""
        if doc and not doc.startswith(("A base class", "Usage docs")):
            lines += [" ".join(doc.split()), ""]
        lines += ["| key | type | default | range | note |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            key = f"{path}.{name}" if path else name
            note = (field.description or comments.get(name, "")).replace("|", "\\|")
            lines.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | "
                         f"{_range(field)} | {note} |")
        lines.append("")
    return lines


class _MarkdownDirective(SphinxDirective):
    """A directive whose output is Markdown, parsed as the page around it is."""

    has_content = False

    def markdown(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(self.markdown(), source=self.get_source_info()[0]),
                                self.content_offset, container)
        return container.children


class ConfigReference(_MarkdownDirective):
    def markdown(self) -> list[str]:
        self.env.note_dependency(str(REPO / "fusion" / "config.py"))
        return config_reference_markdown()


# ---- the public API ----------------------------------------------------------------------

class FusionApi(SphinxDirective):
    """`fusion.__all__` by its top-level names (`fusion.run`, not `fusion.pipeline.run`), so the
    reference follows the package's public names wherever their modules move: a summary table,
    then each function and class from its docstring. Used inside `{eval-rst}` (docstrings are
    reStructuredText)."""

    def run(self) -> list[nodes.Node]:
        import fusion

        self.env.note_dependency(str(REPO / "fusion" / "__init__.py"))
        names = list(fusion.__all__)
        kinds = {name: ("exception" if isinstance(obj, type) and issubclass(obj, BaseException)
                        else "class" if isinstance(obj, type) else "function")
                 for name in names for obj in [getattr(fusion, name)]}
        lines = [".. autosummary::", ""] + [f"   fusion.{name}" for name in names] + [""]
        for kind in ("function", "class", "exception"):
            for name in (n for n in names if kinds[n] == kind):
                lines += [f".. auto{kind}:: fusion.{name}", ""]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="fusion.__all__"), self.content_offset, container)
        return container.children


# ---- command-line reference --------------------------------------------------------------

def _parser(program: str) -> argparse.ArgumentParser:
    if program == "fusion":
        from fusion.cli import _parser as make
    elif program == "harness":
        from harness.cli import _parser as make
    else:
        raise ValueError(f"cli-help: unknown program {program!r} (fusion or harness)")
    return make()


class CliHelp(SphinxDirective):
    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: fix it
        try:
            parser = _parser(self.arguments[0])
            out: list[nodes.Node] = [nodes.literal_block(text=parser.format_help())]
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        out.append(nodes.rubric(text=f"{self.arguments[0]} {name}"))
                        out.append(nodes.literal_block(text=sub.format_help()))
        finally:
            if previous is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = previous
        return out


# ---- harness: its checks and their default thresholds ------------------------------------

class HarnessChecks(_MarkdownDirective):
    """One row per check of `harness/registry.py` (the list the CLI and the runner read)."""

    def markdown(self) -> list[str]:
        from harness.registry import CHECKS

        self.env.note_dependency(str(REPO / "harness" / "registry.py"))
        lines = ["| check | what it gates | per case (`--case`) | suites | `--config` section |",
                 "|---|---|---|---|---|"]
        for spec in CHECKS:
            lines.append(f"| `{spec.name}` | {spec.doc} | {'yes' if spec.per_case else 'no'} | "
                         f"{', '.join(spec.suites)} | {f'`{spec.gates}`' if spec.gates else '–'} |")
        return lines


class HarnessGates(SphinxDirective):
    """The default thresholds, as `harness gates` prints them (a file `--config` accepts back)."""

    def run(self) -> list[nodes.Node]:
        from harness.gates import Gates, dump_gates

        self.env.note_dependency(str(REPO / "harness" / "gates.py"))
        block = nodes.literal_block(text=dump_gates(Gates()))
        block["language"] = "yaml"
        return [block]


# ---- benchmark tables --------------------------------------------------------------------

def _tables_module() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("bench_tables", REPO / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_files() -> list[Path]:
    """Every committed benchmark baseline, oldest first (pytest-benchmark numbers them)."""
    return sorted((REPO / "benchmarks" / "baselines").glob("*/*_baseline.json"), key=lambda p: p.name)


class BenchmarkTables(_MarkdownDirective):
    """`{benchmark-tables}` with option `:history:` for one table per saved run, newest first."""

    option_spec = {"history": lambda arg: True}

    def markdown(self) -> list[str]:
        tables = _tables_module()
        files = baseline_files()
        for path in files:
            self.env.note_dependency(str(path))
        if not files:
            raise self.error("benchmark-tables: no saved benchmark JSON under benchmarks/baselines/")
        lines: list[str] = []
        if "history" not in self.options:  # one table per CPU: seconds compare on one machine only
            by_cpu: dict[str, list[Path]] = {}
            for path in files:
                cpu = json.loads(path.read_text())["machine_info"]["cpu"].get("brand_raw", "unknown CPU")
                by_cpu.setdefault(cpu, []).append(path)
            for cpu, paths in sorted(by_cpu.items(), key=lambda item: item[1][-1].name, reverse=True):
                lines += [f"**{cpu}**", "", *tables.render_files(paths).splitlines(), ""]
            return lines
        for path in reversed(files):
            lines += [f"**{path.name}**", "", *tables.render_files([path]).splitlines(), ""]
        return lines


# ---- internal links of the built HTML ----------------------------------------------------

class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)
            if value and ((key == "href" and tag in ("a", "link")) or (key == "src" and tag in ("img", "script"))):
                self.links.append(value)


def broken_internal_links(root: Path) -> list[str]:
    """`page: link` for every link of a built page to a missing file or a missing anchor."""
    parsed: dict[Path, _Links] = {}

    def page(path: Path) -> _Links:
        if path not in parsed:
            parser = _Links()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            parsed[path] = parser
        return parsed[path]

    broken = []
    for html in sorted(root.rglob("*.html")):
        if html.relative_to(root).parts[0] in ("_static", "_sources", "_modules"):
            continue
        for link in page(html).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = html if not parts.path else (html.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{html.relative_to(root)}: {link} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in page(target).ids:
                broken.append(f"{html.relative_to(root)}: {link} (no such anchor)")
    return broken


def check_internal_links(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for line in broken_internal_links(Path(app.outdir)):
        logger.warning("broken internal link: %s", line, type="fusion", subtype="links")


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("config-reference", ConfigReference)
    app.add_directive("cli-help", CliHelp)
    app.add_directive("fusion-api", FusionApi)
    app.add_directive("benchmark-tables", BenchmarkTables)
    app.add_directive("harness-checks", HarnessChecks)
    app.add_directive("harness-gates", HarnessGates)
    app.connect("build-finished", check_internal_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
