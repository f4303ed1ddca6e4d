"""The import structure of the product packages (docs/architecture.md, "the layers and the arrows that never
exist"): no import cycle among the modules of `billing/`, `dunning/`, `webhooks/` and `plans/`, and none of the
forbidden arrows between layers. An import counts wherever it is written: at the top of a file, inside a function,
or under `if TYPE_CHECKING:` (a type-only import is still a dependency a reader follows).

The graph is read from the source with `ast` (no import is executed), and cycles are found with Tarjan's strongly
connected components."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("billing", "dunning", "webhooks", "plans")


def module_files() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Every dotted name an import statement of the file names (anywhere in it), relative imports resolved."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[: len(base) - drop] if drop else base
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix
            for alias in node.names:
                yield f"{prefix}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports (the deepest module each imported name resolves to)."""
    modules = module_files()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, path in modules.items():
        for name in imported_names(path, module):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # "from billing.invoices import hooks" names both billing.invoices and billing.invoices.hooks; the
            # package itself is an arrow only when nothing deeper was named.
            if target and target != module:
                graph[module].add(target)
    for module, targets in graph.items():
        packages = {t for t in targets if modules[t].name == "__init__.py"}
        deeper = {p for p in packages if any(t.startswith(p + ".") for t in targets)}
        graph[module] = targets - deeper
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); only components of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in graph[node]:
                        found.append(sorted(component))
    return found


# The layers of docs/architecture.md, as module-name prefixes (the longest prefix decides).
LAYERS: dict[str, tuple[str, ...]] = {
    "edge": (
        "billing.api",
        "billing.cli",
        "billing.__main__",
        "billing.runtime",
        "billing.worker",
        "billing.tasks",
        "billing.services",
        "billing.wiring",
        "billing.events",
        "billing.webhook_endpoints",
    ),
    "people": (
        "billing.portal",
        "billing.notifications",
        "billing.console",
        "billing.reporting",
        "billing.reconciliation",
    ),
    "dunning": ("dunning",),
    "billing": (
        "billing.invoices",
        "billing.subscriptions",
        "billing.usage",
        "billing.credit_notes",
        "billing.entitlements",
        "billing.invoice_items",
        "billing.wallets",
    ),
    "catalog": (
        "billing.catalog",
        "billing.customers",
        "billing.merchants",
        "billing.settings",
        "billing.test_clocks",
    ),
    "money": (
        "billing.vault",
        "billing.gateways",
        "billing.payments",
        "billing.payment_methods",
        "billing.channels",
        "billing.risk",
    ),
    "outbox": ("webhooks",),
    "infra": ("billing.scheduler",),
    "base": (
        "billing.db",
        "billing.clock",
        "billing.ids",
        "billing.errors",
        "billing.config",
        "billing.metadata",
        "billing.logs",
        "billing.luhn",
        "billing.hooks",
        "billing.events.hooks",
    ),
    "pure": ("plans", "dunning.declines", "dunning.messages", "dunning.policy", "dunning.recovery"),
}

FEATURES = ("people", "dunning", "billing", "catalog", "money")

# from-layer -> layers it must never import ("Never" table of docs/architecture.md and ../shared/ARCHITECTURE.md).
NEVER: dict[str, tuple[str, ...]] = {
    "pure": ("edge", "people", "dunning", "billing", "catalog", "money", "outbox", "infra", "base"),
    "infra": FEATURES,
    "outbox": ("billing", "money", "catalog"),
    "billing": ("dunning", "people"),
    "catalog": ("dunning", "billing"),
    "money": ("dunning", "billing"),
}


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), layer)
    return best[1] if best else None


def forbidden_arrows(source_layer: str) -> list[str]:
    arrows = []
    for module, targets in sorted(import_graph().items()):
        if layer_of(module) != source_layer:
            continue
        for target in sorted(targets):
            target_layer = layer_of(target)
            if target_layer in NEVER[source_layer]:
                arrows.append(f"{module} -> {target} ({source_layer} -> {target_layer})")
    return arrows


def test_the_graph_sees_imports_inside_functions_and_relative_ones() -> None:
    graph = import_graph()
    # billing/api/app.py imports the app's routers at the top; the CLI imports the worker inside a function.
    assert "billing.worker.settings" in graph["billing.cli"]
    assert "billing.db.engine" in graph["billing.services"]


def test_every_product_module_has_a_layer() -> None:
    unplaced = [module for module in import_graph() if layer_of(module) is None and module != "billing"]
    assert unplaced == []


def test_no_import_cycle() -> None:
    cycles = strongly_connected(import_graph())
    assert cycles == [], "\n".join(" <-> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("source_layer", sorted(NEVER))
def test_no_forbidden_arrow(source_layer: str) -> None:
    arrows = forbidden_arrows(source_layer)
    assert arrows == [], "\n".join(arrows)


def test_tarjan_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["e"]]
