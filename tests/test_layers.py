"""The import graph of worldcover: no cycle, and every arrow points down the data flow.

    grid -> sources -> preprocess -> features -> model -> tile -> mosaic -> validation;  campaign -> engines -> cli

The graph is read from the sources with ``ast`` (nothing is imported, so it takes about a second): every
``import`` and ``from ... import`` of a worldcover module, at module level and inside functions alike,
since each is a dependency a reader has to follow. Imports under ``if TYPE_CHECKING:`` are left out: they
name types for annotations and never run (the public API in ``worldcover/__init__.py`` and the renderers'
``BlockWorld`` annotation use them). Run it alone with

    .venv/bin/python -m pytest -q tests/test_layers.py

and print the graph's violations with ``python tests/test_layers.py``.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "worldcover"

#: The layers, lowest first: a module may import from its own unit and from units listed before it.
#: A unit is a package or a top-level module; a module belongs to the longest unit its name starts with.
LAYERS: list[tuple[str, ...]] = [
    # foundation: errors, the legend, secrets, where bytes go, band facts, resampling
    ("worldcover.errors",),
    ("worldcover.legend",),
    ("worldcover.credentials",),
    ("worldcover.storage",),
    ("worldcover.cog",),
    ("worldcover.bands",),
    ("worldcover.regrid",),
    # the data flow
    ("worldcover.grid",),
    # pixel and class areas on the lat/lon grid: used by the mosaic and validation alike
    ("worldcover.area",),
    ("worldcover.stages",),
    ("worldcover.layout",),  # the output layout of tiles (TilePaths), read by tile, mosaic, campaign
    ("worldcover.sim",),  # the simulated Sentinel archive: what the sources read offline
    # which pixel is land (GLOBE's coast, or a simulated world's): read by the mosaic and validation alike
    ("worldcover.landmask",),
    ("worldcover.sources",),
    ("worldcover.preprocess",),
    ("worldcover.features",),
    ("worldcover.chain",),  # a block's inputs -> its features: what tile classification and training share
    ("worldcover.model",),
    ("worldcover.tile",),
    # a campaign's validated description (name, stage, seed, year, ...): the mosaic reads campaign.json to scope
    # and name its products; running a campaign (steps, engines) stays in the campaign layer above
    ("worldcover.campaign.plan",),
    ("worldcover.mosaic",),
    ("worldcover.validation",),
    ("worldcover.campaign",),
    ("worldcover.engines",),
    ("worldcover.cli",),
    # on top: the demo, plotting helpers and the public API (`import worldcover as wc`)
    ("worldcover.plotting", "worldcover.demo"),
    ("worldcover",),
]

#: Known arrows that point the wrong way, in files other engineers were changing when this test was
#: written (issue 17); each is to be removed here when its import is fixed. The test fails on any
#: arrow not listed, and on a listed one that no longer exists (so the list only shrinks).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()

#: The names any module may import from the package root: its version (the root imports nothing at run time).
ROOT_NAMES = {"__version__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node of ``tree`` except what is under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if _is_type_checking(node):
            assert isinstance(node, ast.If)
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def _imported(module: str, is_package: bool, tree: ast.AST, known: set[str]) -> Iterable[str]:
    """The worldcover modules ``tree`` imports (a ``from pkg import name`` of a submodule counts as it)."""
    for node in _nodes(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            names = [a.name for a in node.names if not (target == "worldcover" and a.name in ROOT_NAMES)]
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
            yield from subs
            if target in known and len(subs) < len(names):  # names defined in the module itself
                yield target


def import_graph() -> dict[str, set[str]]:
    """{module: the worldcover modules it imports}, for every module of the package."""
    files = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = set(_imported(name, path.name == "__init__.py", tree, set(files))) - {name}
    return graph


def unit_of(module: str) -> str:
    """The unit of LAYERS that ``module`` belongs to (its longest listed prefix)."""
    units = [u for layer in LAYERS for u in layer if module == u or module.startswith(u + ".")]
    if not units:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return max(units, key=len)


def rank(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def upward_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports from a unit into one at the same or a higher layer (a different unit)."""
    bad = set()
    for src, targets in graph.items():
        for dst in targets:
            us, ud = unit_of(src), unit_of(dst)
            if us != ud and rank(ud) >= rank(us) and us != "worldcover":
                bad.add((src, dst))
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_known(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {s: {d for d in ds if (s, d) not in KNOWN_VIOLATIONS} for s, ds in graph.items()}


def test_every_module_has_a_layer():
    graph = import_graph()
    assert len(graph) > 50, f"only {len(graph)} modules found under {PACKAGE}"
    for module in graph:
        unit_of(module)


def test_arrows_point_down_the_data_flow():
    graph = import_graph()
    new = sorted(upward_edges(graph) - KNOWN_VIOLATIONS)
    listing = "\n".join(f"  {s} -> {d}" for s, d in new)
    assert not new, f"imports against the data flow (fix them; see LAYERS):\n{listing}"
    gone = sorted(e for e in KNOWN_VIOLATIONS if e[1] not in graph.get(e[0], set()))
    assert not gone, f"fixed, remove from KNOWN_VIOLATIONS: {gone}"


def test_no_import_cycle_between_modules():
    found = cycles(_without_known(import_graph()))
    assert not found, "import cycles:\n" + "\n".join("  " + " <-> ".join(c) for c in found)


def test_no_import_cycle_between_packages():
    units: dict[str, set[str]] = defaultdict(set)
    for src, targets in _without_known(import_graph()).items():
        units[unit_of(src)] |= {unit_of(d) for d in targets if unit_of(d) != unit_of(src)}
    found = cycles(units)
    assert not found, "cycles between packages:\n" + "\n".join("  " + " <-> ".join(c) for c in found)


def test_the_checker_sees_a_planted_violation(tmp_path):
    """The checks are not vacuous: an upward import and a cycle planted in a copy of the graph are reported."""
    graph = import_graph()
    graph["worldcover.grid"] = graph["worldcover.grid"] | {"worldcover.tile.run"}
    assert ("worldcover.grid", "worldcover.tile.run") in upward_edges(graph)
    graph["worldcover.errors"] = {"worldcover.legend"}
    graph["worldcover.legend"] = {"worldcover.errors"}
    assert ["worldcover.errors", "worldcover.legend"] in cycles(graph)


if __name__ == "__main__":
    g = import_graph()
    for s, d in sorted(upward_edges(g)):
        print(f"upward: {s} -> {d}{'  (known)' if (s, d) in KNOWN_VIOLATIONS else ''}")
    for c in cycles(g):
        print("cycle: " + " <-> ".join(c))
    print(f"{len(g)} modules, {sum(len(v) for v in g.values())} imports between them, {len(LAYERS)} layers: "
          f"{len(upward_edges(g))} upward, {len(cycles(g))} cycles")
