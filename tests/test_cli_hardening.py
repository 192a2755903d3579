"""The operator's CLI and server start on stores that cannot be used (#16, item 8).

Every admin command on such a store is one line on stderr and exit status 1, never a traceback;
a database holding someone else's tables is refused, untouched; serve's numbers are usage errors
(exit 2) outside their ranges; /readyz says when the store cannot be written; SQLite files are
private (0600), and a start on exposed ones warns.

Most commands run in this process through click's runner (each spawned CLI costs a second of
imports); the ones that need fewer privileges than root's run as real processes.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from helpers import (
    CONNTEL,
    PG_ADMIN_URL,
    Server,
    cli,
    create_pg_database,
    cut_pg_connections,
    drop_pg_database,
    free_port,
    store_args,
)

from conntel.cli import main

# Every admin command, as run against a store (`--db` / `--database-url` appended).
ADMIN_COMMANDS = [
    ("accounts", "create", "--id", "acme"),
    ("tokens", "create", "--account", "acme", "--permission", "Magic WAN Read"),
    ("users", "create", "--email", "ops@example.com", "--account", "acme"),
    ("connectors", "create", "--account", "acme"),
    ("tokens", "revoke", "abc"),
]


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"uncaught {result.exception!r}"
    )
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _drop_file_privileges() -> None:
    """In the child: root without the capabilities that ignore file modes, so a 0444 file is read-only."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unprivileged() -> Callable[[], None] | None:
    """A preexec_fn under which file modes bind (root ignores them), or None when they already do."""
    if os.geteuid() != 0:
        return None
    probe = subprocess.run(["true"], preexec_fn=_drop_file_privileges, capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("cannot drop root's file capabilities here")
    return _drop_file_privileges


def run_unprivileged(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CONNTEL, *args], capture_output=True, text=True, timeout=60, preexec_fn=unprivileged(), check=False
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- unusable SQLite stores --


def foreign_sqlite(path: Path, rails_like: bool = False) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    if rails_like:  # a schema_migrations table that is not conntel's
        conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    return path


def test_every_command_on_an_unusable_sqlite_store_is_one_line(tmp_path: Path):
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "text.db").write_bytes(b"this is not a database\n" * 100)
    stores = {
        "not an SQLite file": (["--db", str(tmp_path / "text.db")], "file is not a database"),
        "a directory": (["--database-url", f"sqlite:///{tmp_path / 'folder.db'}"], "Cannot open"),
        "a missing folder": (["--db", str(tmp_path / "no" / "such" / "x.db")], "No such file or directory"),
        "in memory": (["--db", ":memory:"], "in-memory"),
        "someone else's": (["--db", str(foreign_sqlite(tmp_path / "shop.db"))], "not conntel's (invoices)"),
        "someone else's migrations": (
            ["--db", str(foreign_sqlite(tmp_path / "rails.db", rails_like=True))],
            "not conntel's (invoices, schema_migrations)",
        ),
    }
    before = {name: (tmp_path / name).read_bytes() for name in ("text.db", "shop.db", "rails.db")}
    for case, (store, message) in stores.items():
        for command in ADMIN_COMMANDS:
            assert_one_line_error(invoke(*command, *store, "--json"), message)
        # The server refuses to start on it the same way, before listening.
        assert_one_line_error(invoke("serve", *store, "--port", str(free_port())), message), case
        if store[0] == "--db":  # the demo replaces only a conntel store (or nothing)
            assert_one_line_error(invoke("demo", *store, "--port", str(free_port())))
    # Nothing was added to files that belong to something else.
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not (tmp_path / "no").exists()


def test_a_locked_sqlite_store_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    db = tmp_path / "x.db"
    cli("accounts", "create", "--id", "acme", db=db)
    monkeypatch.setattr("conntel.store.sqlite._BUSY_TIMEOUT_MS", 200)  # the wait, not the behaviour
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        for command in ADMIN_COMMANDS[:4]:
            assert_one_line_error(invoke(*command, "--db", str(db)), "cannot be used", "locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert invoke("accounts", "create", "--id", "free", "--db", str(db)).exit_code == 0


def test_read_only_sqlite_file_and_folder_are_one_line(tmp_path: Path):
    db = tmp_path / "x.db"
    cli("accounts", "create", "--id", "acme", db=db)
    db.chmod(0o400)
    try:
        for command in (ADMIN_COMMANDS[0], ADMIN_COMMANDS[3]):
            done = run_unprivileged(*command, "--db", str(db))
            assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
            assert done.stderr.splitlines() == [
                f"Error: The database {db} cannot be used: attempt to write a readonly database"
            ]
    finally:
        db.chmod(0o600)
    folder = tmp_path / "closed"
    folder.mkdir()
    cli("accounts", "create", "--id", "acme", db=folder / "x.db")  # no -wal left once closed
    folder.chmod(0o500)
    try:
        done = run_unprivileged("accounts", "create", "--db", str(folder / "x.db"))
        assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Cannot open the database" in done.stderr
    finally:
        folder.chmod(0o700)


# -- PostgreSQL --


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def test_postgres_with_foreign_tables_is_refused_untouched(tmp_path: Path):
    url = create_pg_database()
    source = tmp_path / "source.db"
    assert invoke("accounts", "create", "--db", str(source)).exit_code == 0
    try:
        psql(url, "CREATE TABLE invoices (id int PRIMARY KEY); CREATE TABLE schema_migrations (version text)")
        copy = ("store", "copy", "--db", str(source), "--to")  # its destination is held to the same rule
        for command in [*ADMIN_COMMANDS, ("serve", "--port", str(free_port())), copy]:
            result = invoke(*command, url) if command is copy else invoke(*command, "--database-url", url)
            assert_one_line_error(result, "not conntel's (invoices, schema_migrations)")
        tables = subprocess.run(
            ["psql", url, "-Atc", "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
             " WHERE schemaname = 'public'"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert tables == "invoices,schema_migrations"
    finally:
        drop_pg_database(url)


def wait_for(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def readyz(server: Server) -> httpx.Response:
    return httpx.get(server.origin + "/readyz", timeout=5)


def test_postgres_read_only_is_one_line_in_the_cli_and_not_ready_in_the_server(tmp_path: Path):
    url = create_pg_database()
    name = url.rsplit("/", 1)[1]
    server = None
    try:
        cli("accounts", "create", "--id", "acme", db=url)
        server = Server(url, log_dir=tmp_path).start()
        assert readyz(server).status_code == 200
        psql(PG_ADMIN_URL, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        cut_pg_connections(url)  # sessions opened from now on are read-only
        wait_for(lambda: readyz(server).status_code == 503, "readiness never said the store cannot be written")
        error = readyz(server).json()["errors"][0]
        assert error["code"] == 20017 and "cannot be written" in error["message"]
        assert httpx.get(server.origin + "/healthz").status_code == 200
        for command in ADMIN_COMMANDS[1:4]:
            assert_one_line_error(invoke(*command, "--database-url", url), "cannot be used", "read-only")
        psql(PG_ADMIN_URL, f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        cut_pg_connections(url)
        wait_for(lambda: readyz(server).status_code == 200, "readiness did not come back by itself")
        assert "Traceback" not in server.server_log()
    finally:
        if server is not None:
            server.stop()
        drop_pg_database(url)


# -- readiness and file modes on SQLite --


def test_sqlite_read_only_file_is_not_ready(tmp_path: Path):
    db = tmp_path / "x.db"
    cli("accounts", "create", "--id", "acme", db=db)
    db.chmod(0o400)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*CONNTEL, "serve", "--db", str(db), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, preexec_fn=unprivileged(),
        )  # fmt: skip
    try:
        origin = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(origin + "/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                return False

        wait_for(answers, "server did not start", 20)
        response = httpx.get(origin + "/readyz", timeout=15)
        assert response.status_code == 503, response.text
        error = response.json()["errors"][0]
        assert error["code"] == 20017 and "cannot be written" in error["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        db.chmod(0o600)
    assert "Traceback" not in log.read_text()


def test_sqlite_files_are_private_and_exposed_ones_are_warned_about(tmp_path: Path):
    db = tmp_path / "x.db"
    old_umask = os.umask(0o002)  # a permissive umask must not widen them
    try:
        cli("accounts", "create", "--id", "acme", db=db)
        assert mode(db) == 0o600
        server = Server(db, log_dir=tmp_path).start()
        try:
            assert httpx.get(server.origin + "/readyz").status_code == 200  # a read and a write: WAL and index
            wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
            assert wal.exists() and shm.exists()
            assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        finally:
            server.stop()
        assert "warning" not in server.server_log()
    finally:
        os.umask(old_umask)
    db.chmod(0o644)
    done = invoke("connectors", "create", "--account", "acme", "--db", str(db), "--json")
    assert done.exit_code == 0 and done.stdout.startswith("{")
    (line,) = done.stderr.splitlines()
    assert line.startswith("warning: other users can read") and f"{db} (mode 0644)" in line and "chmod 600" in line
    server = Server(db, log_dir=tmp_path).start()
    server.stop()
    assert sum("warning: other users can read" in line for line in server.server_log().splitlines()) == 1


# -- serve's options --

BAD_SERVE_OPTIONS = [
    ("--port", "99999"),
    ("--port", "0"),
    ("--port", "-1"),
    ("--workers", "0"),
    ("--workers", "100000"),
    ("--pool-size", "0"),
    ("--pool-size", "1000000"),
    ("--max-batch-events", "0"),
    ("--max-body-bytes", "0"),
    ("--max-body-bytes", str(1 << 40)),
    ("--max-header-bytes", "100"),
    ("--max-header-bytes", str(1 << 40)),
    ("--header-timeout", "0"),
    ("--header-timeout", "nan"),
    ("--header-timeout", "inf"),
    ("--body-timeout", "-1"),
    ("--body-timeout", "NaN"),
    ("--body-timeout", "1e9"),
    ("--send-timeout", "0"),
    ("--send-timeout", "inf"),
    ("--max-connections", "0"),
    ("--max-connectors-per-account", "0"),
    ("--rate-limit", "0/second"),
    ("--rate-limit", "1/0seconds"),
    ("--rate-limit", "10/second;5/minute"),
    ("--rate-limit", "1/1000000years"),
    ("--rate-limit", "many"),
]


def test_serve_numbers_outside_their_ranges_are_usage_errors(tmp_path: Path):
    db = str(tmp_path / "x.db")
    for flag, value in BAD_SERVE_OPTIONS:
        for command in ("serve", "demo"):
            result = invoke(command, "--db", db, flag, value)
            assert result.exit_code == 2, (command, flag, value, result.output)
            assert f"Invalid value for '{flag}'" in result.stderr, result.stderr
        # The same through the environment fallback.
        setting = flag.removeprefix("--").replace("-", "_").upper()
        result = invoke("serve", "--db", db, env={f"CONNTEL_{setting}": value})
        assert result.exit_code == 2 and "Invalid value" in result.stderr, (setting, value, result.output)
    assert not Path(db).exists()  # refused before anything was opened


# -- names and other operator-supplied text --


def test_names_and_addresses_are_bounded_and_printable(tmp_path: Path):
    db = tmp_path / "x.db"
    cli("accounts", "create", "--id", "acme", db=db)
    read = ("--permission", "Magic WAN Read")
    cases = [
        (("tokens", "create", "--account", "acme", *read, "--name", "x" * 100_000), "at most 255 characters"),
        (("tokens", "create", "--account", "acme", *read, "--name", "ci\u001b[2Jx"), "control characters"),
        (("tokens", "create", "--account", "acme", *read, "--name", "ci\nadmin"), "control characters"),
        (("tokens", "create", "--account", "acme", *read, "--name", "   "), "must not be empty"),
        (("tokens", "create", "--account", "a\udcff", *read), "account id"),
        (("accounts", "create", "--name", "Acme\u202eevil"), "control characters"),
        (("accounts", "create", "--name", "n" * 256), "at most 255 characters"),
        (("users", "create", "--email", "ops\u0007@example.com", "--account", "acme"), "Not an email"),
        (("users", "create", "--email", "ops@example.com", "--account", "x" * 100_000), "account id"),
        (("connectors", "create", "--account", "acme", "--id", "c" * 100_000), "connector id"),
        (("tokens", "revoke", "t" * 100_000), "No token"),
        (("tokens", "create", "--account", "acme", *read, "--expires-on", "9999-12-31T23:59:59-14:00"), "Out of range"),
        (("tokens", "create", "--account", "acme", *read, "--expires-on", "0001-01-01T00:00:00+14:00"), "Out of range"),
    ]
    before = db.read_bytes()
    for args, message in cases:
        line = assert_one_line_error(invoke(*args, *store_args(db), "--json"), message)
        assert len(line) < 300  # a long value is shown cut
    assert db.read_bytes() == before
    at_bound = cli("tokens", "create", "--account", "acme", *read, "--name", "é" * 255, db=db)
    assert at_bound["name"] == "é" * 255
