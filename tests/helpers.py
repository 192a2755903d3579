"""Test support: a real conntel server on a free port, and the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CONNTEL = [sys.executable, "-m", "conntel"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PG_ADMIN_URL = os.environ.get("CONNTEL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

Store = Path | str  # an SQLite file, or a postgresql:// URL


def store_args(store: Store) -> list[str]:
    """How the CLI names a store: --db PATH or --database-url URL."""
    if isinstance(store, str) and store.startswith("postgresql://"):
        return ["--database-url", store]
    return ["--db", str(store)]


def create_pg_database() -> str:
    """A fresh, empty PostgreSQL database for one test world; its URL."""
    name = f"conntel_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    _pg_admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def cut_pg_connections(url: str) -> None:
    """Terminate every server backend connected to the database of `url` (as a restart or failover would)."""
    _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{url.rsplit('/', 1)[1]}'")


def _pg_admin(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN_URL, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)


def store_dump(store: Store) -> bytes:
    """Everything the store holds, as bytes: the SQLite files, or a pg_dump."""
    if isinstance(store, Path):
        return b"".join(path.read_bytes() for path in store.parent.glob(store.name + "*") if path.is_file())
    return subprocess.run(["pg_dump", "--data-only", store], check=True, capture_output=True).stdout


_CLI_LOCK = threading.Lock()  # click's runner swaps sys.stdout and sys.stderr: one command at a time


def cli(*args: str, db: Store, check: bool = True) -> dict:
    """Run an admin command with --json against the store; return its JSON object.

    The real command line (conntel.cli's click group, its parsing, its store and its
    output) run in this process by click's test runner: the same code path as
    `conntel ... --json` without a Python start per call (about a second each under
    load, and tests make hundreds). tests/test_cli.py runs the installed command as a
    subprocess, end to end.
    """
    from click.testing import CliRunner

    from conntel.cli import main

    with _CLI_LOCK:
        done = CliRunner().invoke(main, [*args, *store_args(db), "--json"], catch_exceptions=False)
    if check and done.exit_code != 0:
        raise AssertionError(f"conntel {' '.join(args)} failed ({done.exit_code}): {done.stderr}")
    return json.loads(done.stdout) if done.exit_code == 0 else {"returncode": done.exit_code, "stderr": done.stderr}


@dataclass
class Server:
    db: Store
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    log: Path | None = None
    # One worker process unless `extra_args` say otherwise: the suite's servers are many, and each test of
    # several processes says so. False: conntel's own default (tests/test_multiprocess.py).
    one_worker: bool = True

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/client/v4"

    log_dir: Path | None = None

    def start(self, attempts: int = 3) -> Server:
        """Start the server and wait until it answers. A free port taken meanwhile (by another pytest
        worker's server, say) is not this test's failure: the server is tried again on another."""
        folder = self.log_dir or (self.db.parent if isinstance(self.db, Path) else Path(tempfile.gettempdir()))
        self.log = folder / f"conntel.{self.port}.log"
        with open(self.log, "ab") as log:
            env = {**os.environ, "CONNTEL_WORKERS": "1"} if self.one_worker else None
            self.proc = subprocess.Popen(
                [*CONNTEL, "serve", *store_args(self.db), "--port", str(self.port), *self.extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = self.log.read_text()
                if "address already in use" in output and attempts > 1:
                    self.port = free_port()
                    return self.start(attempts - 1)
                raise AssertionError(f"server exited early: {output}")
            try:
                httpx.get(self.origin + "/client/v4", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("server did not start in time")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)

    def server_log(self) -> str:
        return self.log.read_text() if self.log else ""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def global_key(email: str, key: str) -> dict[str, str]:
    return {"X-Auth-Email": email, "X-Auth-Key": key}


@dataclass
class World:
    """A running server with two accounts and credentials of every sort."""

    server: Server
    account: str
    connector: str
    other_account: str
    other_connector: str
    read_token: str
    write_token: str
    other_write_token: str
    email: str
    api_key: str
    other_email: str
    other_api_key: str
    token_ids: dict[str, str]

    backend: str = "sqlite"

    @property
    def db(self) -> Store:
        return self.server.db

    def events_url(self, connector: str | None = None, account: str | None = None) -> str:
        return (
            f"{self.server.base_url}/accounts/{account or self.account}"
            f"/magic/connectors/{connector or self.connector}/telemetry/events"
        )

    def new_connector(self, account: str | None = None) -> str:
        return cli("connectors", "create", "--account", account or self.account, db=self.db)["id"]

    def new_token(self, *permissions: str, account: str | None = None, **options: str) -> dict:
        args = ["tokens", "create", "--account", account or self.account]
        for permission in permissions:
            args += ["--permission", permission]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", value]
        return cli(*args, db=self.db)


# A world's server trusts a looked-up credential this long (the default is 1 s): a test of a revocation
# or an expiry waits this long, not a second.
CREDENTIAL_TTL = 0.2


def new_store(tmp: Path, backend: str) -> Store:
    return create_pg_database() if backend == "postgres" else tmp / "conntel.db"


def build_world(tmp: Path, backend: str = "sqlite") -> World:
    db = new_store(tmp, backend)
    account = cli("accounts", "create", "--name", "Main", db=db)["id"]
    other = cli("accounts", "create", "--name", "Other", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    other_connector = cli("connectors", "create", "--account", other, db=db)["id"]
    read = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Read", db=db)
    write = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=db)
    other_write = cli("tokens", "create", "--account", other, "--permission", "Magic WAN Write", db=db)
    user = cli("users", "create", "--email", "ops@example.com", "--account", account, db=db)
    other_user = cli("users", "create", "--email", "other@example.com", "--account", other, db=db)
    server = Server(db, log_dir=tmp, extra_args=("--credential-ttl", str(CREDENTIAL_TTL))).start()
    return World(
        backend=backend,
        server=server,
        account=account,
        connector=connector,
        other_account=other,
        other_connector=other_connector,
        read_token=read["value"],
        write_token=write["value"],
        other_write_token=other_write["value"],
        email=user["email"],
        api_key=user["api_key"],
        other_email=other_user["email"],
        other_api_key=other_user["api_key"],
        token_ids={"read": read["id"], "write": write["id"]},
    )


def wait_for(check: Callable[[], bool], timeout: float = 10, interval: float = 0.05) -> float:
    """Poll `check` until it holds; fail after `timeout` seconds. Returns the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not true within {timeout} s: {check.__doc__ or check}"
        time.sleep(interval)
    return time.monotonic() - started


def post_events(world: World, events: list[dict], token: str | None = None, connector: str | None = None):
    # A batch of thousands on a server shared with other tests' load: more than httpx's default 5 s.
    return httpx.post(world.events_url(connector), json=events, headers=bearer(token or world.write_token), timeout=30)


def env_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


class TcpProxy:
    """A TCP forwarder to `target` on a port of its own, which a test can cut (a database outage) and restore.

    cut(): every forwarded connection is closed and new ones are refused, as when the database
    restarts or the network drops; restore(): connections are accepted again on the same port.
    """

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    restore = start

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            doomed, self._open = self._open, set()
        if listener is not None:
            listener.close()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response from a raw socket: its head, then as many body bytes as Content-Length
    says (or up to the connection's end). A single recv() may return the head alone: the server may
    send head and body in two writes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    while (not lengths or len(body) < int(lengths[0])) and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body
