"""The package's shape: no import cycle inside `cartoonize/`, and each module imports only from its own
layer or the layers below it. Imports are read from the source (ast), including those made inside
functions, which is where the CLI keeps its heavy imports and where cycles used to hide."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cartoonize"

# Top to bottom. A module may import from its own layer or any layer below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("cli", ("cartoonize.launch", "cartoonize.cli", "cartoonize.progress", "cartoonize.__main__")),
    ("measure", ("cartoonize.measure",)),
    ("pipelines", ("cartoonize.pipelines",)),
    ("stages", ("cartoonize.stages",)),
    # which runner serves a request: a parity-checked export, a stored engine, or a backend
    ("choose", ("cartoonize.choose",)),
    ("parity", ("cartoonize.parity",)),
    ("runners", ("cartoonize.runners",)),
    ("engines", ("cartoonize.engines",)),
    # imported: third-party ONNX models wrapped into the frame contract, beside the export of our
    # own (it uses export's tensor names and photo, styles' cache; runners and the choice use it)
    ("export/styles", ("cartoonize.export", "cartoonize.styles", "cartoonize.imported")),
    ("model/media", ("cartoonize.model", "cartoonize.architecture", "cartoonize.media")),
    ("errors", ("cartoonize.errors", "cartoonize")),
]

# (importer, imported) pairs allowed against the order above, each with its reason. None today.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every cartoonize module `path` imports, anywhere in the file (`from a import b` counts as
    `a.b` where that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    if path.is_relative_to(PACKAGE):
        found.discard(module_name(path))
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, set(mods)) for name, path in mods.items()}


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (prefix length, layer index): the longest prefix wins
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return best[1]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> b -> ... -> a, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_layering() -> None:
    wrong = []
    for importer, imported in sorted(graph().items()):
        for target in sorted(imported):
            if layer_of(target) < layer_of(importer) and (importer, target) not in EXCEPTIONS:
                wrong.append(
                    f"{importer} ({LAYERS[layer_of(importer)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not wrong, "imports that go up the layers:\n" + "\n".join(wrong)


def test_every_exception_is_still_needed() -> None:
    edges = graph()
    stale = [pair for pair in EXCEPTIONS if pair[1] not in edges.get(pair[0], set())]
    assert not stale, f"exceptions no longer used: {stale}"


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"x": {"y"}, "y": {"y2"}, "y2": {"y"}}, ["y", "y2", "y"]),
    ],
)
def test_cycle_finder(edges: dict[str, set[str]], expected: list[str] | None) -> None:
    assert find_cycle(edges) == expected


def test_imports_inside_functions_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from cartoonize.runners import torch\n    import cartoonize.model\n")
    known = {"cartoonize.runners", "cartoonize.runners.torch", "cartoonize.model"}
    assert imports_of(source, known) == known


def test_an_upward_import_is_caught() -> None:
    # the old cycle: the engine store importing DEFAULT_STYLE from the runner choice
    assert layer_of("cartoonize.choose") < layer_of("cartoonize.engines.store")
    assert layer_of("cartoonize.parity") < layer_of("cartoonize.export")
    assert layer_of("cartoonize.pipelines.build") < layer_of("cartoonize.engines.aoti")
