"""CPU seconds and peak RSS per process group, read with psutil.

A group is a name and a function returning its root pids *now* (a gunicorn master whose
workers are its children; the broker; redis-server; this load generator), so a service
restarted mid-run (the detector drain) is followed. A sampler thread reads every
process of every group twice a second: CPU seconds are the sum over every pid ever seen
of what it used since the monitor first saw it (from zero for a process started after
the monitor did), so exited workers still count; RSS is the largest resident set seen
for one process of the group and for the whole group at once.

`Monitor.mark` returns a snapshot; `Monitor.between` the CPU each group used between
two snapshots (a part's own cost).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

Roots = Callable[[], Iterable[int]]

MB = 2**20


@dataclass
class _Seen:
    first_cpu: float
    last_cpu: float


@dataclass
class GroupStats:
    seen: dict[tuple[int, float], _Seen] = field(default_factory=dict)
    peak_rss: int = 0
    peak_group_rss: int = 0

    def cpu(self) -> float:
        return sum(s.last_cpu - s.first_cpu for s in self.seen.values())


class Monitor:
    """Samples ``groups`` (name -> roots) every ``interval`` s while started."""

    def __init__(
        self, groups: Mapping[str, Roots], interval: float = 0.5, *, flat: Iterable[str] = ()
    ) -> None:
        self.groups = dict(groups)
        self.flat = set(flat)
        """Groups whose roots alone count, not their children (the load generator, whose
        children are the stack it started)."""
        self.interval = interval
        self.stats = {name: GroupStats() for name in self.groups}
        self._started_at = _now_as_create_time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._procs: dict[int, psutil.Process] = {}

    def start(self) -> Monitor:
        self._started_at = _now_as_create_time()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            for name, roots in self.groups.items():
                self._sample_group(self.stats[name], roots, name not in self.flat)

    def _sample_group(self, stats: GroupStats, roots: Roots, tree: bool) -> None:
        total_rss = 0
        try:
            pids = list(roots())
        except (OSError, RuntimeError, psutil.Error):
            pids = []
        for process in self._tree(pids, tree):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
                    created = process.create_time()
            except psutil.Error:
                continue
            cpu = times.user + times.system
            key = (process.pid, created)
            seen = stats.seen.get(key)
            if seen is None:
                born_after = created >= self._started_at
                stats.seen[key] = _Seen(0.0 if born_after else cpu, cpu)
            else:
                seen.last_cpu = cpu
            stats.peak_rss = max(stats.peak_rss, rss)
            total_rss += rss
        stats.peak_group_rss = max(stats.peak_group_rss, total_rss)

    def _tree(self, roots: list[int], tree: bool) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in roots:
            process = self._process(pid)
            if process is None:
                continue
            found.append(process)
            if not tree:
                continue
            with contextlib.suppress(psutil.Error):
                found.extend(self._process(c.pid) or c for c in process.children(recursive=True))
        return found

    def _process(self, pid: int) -> psutil.Process | None:
        """A cached Process (psutil's cpu_times on the same object stays cheap)."""
        process = self._procs.get(pid)
        if process is None or not process.is_running():
            try:
                process = self._procs[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return process

    def mark(self) -> dict[str, float]:
        """CPU seconds per group so far (sampled now)."""
        self.sample()
        with self._lock:
            return {name: stats.cpu() for name, stats in self.stats.items()}

    @staticmethod
    def between(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}

    def totals(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                name: {
                    "cpu_s": round(stats.cpu(), 2),
                    "peak_rss_mb": round(stats.peak_rss / MB, 1),
                    "peak_group_rss_mb": round(stats.peak_group_rss / MB, 1),
                    "processes_seen": len(stats.seen),
                }
                for name, stats in self.stats.items()
            }


def _now_as_create_time() -> float:
    """Now, on the clock of psutil's ``create_time`` (boot time + clock ticks since), which
    can be a second away from ``time.time()``."""
    try:
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.time()
    return psutil.boot_time() + uptime


def this_process() -> list[int]:
    return [os.getpid()]


def listener_of(port: int) -> list[int]:
    """The process listening on TCP ``port`` on this machine, walked up to the top of
    its gunicorn tree (a worker's master), or [] when none is found."""
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            if connection.pid is None:
                return []
            process = psutil.Process(connection.pid)
            parent = process.parent()
            while parent is not None and "gunicorn" in " ".join(parent.cmdline()):
                process, parent = parent, parent.parent()
            return [process.pid]
    return []
