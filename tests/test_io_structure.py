"""The persistence code has one home: no import circle anywhere in mm_adapters (function-level imports count), no
private names imported across packages, one HEAD_FILE, one load_for_inference, one label mapper."""

import ast
from pathlib import Path

import mm_adapters as mma

PACKAGE = Path(mma.__file__).parent
MODULES = {
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): path
    for path in PACKAGE.rglob("*.py")
}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:`` (imports for annotations only: never run)."""
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    return {id(node) for block in guarded for stmt in block.body for node in ast.walk(stmt)}


def _imports(module: str):
    """(imported module, imported name or None) for every import in ``module`` that runs, at any nesting."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                yield target, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for target, name in _imports(module):
            submodule = f"{target}.{name}"
            found = submodule if submodule in MODULES else target
            if found in MODULES and found != module:
                edges[module].add(found)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_in_the_package():
    assert _cycles(_graph()) == []


def test_the_walk_finds_a_circle_hidden_in_a_function():
    edges = {"a": {"b"}, "b": set(), "c": set()}
    assert _cycles(edges) == []
    edges["b"].add("a")  # what `def f(): from . import a` inside b adds
    assert _cycles(edges) == [["a", "b"]]


def _package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def test_no_private_name_is_imported_from_another_package():
    offending = [
        f"{module} imports {name} from {target}"
        for module in MODULES
        for target, name in _imports(module)
        if target in MODULES and name and name.startswith("_") and _package(target) != _package(module)
    ]
    assert offending == []


def test_persistence_layers_import_only_downwards():
    lower = ["mm_adapters.io", "mm_adapters.serialization"]
    higher = ("mm_adapters.interop", "mm_adapters.composition", "mm_adapters.lightning", "mm_adapters.runner")
    for module in MODULES:
        if any(module == m or module.startswith(m + ".") for m in lower):
            for target, _ in _imports(module):
                assert not target.startswith(higher), f"{module} imports {target}"
    io_imports = {t for m in MODULES if m.startswith("mm_adapters.io") for t, _ in _imports(m)}
    assert not any(t.startswith(("mm_adapters.serialization", "mm_adapters.injection")) for t in io_imports)


def _assignments_and_functions(name: str) -> list[str]:
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            defined = (
                [t.id for t in node.targets if isinstance(t, ast.Name)]
                if isinstance(node, ast.Assign)
                else [node.name]
                if isinstance(node, ast.FunctionDef)
                else []
            )
            if name in defined:
                found.append(module)
    return found


def test_one_head_file_one_load_for_inference_one_label_mapper():
    assert _assignments_and_functions("HEAD_FILE") == ["mm_adapters.io.files"]
    assert _assignments_and_functions("load_for_inference") == ["mm_adapters.lightning.serving"]
    assert _assignments_and_functions("labels_of") == ["mm_adapters.lightning.export"]
    assert _assignments_and_functions("_labels_of") == []
