"""Test support: a real conntel server on a free port, and the real CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CONNTEL = [sys.executable, "-m", "conntel"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, db: str | Path, check: bool = True) -> dict:
    """Run an admin command with --json against the store; return its JSON object."""
    done = subprocess.run(
        [*CONNTEL, *args, "--db", str(db), "--json"], capture_output=True, text=True, timeout=60
    )
    if check and done.returncode != 0:
        raise AssertionError(f"conntel {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout) if done.returncode == 0 else {"returncode": done.returncode, "stderr": done.stderr}


@dataclass
class Server:
    db: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/client/v4"

    def start(self) -> Server:
        self.log = self.db.with_suffix(f".{self.port}.log")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*CONNTEL, "serve", "--db", str(self.db), "--port", str(self.port), *self.extra_args],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early: {self.log.read_text()}")
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

    @property
    def db(self) -> Path:
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


def build_world(tmp: Path) -> World:
    db = tmp / "conntel.db"
    account = cli("accounts", "create", "--name", "Main", db=db)["id"]
    other = cli("accounts", "create", "--name", "Other", db=db)["id"]
    connector = cli("connectors", "create", "--account", account, db=db)["id"]
    other_connector = cli("connectors", "create", "--account", other, db=db)["id"]
    read = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Read", db=db)
    write = cli("tokens", "create", "--account", account, "--permission", "Magic WAN Write", db=db)
    other_write = cli("tokens", "create", "--account", other, "--permission", "Magic WAN Write", db=db)
    user = cli("users", "create", "--email", "ops@example.com", "--account", account, db=db)
    other_user = cli("users", "create", "--email", "other@example.com", "--account", other, db=db)
    server = Server(db).start()
    return World(
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


def post_events(world: World, events: list[dict], token: str | None = None, connector: str | None = None):
    return httpx.post(world.events_url(connector), json=events, headers=bearer(token or world.write_token))


def env_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
