"""What the run was measured on and at which commit (for the JSON and BENCHMARKS.md)."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() or done.stderr.strip()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tansu_version() -> str:
    try:
        from tools.local_services import tansu_binary

        return _run([str(tansu_binary()), "--version"])
    except (ImportError, FileNotFoundError):
        return ""


def describe() -> dict[str, Any]:
    commit = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"]))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "dirty": dirty,
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "redis": _run(["redis-server", "--version"]),
        "tansu": tansu_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
