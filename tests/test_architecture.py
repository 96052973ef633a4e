"""The package's three layers, checked from its source: imports go one way (book -> methods -> core), at the top
of a module, with no cycle; notebooks define no function or class."""

import ast
import json
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "advdetect"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

CORE = {"errors", "runtime", "data", "synthetic", "models", "ensemble", "attacks", "objectives", "defences",
        "metrics", "evaluation", "blackbox"}
METHODS = {"training", "gat", "arclu", "baselines", "synthesis", "density", "embedding", "bench"}
BOOK = {"cache", "profiles", "paper", "artefacts", "chapters", "suite", "reports", "plotting", "widgets", "book",
        "verdict", "executed"}
LAYER = {**{m: 0 for m in CORE}, **{m: 1 for m in METHODS}, **{m: 2 for m in BOOK}}

#: imports inside functions, allowed only where a heavy optional dependency must stay lazy
LAZY = {("blackbox", "foolbox"), ("blackbox", "eagerpy"), ("blackbox", "pyautoattack"), ("embedding", "umap"),
        ("book", "papermill"), ("book", "papermill.exceptions"), ("book", "nbclient.exceptions")}


def _modules():
    return {p.stem: ast.parse(p.read_text()) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def _internal(node):
    """Package modules an import statement names."""
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        if node.module:
            return {node.module.split(".")[0]}
        return {a.name for a in node.names if not a.name.startswith("__")}   # not the package's __version__
    return set()


def test_every_module_has_a_layer():
    assert set(_modules()) == set(LAYER), set(_modules()) ^ set(LAYER)


def test_imports_go_one_way_and_never_in_a_cycle():
    graph = {}
    for name, tree in _modules().items():
        deps = set().union(*(_internal(n) for n in ast.walk(tree)))
        graph[name] = deps
        for d in deps:
            assert LAYER[d] <= LAYER[name], f"{name} ({LAYER[name]}) imports {d} ({LAYER[d]}): a layer upwards"
    seen, stack = set(), []

    def visit(m):
        assert m not in stack, f"import cycle: {' -> '.join(stack[stack.index(m):] + [m])}"
        if m in seen:
            return
        stack.append(m)
        for d in graph[m]:
            visit(d)
        stack.pop()
        seen.add(m)

    for m in graph:
        visit(m)


def test_imports_sit_at_the_top_except_the_listed_lazy_ones():
    inner = set()
    for name, tree in _modules().items():
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    inner |= {(name, a.name) for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    inner.add((name, ("." if node.level else "") + (node.module or "")))
    assert inner <= LAZY, sorted(inner - LAZY)


def test_only_the_book_layer_knows_the_cache_and_the_profiles():
    for name, tree in _modules().items():
        deps = set().union(*(_internal(n) for n in ast.walk(tree)))
        if LAYER[name] < 2:
            assert not deps & {"cache", "profiles"}, name


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebooks_define_no_function_or_class(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))
                   and not _in_call_argument(tree, n)]
        assert not defined, f"{path.name} defines {[type(n).__name__ for n in defined]} in:\n{source[:300]}"


def _in_call_argument(tree, node):
    """A lambda passed straight to a call (``key=lambda ...``) is an argument, not a definition."""
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if node in call.args or node in [k.value for k in call.keywords]:
            return isinstance(node, ast.Lambda)
    return False
