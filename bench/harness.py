"""Shared plumbing of the bench: paths, logging, wrk, and the servers it starts and stops."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
RESULTS = BENCH / "RESULTS.md"
LUA_SCRIPT = BENCH / "get_event.lua"
HELLO_APP = "hello_asgi:app"
API = "/client/v4/accounts/{account}/magic/connectors/{connector}/telemetry/events"
BASE_T = 1_700_000_000


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found on PATH; installing it with apt-get")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise BenchError("wrk is missing and we are not root (and no sudo): install wrk and rerun")
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(prefix + argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get installed wrk but it is still not on PATH")
    return found


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    match = re.search(r"wrk \S+", done.stdout or done.stderr)
    return match.group(0) if match else "wrk (unknown version)"


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise BenchError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]
    non_2xx: int
    socket_errors: dict[str, int]
    output: str

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+\w+),", output)
    if not rps or not total:
        raise BenchError(f"could not read wrk output:\n{output}")
    latency = {f"p{p}": _to_ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+([\d.]+\w+)\s*$", output, re.M)}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    socket_errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=False)) if sock else {}
    )
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_to_ms(total.group(2)) / 1000,
        rps=float(rps.group(1)),
        latency_ms=latency,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors={k: v for k, v in socket_errors.items() if v},
        output=output,
    )


def run_wrk(
    url: str,
    duration: float,
    *,
    threads: int,
    connections: int,
    script_args: list[str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    """`wrk --latency` for `duration` seconds; with script_args, driven by `script` (default get_event.lua,
    PATHS_FILE TOKEN)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    if script_args is not None:
        argv += ["-s", str(script or LUA_SCRIPT)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


# ----------------------------------------------------------------------- servers


class Server:
    """A server process in its own session, so that we can stop it and all it started.

    Each server of a `group` (a backend's conntel processes) leaves its resident
    memory at stop, now and at its peak (VmRSS, VmHWM), in `Server.memory`.
    """

    running: ClassVar[list[Server]] = []
    memory: ClassVar[list[dict]] = []

    def __init__(self, name: str, argv: list[str], port: int, cwd: Path = ROOT, group: str | None = None):
        self.name, self.argv, self.port, self.cwd, self.group = name, argv, port, cwd, group
        self.log_path = WORK / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Server:
        if port_in_use(self.port):
            raise BenchError(f"port {self.port} is already in use; refusing to benchmark someone else's server")
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        Server.running.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} on start:\n{self.log_tail()}")
            if port_in_use(self.port):
                return self
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not listen on port {self.port} within {timeout:.0f}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int | None:
        """Resident memory now (VmRSS)."""
        return self._status_kib("VmRSS")

    def peak_kib(self) -> int | None:
        """The most resident memory so far (VmHWM)."""
        return self._status_kib("VmHWM")

    def _status_kib(self, name: str) -> int | None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(rf"^{name}:\s+(\d+) kB", status, re.M)
        return int(match.group(1)) if match else None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.group and self.alive():
            Server.memory.append(
                {"name": self.name, "group": self.group, "rss_kib": self.rss_kib(), "peak_kib": self.peak_kib()}
            )
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self in Server.running:
            Server.running.remove(self)
        deadline = time.monotonic() + 10
        while port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    @classmethod
    def stop_all(cls) -> None:
        for server in list(cls.running):
            server.stop()


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def conntel_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "conntel", *args]


def hello_server(port: int) -> Server:
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        HELLO_APP,
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
        "--workers",
        "1",
    ]
    return Server("hello", argv, port)


def cli_json(*args: str) -> dict:
    done = subprocess.run(conntel_argv(*args, "--json"), capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise BenchError(f"conntel {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout)


def fmt_mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    import uvicorn

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": (model.group(1).strip() if model else platform.processor() or "unknown")
        + (f" @ {float(mhz.group(1)):.0f} MHz" if mhz else ""),
        "memory": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "?",
        "kernel": platform.release(),
        "python": platform.python_version() + f" ({platform.python_implementation()})",
        "uvicorn": uvicorn.__version__,
        "wrk": wrk_version(),
        "conntel": git_revision(),
    }


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    if rev.returncode != 0:
        return "unknown (no commit yet)" + (" + uncommitted src/ changes" if dirty.stdout.strip() else "")
    return rev.stdout.strip() + (" + uncommitted src/ changes" if dirty.stdout.strip() else "")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def median_index(values: list[float]) -> int:
    """The index of the median value (the upper one for an even count)."""
    return sorted(range(len(values)), key=values.__getitem__)[len(values) // 2]


def percentile(sorted_values: list[float], p: float) -> float:
    """The p-th percentile (0..100) of already sorted values, nearest rank; NaN when empty."""
    if not sorted_values:
        return float("nan")
    rank = min(len(sorted_values), max(1, math.ceil(p / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy so far (all cores, from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_named(name: str) -> float:
    """User + system CPU time so far of every process whose command name is `name` (e.g. postgres)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")] == name:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
