"""Snapshots: what a connector reports about itself at a moment (CONTRACT §8).

The field tree is the official SDKs' (PyPI cloudflare 5.9.0 SnapshotGetResponse,
npm cloudflare 7.3.0), held here as one table per object: the single source of
truth that validation and the OpenAPI document are built from. Every known field
is checked against its type at any depth (the error names the path, e.g.
`$[0].netdevs[3].recv_bytes`); unknown fields are accepted, since upstream adds
fields often and a newer connector must not be refused by an older conntel, and
a snapshot is stored as it was sent. Upstream spellings are kept
(`critical_celcius`).

Where the SDK only says "number", the kind below says what makes sense: counters,
sizes, times and gauges are never negative; percentages lie in 0..100; the
HA, tunnel-health and NAT-detector values are the small legends their
descriptions give; temperatures may be below zero. `t` is whole seconds since
the epoch, like an event's.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, get_args, get_origin

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from conntel import jsontext
from conntel.events import NO_NUL, BatchTooLarge, InvalidBatch, check_unique_keys, decode_exact, decode_json
from conntel.health import tunnel_down
from conntel.ids import MAX_SEQUENCE

_LARGEST = sys.float_info.max  # a bound that refuses infinities (`1e999` decodes to inf)

COUNT = Annotated[float, Meta(ge=0, le=_LARGEST)]  # a counter, size, duration or gauge
PERCENT = Annotated[float, Meta(ge=0, le=100)]
NUMBER = Annotated[float, Meta(ge=-_LARGEST, le=_LARGEST)]  # any finite number (temperatures)
TEXT = Annotated[str, Meta(max_length=1024, pattern=NO_NUL)]
FLAG = bool
TIME = Annotated[int, Meta(ge=0, le=MAX_SEQUENCE)]  # whole seconds since the epoch


def level(highest: int) -> Any:
    """A value from a small legend, 0..highest (a number, as the SDK types it)."""
    return Annotated[float, Meta(ge=0, le=highest)]


class F(NamedTuple):
    """One field of a snapshot object, as the SDK types and documents it."""

    name: str
    type: Any
    required: bool
    description: str


class Many(NamedTuple):
    """An array of one nested object type, built with the tree (struct_of)."""

    name: str
    fields: tuple[F, ...]


def _as_declared(declared: Any) -> Any:
    return declared


def struct_of(name: str, fields: tuple[F, ...], kind: Callable[[Any], Any] = _as_declared) -> type[Struct]:
    """A validating Struct for one object of the tree: required fields first, unknown fields allowed; each
    field's type, at any depth, `kind` of the type declared (a variant of the tree: see _fast_kind)."""
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for field in sorted(fields, key=lambda f: not f.required):
        typ = field.type
        if isinstance(typ, Many):
            typ = list[struct_of(typ.name, typ.fields, kind)]  # type: ignore[misc]  # a type built at import time
        else:
            typ = kind(typ)
        if field.description:
            typ = Annotated[typ, Meta(description=field.description)]
        spec.append((field.name, typ) if field.required else (field.name, typ | UnsetType, UNSET))
    # gc=False: a decoded tree holds no cycle, and thousands of tracked objects a batch set off the collector
    # (5.5 % of a server's time ingesting snapshots, measured: bench/RESULTS.md).
    return msgspec.defstruct(name, spec, kw_only=True, omit_defaults=True, gc=False)


def many(name: str, fields: tuple[F, ...]) -> Many:
    """An array of one nested object type."""
    return Many(name, fields)


INTERFACE_IP_ADDRESS = (
    F("interface_name", TEXT, True, "Name of the network interface"),
    F("ip_address", TEXT, True, "IP address of the network interface"),
)

BOND = (
    F("name", TEXT, True, "Name of the network interface"),
    F("status", TEXT, True, "Current status of the network interface"),
)

DHCP_LEASE = (
    F("client_id", TEXT, True, "Client ID of the device the IP Address was leased to"),
    F("expiry_time", COUNT, True, "Expiry time of the DHCP lease (seconds since the Unix epoch)"),
    F("hostname", TEXT, True, "Hostname of the device the IP Address was leased to"),
    F("interface_name", TEXT, True, "Name of the network interface"),
    F("ip_address", TEXT, True, "IP Address that was leased"),
    F("mac_address", TEXT, True, "MAC Address of the device the IP Address was leased to"),
)

DISK = (
    F("in_progress", COUNT, True, "I/Os currently in progress"),
    F("major", COUNT, True, "Device major number"),
    F("merged", COUNT, True, "Reads merged"),
    F("minor", COUNT, True, "Device minor number"),
    F("name", TEXT, True, "Device name"),
    F("reads", COUNT, True, "Reads completed successfully"),
    F("sectors_read", COUNT, True, "Sectors read successfully"),
    F("sectors_written", COUNT, True, "Sectors written successfully"),
    F("time_in_progress_ms", COUNT, True, "Time spent doing I/Os (milliseconds)"),
    F("time_reading_ms", COUNT, True, "Time spent reading (milliseconds)"),
    F("time_writing_ms", COUNT, True, "Time spent writing (milliseconds)"),
    F("weighted_time_in_progress_ms", COUNT, True, "Weighted time spent doing I/Os (milliseconds)"),
    F("writes", COUNT, True, "Writes completed"),
    F("writes_merged", COUNT, True, "Writes merged"),
    F("discards", COUNT, False, "Discards completed successfully"),
    F("discards_merged", COUNT, False, "Discards merged"),
    F("flushes", COUNT, False, "Flushes completed successfully"),
    F("sectors_discarded", COUNT, False, "Sectors discarded"),
    F("time_discarding_ms", COUNT, False, "Time spent discarding (milliseconds)"),
    F("time_flushing_ms", COUNT, False, "Time spent flushing (milliseconds)"),
)

INTERFACE = (
    F("name", TEXT, True, "Name of the network interface"),
    F("operstate", TEXT, True, "UP/DOWN state of the network interface"),
    F("health_reason", TEXT, False, "Comma-separated list of reasons for health score"),
    F("health_score", PERCENT, False, "Aggregate health score (0-100)"),
    F("ip_addresses", many("InterfaceIPAddress", INTERFACE_IP_ADDRESS), False, ""),
    F("speed", COUNT, False, "Speed of the network interface (bits per second)"),
)

MOUNT = (
    F("file_system", TEXT, True, "File system on disk (EXT4, NTFS, etc.)"),
    F("kind", TEXT, True, "Kind of disk (HDD, SSD, etc.)"),
    F("mount_point", TEXT, True, "Path where disk is mounted"),
    F("name", TEXT, True, "Name of the disk mount"),
    F("available_bytes", COUNT, False, "Available disk size (bytes)"),
    F("available_inodes", COUNT, False, "Available inodes on filesystem"),
    F("is_read_only", FLAG, False, "Determines whether the disk is read-only"),
    F("is_removable", FLAG, False, "Determines whether the disk is removable"),
    F("total_bytes", COUNT, False, "Total disk size (bytes)"),
    F("total_inodes", COUNT, False, "Total inodes on filesystem"),
)

NETDEV = (
    F("name", TEXT, True, "Name of the network device"),
    F("recv_bytes", COUNT, True, "Total bytes received"),
    F("recv_compressed", COUNT, True, "Compressed packets received"),
    F("recv_drop", COUNT, True, "Packets dropped"),
    F("recv_errs", COUNT, True, "Bad packets received"),
    F("recv_fifo", COUNT, True, "FIFO overruns"),
    F("recv_frame", COUNT, True, "Frame alignment errors"),
    F("recv_multicast", COUNT, True, "Multicast packets received"),
    F("recv_packets", COUNT, True, "Total packets received"),
    F("sent_bytes", COUNT, True, "Total bytes transmitted"),
    F("sent_carrier", COUNT, True, "Number of packets not sent due to carrier errors"),
    F("sent_colls", COUNT, True, "Number of collisions"),
    F("sent_compressed", COUNT, True, "Number of compressed packets transmitted"),
    F("sent_drop", COUNT, True, "Number of packets dropped during transmission"),
    F("sent_errs", COUNT, True, "Number of transmission errors"),
    F("sent_fifo", COUNT, True, "FIFO overruns"),
    F("sent_packets", COUNT, True, "Total packets transmitted"),
)

ROUTE = (
    F("destination", TEXT, True, "Route destination as default or an IPv4 CIDR"),
    F("interface_name", TEXT, True, "Interface used by the next hop"),
    F("kind", TEXT, True, "Routing decision type: tunnel, breakout, or lan"),
    F("metric", COUNT, True, "Route metric; lower metrics are preferred"),
    F("gateway", TEXT, False, "Gateway address for the next hop"),
    F("weight", COUNT, False, "Relative weight within an equal-cost route"),
)

THERMAL = (
    F("label", TEXT, True, "Sensor identifier for the component"),
    F("critical_celcius", NUMBER, False, "Critical failure temperature of the component (degrees Celsius)"),
    F("current_celcius", NUMBER, False, "Current temperature of the component (degrees Celsius)"),
    F("max_celcius", NUMBER, False, "Maximum temperature of the component (degrees Celsius)"),
)

TUNNEL = (
    F("health_state", TEXT, True, "Name of tunnel health state (unknown, healthy, degraded, down)"),
    F(
        "health_value",
        level(3),
        True,
        "Numeric value associated with tunnel state (0 = unknown, 1 = healthy, 2 = degraded, 3 = down)",
    ),
    F("interface_name", TEXT, True, "The tunnel interface name (i.e. xfrm1, xfrm3.99, etc.)"),
    F("tunnel_id", TEXT, True, "Tunnel identifier"),
    F("jitter_ms", COUNT, False, "Tunnel round-trip latency variation in milliseconds"),
    F("latency_ms", COUNT, False, "50th percentile tunnel round-trip latency in milliseconds"),
    F("natd_result", TEXT, False, "Public socket address returned by the NAT detector"),
    F("natd_state", level(2), False, "Numeric NAT detector state (0 = detected, 1 = missing result, 2 = stale result)"),
    F("natd_target", TEXT, False, "Target socket address probed by the NAT detector, using the detector source port"),
    F("probed_mtu", COUNT, False, "MTU as measured between the two ends of the tunnel"),
    F("recent_healthy_pings", COUNT, False, "Number of recent healthy pings for this tunnel"),
    F("recent_unhealthy_pings", COUNT, False, "Number of recent unhealthy pings for this tunnel"),
)

SNAPSHOT = (
    F("count_reclaim_failures", COUNT, True, "Count of failures to reclaim space"),
    F("count_reclaimed_paths", COUNT, True, "Count of reclaimed paths"),
    F("count_record_failed", COUNT, True, "Count of failed snapshot recordings"),
    F("count_transmit_failures", COUNT, True, "Count of failed snapshot transmissions"),
    F("t", TIME, True, "Time the Snapshot was recorded (seconds since the Unix epoch)"),
    F("v", TEXT, True, "Version"),
    F("bonds", many("Bond", BOND), False, ""),
    F("dhcp_leases", many("DHCPLease", DHCP_LEASE), False, ""),
    F("disks", many("Disk", DISK), False, ""),
    F("interfaces", many("Interface", INTERFACE), False, ""),
    F("mounts", many("Mount", MOUNT), False, ""),
    F("netdevs", many("Netdev", NETDEV), False, ""),
    F("routes", many("Route", ROUTE), False, ""),
    F("thermals", many("Thermal", THERMAL), False, ""),
    F("tunnels", many("Tunnel", TUNNEL), False, ""),
    F("cpu_count", COUNT, False, "Count of processors/cores"),
    F("cpu_pressure_10s", PERCENT, False, "Percentage of time over a 10 second window that tasks were stalled"),
    F("cpu_pressure_300s", PERCENT, False, "Percentage of time over a 5 minute window that tasks were stalled"),
    F("cpu_pressure_60s", PERCENT, False, "Percentage of time over a 1 minute window that tasks were stalled"),
    F("cpu_pressure_total_us", COUNT, False, "Total stall time (microseconds)"),
    F("cpu_time_guest_ms", COUNT, False, "Time spent running a virtual CPU or guest OS (milliseconds)"),
    F("cpu_time_guest_nice_ms", COUNT, False, "Time spent running a niced guest (milliseconds)"),
    F("cpu_time_idle_ms", COUNT, False, "Time spent in idle state (milliseconds)"),
    F("cpu_time_iowait_ms", COUNT, False, "Time spent wait for I/O to complete (milliseconds)"),
    F("cpu_time_irq_ms", COUNT, False, "Time spent servicing interrupts (milliseconds)"),
    F("cpu_time_nice_ms", COUNT, False, "Time spent in low-priority user mode (milliseconds)"),
    F("cpu_time_softirq_ms", COUNT, False, "Time spent servicing softirqs (milliseconds)"),
    F("cpu_time_steal_ms", COUNT, False, "Time stolen (milliseconds)"),
    F("cpu_time_system_ms", COUNT, False, "Time spent in system mode (milliseconds)"),
    F("cpu_time_user_ms", COUNT, False, "Time spent in user mode (milliseconds)"),
    F("io_pressure_full_10s", PERCENT, False, "Percentage of time over a 10 second window that all tasks were stalled"),
    F("io_pressure_full_300s", PERCENT, False, "Percentage of time over a 5 minute window that all tasks were stalled"),
    F("io_pressure_full_60s", PERCENT, False, "Percentage of time over a 1 minute window that all tasks were stalled"),
    F("io_pressure_full_total_us", COUNT, False, "Total stall time (microseconds)"),
    F(
        "io_pressure_some_10s",
        PERCENT,
        False,
        "Percentage of time over a 10 second window that some tasks were stalled",
    ),
    F(
        "io_pressure_some_300s",
        PERCENT,
        False,
        "Percentage of time over a 3 minute window that some tasks were stalled",
    ),
    F("io_pressure_some_60s", PERCENT, False, "Percentage of time over a 1 minute window that some tasks were stalled"),
    F("io_pressure_some_total_us", COUNT, False, "Total stall time (microseconds)"),
    F("kernel_btime", COUNT, False, "Boot time (seconds since Unix epoch)"),
    F("kernel_ctxt", COUNT, False, "Number of context switches that the system underwent"),
    F("kernel_processes", COUNT, False, "Number of forks since boot"),
    F("kernel_processes_blocked", COUNT, False, "Number of processes blocked waiting for I/O"),
    F("kernel_processes_running", COUNT, False, "Number of processes in runnable state"),
    F("load_average_15m", COUNT, False, "The fifteen-minute load average"),
    F("load_average_1m", COUNT, False, "The one-minute load average"),
    F("load_average_5m", COUNT, False, "The five-minute load average"),
    F("load_average_cur", COUNT, False, "Number of currently runnable kernel scheduling entities"),
    F("load_average_max", COUNT, False, "Number of kernel scheduling entities that currently exist on the system"),
    F("memory_active_bytes", COUNT, False, "Memory that has been used more recently"),
    F("memory_anon_hugepages_bytes", COUNT, False, "Non-file backed huge pages mapped into user-space page tables"),
    F("memory_anon_pages_bytes", COUNT, False, "Non-file backed pages mapped into user-space page tables"),
    F("memory_available_bytes", COUNT, False, "Estimate of how much memory is available for starting new applications"),
    F("memory_bounce_bytes", COUNT, False, "Memory used for block device bounce buffers"),
    F("memory_buffers_bytes", COUNT, False, "Relatively temporary storage for raw disk blocks"),
    F("memory_cached_bytes", COUNT, False, "In-memory cache for files read from the disk"),
    F("memory_cma_free_bytes", COUNT, False, "Free CMA (Contiguous Memory Allocator) pages"),
    F("memory_cma_total_bytes", COUNT, False, "Total CMA (Contiguous Memory Allocator) pages"),
    F(
        "memory_commit_limit_bytes",
        COUNT,
        False,
        "Total amount of memory currently available to be allocated on the system",
    ),
    F("memory_committed_as_bytes", COUNT, False, "Amount of memory presently allocated on the system"),
    F("memory_dirty_bytes", COUNT, False, "Memory which is waiting to get written back to the disk"),
    F("memory_free_bytes", COUNT, False, "The sum of LowFree and HighFree"),
    F("memory_high_free_bytes", COUNT, False, "Amount of free highmem"),
    F("memory_high_total_bytes", COUNT, False, "Total amount of highmem"),
    F("memory_hugepages_free", COUNT, False, "The number of huge pages in the pool that are not yet allocated"),
    F(
        "memory_hugepages_rsvd",
        COUNT,
        False,
        "Number of huge pages for which a commitment has been made, but no allocation has yet been made",
    ),
    F("memory_hugepages_surp", COUNT, False, "Number of huge pages in the pool above the threshold"),
    F("memory_hugepages_total", COUNT, False, "The size of the pool of huge pages"),
    F("memory_hugepagesize_bytes", COUNT, False, "The size of huge pages"),
    F("memory_inactive_bytes", COUNT, False, "Memory which has been less recently used"),
    F(
        "memory_k_reclaimable_bytes",
        COUNT,
        False,
        "Kernel allocations that the kernel will attempt to reclaim under memory pressure",
    ),
    F("memory_kernel_stack_bytes", COUNT, False, "Amount of memory allocated to kernel stacks"),
    F("memory_low_free_bytes", COUNT, False, "Amount of free lowmem"),
    F("memory_low_total_bytes", COUNT, False, "Total amount of lowmem"),
    F("memory_mapped_bytes", COUNT, False, "Files which have been mapped into memory"),
    F("memory_page_tables_bytes", COUNT, False, "Amount of memory dedicated to the lowest level of page tables"),
    F(
        "memory_per_cpu_bytes",
        COUNT,
        False,
        "Memory allocated to the per-cpu alloctor used to back per-cpu allocations",
    ),
    F(
        "memory_pressure_full_10s",
        PERCENT,
        False,
        "Percentage of time over a 10 second window that all tasks were stalled",
    ),
    F(
        "memory_pressure_full_300s",
        PERCENT,
        False,
        "Percentage of time over a 5 minute window that all tasks were stalled",
    ),
    F(
        "memory_pressure_full_60s",
        PERCENT,
        False,
        "Percentage of time over a 1 minute window that all tasks were stalled",
    ),
    F("memory_pressure_full_total_us", COUNT, False, "Total stall time (microseconds)"),
    F(
        "memory_pressure_some_10s",
        PERCENT,
        False,
        "Percentage of time over a 10 second window that some tasks were stalled",
    ),
    F(
        "memory_pressure_some_300s",
        PERCENT,
        False,
        "Percentage of time over a 5 minute window that some tasks were stalled",
    ),
    F(
        "memory_pressure_some_60s",
        PERCENT,
        False,
        "Percentage of time over a 1 minute window that some tasks were stalled",
    ),
    F("memory_pressure_some_total_us", COUNT, False, "Total stall time (microseconds)"),
    F("memory_s_reclaimable_bytes", COUNT, False, "Part of slab that can be reclaimed on memory pressure"),
    F("memory_s_unreclaim_bytes", COUNT, False, "Part of slab that cannot be reclaimed on memory pressure"),
    F(
        "memory_secondary_page_tables_bytes",
        COUNT,
        False,
        "Amount of memory dedicated to the lowest level of page tables",
    ),
    F("memory_shmem_bytes", COUNT, False, "Amount of memory consumed by tmpfs"),
    F("memory_shmem_hugepages_bytes", COUNT, False, "Memory used by shmem and tmpfs, allocated with huge pages"),
    F("memory_shmem_pmd_mapped_bytes", COUNT, False, "Shared memory mapped into user space with huge pages"),
    F("memory_slab_bytes", COUNT, False, "In-kernel data structures cache"),
    F("memory_swap_cached_bytes", COUNT, False, "Memory swapped out and back in while still in swap file"),
    F("memory_swap_free_bytes", COUNT, False, "Amount of swap space that is currently unused"),
    F("memory_swap_total_bytes", COUNT, False, "Total amount of swap space available"),
    F("memory_total_bytes", COUNT, False, "Total usable RAM"),
    F("memory_vmalloc_chunk_bytes", COUNT, False, "Largest contiguous block of vmalloc area which is free"),
    F("memory_vmalloc_total_bytes", COUNT, False, "Total size of vmalloc memory area"),
    F("memory_vmalloc_used_bytes", COUNT, False, "Amount of vmalloc area which is used"),
    F("memory_writeback_bytes", COUNT, False, "Memory which is actively being written back to the disk"),
    F("memory_writeback_tmp_bytes", COUNT, False, "Memory used by FUSE for temporary writeback buffers"),
    F("memory_z_swap_bytes", COUNT, False, "Memory consumed by the zswap backend, compressed"),
    F("memory_z_swapped_bytes", COUNT, False, "Amount of anonymous memory stored in zswap, uncompressed"),
    F("snmp_icmp_in_addr_mask_reps", COUNT, False, "Number of ICMP Address Mask Reply messages received"),
    F("snmp_icmp_in_addr_masks", COUNT, False, "Number of ICMP Address Mask Request messages received"),
    F("snmp_icmp_in_csum_errors", COUNT, False, "Number of ICMP messages received with bad checksums"),
    F("snmp_icmp_in_dest_unreachs", COUNT, False, "Number of ICMP Destination Unreachable messages received"),
    F("snmp_icmp_in_echo_reps", COUNT, False, "Number of ICMP Echo Reply messages received"),
    F("snmp_icmp_in_echos", COUNT, False, "Number of ICMP Echo (request) messages received"),
    F("snmp_icmp_in_errors", COUNT, False, "Number of ICMP messages received with ICMP-specific errors"),
    F("snmp_icmp_in_msgs", COUNT, False, "Number of ICMP messages received"),
    F("snmp_icmp_in_parm_probs", COUNT, False, "Number of ICMP Parameter Problem messages received"),
    F("snmp_icmp_in_redirects", COUNT, False, "Number of ICMP Redirect messages received"),
    F("snmp_icmp_in_src_quenchs", COUNT, False, "Number of ICMP Source Quench messages received"),
    F("snmp_icmp_in_time_excds", COUNT, False, "Number of ICMP Time Exceeded messages received"),
    F("snmp_icmp_in_timestamp_reps", COUNT, False, "Number of ICMP Address Mask Request messages received"),
    F("snmp_icmp_in_timestamps", COUNT, False, "Number of ICMP Timestamp (request) messages received"),
    F("snmp_icmp_out_addr_mask_reps", COUNT, False, "Number of ICMP Address Mask Reply messages sent"),
    F("snmp_icmp_out_addr_masks", COUNT, False, "Number of ICMP Address Mask Request messages sent"),
    F("snmp_icmp_out_dest_unreachs", COUNT, False, "Number of ICMP Destination Unreachable messages sent"),
    F("snmp_icmp_out_echo_reps", COUNT, False, "Number of ICMP Echo Reply messages sent"),
    F("snmp_icmp_out_echos", COUNT, False, "Number of ICMP Echo (request) messages sent"),
    F(
        "snmp_icmp_out_errors",
        COUNT,
        False,
        "Number of ICMP messages which this entity did not send due to ICMP-specific errors",
    ),
    F("snmp_icmp_out_msgs", COUNT, False, "Number of ICMP messages attempted to send"),
    F("snmp_icmp_out_parm_probs", COUNT, False, "Number of ICMP Parameter Problem messages sent"),
    F("snmp_icmp_out_redirects", COUNT, False, "Number of ICMP Redirect messages sent"),
    F("snmp_icmp_out_src_quenchs", COUNT, False, "Number of ICMP Source Quench messages sent"),
    F("snmp_icmp_out_time_excds", COUNT, False, "Number of ICMP Time Exceeded messages sent"),
    F("snmp_icmp_out_timestamp_reps", COUNT, False, "Number of ICMP Timestamp Reply messages sent"),
    F("snmp_icmp_out_timestamps", COUNT, False, "Number of ICMP Timestamp (request) messages sent"),
    F("snmp_ip_default_ttl", COUNT, False, "Default value of the Time-To-Live field of the IP header"),
    F("snmp_ip_forw_datagrams", COUNT, False, "Number of datagrams forwarded to their final destination"),
    F("snmp_ip_forwarding_enabled", FLAG, False, "Set when acting as an IP gateway"),
    F("snmp_ip_frag_creates", COUNT, False, "Number of datagrams generated by fragmentation"),
    F("snmp_ip_frag_fails", COUNT, False, "Number of datagrams discarded because fragmentation failed"),
    F("snmp_ip_frag_oks", COUNT, False, "Number of datagrams successfully fragmented"),
    F("snmp_ip_in_addr_errors", COUNT, False, "Number of input datagrams discarded due to errors in the IP address"),
    F("snmp_ip_in_delivers", COUNT, False, "Number of input datagrams successfully delivered to IP user-protocols"),
    F("snmp_ip_in_discards", COUNT, False, "Number of input datagrams otherwise discarded"),
    F("snmp_ip_in_hdr_errors", COUNT, False, "Number of input datagrams discarded due to errors in the IP header"),
    F("snmp_ip_in_receives", COUNT, False, "Number of input datagrams received from interfaces"),
    F(
        "snmp_ip_in_unknown_protos",
        COUNT,
        False,
        "Number of input datagrams discarded due unknown or unsupported protocol",
    ),
    F("snmp_ip_out_discards", COUNT, False, "Number of output datagrams otherwise discarded"),
    F("snmp_ip_out_no_routes", COUNT, False, "Number of output datagrams discarded because no route matched"),
    F("snmp_ip_out_requests", COUNT, False, "Number of datagrams supplied for transmission"),
    F("snmp_ip_reasm_fails", COUNT, False, "Number of failures detected by the reassembly algorithm"),
    F("snmp_ip_reasm_oks", COUNT, False, "Number of datagrams successfully reassembled"),
    F("snmp_ip_reasm_reqds", COUNT, False, "Number of fragments received which needed to be reassembled"),
    F("snmp_ip_reasm_timeout", COUNT, False, "Number of seconds fragments are held while awaiting reassembly"),
    F("snmp_tcp_active_opens", COUNT, False, "Number of times TCP transitions to SYN-SENT from CLOSED"),
    F(
        "snmp_tcp_attempt_fails",
        COUNT,
        False,
        "Number of times TCP transitions to CLOSED from SYN-SENT or SYN-RCVD, plus transitions to LISTEN from SYN-RCVD",
    ),
    F("snmp_tcp_curr_estab", COUNT, False, "Number of TCP connections in ESTABLISHED or CLOSE-WAIT"),
    F(
        "snmp_tcp_estab_resets",
        COUNT,
        False,
        "Number of times TCP transitions to CLOSED from ESTABLISHED or CLOSE-WAIT",
    ),
    F("snmp_tcp_in_csum_errors", COUNT, False, "Number of TCP segments received with checksum errors"),
    F("snmp_tcp_in_errs", COUNT, False, "Number of TCP segments received in error"),
    F("snmp_tcp_in_segs", COUNT, False, "Number of TCP segments received"),
    F("snmp_tcp_max_conn", COUNT, False, "Limit on the total number of TCP connections"),
    F("snmp_tcp_out_rsts", COUNT, False, "Number of TCP segments sent with RST flag"),
    F("snmp_tcp_out_segs", COUNT, False, "Number of TCP segments sent"),
    F("snmp_tcp_passive_opens", COUNT, False, "Number of times TCP transitions to SYN-RCVD from LISTEN"),
    F("snmp_tcp_retrans_segs", COUNT, False, "Number of TCP segments retransmitted"),
    F(
        "snmp_tcp_rto_max",
        COUNT,
        False,
        "Maximum value permitted by a TCP implementation for the retransmission timeout (milliseconds)",
    ),
    F(
        "snmp_tcp_rto_min",
        COUNT,
        False,
        "Minimum value permitted by a TCP implementation for the retransmission timeout (milliseconds)",
    ),
    F("snmp_udp_in_datagrams", COUNT, False, "Number of UDP datagrams delivered to UDP applications"),
    F(
        "snmp_udp_in_errors",
        COUNT,
        False,
        "Number of UDP datagrams failed to be delivered for reasons other than lack of application"
        " at the destination port",
    ),
    F(
        "snmp_udp_no_ports",
        COUNT,
        False,
        "Number of UDP datagrams received for which there was not application at the destination port",
    ),
    F("snmp_udp_out_datagrams", COUNT, False, "Number of UDP datagrams sent"),
    F("delta", COUNT, False, "Number of network operations applied during state transition"),
    F("epsilon", COUNT, False, "Simulated number of network operations applied during state transition"),
    F("ha_state", TEXT, False, "Name of high availability state"),
    F(
        "ha_value",
        level(4),
        False,
        "Numeric value associated with high availability state"
        " (0 = disabled, 1 = active, 2 = standby, 3 = stopped, 4 = fault)",
    ),
    F("platform", TEXT, False, "Platform identifier"),
    F("site_id", TEXT, False, "Site identifier"),
    F("system_boot_time_s", COUNT, False, "Boottime of the system (seconds since the Unix epoch)"),
    F("uptime_idle_ms", COUNT, False, "Sum of how much time each core has spent idle"),
    F("uptime_total_ms", COUNT, False, "Uptime of the system, including time spent in suspend"),
)


Snapshot = struct_of("Snapshot", SNAPSHOT)
NESTED: dict[str, tuple[F, ...]] = {
    "bonds": BOND,
    "dhcp_leases": DHCP_LEASE,
    "disks": DISK,
    "interfaces": INTERFACE,
    "interfaces[].ip_addresses": INTERFACE_IP_ADDRESS,
    "mounts": MOUNT,
    "netdevs": NETDEV,
    "routes": ROUTE,
    "thermals": THERMAL,
    "tunnels": TUNNEL,
}


# --- Ingestion: a posted batch (a JSON array of snapshots), checked and kept as sent. ---
MAX_BATCH_SNAPSHOTS = 1_000  # snapshots in one batch; the body is bounded too (Settings.max_body_bytes)
MAX_SNAPSHOT_BYTES = 1 << 20  # the JSON of one snapshot (without whitespace outside strings)


class ValidSnapshot(NamedTuple):
    """A posted snapshot that passed validation, as the stores record it."""

    t: int
    json: bytes  # byte for byte as posted, minus whitespace outside strings
    tunnel_down: str | None = None  # a tunnel it reports down (its tunnel_id; conntel/health.py), None: none


class SnapshotListItem(Struct):
    """A snapshot as List Snapshots indexes it: recorded at `t`, received by conntel at `a`."""

    a: int
    t: int


class SnapshotList(Struct, omit_defaults=True):
    """A page of List Snapshots; `cursor` only when more snapshots follow."""

    count: int
    items: list[SnapshotListItem]
    cursor: str | UnsetType = UNSET


# How a recorded snapshot is served (Get Snapshot, Latest Snapshots): its JSON as recorded, documented as the type.
SNAPSHOT_DOC = Meta(extra_json_schema={"$ref": "#/components/schemas/Snapshot"})
RecordedSnapshot = Annotated[Raw, SNAPSHOT_DOC]


class LatestSnapshots(Struct):
    count: int
    items: list[RecordedSnapshot]


# The fast variant of the tree, for a batch whose JSON cannot hold a NUL character (jsontext.may_hold_nul):
# msgspec checks a pattern by calling `re` on every string (over half the typed decode of a snapshot), and makes
# a float of every number. Its TEXT has no pattern, and its numbers read a JSON integer as an int first (cheaper
# to make and to encode again), within the float kind's own bounds and int64's (msgspec bounds no int beyond):
# so whatever it accepts, the declared tree accepts too. What it refuses (a problem, or an integer beyond int64)
# is decided by the declared tree (decode_batch), with the declared tree's words.
_INT64_LOW, _INT64_HIGH = -(1 << 63), (1 << 63) - 1
_TEXT_WITHOUT_NUL = Annotated[str, Meta(max_length=1024)]


def _fast_kind(declared: Any) -> Any:
    if declared is TEXT:
        return _TEXT_WITHOUT_NUL
    if get_origin(declared) is Annotated and get_args(declared)[0] is float:  # COUNT, PERCENT, NUMBER, level()
        bounds = get_args(declared)[1]
        low = _INT64_LOW if bounds.ge is None else max(math.ceil(bounds.ge), _INT64_LOW)
        high = _INT64_HIGH if bounds.le is None else min(math.floor(bounds.le), _INT64_HIGH)
        return Annotated[int, Meta(ge=low, le=high)] | declared
    return declared


_raw_batch = msgspec.json.Decoder(list[Raw])
_encode = msgspec.json.Encoder().encode
_typed_batch = msgspec.json.Decoder(list[Snapshot])  # type: ignore[valid-type]  # a type built at import time
_fast_typed_batch = msgspec.json.Decoder(
    list[struct_of("Snapshot", SNAPSHOT, _fast_kind)]  # type: ignore[misc]  # a type built at import time
)


def decode_batch(body: bytes, max_snapshots: int = MAX_BATCH_SNAPSHOTS) -> list[ValidSnapshot]:
    """Decode and validate a posted batch of snapshots, each kept as the exact text sent.

    Raises MalformedJson (not JSON), BatchTooLarge, or InvalidBatch naming the path of the
    first problem (`$[0].netdevs[3].recv_bytes`), a key repeated in an object, or a snapshot
    over MAX_SNAPSHOT_BYTES.
    """
    raws, text = decode_exact(body, _raw_batch)  # each item's exact text
    if len(raws) > max_snapshots:
        raise BatchTooLarge(f"A batch holds at most {max_snapshots} snapshots; this one has {len(raws)}")
    typed = _decode_typed(text)  # every known field, at any depth
    # The typed parse, encoded again, keeps every member of a snapshot that has only known fields and no key
    # twice (most of them): then the generic parse of the duplicate-key check, as slow as the typed one, is spared.
    if not jsontext.members_kept(text, _encode(typed)):
        check_unique_keys(text)
    snapshots = [
        ValidSnapshot(snapshot.t, bytes(raw), tunnel_down(snapshot.tunnels))
        for snapshot, raw in zip(typed, raws, strict=True)
    ]
    for i, snapshot in enumerate(snapshots):
        if len(snapshot.json) > MAX_SNAPSHOT_BYTES:
            raise InvalidBatch(
                f"A snapshot takes {len(snapshot.json)} bytes, at most {MAX_SNAPSHOT_BYTES} - at `$[{i}]`"
            )
    return snapshots


def _decode_typed(text: bytes) -> list[Any]:
    if not jsontext.may_hold_nul(text):
        try:
            return _fast_typed_batch.decode(text)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass  # the declared tree decides, and says why
    return decode_json(text, _typed_batch, unique_keys=False)  # type: ignore[no-any-return]


def same_snapshot(recorded: bytes, other: bytes) -> bool:
    """Whether a recorded snapshot's JSON and another are the same: a retry, not a conflict.

    The same text up to key order (every number and string written the same way), since
    Get Snapshot returns the JSON as it was first recorded.
    """
    return recorded == other or jsontext.canonical(recorded) == jsontext.canonical(other)
