"""The package's layers: imports run one way, down, and never in a circle.

Read from the source (every ``import``, at module level or inside a function; those under
``if TYPE_CHECKING:`` are annotations, not dependencies), so a new upward import or circle fails
here before anyone has to find it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sphinx"

# Bottom to top; a module may import its own layer or any below it. The README's "Architecture"
# section says the same in words.
LAYERS = (
    ("sphinx", "sphinx.errors", "sphinx.utils", "sphinx.ext"),  # the package, its errors, utilities
    ("sphinx.generators", "sphinx.metrics", "sphinx.degradations", "sphinx.data"),  # core leaves
    ("sphinx.inversion", "sphinx.training"),  # the one loop; the prior's training
    ("sphinx.editing",),  # edits of inversions
    ("sphinx.rundir",),  # what a run dir holds, written and read
    ("sphinx.report",),  # tables and plots over run dirs
    ("sphinx.lit",),  # Lightning classes
    ("sphinx.configs", "sphinx.build", "sphinx.entry"),  # Hydra: configs become a job
    ("sphinx.run", "sphinx.edit", "sphinx.train"),  # entry points
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or prefix != "sphinx" and module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer; add it to LAYERS (and to the README's architecture)"
    return max(matches)[1]


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(module: str) -> set[str]:
    """The sphinx modules ``module`` imports (a package's submodule where one is named)."""
    tree = ast.parse(MODULES[module].read_text())
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    found = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "sphinx"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sphinx":
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            }
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        layer_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    upward = sorted(name for name in GRAPH[module] if layer_of(name) > layer_of(module))
    assert not upward, f"{module} (layer {layer_of(module)}) imports {upward} from above"


def test_there_is_no_import_circle():
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for name in GRAPH[module]:
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in on_stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            component = []
            while True:
                name = stack.pop()
                on_stack.discard(name)
                component.append(name)
                if name == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_the_checks_see_a_circle_and_an_upward_import():
    """The control: the same reading flags what it exists to flag."""
    assert "sphinx.inversion.loop" in GRAPH["sphinx.editing.attribute"]  # it reads real imports
    assert layer_of("sphinx.lit.module") > layer_of("sphinx.inversion.loop")
    assert layer_of("sphinx.run") > layer_of("sphinx.lit")
