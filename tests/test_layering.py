"""The package's shape: the front door (the API, the MCP server) above flows above tasks above
ragreel, and no import cycle anywhere.

Imports inside functions count too: a lazy import only hides a cycle until the first call.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("ragreel", "tasks", "flows", "front")  # each may import only from itself and the layers before it
# The HTTP API and the MCP server live in the package but run the flows: they are the top layer.
FRONT = ("ragreel.api", "ragreel.mcp")


def layer_of(module: str) -> str:
    if any(module == front or module.startswith(front + ".") for front in FRONT):
        return "front"
    return module.split(".")[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for layer in LAYERS for p in (REPO / layer).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_layers_import_only_downwards():
    graph = import_graph()
    for module, imported in graph.items():
        allowed = LAYERS[: LAYERS.index(layer_of(module)) + 1]
        wrong = {i for i in imported if layer_of(i) not in allowed}
        assert not wrong, f"{module} imports {wrong} from a layer above it"
    assert layer_of("ragreel.api.app") == "front" and layer_of("ragreel.apis") == "ragreel"
    assert {"flows.generate", "tasks.batch"} <= graph["ragreel.api.app"], (
        "the API is checked as the top layer"
    )


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                raise AssertionError("import cycle: " + " -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
