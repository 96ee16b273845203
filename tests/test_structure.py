"""The package's import graph: every import runs down the floors of ``bnn_keras``'s
docstring, and no module imports itself back through others."""

import ast
from pathlib import Path

import bnn_keras

PACKAGE = Path(bnn_keras.__file__).parent

#: The floors, lowest first: a module may import from its own floor and the ones below.
FLOORS = ("base", "data", "models", "export", "training", "bench", "insight", "cli")

#: The floor of each top-level name under bnn_keras; every other one is ``base``.
FLOOR_OF = {"data": "data", "models": "models", "layers": "models", "quantizers": "models",
            "fusion": "models", "quantize": "models", "export": "export",
            "training": "training", "bench": "bench", "insight": "insight", "cli": "cli",
            "__main__": "cli"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, package: str, modules: set[str]) -> list[str]:
    """The bnn_keras modules an import statement names (a name imported from a package
    counts as its submodule when it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parent = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """Every bnn_keras module -> the bnn_keras modules it imports (anywhere in it, also
    inside functions: an import on first use is still a dependency)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = {target for node in ast.walk(ast.parse(path.read_text()))
                       for target in _imported(node, package, set(paths))
                       if target.split(".")[0] == "bnn_keras" and target != name}
    return graph


def floor(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    return FLOORS.index(FLOOR_OF.get(top, "base"))


def test_imports_run_down_the_floors():
    upward = [f"{m} ({FLOORS[floor(m)]}) imports {t} ({FLOORS[floor(t)]})"
              for m, targets in sorted(import_graph().items()) for t in sorted(targets)
              if floor(t) > floor(m)]
    assert not upward, "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (its modules in order), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target, path + [target])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_no_module_imports_itself_back():
    cycle = _cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_checks_see_an_upward_import_and_a_cycle():
    graph = import_graph()
    assert "bnn_keras.models.registry" in graph["bnn_keras.models.birealnet"]
    assert floor("bnn_keras.cli.train") > floor("bnn_keras.training.run") > floor("bnn_keras.data")
    assert floor("bnn_keras.quantizers") == floor("bnn_keras.models") > floor("bnn_keras.files")
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_docstring_names_the_floors():
    assert " -> ".join(FLOORS[1:]) in bnn_keras.__doc__
