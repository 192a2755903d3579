"""The layout's one hard rule: a client knows the server only through the wire.

conntel.client (the HTTP client, the reading CLI, the fleet simulator) may
use the shared domain vocabulary (kinds, ids) but never the server's insides:
conntel.store, conntel.api, the server runtime or the admin operations. Read
from the source's imports, so an import inside a function is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import conntel

PACKAGE = Path(conntel.__file__).parent
SERVER_SIDE = ("conntel.store", "conntel.api", "conntel.server", "conntel.admin")


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a file of `package` imports, relative imports resolved."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def is_server_side(module: str) -> bool:
    return any(module == side or module.startswith(side + ".") for side in SERVER_SIDE)


def test_client_never_imports_the_server_side() -> None:
    files = sorted((PACKAGE / "client").rglob("*.py"))
    assert len(files) >= 4, "conntel.client lost its modules"
    leaks = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in files
        for module in sorted(imported_modules(path.read_text(), "conntel.client"))
        if is_server_side(module)
    ]
    assert not leaks, "conntel.client must reach the server only over HTTP:\n" + "\n".join(leaks)


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import conntel.api.app\nfrom ..store import base\nfrom conntel import admin\n"
        "def f():\n    from conntel.server.run import run\n"
    )
    leaked = {module for module in imported_modules(source, "conntel.client") if is_server_side(module)}
    assert {"conntel.api.app", "conntel.store", "conntel.admin", "conntel.server.run"} <= leaked
    assert not is_server_side("conntel.storefront") and not is_server_side("conntel.client.http")


def test_the_readme_tree_lists_every_module() -> None:
    """README's "How it is built" names each module once, and only modules that exist."""
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    tree = readme.split("## How it is built", 1)[1].split("```", 2)[1]
    listed: set[str] = set()
    folders: list[str] = []
    for line in tree.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or line.startswith(("tests/", "bench/", "src/")):
            continue
        name = stripped.split()[0]
        depth = (len(line) - len(line.lstrip())) // 2 - 1
        del folders[depth:]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        elif name.endswith(".py"):
            listed.add("/".join([*folders, name]))
    on_disk = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "migrations" not in path.parts
    }
    assert sorted(on_disk - listed) == [], "modules missing from README's tree"
    assert sorted(listed - on_disk) == [], "README's tree lists modules that do not exist"
