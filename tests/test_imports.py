"""Import structure: no cycle between the modules of `fusion` and `harness`, no helper imported from a conftest.

A cycle makes import order matter and hides which module owns what. At load time,
function-local (deferred) imports and `TYPE_CHECKING` blocks do not run and are left out;
a `TYPE_CHECKING` import is still a dependency a reader must follow, so a second graph counts
them and must be free of cycles too;
within `fusion` a deferred import is there for import cost only (`fusion run` loads what it
uses), never to dodge a cycle, so there the deferred imports must be free of cycles too.
A conftest is pytest's to load (fixtures and hooks); shared helpers live in `harness.testing`
and `tests.helpers`, where importing them does not depend on which conftest pytest found first.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from harness.paths import repo_root


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(
    tree: ast.Module, name: str, is_package: bool, *, deferred: bool = False, type_checking: bool = False
) -> set[str]:
    """Names imported by statements that run when the module loads (not in `TYPE_CHECKING` unless
    `type_checking`, nor in functions unless `deferred`)."""
    out: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not deferred:
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and not type_checking:
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if is_package else name.split(".")[:-1]
            module = node.module or ""
            if node.level:
                module = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
        for field in ("body", "orelse", "handlers", "finalbody"):
            stack.extend(getattr(node, field, None) or [])
    return out


def import_graph(
    root: Path,
    packages: tuple[str, ...] = ("fusion", "harness"),
    *,
    deferred: bool = False,
    type_checking: bool = False,
) -> dict[str, set[str]]:
    """{module: the project modules it imports at load time (and, if `deferred`, inside its functions)}."""
    files = {_module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        for target in _imports(tree, name, is_package, deferred=deferred, type_checking=type_checking):
            while target and target not in files:  # `from pkg.mod import obj` → pkg.mod
                target = target.rpartition(".")[0]
            if target and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def _assert_acyclic(graph: dict[str, set[str]], what: str) -> None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"{what}: {' -> '.join(exc.args[1])}") from None


def test_no_import_cycle_in_fusion_or_harness() -> None:
    graph = import_graph(repo_root())
    assert {"fusion.cli", "harness.cli", "harness.testing"} <= graph.keys()  # the scan found the packages
    assert "harness.cases" in graph["harness.testing"]  # and reads `from x import y` edges
    assert "fusion.inference.laplace" not in graph["fusion.inference.sampling"]  # deferred: not at load time
    _assert_acyclic(graph, "import cycle")


def test_no_import_cycle_counting_type_checking_imports() -> None:
    graph = import_graph(repo_root(), type_checking=True)
    assert "harness.cases" in graph["harness.checks"]  # the scan reads `if TYPE_CHECKING:` blocks
    assert "harness.cases" not in import_graph(repo_root())["harness.checks"]
    _assert_acyclic(graph, "import cycle through a TYPE_CHECKING import")


def test_no_cycle_in_fusion_through_deferred_imports() -> None:
    graph = import_graph(repo_root(), ("fusion",), deferred=True)
    # the scan reads imports inside functions
    assert "fusion.inference.laplace" in graph["fusion.inference.sampling"]
    _assert_acyclic(graph, "import cycle through a deferred import")


def _imported_modules(tree: ast.Module) -> set[str]:
    """Every module an `import` or `from ... import` anywhere in the file names."""
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    return names | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_no_module_imports_from_a_conftest() -> None:
    root = repo_root()
    offenders = [
        f"{path.relative_to(root)}: {module}"
        for folder in ("fusion", "harness", "tests", "benchmarks")
        for path in sorted((root / folder).rglob("*.py"))
        for module in sorted(_imported_modules(ast.parse(path.read_text())))
        if "conftest" in module.split(".")
    ]
    assert offenders == []


def test_the_run_figures_live_in_one_package() -> None:
    """Drawing is `fusion.figures`' business: no other module of `fusion` imports Matplotlib, so the
    package's top level reads as the pipeline's stages."""
    root = repo_root()
    drawing = {
        str(path.relative_to(root))
        for path in sorted((root / "fusion").rglob("*.py"))
        if any(m.split(".")[0] == "matplotlib" for m in _imported_modules(ast.parse(path.read_text())))
    }
    assert {"fusion/figures/projection.py", "fusion/figures/availability.py"} <= drawing  # the scan sees them
    assert {p for p in drawing if not p.startswith("fusion/figures/")} == set()
