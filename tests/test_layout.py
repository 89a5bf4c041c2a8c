"""The package's import graph: no cycle anywhere in ``sapicore`` (imports inside functions count), and
the functional core's layers import only downwards; the old module paths name the same modules."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import sapicore.functional as sf

ROOT = Path(sf.__file__).resolve().parents[1]  # the sapicore package


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def canonical(name: str) -> str | None:
    """The module's own name (old paths resolve to the module they alias), None outside sapicore."""
    if not name.startswith("sapicore"):
        return None
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError:
            return None
    return module.__name__


def imports(path: Path) -> set[str]:
    """The sapicore modules ``path`` imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # a submodule where there is one, else the module that holds the name
            targets = [canonical(f"{base}.{alias.name}") or base for alias in node.names]
        else:
            continue
        found |= {c for c in map(canonical, targets) if c and c != name}
    return found


GRAPH = {module_name(path): imports(path) for path in sorted(ROOT.rglob("*.py"))}


def test_no_module_imports_one_that_imports_it_back():
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(GRAPH):
        if start not in state:
            visit(start, [start])
    assert len(GRAPH) > 60 and not cycles, cycles


def test_the_functional_layers_import_only_downwards():
    """models < propagation < network < running (pytree and transforms under all); models use the
    compiled kernels' Poisson sampler only."""
    core = "sapicore.functional"
    rank = {f"{core}.models": 1, f"{core}.propagation": 2, f"{core}.network": 3, f"{core}.running": 4}

    def layer(name: str) -> int:
        return next((r for prefix, r in rank.items() if name == prefix or name.startswith(prefix + ".")), 0)

    wrong = [
        (source, target)
        for source, targets in GRAPH.items()
        if source.startswith(core + ".")
        for target in targets
        if target.startswith(core + ".")
        and layer(target) > layer(source)
        and not (layer(source) == 1 and target == f"{core}.propagation.kernels")
    ]
    assert not wrong, wrong


def test_old_module_paths_are_the_same_modules():
    import sapicore.functional.checks as checks
    import sapicore.functional.kernels as kernels
    import sapicore.functional.neurons.lif as lif

    from sapicore.functional.models.neurons import lif as lif_new
    from sapicore.functional.propagation import kernels as kernels_new
    from sapicore.functional.running import checks as checks_new

    assert lif is lif_new and kernels is kernels_new and checks is checks_new
    assert sf.LIF is lif.LIF and sf.connectivity is sys.modules["sapicore.functional.connectivity"]
