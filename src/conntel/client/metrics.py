"""What a virtual connector reports about itself: full snapshots, once a simulated minute.

A connector gets a fixed profile from its random source (hardware or virtual,
cores, memory, disks, one or two WAN uplinks, a LAN port or bond, two to four
IPsec tunnels, DHCP clients) and walks its own event stream
(conntel.client.lifecycles) alongside the clock, so that its metrics tell the
same story as its events:

- `Init` is a boot: the kernel booted a few seconds earlier (`kernel_btime`),
  and every counter restarts from zero; between `Leave` and the next `Init`
  the device is rebooting and reports nothing.
- HA: `Init` disabled, `HaInit` standby, `HaTransition` its state, `HaError`
  fault, `HaLeave` stopped (the SDK's legend). Only an active node carries
  traffic; a standby one only keeps its tunnels alive.
- Tunnels are `unknown` after a boot until `RekeyInstallBoth`, `degraded`
  from `RekeyStart` to `RekeyComplete`, `down` from `RekeyReset` to
  `RekeyInstallBoth` and from `HaError` to the next `HaTransition`, else
  `healthy`; a down tunnel's share of traffic moves to the others.
- Failures (`...Failure` events, `HaError`) raise a "trouble" level that
  decays over about half an hour: busier CPU, memory and IO pressure, packet
  errors and drops, slower and lossier tunnels, lower interface health,
  failed transmissions, hotter sensors. A connector that keeps failing
  looks unwell.

Invariants (tests/test_metrics_model.py checks each): counters never fall
within a boot; the CPU time splits (user, nice, system, idle, iowait, irq,
softirq, steal; guest time is part of user, as in Linux) add up to
`cpu_count * uptime_total_ms`; memory parts (free, buffers, cached, swap
cached, anon pages, slab, kernel stack, page tables, vmalloc used, per-cpu)
add up to `memory_total_bytes`, and free is low free plus high free; the
load averages are the kernel's exponential averages of the runnable count,
which follows CPU use; traffic follows the site's local time of day.
Deterministic for a random source; no wall clock is read.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from conntel.client import lifecycles

INTERVAL = 60  # simulated seconds between two snapshots of one connector
SAMPLE_START = 1_767_225_600  # 2026-01-01T00:00:00Z: where sample_snapshots' clock starts
GIB = 1 << 30
TROUBLE_HALF_LIFE = 1_800.0  # seconds
PACKET_BYTES = 900  # mean packet size on the wire
ESP_OVERHEAD = 1.08  # a tunnelled byte costs this much on the WAN uplink

NETDEV_FIELDS = (
    "recv_bytes",
    "recv_packets",
    "recv_errs",
    "recv_drop",
    "recv_fifo",
    "recv_frame",
    "recv_compressed",
    "recv_multicast",
    "sent_bytes",
    "sent_packets",
    "sent_errs",
    "sent_drop",
    "sent_fifo",
    "sent_colls",
    "sent_carrier",
    "sent_compressed",
)
DISK_FIELDS = (
    "reads",
    "merged",
    "sectors_read",
    "time_reading_ms",
    "writes",
    "writes_merged",
    "sectors_written",
    "time_writing_ms",
    "time_in_progress_ms",
    "weighted_time_in_progress_ms",
    "discards",
    "discards_merged",
    "sectors_discarded",
    "time_discarding_ms",
    "flushes",
    "time_flushing_ms",
)
CPU_SPLITS = ("user", "nice", "system", "iowait", "irq", "softirq", "steal")  # idle is what is left
HA_VALUES = {"disabled": 0, "active": 1, "standby": 2, "stopped": 3, "fault": 4}
HEALTH_VALUES = {"unknown": 0, "healthy": 1, "degraded": 2, "down": 3}
HEALTH_NAMES = {value: name for name, value in HEALTH_VALUES.items()}
# Monotonic kernel counters: name -> share of a unit of activity per second (scaled below).
SNMP_COUNTERS = (
    "snmp_icmp_in_msgs",
    "snmp_icmp_in_echos",
    "snmp_icmp_in_echo_reps",
    "snmp_icmp_in_dest_unreachs",
    "snmp_icmp_in_time_excds",
    "snmp_icmp_in_errors",
    "snmp_icmp_in_csum_errors",
    "snmp_icmp_in_redirects",
    "snmp_icmp_in_parm_probs",
    "snmp_icmp_in_src_quenchs",
    "snmp_icmp_in_timestamps",
    "snmp_icmp_in_timestamp_reps",
    "snmp_icmp_in_addr_masks",
    "snmp_icmp_in_addr_mask_reps",
    "snmp_icmp_out_msgs",
    "snmp_icmp_out_echos",
    "snmp_icmp_out_echo_reps",
    "snmp_icmp_out_dest_unreachs",
    "snmp_icmp_out_time_excds",
    "snmp_icmp_out_errors",
    "snmp_icmp_out_redirects",
    "snmp_icmp_out_parm_probs",
    "snmp_icmp_out_src_quenchs",
    "snmp_icmp_out_timestamps",
    "snmp_icmp_out_timestamp_reps",
    "snmp_icmp_out_addr_masks",
    "snmp_icmp_out_addr_mask_reps",
    "snmp_ip_in_receives",
    "snmp_ip_in_delivers",
    "snmp_ip_forw_datagrams",
    "snmp_ip_out_requests",
    "snmp_ip_in_hdr_errors",
    "snmp_ip_in_addr_errors",
    "snmp_ip_in_unknown_protos",
    "snmp_ip_in_discards",
    "snmp_ip_out_discards",
    "snmp_ip_out_no_routes",
    "snmp_ip_frag_creates",
    "snmp_ip_frag_fails",
    "snmp_ip_frag_oks",
    "snmp_ip_reasm_fails",
    "snmp_ip_reasm_oks",
    "snmp_ip_reasm_reqds",
    "snmp_tcp_active_opens",
    "snmp_tcp_passive_opens",
    "snmp_tcp_attempt_fails",
    "snmp_tcp_estab_resets",
    "snmp_tcp_in_segs",
    "snmp_tcp_out_segs",
    "snmp_tcp_retrans_segs",
    "snmp_tcp_in_errs",
    "snmp_tcp_in_csum_errors",
    "snmp_tcp_out_rsts",
    "snmp_udp_in_datagrams",
    "snmp_udp_out_datagrams",
    "snmp_udp_no_ports",
    "snmp_udp_in_errors",
)
# Counters that grow with time since boot (others below are gauges), by group.
PRESSURE_TOTALS = (
    "cpu_pressure_total_us",
    "io_pressure_some_total_us",
    "io_pressure_full_total_us",
    "memory_pressure_some_total_us",
    "memory_pressure_full_total_us",
)
# Pressure stall gauges: (stall kind, share of it, the 10 s, 60 s and 300 s field, the total field).
PRESSURES = tuple(
    (kind, scale, f"{name}_10s", f"{name}_60s", f"{name}_300s", f"{name}_total_us")
    for kind, scale, name in (
        ("cpu", 1.0, "cpu_pressure"),
        ("io", 1.0, "io_pressure_some"),
        ("io", 0.4, "io_pressure_full"),
        ("memory", 1.0, "memory_pressure_some"),
        ("memory", 0.3, "memory_pressure_full"),
    )
)


@dataclass(frozen=True)
class Netdev:
    name: str
    role: str  # "wan", "lan", "slave", "tunnel", "lo"
    share: float  # of its role's traffic


@dataclass(frozen=True)
class Profile:
    """What does not change while a connector lives: its hardware and its site."""

    platform: str
    site_id: str
    hardware: bool
    cpu_count: int
    memory_total: int
    swap_total: int
    disk: str
    disk_major: int
    disk_bytes: int
    wans: tuple[tuple[str, str, str], ...]  # (name, address/prefix, gateway)
    lan: str  # eth2, or bond0 over eth2 and eth3
    lan_address: str
    tunnels: tuple[tuple[str, str, str], ...]  # (tunnel_id, interface name, remote endpoint)
    netdevs: tuple[Netdev, ...]
    peak_down: float  # bytes per second at the busiest hour
    tz_offset: int  # seconds east of UTC
    base_busy: float  # CPU share the software uses when idle
    clients: tuple[tuple[str, str, str], ...]  # DHCP (hostname, mac, client id)
    lease_time: int


def make_profile(rng: random.Random) -> Profile:
    hardware = rng.random() < 0.7
    cpu_count = rng.choice((4, 8)) if hardware else rng.choice((2, 4))
    memory_total = rng.choice((8, 16)) * GIB if hardware else rng.choice((4, 8)) * GIB
    memory_total -= rng.randint(180, 420) * (1 << 20)  # the kernel's own reservation
    disk, major = ("nvme0n1", 259) if hardware else ("vda", 252)
    wans = [("eth0", f"{_public(rng)}/24", "")]
    if rng.random() < 0.5:
        wans.append(("eth1", f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(2, 250)}/10", ""))
    wans = [(name, addr, _gateway(addr)) for name, addr, _ in wans]
    bonded = hardware and rng.random() < 0.4
    lan = "bond0" if bonded else ("eth2" if len(wans) == 2 else "eth1")
    lan_net = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
    tunnels = tuple(
        (f"{rng.getrandbits(128):032x}", f"xfrm{i + 1}", f"162.159.{rng.randint(64, 127)}.{rng.randint(1, 254)}")
        for i in range(rng.randint(2, 4))
    )
    netdevs = [Netdev("lo", "lo", 1.0)]
    split = (1.0,) if len(wans) == 1 else (0.65, 0.35)
    netdevs += [Netdev(name, "wan", share) for (name, _, _), share in zip(wans, split, strict=True)]
    if bonded:
        netdevs += [Netdev("bond0", "lan", 1.0), Netdev("eth2", "slave", 0.5), Netdev("eth3", "slave", 0.5)]
    else:
        netdevs.append(Netdev(lan, "lan", 1.0))
    netdevs += [Netdev(name, "tunnel", 1.0) for _, name, _ in tunnels]
    clients = tuple(
        (
            rng.choice(("laptop", "printer", "phone", "pos", "camera", "nas", "ap")) + f"-{rng.randint(1, 99):02d}",
            ":".join(f"{rng.getrandbits(8):02x}" for _ in range(6)),
            f"01:{rng.getrandbits(48):012x}",
        )
        for _ in range(rng.randint(3, 12))
    )
    return Profile(
        platform=rng.choice(("vep1425", "vep1445", "vep4600")) if hardware else rng.choice(("kvm", "esxi", "hyperv")),
        site_id=f"{rng.getrandbits(64):016x}",
        hardware=hardware,
        cpu_count=cpu_count,
        memory_total=memory_total,
        swap_total=0 if hardware else 2 * GIB,
        disk=disk,
        disk_major=major,
        disk_bytes=rng.choice((128, 256, 512)) * 1_000_000_000 if hardware else rng.choice((32, 64)) * GIB,
        wans=tuple(wans),
        lan=lan,
        lan_address=f"{lan_net}.1/24",
        tunnels=tunnels,
        netdevs=tuple(netdevs),
        peak_down=rng.uniform(0.6e6, 25e6),
        tz_offset=rng.choice((-8, -5, -3, 0, 1, 2, 3, 5, 8, 9, 10)) * 3600,
        base_busy=rng.uniform(0.04, 0.12),
        clients=clients,
        lease_time=rng.choice((3600, 14400, 86400)),
    )


def _public(rng: random.Random) -> str:
    return f"{rng.choice((198, 203, 185, 45, 81))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(2, 250)}"


def _gateway(address: str) -> str:
    octets = address.split("/")[0].split(".")
    return ".".join([*octets[:3], "1"])


def daily_rhythm(t: float, tz_offset: int) -> float:
    """Share of the peak rate at simulated time t: lowest at 04:00, highest at 16:00 local time."""
    hour = ((t + tz_offset) % lifecycles.DAY) / 3600
    return 0.12 + 0.88 * float((0.5 - 0.5 * math.cos(2 * math.pi * (hour - 4) / 24)) ** 1.5)


class ConnectorMetrics:
    """One connector's state, driven by its events and the clock; `snapshot(t)` reads it out."""

    def __init__(self, rng: random.Random, profile: Profile):
        self.rng = rng
        self.p = profile
        self.up = False
        self.clock = 0.0
        self.btime = 0
        self.version = ""
        self.ha = "disabled"
        self.tunnels_ready = False
        self.rekeying = False
        self.reset = False
        self.ha_fault = False
        self.trouble = 0.0
        self.delta = 0
        self.mounts_used = {"/": 0.0, "/var/log": 0.0}
        self.leases: dict[int, float] = {}
        self._zero()

    def _zero(self) -> None:
        """Counters as they are at boot."""
        p = self.p
        self.cpu = dict.fromkeys((*CPU_SPLITS, "idle"), 0)
        self.guest = 0
        self.netdev = {d.name: [0.0] * len(NETDEV_FIELDS) for d in p.netdevs}
        self.disk = [0.0] * len(DISK_FIELDS)
        self.snmp = dict.fromkeys(SNMP_COUNTERS, 0.0)
        self.pressure_totals = dict.fromkeys(PRESSURE_TOTALS, 0.0)
        self.ctxt = 0.0
        self.forks = 0.0
        self.load = [0.0, 0.0, 0.0]
        self.busy = p.base_busy
        self.stall = {"cpu": 0.0, "io": 0.0, "memory": 0.0}
        self.worst = [0] * len(p.tunnels)  # the worst health value each tunnel had since the last snapshot
        self.unhealthy_s = [0.0] * len(p.tunnels)  # and the seconds its pings failed
        self.anon = p.memory_total * self.rng.uniform(0.12, 0.2)
        self.cached = p.memory_total * self.rng.uniform(0.05, 0.1)
        self.counts = {"reclaim_failures": 0, "reclaimed_paths": 0, "record_failed": 0, "transmit_failures": 0.0}

    # --- events -----------------------------------------------------------------------------------

    def observe(self, event: dict[str, Any]) -> None:
        t = event["t"]
        kind = event["e"]["k"]
        if kind == "Init":
            self.boot(t)
        elif not self.up:
            return
        self.run_until(t)
        self.version = event["v"]
        if kind == "HaInit":
            self.ha = "standby"
        elif kind == "HaTransition":
            self.ha = event["e"].get("state", "active")
            self.ha_fault = False
        elif kind == "HaError":
            self.ha, self.ha_fault = "fault", True
        elif kind == "HaLeave":
            self.ha = "stopped"
        elif kind == "Leave":
            self.up = False
        elif kind == "RekeyStart":
            self.rekeying = True
        elif kind == "RekeyComplete":
            self.rekeying = False
        elif kind == "RekeyReset":
            self.reset, self.rekeying = True, False
        elif kind == "RekeyInstallBoth":
            self.reset, self.tunnels_ready = False, True
        elif kind == "Reconcile":
            self.delta = self.rng.randint(1, 40) if event["e"].get("changed") else 0
        if kind.endswith("Failure") or kind == "HaError":
            self.trouble = min(1.0, self.trouble + 0.45)
        self._note_health(self.tunnel_states(), 0)

    def boot(self, t: int) -> None:
        self.up = True
        self.btime = t - self.rng.randint(6, 25)  # the kernel came up before the connector's software
        self.clock = float(self.btime)
        self.ha = "disabled"
        self.tunnels_ready = self.rekeying = self.reset = self.ha_fault = False
        self._zero()

    # --- the clock --------------------------------------------------------------------------------

    def tunnel_states(self) -> list[str]:
        if not self.tunnels_ready:
            return ["unknown"] * len(self.p.tunnels)
        if self.reset or self.ha_fault:
            return ["down"] * len(self.p.tunnels)
        states = []
        for index in range(len(self.p.tunnels)):
            # trouble takes the tunnels out one by one; a rekey degrades them all
            worn = self.trouble > 0.35 + 0.2 * index
            states.append("degraded" if self.rekeying or worn else "healthy")
        return states

    def _note_health(self, states: list[str], seconds: float) -> None:
        """Remember the worst: a snapshot's tunnel health covers its whole ping window, not only its instant."""
        for index, state in enumerate(states):
            value = HEALTH_VALUES[state]
            self.worst[index] = max(self.worst[index], value)
            if value >= 2:
                self.unhealthy_s[index] += seconds if value == 3 else seconds * 0.3

    def reported_health(self) -> list[str]:
        """Each tunnel's health as the next snapshot reports it: unknown until configured, else the window's worst."""
        return [
            state if state == "unknown" else HEALTH_NAMES[max(worst, HEALTH_VALUES[state])]
            for state, worst in zip(self.tunnel_states(), self.worst, strict=True)
        ]

    def traffic(self, t: float) -> float:
        """Bytes per second received from the site's LAN side and the far end, together (down)."""
        if self.ha != "active":
            return 2_000.0  # a standby or faulted node only keeps its tunnels alive
        return self.p.peak_down * daily_rhythm(t, self.p.tz_offset) * self.rng.uniform(0.9, 1.1)

    def run_until(self, t: float) -> None:
        """Accumulate the counters from the last reading to t."""
        dt = t - self.clock
        if not self.up or dt <= 0:
            self.clock = max(self.clock, t)
            return
        p, rng = self.p, self.rng
        self.trouble *= 0.5 ** (dt / TROUBLE_HALF_LIFE)
        trouble = self.trouble
        down = self.traffic(t)
        up_rate = down * 0.3
        utilisation = min(1.0, down / max(p.peak_down, 1.0))
        self.busy = min(0.97, p.base_busy + 0.45 * utilisation + 0.5 * trouble + rng.uniform(0, 0.03))

        # CPU: integer milliseconds per state; idle takes what is left, so the splits add up exactly.
        total_ms = round(p.cpu_count * dt * 1000)
        busy_ms = total_ms * self.busy
        shares = {
            "user": 0.45,
            "nice": 0.02,
            "system": 0.25,
            "iowait": 0.03 + 0.15 * trouble,
            "irq": 0.05,
            "softirq": 0.2,
            "steal": 0.0 if p.hardware else 0.03,
        }
        norm = sum(shares.values())
        used = 0
        for name in CPU_SPLITS:
            part = int(busy_ms * shares[name] / norm)
            self.cpu[name] += part
            used += part
        self.cpu["idle"] += total_ms - used
        self.ctxt += dt * (800 + 9000 * self.busy) * p.cpu_count
        self.forks += dt * rng.uniform(1.5, 3.0)

        # Load: the kernel's exponentially damped averages of the runnable (and blocked) count.
        runnable = self.busy * p.cpu_count + trouble * 1.5 + rng.uniform(0, 0.2)
        for i, period in enumerate((60, 300, 900)):
            decay = math.exp(-dt / period)
            self.load[i] = self.load[i] * decay + runnable * (1 - decay)

        # Pressure stall: a share of wall time, growing with load and trouble.
        self.stall["cpu"] = min(95.0, max(0.0, (self.busy - 0.6) * 60) + 20 * trouble)
        self.stall["io"] = min(95.0, 0.2 + 25 * trouble)
        self.stall["memory"] = min(95.0, 15 * trouble**2)
        for key, stall in (
            ("cpu_pressure_total_us", self.stall["cpu"]),
            ("io_pressure_some_total_us", self.stall["io"]),
            ("io_pressure_full_total_us", self.stall["io"] * 0.4),
            ("memory_pressure_some_total_us", self.stall["memory"]),
            ("memory_pressure_full_total_us", self.stall["memory"] * 0.3),
        ):
            self.pressure_totals[key] += dt * 1e6 * stall / 100

        # Memory: anonymous use follows traffic (and leaks when unwell); the page cache fills slowly.
        target_anon = p.memory_total * (0.15 + 0.15 * utilisation + 0.35 * trouble)
        self.anon += (target_anon - self.anon) * min(1.0, dt / 600)
        self.cached = min(p.memory_total * 0.35 * (1 - trouble * 0.6), self.cached + dt * 2_000)

        # Networks: per device (recv, sent) bytes per second by role.
        states = self.tunnel_states()
        self._note_health(states, dt)
        carrying = [s in ("healthy", "degraded") for s in states]
        n_carrying = sum(carrying)
        tunnelled = 0.7 if n_carrying else 0.0
        lost = 0.7 - tunnelled  # with every tunnel down, tunnelled traffic is dropped at the LAN port
        for dev in p.netdevs:
            if dev.role == "lo":
                recv = sent = 300.0
            elif dev.role in ("lan", "slave"):
                recv, sent = up_rate * dev.share, down * (1 - lost) * dev.share
            elif dev.role == "wan":
                factor = (tunnelled * ESP_OVERHEAD + 0.3) * dev.share
                recv, sent = down * factor + 1_500, up_rate * factor + 1_500
            else:
                index = int(dev.name[4:]) - 1
                share = tunnelled / n_carrying if carrying[index] else 0.0
                recv, sent = down * share, up_rate * share
            self._count_netdev(dev, recv * dt, sent * dt, trouble)

        # Disk: steady logging, more when unwell.
        writes = dt * (3 + 20 * trouble)
        reads = dt * (0.5 + 3 * trouble)
        for i, inc in enumerate(
            (
                reads,
                reads * 0.1,
                reads * 16,
                reads * (0.4 + 4 * trouble),
                writes,
                writes * 0.6,
                writes * 24,
                writes * (0.8 + 6 * trouble),
                (reads + writes) * (0.3 + 3 * trouble),
                (reads + writes) * (0.5 + 8 * trouble),
                dt / 3600,
                dt / 7200,
                dt / 3600 * 20_000,
                dt / 3600 * 2,
                writes * 0.05,
                writes * 0.05 * (0.5 + 4 * trouble),
            )
        ):
            self.disk[i] += inc
        self.mounts_used["/var/log"] += writes * 12_000 * 0.05
        self.mounts_used["/"] += writes * 500

        # Kernel network counters, from the same traffic.
        packets = (down + up_rate) * dt / PACKET_BYTES
        probes = dt * len(p.tunnels)  # one health ping per tunnel per second
        healthy_probes = probes * (1 - (trouble * 0.6 if n_carrying else 1.0))
        snmp = self.snmp
        snmp["snmp_ip_forw_datagrams"] += packets
        snmp["snmp_ip_in_receives"] += packets + probes + dt * 40
        snmp["snmp_ip_in_delivers"] += probes + dt * 40
        snmp["snmp_ip_out_requests"] += probes + dt * 38
        snmp["snmp_ip_in_discards"] += packets * 1e-6 * (1 + 300 * trouble)
        snmp["snmp_ip_out_discards"] += packets * 1e-7 * (1 + 300 * trouble) + lost * packets * 0.01
        snmp["snmp_ip_out_no_routes"] += dt * 0.01 * (1 + 20 * trouble)
        snmp["snmp_ip_in_hdr_errors"] += packets * 1e-8
        snmp["snmp_ip_in_addr_errors"] += dt * 0.002
        snmp["snmp_ip_in_unknown_protos"] += dt * 0.0005
        snmp["snmp_ip_frag_creates"] += packets * 0.002
        snmp["snmp_ip_frag_oks"] += packets * 0.001
        snmp["snmp_ip_frag_fails"] += packets * 1e-6
        snmp["snmp_ip_reasm_reqds"] += packets * 0.002
        snmp["snmp_ip_reasm_oks"] += packets * 0.001
        snmp["snmp_ip_reasm_fails"] += packets * 1e-7
        snmp["snmp_icmp_out_echos"] += probes
        snmp["snmp_icmp_in_echo_reps"] += healthy_probes
        snmp["snmp_icmp_in_echos"] += dt * 0.05
        snmp["snmp_icmp_out_echo_reps"] += dt * 0.05
        snmp["snmp_icmp_in_dest_unreachs"] += dt * (0.02 + 0.5 * trouble)
        snmp["snmp_icmp_out_dest_unreachs"] += dt * (0.01 + 0.2 * trouble)
        snmp["snmp_icmp_in_time_excds"] += dt * 0.005
        snmp["snmp_icmp_out_time_excds"] += dt * 0.002
        snmp["snmp_icmp_in_errors"] += dt * 0.001 * (1 + 50 * trouble)
        snmp["snmp_icmp_in_csum_errors"] += dt * 0.0001
        snmp["snmp_icmp_in_msgs"] = sum(snmp[k] for k in SNMP_COUNTERS[2:14]) + snmp["snmp_icmp_in_echos"]
        snmp["snmp_icmp_out_msgs"] = sum(snmp[k] for k in SNMP_COUNTERS[15:27])
        snmp["snmp_tcp_active_opens"] += dt * 0.8
        snmp["snmp_tcp_passive_opens"] += dt * 0.1
        snmp["snmp_tcp_attempt_fails"] += dt * (0.01 + 0.3 * trouble)
        snmp["snmp_tcp_estab_resets"] += dt * (0.005 + 0.1 * trouble)
        snmp["snmp_tcp_in_segs"] += dt * 35
        snmp["snmp_tcp_out_segs"] += dt * 33
        snmp["snmp_tcp_retrans_segs"] += dt * 33 * (0.002 + 0.08 * trouble)
        snmp["snmp_tcp_in_errs"] += dt * 0.0005 * (1 + 30 * trouble)
        snmp["snmp_tcp_in_csum_errors"] += dt * 0.0001
        snmp["snmp_tcp_out_rsts"] += dt * 0.02
        snmp["snmp_udp_in_datagrams"] += dt * 6
        snmp["snmp_udp_out_datagrams"] += dt * 6
        snmp["snmp_udp_no_ports"] += dt * 0.05
        snmp["snmp_udp_in_errors"] += dt * 0.0002 * (1 + 40 * trouble)

        self.counts["transmit_failures"] += dt / 60 * trouble * 0.5
        self.clock = t

    def _count_netdev(self, dev: Netdev, recv: float, sent: float, trouble: float) -> None:
        c = self.netdev[dev.name]
        recv_packets, sent_packets = recv / PACKET_BYTES, sent / PACKET_BYTES
        loss = 1e-6 + 0.004 * trouble
        c[0] += recv
        c[1] += recv_packets
        c[2] += recv_packets * loss * 0.2
        c[3] += recv_packets * loss
        c[4] += recv_packets * loss * 0.05
        c[5] += recv_packets * loss * 0.01 if dev.role in ("wan", "slave") else 0.0
        c[7] += recv_packets * 0.002 if dev.role != "tunnel" else 0.0
        c[8] += sent
        c[9] += sent_packets
        c[10] += sent_packets * loss * 0.1
        c[11] += sent_packets * loss * 0.5
        c[12] += sent_packets * loss * 0.02
        c[14] += sent_packets * loss * 0.01 if dev.role in ("wan", "slave") else 0.0

    # --- reading it out ---------------------------------------------------------------------------

    def snapshot(self, t: int) -> dict[str, Any]:
        """The full snapshot recorded at t (run_until(t) first)."""
        p, rng = self.p, self.rng
        trouble = self.trouble
        uptime_ms = (t - self.btime) * 1000
        total = p.memory_total
        snap: dict[str, Any] = {
            "count_reclaim_failures": self.counts["reclaim_failures"],
            "count_reclaimed_paths": self.counts["reclaimed_paths"],
            "count_record_failed": self.counts["record_failed"],
            "count_transmit_failures": int(self.counts["transmit_failures"]),
            "t": t,
            "v": self.version,
        }
        snap.update(self._cpu())
        snap.update(self._memory(total, trouble))
        states = self.reported_health()
        unhealthy = [min(60, round(s)) for s in self.unhealthy_s]
        self.worst = [0] * len(p.tunnels)
        self.unhealthy_s = [0.0] * len(p.tunnels)
        snap.update(
            {
                "delta": self.delta,
                "epsilon": self.delta + (1 if self.delta else 0),
                "ha_state": self.ha,
                "ha_value": HA_VALUES[self.ha],
                "kernel_btime": self.btime,
                "kernel_ctxt": int(self.ctxt),
                "kernel_processes": int(self.forks) + 1_200,
                "kernel_processes_blocked": round(trouble * 3 * rng.random()),
                "kernel_processes_running": max(1, round(self.load[0] * rng.uniform(0.8, 1.2))),
                "load_average_1m": round(self.load[0], 2),
                "load_average_5m": round(self.load[1], 2),
                "load_average_15m": round(self.load[2], 2),
                "load_average_cur": max(1, round(self.busy * p.cpu_count)),
                "load_average_max": 180 + 20 * p.cpu_count + round(trouble * 60),
                "platform": p.platform,
                "site_id": p.site_id,
                "system_boot_time_s": self.btime,
                "uptime_total_ms": uptime_ms,
                "uptime_idle_ms": self.cpu["idle"],
                "snmp_ip_default_ttl": 64,
                "snmp_ip_forwarding_enabled": True,
                "snmp_ip_reasm_timeout": 30,
                "snmp_tcp_curr_estab": 12 + round(20 * rng.random()),
                "snmp_tcp_rto_min": 200,
                "snmp_tcp_rto_max": 120_000,
                "snmp_tcp_max_conn": 65_536,
            }
        )
        snap.update(zip(self.snmp, map(int, self.snmp.values()), strict=True))
        for kind, scale, k10, k60, k300, total_key in PRESSURES:
            stall = self.stall[kind] * scale
            snap[k10] = round(min(100.0, stall * (0.8 + 0.45 * rng.random())), 2)
            snap[k60] = round(stall, 2)
            snap[k300] = round(stall * 0.9, 2)
            snap[total_key] = int(self.pressure_totals[total_key])
        snap["bonds"] = [{"name": "bond0", "status": "up"}] if p.lan == "bond0" else []
        snap["disks"] = [self._disk()]
        snap["mounts"] = self._mounts(t)
        snap["netdevs"] = [
            dict(zip(("name", *NETDEV_FIELDS), (dev.name, *map(int, self.netdev[dev.name])), strict=True))
            for dev in p.netdevs
        ]
        snap["interfaces"] = self._interfaces(trouble)
        snap["routes"] = self._routes(states)
        snap["tunnels"] = self._tunnels(states, unhealthy, trouble)
        snap["dhcp_leases"] = self._leases(t)
        snap["thermals"] = self._thermals(trouble) if p.hardware else []
        return snap

    def _cpu(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cpu_count": self.p.cpu_count}
        for name in (*CPU_SPLITS, "idle"):
            out[f"cpu_time_{name}_ms"] = self.cpu[name]
        # guest time is counted within user time (as Linux does); conntel's connectors run no guests
        out["cpu_time_guest_ms"] = 0
        out["cpu_time_guest_nice_ms"] = 0
        return out

    def _memory(self, total: int, trouble: float) -> dict[str, Any]:
        page = 4096
        anon = int(self.anon) // page * page
        cached = int(self.cached) // page * page
        buffers = (total // 200) // page * page
        s_reclaimable = (total // 60) // page * page
        s_unreclaim = (total // 90) // page * page
        kernel_stack = (self.p.cpu_count * 2 + 10) << 20
        page_tables = anon // 250 // page * page
        vmalloc_used = (40 << 20) + (self.p.cpu_count << 20)
        per_cpu = self.p.cpu_count * (1 << 20)
        swap_cached = 0 if self.p.hardware else int(trouble * (64 << 20)) // page * page
        slab = s_reclaimable + s_unreclaim
        kernel = buffers + swap_cached + slab + kernel_stack + page_tables + vmalloc_used + per_cpu
        cached = max(0, min(cached, (total - total // 50 - kernel - anon) // page * page))  # keep 2 % free
        free = total - (kernel + cached + anon)
        shmem = min(cached // 4, 64 << 20) // page * page
        swap_used = 0 if self.p.hardware else int(trouble * (512 << 20)) // page * page
        dirty = int(self.rng.uniform(0.1, 2.0) * (1 << 20)) // page * page
        return {
            "memory_total_bytes": total,
            "memory_free_bytes": free,
            "memory_low_total_bytes": total,
            "memory_low_free_bytes": free,
            "memory_high_total_bytes": 0,
            "memory_high_free_bytes": 0,
            "memory_available_bytes": free + buffers + cached - shmem + s_reclaimable,
            "memory_buffers_bytes": buffers,
            "memory_cached_bytes": cached,
            "memory_swap_cached_bytes": swap_cached,
            "memory_active_bytes": anon * 7 // 10 + cached // 2 // page * page,
            "memory_inactive_bytes": anon - anon * 7 // 10 + buffers + cached - cached // 2 // page * page,
            "memory_anon_pages_bytes": anon,
            "memory_anon_hugepages_bytes": anon // 8 // (2 << 20) * (2 << 20),
            "memory_mapped_bytes": cached // 3 // page * page,
            "memory_shmem_bytes": shmem,
            "memory_shmem_hugepages_bytes": 0,
            "memory_shmem_pmd_mapped_bytes": 0,
            "memory_slab_bytes": slab,
            "memory_s_reclaimable_bytes": s_reclaimable,
            "memory_s_unreclaim_bytes": s_unreclaim,
            "memory_k_reclaimable_bytes": s_reclaimable,
            "memory_kernel_stack_bytes": kernel_stack,
            "memory_page_tables_bytes": page_tables,
            "memory_secondary_page_tables_bytes": 0,
            "memory_per_cpu_bytes": per_cpu,
            "memory_vmalloc_total_bytes": 34_359_738_367 * 1024,
            "memory_vmalloc_used_bytes": vmalloc_used,
            "memory_vmalloc_chunk_bytes": 0,
            "memory_dirty_bytes": dirty,
            "memory_writeback_bytes": 0,
            "memory_writeback_tmp_bytes": 0,
            "memory_bounce_bytes": 0,
            "memory_commit_limit_bytes": total // 2 + self.p.swap_total,
            "memory_committed_as_bytes": anon + shmem + (256 << 20),
            "memory_swap_total_bytes": self.p.swap_total,
            "memory_swap_free_bytes": self.p.swap_total - swap_used,
            "memory_z_swap_bytes": 0,
            "memory_z_swapped_bytes": 0,
            "memory_cma_total_bytes": 0,
            "memory_cma_free_bytes": 0,
            "memory_hugepages_total": 0,
            "memory_hugepages_free": 0,
            "memory_hugepages_rsvd": 0,
            "memory_hugepages_surp": 0,
            "memory_hugepagesize_bytes": 2 << 20,
        }

    def _disk(self) -> dict[str, Any]:
        disk: dict[str, Any] = {"name": self.p.disk, "major": self.p.disk_major, "minor": 0}
        for name, value in zip(DISK_FIELDS, self.disk, strict=True):
            disk[name] = int(value)
        disk["in_progress"] = round(self.trouble * 4 * self.rng.random())
        return disk

    def _mounts(self, t: int) -> list[dict[str, Any]]:
        p = self.p
        root_total = p.disk_bytes * 3 // 10 // 4096 * 4096
        log_total = p.disk_bytes * 6 // 10 // 4096 * 4096
        base_root = root_total * 0.35
        log_used = self.mounts_used["/var/log"]
        if log_used > log_total * 0.6:  # the connector reclaims old logs
            self.mounts_used["/var/log"] = log_used = log_total * 0.2
            self.counts["reclaimed_paths"] += self.rng.randint(20, 200)
        rows = [
            ("efi", "/boot/efi", "vfat", 512 << 20, (512 << 20) * 0.02, 0, False),
            ("root", "/", "ext4", root_total, base_root + min(self.mounts_used["/"], root_total * 0.1), 1 << 20, True),
            ("log", "/var/log", "ext4", log_total, log_used + log_total * 0.01, 4 << 20, False),
            ("run", "/run", "tmpfs", p.memory_total // 10 // 4096 * 4096, 8 << 20, 0, False),
        ]
        mounts = []
        for name, point, fs, total, used, inodes, read_only in rows:
            total = int(total)
            used = int(used) // 4096 * 4096
            mount: dict[str, Any] = {
                "name": name,
                "mount_point": point,
                "file_system": fs,
                "kind": "SSD" if fs != "tmpfs" else "RAM",
                "total_bytes": total,
                "available_bytes": max(0, total - used),
                "is_read_only": read_only,
                "is_removable": False,
            }
            if inodes:
                mount["total_inodes"] = inodes
                mount["available_inodes"] = inodes - min(inodes, used // 65_536 + 4_000)
            mounts.append(mount)
        return mounts

    def _interfaces(self, trouble: float) -> list[dict[str, Any]]:
        p = self.p
        score = max(0, round(100 - 70 * trouble))
        reasons = []
        if trouble > 0.2:
            reasons.append("packet loss")
        if trouble > 0.4:
            reasons.append("high latency")
        out: list[dict[str, Any]] = [
            {
                "name": "lo",
                "operstate": "UNKNOWN",
                "ip_addresses": [{"interface_name": "lo", "ip_address": "127.0.0.1/8"}],
            }
        ]
        for name, address, _ in p.wans:
            out.append(
                {
                    "name": name,
                    "operstate": "UP",
                    "speed": 1_000_000_000,
                    "health_score": score,
                    "health_reason": ",".join(reasons),
                    "ip_addresses": [{"interface_name": name, "ip_address": address}],
                }
            )
        out.append(
            {
                "name": p.lan,
                "operstate": "UP",
                "speed": 2_000_000_000 if p.lan == "bond0" else 1_000_000_000,
                "health_score": 100,
                "health_reason": "",
                "ip_addresses": [{"interface_name": p.lan, "ip_address": p.lan_address}],
            }
        )
        return out

    def _routes(self, states: list[str]) -> list[dict[str, Any]]:
        p = self.p
        routes: list[dict[str, Any]] = []
        for metric, (name, _, gateway) in enumerate(p.wans):
            routes.append(
                {
                    "destination": "default",
                    "interface_name": name,
                    "kind": "breakout",
                    "metric": 100 * (metric + 1),
                    "gateway": gateway,
                }
            )
        routes.append(
            {
                "destination": p.lan_address.replace(".1/24", ".0/24"),
                "interface_name": p.lan,
                "kind": "lan",
                "metric": 0,
            }
        )
        up = [(tid, name) for (tid, name, _), s in zip(p.tunnels, states, strict=True) if s in ("healthy", "degraded")]
        for _, name in up:
            routes.append(
                {
                    "destination": "10.0.0.0/8",
                    "interface_name": name,
                    "kind": "tunnel",
                    "metric": 10,
                    "weight": 100 // len(up),
                }
            )
        return routes

    def _tunnels(self, states: list[str], unhealthy: list[int], trouble: float) -> list[dict[str, Any]]:
        p, rng = self.p, self.rng
        wan_ip = p.wans[0][1].split("/")[0]
        out = []
        for (tunnel_id, name, remote), state, failed in zip(p.tunnels, states, unhealthy, strict=True):
            tunnel: dict[str, Any] = {
                "tunnel_id": tunnel_id,
                "interface_name": name,
                "health_state": state,
                "health_value": HEALTH_VALUES[state],
                "natd_target": f"{remote}:4500",
            }
            if state != "unknown":
                failed = max(failed, 1) if state != "healthy" else failed
                tunnel.update(
                    {
                        "recent_healthy_pings": 60 - failed,
                        "recent_unhealthy_pings": failed,
                        "natd_state": 0 if state != "down" else 2,
                        "natd_result": f"{wan_ip}:4500",
                        "probed_mtu": 1_436 if state != "down" else 0,
                    }
                )
                if state != "down":
                    latency = 18 + (hash_unit(tunnel_id) * 30) + 120 * trouble
                    tunnel["latency_ms"] = round(latency * rng.uniform(0.9, 1.15), 2)
                    tunnel["jitter_ms"] = round(latency * (0.04 + 0.3 * trouble) * rng.uniform(0.5, 1.5), 2)
            out.append(tunnel)
        return out

    def _leases(self, t: int) -> list[dict[str, Any]]:
        p = self.p
        out = []
        lan_net = p.lan_address.rsplit(".", 1)[0]
        for index, (hostname, mac, client_id) in enumerate(p.clients):
            expiry = self.leases.get(index)
            if expiry is None or expiry - t < p.lease_time / 2:  # clients renew at half time
                expiry = t + p.lease_time - self.rng.randint(0, 59)
                self.leases[index] = expiry
            out.append(
                {
                    "client_id": client_id,
                    "hostname": hostname,
                    "interface_name": p.lan,
                    "ip_address": f"{lan_net}.{100 + index}",
                    "mac_address": mac,
                    "expiry_time": int(expiry),
                }
            )
        return out

    def _thermals(self, trouble: float) -> list[dict[str, Any]]:
        base = 38 + 30 * self.busy + 10 * trouble
        out = [
            {
                "label": "cpu_package",
                "current_celcius": round(base + self.rng.uniform(-1, 1), 1),
                "max_celcius": 95.0,
                "critical_celcius": 105.0,
            }
        ]
        for core in range(min(self.p.cpu_count, 4)):
            out.append(
                {
                    "label": f"core{core}",
                    "current_celcius": round(base - 2 + self.rng.uniform(-2, 2), 1),
                    "max_celcius": 95.0,
                    "critical_celcius": 105.0,
                }
            )
        out.append(
            {"label": "nvme_composite", "current_celcius": round(34 + 8 * self.busy, 1), "critical_celcius": 84.0}
        )
        return out


def hash_unit(text: str) -> float:
    """A stable number in [0, 1) from a hex id (Python's hash() varies between runs)."""
    return int(text[:8], 16) / 2**32


def connector_snapshots(
    events: Iterator[dict[str, Any]], rng: random.Random, start: int, interval: int = INTERVAL
) -> Iterator[dict[str, Any]]:
    """An endless stream of one connector's snapshots from `start` on, alongside its event stream.

    Snapshots fall every `interval` seconds at a per-connector offset into the minute; none is
    taken while the connector is rebooting.
    """
    metrics = ConnectorMetrics(rng, make_profile(rng))
    t = start + rng.randint(0, interval - 1)
    pending = next(events)
    while True:
        while pending["t"] <= t:
            metrics.observe(pending)
            pending = next(events)
        metrics.run_until(t)
        if metrics.up:
            yield metrics.snapshot(t)
        t += interval


def metrics_random(events_seed: float) -> random.Random:
    """The metrics' own random source for a connector whose events come from Random(events_seed)."""
    return random.Random(f"metrics:{events_seed!r}")


def fleet_snapshots(seeds: list[float], start: int, failure_rate: float) -> list[Iterator[dict[str, Any]]]:
    """Each connector's snapshot stream, for connectors whose events come from Random(seed)."""
    return [
        connector_snapshots(
            lifecycles.connector_events(random.Random(seed), start, failure_rate), metrics_random(seed), start
        )
        for seed in seeds
    ]


def sample_snapshots(seed: int, connectors: int, count: int) -> Iterator[dict[str, Any]]:
    """`count` snapshots of a simulated fleet of `connectors`, minute by minute, as a fleet sends them."""
    if connectors < 1:
        return
    rng = random.Random(seed)
    streams = fleet_snapshots([rng.random() for _ in range(connectors)], SAMPLE_START, 0.05)
    produced = 0
    while True:
        for stream in streams:
            if produced == count:
                return
            yield next(stream)
            produced += 1
