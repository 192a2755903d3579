"""The operator CLI: --json output for scripts, readable output, and clear errors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from helpers import CONNTEL, cli


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CONNTEL, *args], capture_output=True, text=True, timeout=60)


def run_json(*args: str, db: Path) -> dict:
    """The installed command end to end, in its own process (helpers.cli runs the same CLI in-process)."""
    done = run(*args, "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_admin_commands_print_one_json_object(tmp_path: Path):
    db = tmp_path / "x.db"
    account = run_json("accounts", "create", "--id", "acme", "--name", "Acme", db=db)
    assert account == {"id": "acme", "name": "Acme"}
    connector = run_json("connectors", "create", "--account", "acme", db=db)
    assert re.fullmatch(r"[0-9a-f]{32}", connector["id"])
    token = run_json(
        "tokens",
        "create",
        "--account",
        "acme",
        "--permission",
        "Magic WAN Read",
        "--permission",
        "Magic WAN Write",
        "--name",
        "ci",
        "--expires-on",
        "2099-01-01T00:00:00+00:00",
        db=db,
    )
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", token["value"])
    assert token["permissions"] == ["Magic WAN Read", "Magic WAN Write"]
    assert token["expires_on"] == "2099-01-01T00:00:00Z"
    user = run_json("users", "create", "--email", "Ops@Example.com", "--account", "acme", db=db)
    assert user["email"] == "ops@example.com"
    assert re.fullmatch(r"[0-9a-f]{37}", user["api_key"])
    assert run_json("tokens", "revoke", token["id"], db=db) == {"id": token["id"], "revoked": True}
    secrets = (token["value"], user["api_key"])
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("x.db*"))
    assert stored and not any(secret.encode() in stored for secret in secrets)


def test_readable_output(tmp_path: Path):
    done = run("accounts", "create", "--id", "acme", "--db", str(tmp_path / "x.db"))
    assert done.returncode == 0
    assert "Created account" in done.stdout and "id: acme" in done.stdout


def test_errors_are_clear_and_nonzero(tmp_path: Path):
    db = str(tmp_path / "x.db")
    assert run("accounts", "create", "--id", "acme", "--db", db).returncode == 0
    cases = {
        ("accounts", "create", "--id", "acme"): "already exists",
        ("accounts", "create", "--id", "bad id!"): "account id",
        ("connectors", "create", "--account", "missing"): "No account missing",
        ("tokens", "create", "--account", "missing", "--permission", "Magic WAN Read"): "No account missing",
        ("tokens", "create", "--account", "acme", "--permission", "Admin"): "Invalid value",
        ("tokens", "create", "--account", "acme", "--permission", "Magic WAN Read", "--expires-on", "soon"): "ISO 8601",
        ("tokens", "revoke", "nope"): "No token nope",
        ("users", "create", "--email", "not-an-email", "--account", "acme"): "Not an email",
    }
    for args, message in cases.items():
        done = run(*args, "--db", db, "--json")
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)
        assert done.stdout == "", args
        assert "Traceback" not in done.stderr


def test_duplicate_user_is_refused(tmp_path: Path):
    db = tmp_path / "x.db"
    cli("accounts", "create", "--id", "acme", db=db)
    cli("users", "create", "--email", "a@example.com", "--account", "acme", db=db)
    again = cli("users", "create", "--email", "A@example.com", "--account", "acme", db=db, check=False)
    assert again["returncode"] == 1 and "already exists" in again["stderr"]


def test_database_url_and_environment(tmp_path: Path):
    db = tmp_path / "env.db"
    done = subprocess.run(
        [*CONNTEL, "accounts", "create", "--id", "viaenv", "--json"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "CONNTEL_DATABASE_URL": f"sqlite:///{db}"},
    )
    assert json.loads(done.stdout) == {"id": "viaenv", "name": "viaenv"}
    assert db.exists()
    for url in (
        "postgresql://conntel:secret@127.0.0.1:1/x",
        "mysql://localhost/x",
        "postgresql://conntel:se/cret@127.0.0.1:1/x",
        "postgresql://conntel:secret@h:notaport/db",
    ):
        done = run("accounts", "create", "--database-url", url, "--json")
        assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr
        assert "Cannot open the database" in done.stderr or "Unsupported database URL" in done.stderr
        assert "secret" not in done.stderr and "cret" not in done.stderr  # the password is never shown
    done = run("accounts", "create", "--db", str(tmp_path / "no" / "such" / "dir.db"))
    assert done.returncode == 1 and "Cannot open the database" in done.stderr


def test_the_command_line_starts_without_its_heavy_modules():
    """rich, httpx, the server, the store adapters and asyncio are imported by the commands that use them."""
    heavy = ("rich", "httpx", "granian", "starlette", "asyncpg", "asyncio", "msgspec", "sqlite3")
    heavy += ("conntel.store", "conntel.api", "conntel.server", "conntel.admin", "conntel.client.http")
    probe = "import sys, conntel.cli; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([*CONNTEL[:1], "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    loaded = [m for m in done.stdout.split() if any(m == h or m.startswith(h + ".") for h in heavy)]
    assert loaded == [], loaded
