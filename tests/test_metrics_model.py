"""The simulator's metrics model: every snapshot valid, and each consistency property it promises."""

from __future__ import annotations

import ipaddress
import itertools
import random
import statistics
from typing import Any

import msgspec
import pytest

from conntel.client import lifecycles, metrics
from conntel.snapshots import Snapshot

START = metrics.SAMPLE_START
DAY = lifecycles.DAY
CPU_PARTS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
MEMORY_PARTS = (
    "free",
    "buffers",
    "cached",
    "swap_cached",
    "anon_pages",
    "slab",
    "kernel_stack",
    "page_tables",
    "vmalloc_used",
    "per_cpu",
)


def day_of(seed: float, failure_rate: float = 0.05, hours: int = 24) -> tuple[list[dict], list[dict]]:
    """One connector's events and snapshots over `hours` from START."""
    end = START + hours * 3600
    events = lifecycles.connector_timeline(random.Random(seed), START, end, failure_rate)
    stream = metrics.fleet_snapshots([seed], START, failure_rate)[0]
    snaps = list(itertools.takewhile(lambda s: s["t"] < end, stream))
    return events, snaps


@pytest.fixture(scope="module")
def fleet_day() -> list[tuple[list[dict], list[dict]]]:
    return [day_of(seed) for seed in (0.11, 0.22, 0.33)]


def boots(snaps: list[dict]) -> list[list[dict]]:
    """Snapshots grouped by boot (kernel_btime)."""
    return [list(group) for _, group in itertools.groupby(snaps, key=lambda s: s["kernel_btime"])]


def counters(snap: dict) -> dict[str, float]:
    """Every counter of a snapshot, flattened with its path."""
    flat = {k: v for k, v in snap.items() if k.startswith(("cpu_time_", "snmp_", "kernel_ctxt", "kernel_processes"))}
    flat = {k: v for k, v in flat.items() if k not in NOT_COUNTERS}
    flat.update({k: v for k, v in snap.items() if k.endswith("_total_us") or k.startswith("count_")})
    flat["uptime_total_ms"] = snap["uptime_total_ms"]
    for dev in snap["netdevs"]:
        flat.update({f"netdevs.{dev['name']}.{k}": v for k, v in dev.items() if k != "name"})
    for disk in snap["disks"]:
        flat.update({f"disks.{disk['name']}.{k}": v for k, v in disk.items() if k not in ("name", "in_progress")})
    return flat


NOT_COUNTERS = {
    "kernel_processes_blocked",
    "kernel_processes_running",
    "snmp_ip_default_ttl",
    "snmp_ip_forwarding_enabled",
    "snmp_ip_reasm_timeout",
    "snmp_tcp_curr_estab",
    "snmp_tcp_rto_min",
    "snmp_tcp_rto_max",
    "snmp_tcp_max_conn",
}


def test_every_snapshot_is_a_valid_full_snapshot():
    snaps = list(metrics.sample_snapshots(seed=5, connectors=4, count=400))
    assert len(snaps) == 400
    for snap in snaps:
        msgspec.convert(snap, Snapshot)
        assert not set(snap) - {f.name for f in __import__("conntel.snapshots").snapshots.SNAPSHOT}
    # the whole field tree is there: every top-level field, every nested array non-empty somewhere
    top = {f.name for f in __import__("conntel.snapshots").snapshots.SNAPSHOT}
    assert set().union(*snaps) == top
    for array in ("bonds", "dhcp_leases", "disks", "interfaces", "mounts", "netdevs", "routes", "thermals", "tunnels"):
        assert any(s[array] for s in snaps), array
    sizes = [len(msgspec.json.encode(s)) for s in snaps]
    assert 5_000 <= min(sizes) and max(sizes) <= 20_000  # the 5-20 KB a real snapshot is


def test_the_same_seed_gives_the_same_snapshots_and_another_seed_others():
    first = list(metrics.sample_snapshots(seed=9, connectors=3, count=60))
    again = list(metrics.sample_snapshots(seed=9, connectors=3, count=60))
    other = list(metrics.sample_snapshots(seed=10, connectors=3, count=60))
    assert first == again
    assert first != other


def test_snapshots_come_every_minute_except_while_rebooting(fleet_day):
    for events, snaps in fleet_day:
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(snaps)]
        assert set(gaps) <= {60, 120, 180}, set(gaps)  # a reboot skips a minute or two, never more
        leaves = [e["t"] for e in events if e["e"]["k"] == "Leave"]
        assert leaves  # every connector takes its first upgrade within its first day
        for leave in leaves:
            init = next(e["t"] for e in events if e["e"]["k"] == "Init" and e["t"] > leave)
            assert not [s for s in snaps if leave < s["t"] < init]


def test_counters_only_grow_within_a_boot_and_restart_from_zero_after_a_reboot(fleet_day):
    for _, snaps in fleet_day:
        by_boot = boots(snaps)
        assert len(by_boot) >= 2
        for boot in by_boot:
            for old, new in itertools.pairwise(map(counters, boot)):
                assert old.keys() == new.keys()
                shrunk = {k: (old[k], new[k]) for k in old if new[k] < old[k]}
                assert not shrunk
            assert boot[-1]["netdevs"][1]["recv_bytes"] > boot[0]["netdevs"][1]["recv_bytes"]
        for previous, boot in itertools.pairwise(by_boot):
            first = boot[0]
            uptime_s = first["uptime_total_ms"] / 1000
            assert first["kernel_btime"] > previous[-1]["t"] and 0 < uptime_s <= 120
            assert first["kernel_btime"] == first["system_boot_time_s"] == first["t"] - uptime_s
            # what a counter holds a minute or two after boot is far below what it held before
            assert counters(first)["kernel_ctxt"] < counters(previous[-1])["kernel_ctxt"] / 10
            for dev_before, dev_after in zip(previous[-1]["netdevs"], first["netdevs"], strict=True):
                assert dev_after["sent_bytes"] < dev_before["sent_bytes"] or dev_before["sent_bytes"] == 0


def test_cpu_time_splits_add_up_to_the_cores_times_uptime(fleet_day):
    for _, snaps in fleet_day:
        for snap in snaps:
            total = sum(snap[f"cpu_time_{part}_ms"] for part in CPU_PARTS)
            assert total == snap["cpu_count"] * snap["uptime_total_ms"]
            assert snap["uptime_idle_ms"] == snap["cpu_time_idle_ms"]
            assert snap["cpu_time_guest_ms"] <= snap["cpu_time_user_ms"]


def test_memory_parts_add_up_to_the_total(fleet_day):
    for _, snaps in fleet_day:
        for snap in snaps:
            m = {k[len("memory_") : -len("_bytes")]: v for k, v in snap.items() if k.endswith("_bytes")}
            assert sum(m[part] for part in MEMORY_PARTS) == m["total"]
            assert m["free"] == m["low_free"] + m["high_free"] and m["free"] >= m["total"] // 50
            assert m["slab"] == m["s_reclaimable"] + m["s_unreclaim"]
            assert m["active"] + m["inactive"] == m["anon_pages"] + m["buffers"] + m["cached"]
            assert m["free"] <= m["available"] <= m["total"]
            assert m["swap_free"] <= m["swap_total"] and m["shmem"] <= m["cached"]


def busy_shares(snaps: list[dict]) -> list[tuple[float, dict]]:
    """(CPU busy share over the minute before, snapshot) within one boot."""
    out = []
    for before, after in itertools.pairwise(snaps):
        if after["kernel_btime"] != before["kernel_btime"]:
            continue
        idle = after["cpu_time_idle_ms"] - before["cpu_time_idle_ms"]
        total = sum(after[f"cpu_time_{p}_ms"] - before[f"cpu_time_{p}_ms"] for p in CPU_PARTS)
        out.append((1 - idle / total, after))
    return out


def test_load_follows_cpu(fleet_day):
    for _, snaps in fleet_day:
        pairs = busy_shares(snaps)
        busy = [b * s["cpu_count"] for b, s in pairs]
        load = [s["load_average_1m"] for _, s in pairs]
        assert statistics.correlation(busy, load) > 0.8
        # the longer averages are smoother
        assert statistics.pstdev(s["load_average_15m"] for _, s in pairs) < statistics.pstdev(load)


def test_disks_and_mounts_have_real_looking_sizes(fleet_day):
    for _, snaps in fleet_day:
        for snap in snaps[::30]:
            for mount in snap["mounts"]:
                assert 100 << 20 <= mount["total_bytes"] <= 4 << 40, mount
                assert 0 < mount["available_bytes"] <= mount["total_bytes"]
                assert mount["available_bytes"] % 4096 == 0 or mount["file_system"] == "tmpfs"
                if "total_inodes" in mount:
                    assert 0 < mount["available_inodes"] <= mount["total_inodes"]
            assert {m["mount_point"] for m in snap["mounts"]} >= {"/", "/var/log"}
            for disk in snap["disks"]:
                assert disk["sectors_written"] >= disk["writes"] and disk["major"] in (8, 252, 259)


def test_each_interface_has_addresses_of_its_own(fleet_day):
    for _, snaps in fleet_day:
        snap = snaps[-1]
        netdevs = {d["name"] for d in snap["netdevs"]}
        for interface in snap["interfaces"]:
            assert interface["ip_addresses"], interface
            assert interface["name"] in netdevs
            for address in interface["ip_addresses"]:
                assert address["interface_name"] == interface["name"]
                ipaddress.ip_interface(address["ip_address"])
        for route in snap["routes"]:
            assert route["interface_name"] in netdevs
        for lease in snap["dhcp_leases"]:
            assert lease["expiry_time"] > snap["t"]
            assert lease["interface_name"] in {i["name"] for i in snap["interfaces"]}


def kinds_between(events: list[dict], after: int, until: int) -> set[str]:
    return {e["e"]["k"] for e in events if after < e["t"] <= until}


def health_windows(events: list[dict], snaps: list[dict]):
    for before, snap in itertools.pairwise(snaps):
        yield kinds_between(events, before["t"], snap["t"]), snap


def connector_with(*kinds: str, hours: int = 24) -> tuple[list[dict], list[dict]]:
    """The first connector (by seed) whose first `hours` have all these event kinds; its events and snapshots."""
    for index in range(200):
        seed = random.Random(index).random()
        found = {e["e"]["k"] for e in lifecycles.connector_timeline(random.Random(seed), START, START + hours * 3600)}
        if set(kinds) <= found:
            return day_of(seed, failure_rate=0.2, hours=hours)
    raise AssertionError(f"no connector with {kinds}")


def test_tunnel_health_follows_the_connectors_ha_and_rekey_events():
    events, snaps = connector_with("RekeyReset", "HaError", "RekeyStart")
    seen = set()
    for kinds, snap in health_windows(events, snaps):
        states = {t["health_state"] for t in snap["tunnels"]}
        values = {t["health_value"] for t in snap["tunnels"]}
        assert values == {metrics.HEALTH_VALUES[s] for s in states}
        if "Init" in kinds:
            continue  # a boot: unknown until the tunnels are installed
        if kinds & {"RekeyReset", "HaError"}:
            assert states == {"down"}, (kinds, snap["t"])
            assert all(t["recent_unhealthy_pings"] >= 1 for t in snap["tunnels"])
            seen.add("down")
        elif "RekeyStart" in kinds:
            assert states <= {"degraded", "down"}, (kinds, snap["t"])
            seen.add("degraded")
    assert seen == {"down", "degraded"}
    # before the first RekeyInstallBoth of a boot, tunnels are unknown
    first_install = next(e["t"] for e in events if e["e"]["k"] == "RekeyInstallBoth")
    early = [s for s in snaps if s["t"] < first_install]
    assert all(t["health_state"] == "unknown" for s in early for t in s["tunnels"])


def test_ha_state_is_the_last_ha_event(fleet_day):
    for events, snaps in fleet_day:
        for snap in snaps:
            last = [e for e in events if e["t"] <= snap["t"] and e["e"]["k"].startswith("Ha")][-1]
            expected = {"HaInit": "standby", "HaError": "fault", "HaLeave": "stopped"}.get(last["e"]["k"])
            assert snap["ha_state"] == (expected or last["e"]["state"])
            assert snap["ha_value"] == metrics.HA_VALUES[snap["ha_state"]]


def test_quiet_tunnels_of_a_well_connector_are_healthy(fleet_day):
    for events, snaps in fleet_day:
        failures = [e["t"] for e in events if e["e"]["k"].endswith("Failure") or e["e"]["k"] == "HaError"]
        installed = [e["t"] for e in events if e["e"]["k"] == "RekeyInstallBoth"]
        for kinds, snap in health_windows(events, snaps):
            recent_failure = any(snap["t"] - 4 * 3600 < f <= snap["t"] for f in failures)
            configured = any(i <= snap["t"] - 60 for i in installed)
            if kinds or recent_failure or not configured or snap["t"] - snap["kernel_btime"] < 600:
                continue
            assert {t["health_state"] for t in snap["tunnels"]} == {"healthy"}, snap["t"]


def lan_rates(snaps: list[dict]) -> list[tuple[int, float]]:
    """(t, bytes per second sent to the LAN) from the counters, skipping reboots."""
    out = []
    for before, after in itertools.pairwise(snaps):
        if after["kernel_btime"] != before["kernel_btime"]:
            continue
        lan = next(i["name"] for i in after["interfaces"] if i["ip_addresses"][0]["ip_address"].startswith("10."))
        sent = {d["name"]: d["sent_bytes"] for d in after["netdevs"]}[lan]
        was = {d["name"]: d["sent_bytes"] for d in before["netdevs"]}[lan]
        out.append((after["t"], (sent - was) / (after["t"] - before["t"])))
    return out


def always_active(seed: float, hours: int) -> bool:
    """Whether every HA transition of this connector's first hours is to active (standby carries no traffic)."""
    events = lifecycles.connector_timeline(random.Random(seed), START, START + hours * 3600, 0.0)
    return all(e["e"]["state"] == "active" for e in events if e["e"]["k"] == "HaTransition")


def test_throughput_has_a_daily_rhythm():
    seed = next(s for s in (random.Random(i).random() for i in range(100)) if always_active(s, 26))
    _, snaps = day_of(seed, failure_rate=0.0, hours=26)
    profile = metrics.make_profile(metrics.metrics_random(seed))
    rates = lan_rates(snaps[30:])
    hour = {t: ((t + profile.tz_offset) % DAY) // 3600 for t, _ in rates}
    night = statistics.mean(r for t, r in rates if hour[t] in (3, 4, 5))
    afternoon = statistics.mean(r for t, r in rates if hour[t] in (14, 15, 16, 17))
    assert afternoon > 4 * night > 0


def unwellness(snaps: list[dict]) -> dict[str, float]:
    busy = [b for b, _ in busy_shares(snaps)]
    return {
        "busy": statistics.mean(busy),
        "drops": sum(d["recv_drop"] + d["sent_drop"] for d in snaps[-1]["netdevs"]),
        "unhealthy_pings": sum(t.get("recent_unhealthy_pings", 0) for s in snaps for t in s["tunnels"]),
        "health_score": statistics.mean(i.get("health_score", 100) for s in snaps for i in s["interfaces"]),
        "io_pressure": statistics.mean(s["io_pressure_some_60s"] for s in snaps),
    }


def test_a_failing_connector_looks_unwell_in_its_metrics():
    seed = 0.4242
    well = unwellness(day_of(seed, failure_rate=0.0, hours=8)[1])
    failing = unwellness(day_of(seed, failure_rate=0.9, hours=8)[1])
    assert failing["busy"] > well["busy"] * 1.3
    assert failing["drops"] > well["drops"] * 10
    assert failing["unhealthy_pings"] > well["unhealthy_pings"] + 100
    assert failing["health_score"] < well["health_score"] - 5
    assert failing["io_pressure"] > well["io_pressure"] * 5


def test_sample_snapshots_keeps_its_signature_and_interleaves_the_fleet():
    snaps: list[dict[str, Any]] = list(metrics.sample_snapshots(1, 5, 50))
    assert len(snaps) == 50
    assert len({s["site_id"] for s in snaps[:5]}) == 5  # one of each connector, then the next minute
    assert all(b["t"] - a["t"] in (60, 120, 180) for a, b in zip(snaps, snaps[5:], strict=False))
    assert list(metrics.sample_snapshots(1, 0, 10)) == [] and list(metrics.sample_snapshots(1, 3, 0)) == []
