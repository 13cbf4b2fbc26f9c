"""The package's import graph (issue #22): no cycles, and every import runs down the layer order.

Read from the source with ``ast`` (every ``import`` statement, also those inside functions: a deferred
import is still a dependency). Layers, lowest first; a module may import its own layer and the ones
below, never one above (``../shared/DESIGN.md``, "Layout and layers", of which this is the precise form):

  0  the package root (version only), errors, terminal
  1  pure parts: distributed, metrics, optim, config, locking, run_dir, backbones,
     masking (patch masks for masked-image methods), rng_streams (per-rank random streams)
  2  losses (pure functions of tensors)
  3  data (sources, recipes, pipelines, labelled subsets, the DataModule)
  4  callbacks, checkpointing, stopping, fitting (the one classifier-fitting loop, on features or images)
  5  methods (BaseMethod and one file per method)
  6  build (config -> data module, method, trainer, loggers; every derived value)
  7  pretrain, eval (evaluation protocols behind one interface and registry: knn, linear, finetune, scan)
  8  sweep
  9  cli
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ssl_bench

PACKAGE = Path(ssl_bench.__file__).parent
LAYERS: dict[str, int] = {
    "ssl_bench": 0, "errors": 0, "terminal": 0,
    "distributed": 1, "metrics": 1, "optim": 1, "config": 1, "locking": 1, "run_dir": 1, "backbones": 1,
    "masking": 1, "rng_streams": 1,
    "losses": 2,
    "data": 3,
    "callbacks": 4, "checkpointing": 4, "stopping": 4, "fitting": 4,
    "methods": 5,
    "build": 6,
    "pretrain": 7, "eval": 7,
    "sweep": 8,
    "cli": 9,
}


def module_names() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("ssl_bench", *path.relative_to(PACKAGE).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = module_names()


def imports_of(name: str) -> set[str]:
    """The ssl_bench modules ``name`` imports (a name imported from a package counts as its module
    when it is one, else as the package)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in MODULES and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def layer(name: str) -> int:
    key = "ssl_bench" if name == "ssl_bench" else name.split(".")[1]
    if key not in LAYERS:
        raise AssertionError(f"{name}: not in LAYERS; place the new module in the layer order above")
    return LAYERS[key]


def test_every_module_has_a_layer():
    for name in MODULES:
        layer(name)


def test_no_import_runs_up_the_layers():
    upward = sorted(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
                    for m, deps in GRAPH.items() for d in deps if layer(d) > layer(m))
    assert not upward, "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (depth-first search), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("graph, has_cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ({"a": {"a2"}, "a2": set(), "b": {"a", "a2"}}, False),
])
def test_the_cycle_finder_finds_cycles(graph, has_cycle):
    assert (find_cycle(graph) is not None) == has_cycle


def test_the_graph_sees_deferred_and_relative_imports():
    """Imports inside functions count (sweep cells import pretrain lazily), relative ones resolve."""
    assert "ssl_bench.pretrain" in GRAPH["ssl_bench.sweep.cell"]
    assert "ssl_bench.errors" in GRAPH["ssl_bench.config"]
    assert "ssl_bench.fitting" in GRAPH["ssl_bench.methods.paws"]


def test_methods_and_callbacks_do_not_reach_into_the_data_module():
    """A method declares what it needs from the data (``BaseMethod.attach_data``, ``needs_sample_indices``)
    and is handed it by the build layer; nothing under methods/ or callbacks/ reads ``.datamodule``."""
    reaching = sorted(f"{name}:{node.lineno}" for name, path in MODULES.items()
                      if name.startswith(("ssl_bench.methods", "ssl_bench.callbacks"))
                      for node in ast.walk(ast.parse(path.read_text()))
                      if (isinstance(node, ast.Attribute) and node.attr == "datamodule")
                      or (isinstance(node, ast.Constant) and node.value == "datamodule"))
    assert not reaching, reaching
