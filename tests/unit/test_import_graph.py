"""The architecture as a rule the tree must keep: read every module's imports (ast only, nothing
is imported) and fail on an import that crosses a layer the wrong way or closes a cycle.

- replica/ runs inside Ray workers: it imports nothing from the server's api/, store/,
  task_queue/, serving/ or its wiring (composition, cli), so a replica never loads server code;
- composition.py is the one place that builds the server: only the cli imports it, so no service
  reaches for the wiring instead of being handed its collaborators;
- task_queue/ imports nothing from store/: its loops are typed against the domain's ports
  (domain/task_queue_ports), so the queue's logic does not depend on how rows are stored;
- wire/ is what the server and its replicas share: it imports only domain/ and other wire/
  modules;
- domain/ imports no gRPC, protobuf stubs, Ray, SQLAlchemy/sqlmodel or boto3, and no adapter
  (store/, storage/, serving/, task_queue/, replica/, wire/, api/);
- domain/ hands no asyncio futures across its ports (no `asyncio.Future` in a domain module);
- no import cycles anywhere in launch_server/ or the SDK's launch/ (imports under TYPE_CHECKING and
  imports inside functions count: a cycle hidden in a function is still a cycle)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"launch_server": ROOT / "launch_server", "launch": ROOT / "launch_client" / "launch"}
SKIPPED = ("launch.v1", "launch_server.store.migrations")  # generated stubs, Alembic scripts


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if not name.startswith(SKIPPED):
                found[name] = path
    return found


MODULES = _modules()


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module name `name` imports, resolved to absolute dotted names."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module
            for alias in node.names:  # `from pkg import module` imports the module
                yield f"{module}.{alias.name}"


IMPORTS = {name: set(_imported(name, path)) for name, path in MODULES.items()}


def _internal(name: str) -> set[str]:
    return {target for target in IMPORTS[name] if target in MODULES and target != name}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name in MODULES
        if _in(name, package)
        for target in IMPORTS[name]
        if any(_in(target, bad) for bad in forbidden)
    )


SERVER_ONLY = tuple(f"launch_server.{part}" for part in ("api", "store", "task_queue", "serving", "cli", "composition"))


def test_replica_imports_no_server_code() -> None:
    assert _violations("launch_server.replica", SERVER_ONLY) == []


def test_only_the_cli_imports_the_composition_root() -> None:
    importers = sorted(name for name in MODULES if "launch_server.composition" in _internal(name))
    assert importers == ["launch_server.cli"]


def test_task_queue_imports_no_store() -> None:
    assert _violations("launch_server.task_queue", ("launch_server.store",)) == []


def test_wire_imports_only_domain_and_wire() -> None:
    assert _violations("launch_server.wire", (*SERVER_ONLY, "launch_server.replica", "launch_server.storage")) == []


DOMAIN_FORBIDDEN = (
    "grpc",
    "grpc_status",
    "google.protobuf",
    "launch.v1",
    "ray",
    "sqlalchemy",
    "sqlmodel",
    "boto3",
    "botocore",
    *SERVER_ONLY,
    "launch_server.storage",
    "launch_server.replica",
    "launch_server.wire",
)


def test_domain_imports_no_framework_or_adapter() -> None:
    assert _violations("launch_server.domain", DOMAIN_FORBIDDEN) == []


def test_domain_hands_no_asyncio_futures() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if _in(name, "launch_server.domain")
        and ("asyncio.Future" in path.read_text() or "create_future" in path.read_text())
    ]
    assert offenders == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(_internal(node)):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import launch_server.api.auth\n", {"launch_server.api.auth"}),
        ("from . import auth\n", {"launch_server.api", "launch_server.api.auth"}),
        ("from ..store import db\n", {"launch_server.store", "launch_server.store.db"}),
    ],
)
def test_reader_resolves_relative_imports(tmp_path: Path, source: str, expected: set[str]) -> None:
    """The reader itself: relative imports resolve as Python resolves them, so a rule cannot pass
    because an import was misread."""
    path = tmp_path / "tasks.py"
    path.write_text(source)
    assert set(_imported("launch_server.api.tasks", path)) >= expected


def test_reader_sees_a_planted_violation(tmp_path: Path) -> None:
    """A replica module importing the API layer is found (the rule can fail)."""
    path = tmp_path / "listener.py"
    path.write_text("from launch_server.api.auth import owner\n")
    imported = set(_imported("launch_server.replica.listener", path))
    assert any(_in(target, "launch_server.api") for target in imported)
