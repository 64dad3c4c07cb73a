"""The import graph of corpus/, pretrain/ and eval/ (every import statement, those inside functions
included): no cycle among project modules, no project module imported inside a function outside
the CLI package, and no argparse outside it (the libraries never hold command-line code)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("corpus", "pretrain", "eval")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(imported project module, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in child.names]
            for t in targets:
                found.append((t, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def _graph():
    modules = _modules()
    graph, inner, argparse_users = {}, [], []
    for name, path in modules.items():
        edges = set()
        for target, in_function in _imports(name, path, modules):
            if target == "argparse" or target.startswith("argparse."):
                argparse_users.append(name)
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if not target or target == name:
                continue
            edges.add(target)
            if in_function and not name.startswith("corpus.cli"):
                inner.append(f"{name} -> {target}")
        graph[name] = edges
    return graph, inner, argparse_users


def test_no_import_cycles():
    graph, _, _ = _graph()
    state: dict[str, int] = {}
    cycles = []

    def dfs(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                dfs(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            dfs(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
    assert "corpus.runner" in graph and "corpus.gate" in graph["corpus.runner"]  # the graph is the real one


def test_no_project_imports_inside_functions_outside_the_cli():
    _, inner, _ = _graph()
    assert not inner, "project modules imported inside functions:\n" + "\n".join(inner)


def test_argparse_only_in_the_cli():
    graph, _, users = _graph()
    assert not [u for u in users if not u.startswith("corpus.cli")], users
    assert "corpus.cli.common" in users  # the check sees the CLI's own use
    libraries = {name: edges for name, edges in graph.items() if not name.startswith("corpus.cli") and name != "corpus.__main__"}
    assert not [n for n, edges in libraries.items() if any(t.startswith("corpus.cli") for t in edges)]
