"""The house rules, read from the source: imports point one way, no cycles, small modules.

Every ``import`` of an nlvideo module counts, including those inside functions and under
``if TYPE_CHECKING``: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nlvideo"

# Which other parts of nlvideo each part may import (its own modules always).
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "data": set(),
    "models": set(),
    "builtin": set(),
    "metrics": {"data"},
    "vis": {"data", "models"},
    "engine": {"config", "data", "models", "metrics"},
    "export": {"config", "data", "models", "metrics", "engine"},
    "pipeline": {"config", "data", "models", "builtin", "metrics", "engine"},
    "cli": {
        "config",
        "data",
        "models",
        "builtin",
        "metrics",
        "engine",
        "pipeline",
        "vis",
        "export",
    },
}
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """nlvideo modules that module ``name`` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from nlvideo.x import y": y is a module of x or a name in x
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
            targets = [t if t in MODULES else node.module for t in targets]
        else:
            continue
        found |= {t for t in targets if t.startswith("nlvideo.")}
    return {t for t in found if t in MODULES} - {name}


GRAPH = {name: _imports(name) for name in MODULES}


def _part(module: str) -> str:
    return module.split(".")[1] if module != "nlvideo" else ""


def test_every_part_of_the_package_is_in_the_layer_table():
    assert {_part(m) for m in MODULES} - {""} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    part = _part(module)
    allowed = ALLOWED.get(part, set()) | {part}
    wrong = sorted(t for t in GRAPH[module] if _part(t) not in allowed)
    assert not wrong, f"{module} may import {sorted(allowed)} only, imports {wrong}"


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_cli_imports_nothing_heavy_at_module_level():
    heavy = ("torch", "numpy", "pytorchvideo", "omegaconf", "av", "decord", "tqdm")
    for name, path in MODULES.items():
        if _part(name) != "cli":
            continue
        for node in ast.parse(path.read_text()).body:  # top-level statements only
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots = {node.module.split(".")[0]}
                if node.module.startswith("nlvideo.") and not node.module.startswith("nlvideo.cli"):
                    roots.add("nlvideo (not cli)")
            else:
                continue
            assert not roots & {*heavy, "nlvideo (not cli)"}, f"{name}: {ast.unparse(node)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_under_400_lines(module):
    assert len(MODULES[module].read_text().splitlines()) < MAX_LINES
