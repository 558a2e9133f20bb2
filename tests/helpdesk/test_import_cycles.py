"""helpdesk's modules import each other without cycles (issue 12).

events.py and services/webhook_outbox.py used to reach helpdesk/tasks.py (which
imports the services) and back, so 11 modules formed one import cycle. Publishing
after commit now lives in helpdesk/publish.py, which imports none of them and
sends tasks by their registered name. This reads every import statement (top
level and inside functions) of helpdesk/ with `ast` and fails on any cycle.
"""

import ast
from pathlib import Path

import helpdesk

ROOT = Path(helpdesk.__file__).parent
# delivery.py (another area) still imports helpdesk.tasks inside one function;
# delete this entry once it sends through helpdesk.publish.task(...).
KNOWN: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {
        module_name(path): path
        for path in ROOT.rglob("*.py")
        if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_imports_it_must() -> None:
    graph = import_graph()
    assert "helpdesk.services.webhook_outbox" in graph["helpdesk.events"]
    assert "helpdesk.services.inbound" in graph["helpdesk.tasks"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_helpdesk_has_no_import_cycle() -> None:
    assert [c for c in cycles(import_graph()) if c not in KNOWN] == []


def test_publish_imports_no_helpdesk_module() -> None:
    assert import_graph()["helpdesk.publish"] == set()
