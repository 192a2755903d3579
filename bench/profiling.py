"""Where a server's time goes: py-spy attached to it during an extra, unmeasured run (`--profile`).

py-spy is not a dependency of conntel: `make bench` installs it (the `bench`
extra in pyproject.toml), and `make bench` profiles. It samples the server
process's stacks (`py-spy record --native --format raw --nolineno`, 200
samples a second, blocking: the process is paused for each sample, which is
what keeps the stacks exact and also why the profiled runs are not the
measured ones). `--native` shows the C below the Python (the socket
syscalls, SQLite, the event loop), so each sample is read two ways:

- by its innermost Python function ("self" time as a pure-Python profiler
  would show it: a function plus the C it calls directly, e.g. uvicorn's
  send plus the write(2) under it);
- by its leaf frame, C included (write, epoll_pwait, sqlite3VdbeExec, ...).

Samples of threads waiting for work (the event loop in epoll, SQLite's
writer thread on its queue) are counted apart as idle; the shares are of
the busy samples, all threads together.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from harness import WORK, BenchError, Server, log

RATE = 200  # samples per second
TOP = 15


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise BenchError("--profile needs py-spy: make bench installs it (or: .venv/bin/pip install -e '.[bench]')")
    return found


class ProfileFailed(BenchError):
    """py-spy could not attach, stop or write its samples: the profile is missing, the measure itself is not."""


class Recorder:
    """`with recorder(server): ...` samples the server meanwhile; then `recorder.summary` tells where time went."""

    def __init__(self, name: str):
        self.name = name
        self.output = WORK / f"{name}.pyspy.txt"
        self.summary: dict = {}

    @contextlib.contextmanager
    def __call__(self, server: Server) -> Iterator[None]:
        self.output.unlink(missing_ok=True)
        argv = [
            py_spy(),
            "record",
            "--pid",
            str(server.pid),
            "--subprocesses",  # granian serves from a worker process under its main one
            "--rate",
            str(RATE),
            "--format",
            "raw",
            "--nolineno",
            "--native",
            "--output",
            str(self.output),
        ]
        log_path = WORK / f"{self.name}.pyspy.log"
        with open(log_path, "wb") as out:
            spy = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        time.sleep(0.5)  # attached
        if spy.poll() is not None:
            raise ProfileFailed(f"py-spy could not attach to {server.name}:\n{log_path.read_text(errors='replace')}")
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            try:
                spy.wait(60)
            except subprocess.TimeoutExpired:
                spy.kill()
                raise ProfileFailed(f"py-spy did not stop; see {log_path}") from None
        if not self.output.exists():
            raise ProfileFailed(f"py-spy wrote nothing; see {log_path}")
        self.summary = summarize(self.output)
        log(f"profile of {server.name}: {self.summary['samples']:,} samples in {self.output.relative_to(WORK.parent)}")


def is_python(frame: str) -> bool:
    """`func (path/file.py)` as py-spy names a Python frame; C frames name a library or a .c/.h file."""
    where = frame.rsplit(" (", 1)[-1].rstrip(")")
    return where.endswith(".py") or where.startswith("<")


# Samples of a thread waiting for work, not doing any: a pool thread (SQLite's writer) blocked on its
# queue, or the event loop in epoll. py-spy's own idle detection misses them with --native.
IDLE_PYTHON = ("_worker (concurrent/futures/thread.py)",)
IDLE_LEAF = ("epoll_wait (", "epoll_pwait (")
ENTRY_POINTS = ("<module> (conntel/__main__.py)", "serve (conntel/cli.py)", "run (conntel/server.py)")


def summarize(path: Path, top: int = TOP) -> dict:
    """Shares of the busy samples (all threads; idle ones counted apart) by function, leaf and conntel frame."""
    by_python: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        python = next((f for f in reversed(frames) if is_python(f)), frames[-1])
        if python in IDLE_PYTHON or frames[-1].startswith(IDLE_LEAF):
            idle += count
            continue
        busy += count
        by_leaf[frames[-1]] += count
        by_python[python] += count
        for frame in set(frames):
            if frame.endswith(".py)") and "conntel/" in frame and not frame.startswith(ENTRY_POINTS):
                inclusive[frame] += count
    if not busy:
        raise ProfileFailed(f"no busy samples in {path}")

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(frame, round(100 * n / busy, 1)) for frame, n in counter.most_common(top)]

    return {
        "samples": busy + idle,
        "busy": busy,
        "idle_pct": round(100 * idle / (busy + idle), 1),
        "file": str(path.relative_to(WORK.parent.parent)),
        "python_self": share(by_python),
        "leaf_self": share(by_leaf),
        "conntel_inclusive": share(inclusive),
    }
