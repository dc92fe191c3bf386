"""The bench's process monitor on real child processes: CPU counted per group (a tree, or
the root alone), a process started after the monitor counted from zero, peak RSS kept."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from tools.bench.processes import Monitor

BURN = (
    "import time\n"
    "start = time.process_time()\n"
    "while time.process_time() - start < 0.3: pass\n"
    "print('done', flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        yield child
    finally:
        child.kill()
        child.wait(10)


def burned(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "done"


def test_a_tree_counts_its_children_a_flat_group_only_itself(
    burner: subprocess.Popen[str],
) -> None:
    me = [os.getpid()]
    monitor = Monitor({"tree": lambda: me, "flat": lambda: me}, flat=["flat"])
    monitor.start()  # the child was born before: its CPU counts from now, not from zero
    before = monitor.mark()
    burned(burner)
    after = monitor.mark()
    monitor.stop()
    used = Monitor.between(before, after)
    assert used["tree"] - used["flat"] >= 0.2  # the child's burn, in the tree only
    totals = monitor.totals()
    # in a full run this process also has the session fixtures' servers as children
    mine = 1 + len(psutil.Process().children(recursive=True))
    assert totals["tree"]["processes_seen"] == mine and totals["flat"]["processes_seen"] == 1
    assert totals["tree"]["peak_group_rss_mb"] > totals["tree"]["peak_rss_mb"] > 0


def test_a_process_born_after_the_start_counts_from_zero() -> None:
    roots: list[int] = []
    monitor = Monitor({"late": lambda: roots}).start()
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    try:
        burned(child)
        roots.append(child.pid)
        assert monitor.mark()["late"] >= 0.2  # first seen after its burn, counted all the same
    finally:
        child.kill()
        child.wait(10)
        monitor.stop()


def test_a_group_whose_process_is_gone_keeps_what_it_used() -> None:
    roots: list[int] = []
    monitor = Monitor({"gone": lambda: roots}).start()
    child = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    burned(child)
    roots.append(child.pid)
    used = monitor.mark()["gone"]
    child.kill()
    child.wait(10)
    assert monitor.mark()["gone"] == used >= 0.2
    monitor.stop()
