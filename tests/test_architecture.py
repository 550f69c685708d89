"""The import graph of src/qaconv: no circle, and no package imports one above it (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "qaconv"

#: Packages and top-level modules, lowest first; a module may import its own layer and the layers below.
LAYERS = (
    {"version", "errors", "cpus", "device", "checksum", "io", "lock", "image_reader", "rundir", "folders"},
    {"config", "losses", "matching", "metrics", "models", "viz"},
    {"data"},
    {"engine"},
    {"inference"},
    {"serve"},
    {"commands", "cli", "__main__"},
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """The qaconv modules `name` imports anywhere in its file (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from qaconv.x import y` imports qaconv.x.y where y is a module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target.startswith("qaconv") and target != name:
                found.add(target)
    return found


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    top = name.split(".")[1] if "." in name else name
    for rank, members in enumerate(LAYERS):
        if top in members:
            return rank
    raise AssertionError(f"{name} is in no layer of tests/test_architecture.py: add it to LAYERS")


def test_every_module_has_a_layer() -> None:
    for name in MODULES:
        if name != "qaconv":
            layer(name)


def test_nothing_imports_the_top_package() -> None:
    """qaconv/__init__.py is the users' facade (it reaches up to ReID), so modules import what they need directly."""
    assert sorted(name for name, targets in GRAPH.items() if "qaconv" in targets) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if name != "qaconv"
        for target in targets
        if target != "qaconv" and layer(target) > layer(name)
    )
    assert upward == []


def test_the_import_graph_has_no_circle() -> None:
    """Tarjan's strongly connected components: every component must be a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert circles == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from qaconv.engine import run", {"qaconv.engine.run"}),
        ("from qaconv.engine.run import run_training", {"qaconv.engine.run"}),
        ("from . import run", {"qaconv.engine.run"}),
        ("import qaconv.matching.topk", {"qaconv.matching.topk"}),
    ],
)
def test_imports_are_resolved_to_modules(tmp_path: Path, source: str, expected: set[str]) -> None:
    fake = tmp_path / "assemble.py"  # read as qaconv.engine.assemble: relative imports resolve from qaconv.engine
    fake.write_text(source + "\n")
    assert imported("qaconv.engine.assemble", fake) == expected


def test_compatibility_shims_are_listed_in_the_architecture_page() -> None:
    """Every `# compat(VERSION) NAME` in src is a row of docs/architecture.md's shim table, and the other way."""
    marker = re.compile(r"# compat\((\d+\.\d+)\) ([a-z-]+)")
    in_code = {m.groups() for path in MODULES.values() for m in marker.finditer(path.read_text())}
    page = (SRC.parent.parent / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \|.*\| (\d+\.\d+) \|$", page, flags=re.MULTILINE)
    assert {(version, name) for name, version in rows} == in_code
    current = tuple(int(part) for part in version_of_project().split(".")[:2])
    assert all(tuple(int(p) for p in version.split(".")) > current for version, _ in in_code)


def version_of_project() -> str:
    text = (SRC.parent.parent / "pyproject.toml").read_text()
    return re.search(r'^version = "([^"]+)"', text, flags=re.MULTILINE).group(1)
