"""Several server processes on one database behave as one service."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import Server, World, bearer, build_world, cli, create_pg_database, drop_pg_database, wait_for

T0 = 1_700_000_000


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A world plus two more servers on its database: a separate process and a `--workers 2` one.

    Shared by the module's tests, each of which works on connectors and tokens of its own.
    """
    tmp_path = tmp_path_factory.mktemp(f"fleet-{request.param}")
    world = build_world(tmp_path, request.param)
    others = [
        Server(world.db, log_dir=tmp_path).start(),
        Server(world.db, log_dir=tmp_path, extra_args=("--workers", "2")).start(),
    ]
    yield world, [world.server, *others]
    for server in [world.server, *others]:
        server.stop()
    if request.param == "postgres":
        drop_pg_database(world.db)


def url_on(server: Server, world: World, connector: str | None = None) -> str:
    return world.events_url(connector).replace(world.server.base_url, server.base_url)


def test_a_write_through_one_process_is_readable_through_every_other(fleet):
    world, servers = fleet
    connector = world.new_connector()
    for i, writer in enumerate(servers):
        batch = [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "by": i}}]
        assert (
            httpx.post(url_on(writer, world, connector), json=batch, headers=bearer(world.write_token)).status_code
            == 200
        )
        for reader in servers:
            for _ in range(4):  # several requests: the --workers server spreads them over its processes
                got = httpx.get(f"{url_on(reader, world, connector)}/{T0 + i}.0", headers=bearer(world.read_token))
                assert got.status_code == 200 and got.json()["result"]["e"]["by"] == i


def test_a_write_is_readable_at_once_through_processes_busy_reading(fleet):
    # Busy SQLite readers serve several requests per turn of their event loop from one read transaction.
    world, servers = fleet
    busy, connector = world.new_connector(), world.new_connector()
    loaded = [{"t": T0, "n": 0, "e": {"k": "Init"}}]
    assert (
        httpx.post(url_on(servers[0], world, busy), json=loaded, headers=bearer(world.write_token)).status_code == 200
    )
    stop = threading.Event()
    load_statuses: set[int] = set()

    def read_busily(server: Server) -> None:
        with httpx.Client(headers=bearer(world.read_token), timeout=30) as client:
            while not stop.is_set():
                load_statuses.add(client.get(f"{url_on(server, world, busy)}/{T0}.0").status_code)

    threads = [threading.Thread(target=read_busily, args=(server,)) for server in servers[1:] for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(60):
                batch = [{"t": T0 + i, "n": 0, "e": {"k": "Reconcile", "by": i}}]
                posted = client.post(
                    url_on(servers[0], world, connector), json=batch, headers=bearer(world.write_token)
                )
                assert posted.status_code == 200
                for reader in servers[1:]:
                    got = client.get(f"{url_on(reader, world, connector)}/{T0 + i}.0", headers=bearer(world.read_token))
                    assert got.status_code == 200 and got.json()["result"]["e"]["by"] == i
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert load_statuses == {200}


def test_concurrent_identical_ingestion_stores_each_event_once(fleet):
    world, servers = fleet
    connector = world.new_connector()
    batch = [{"t": T0 + i // 10, "n": i % 10, "e": {"k": "Reconcile", "i": i}} for i in range(500)]
    results: list[dict] = []

    def send(server: Server) -> None:
        with httpx.Client(headers=bearer(world.write_token), timeout=30) as client:
            for _ in range(3):
                response = client.post(url_on(server, world, connector), json=batch)
                assert response.status_code == 200, response.text
                results.append(response.json()["result"])

    threads = [threading.Thread(target=send, args=(server,)) for server in servers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 18
    assert sum(r["accepted"] for r in results) == 500  # each event written exactly once...
    assert sum(r["duplicates"] for r in results) == 17 * 500  # ...and every other copy counted as a retry
    listed = httpx.get(
        url_on(servers[1], world, connector),
        params={"from": T0, "to": T0 + 100, "limit": 1000},
        headers=bearer(world.read_token),
    ).json()["result"]
    assert listed["count"] == 500


def test_a_revoked_token_stops_working_everywhere_within_a_second(fleet):
    world, servers = fleet
    token = world.new_token("Magic WAN Read")
    ref_url = [f"{url_on(server, world)}/{T0}.0" for server in servers]
    for url in ref_url:  # every process has the token cached as valid
        for _ in range(4):
            assert httpx.get(url, headers=bearer(token["value"])).status_code in (200, 404)
    cli("tokens", "revoke", token["id"], db=world.db)
    revoked_at = time.monotonic()
    time.sleep(1.05)
    for url in ref_url:
        for _ in range(4):
            assert httpx.get(url, headers=bearer(token["value"])).status_code == 401
    assert time.monotonic() - revoked_at < 3  # the checks themselves ran promptly


def test_admin_commands_are_safe_while_servers_take_writes(fleet):
    world, servers = fleet
    connector = world.new_connector()
    stop = threading.Event()
    failures: list[str] = []

    def ingest(server: Server) -> None:
        with httpx.Client(headers=bearer(world.write_token), timeout=30) as client:
            t = T0 + servers.index(server) * 1_000_000
            while not stop.is_set():
                response = client.post(url_on(server, world, connector), json=[{"t": t, "n": 0, "e": {"k": "Init"}}])
                if response.status_code != 200:
                    failures.append(response.text)
                t += 1

    threads = [threading.Thread(target=ingest, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    try:
        made = [world.new_connector() for _ in range(3)]
        tokens = [world.new_token("Magic WAN Write") for _ in range(2)]
        cli("tokens", "revoke", tokens[0]["id"], db=world.db)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    for connector_id in made:
        got = httpx.get(
            f"{servers[2].base_url}/accounts/{world.account}/magic/connectors/{connector_id}",
            headers=bearer(tokens[1]["value"]),
        )
        assert got.status_code == 200


def test_several_processes_starting_at_once_migrate_one_fresh_database(tmp_path: Path):
    url = create_pg_database()
    servers = [Server(url, log_dir=tmp_path) for _ in range(3)]
    try:
        threads = [threading.Thread(target=server.start) for server in servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for server in servers:
            assert server.proc.poll() is None, server.server_log()
            assert httpx.get(server.base_url + "/openapi.json").status_code == 200
    finally:
        for server in servers:
            if server.proc is not None:
                server.stop()
        drop_pg_database(url)


def test_snapshots_posted_at_once_through_every_process_are_each_recorded_once(fleet):
    # The same batches raced through three processes (four, with the --workers 2 one): all or nothing each,
    # every snapshot recorded once, every other sending of it counted a duplicate, a conflict refused whole.
    world, servers = fleet
    connector = world.new_connector()
    required = {"count_reclaim_failures": 0, "count_reclaimed_paths": 0, "count_record_failed": 0, "v": "1"}
    batches = [
        [required | {"count_transmit_failures": 0, "t": T0 + 60 * (10 * b + i), "cpu_count": b} for i in range(10)]
        for b in range(6)
    ]
    results: list[dict] = []
    lock = threading.Lock()

    def send(server: Server) -> None:
        url = url_on(server, world, connector).removesuffix("/events") + "/snapshots"
        for batch in batches:
            response = httpx.post(url, json=batch, headers=bearer(world.write_token), timeout=30)
            assert response.status_code == 200, response.text
            with lock:
                results.append(response.json()["result"])

    threads = [threading.Thread(target=send, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r["accepted"] for r in results) == 60
    assert sum(r["duplicates"] for r in results) == 60 * (len(servers) - 1)
    assert all(r["accepted"] + r["duplicates"] == 10 for r in results)
    conflicting = [*batches[0][:1], batches[1][0] | {"cpu_count": 99}]
    for server in servers:
        url = url_on(server, world, connector).removesuffix("/events") + "/snapshots"
        assert httpx.post(url, json=conflicting, headers=bearer(world.write_token)).status_code == 409
        listed = httpx.get(url, params={"from": T0, "to": T0 + 6000}, headers=bearer(world.read_token))
        assert [item["t"] for item in listed.json()["result"]["items"]] == [T0 + 60 * i for i in range(60)]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_end_when_the_main_process_is_killed_outright(tmp_path: Path, workers: int):
    """kill -9 (or the OOM killer) on the main process leaves no worker serving the port and writing the store."""
    server = Server(tmp_path / "conntel.db", log_dir=tmp_path, extra_args=("--workers", str(workers))).start()
    assert server.proc is not None
    workers_pids = _children(server.proc.pid)
    assert len(workers_pids) == workers, workers_pids
    server.stop(signal.SIGKILL)
    assert wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers_pids), timeout=20)
    with pytest.raises(httpx.TransportError):  # nothing answers on the port any more
        httpx.get(server.origin + "/client/v4", timeout=2)


CPUS = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("extra_args", "expected"),
    [
        ((), min(2, CPUS)),  # one per CPU, at most two
        (("--rate-limit", "100/minute"), 1),  # counted in each process's memory: one, so the limit stays exact
        (("--rate-limit", "100/minute", "--rate-limit-storage", "redis://127.0.0.1:6379/0"), min(2, CPUS)),
        (("--workers", "3"), 3),  # as given
    ],
)
def test_worker_processes_by_default(tmp_path: Path, extra_args: tuple[str, ...], expected: int):
    server = Server(tmp_path / "conntel.db", log_dir=tmp_path, extra_args=extra_args, one_worker=False).start()
    try:
        assert server.proc is not None
        assert wait_for(lambda: len(_children(server.proc.pid)) == expected, timeout=20)
        assert httpx.get(server.origin + "/readyz", timeout=10).status_code == 200
    finally:
        server.stop()
