"""`harmrank demo` runs for 30 seconds, shows entries and exits, and stops everything it started."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def _children_of(pid: int) -> set[int]:
    """Every live process descended from pid (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_demo_shows_entries_and_exits_and_cleans_up(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "agents.cli", "demo", "--duration", "30", "--plain",
                             "--backfill", "3000", "--rate", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    seen_children: set[int] = set()
    lines = []
    for line in proc.stdout:
        lines.append(line)
        seen_children |= _children_of(proc.pid)
    proc.wait(timeout=120)
    out = "".join(lines)
    assert proc.returncode == 0, out[-3000:]
    summaries = re.findall(r"list vawg members (\d+) entries (\d+) exits (\d+)", out)
    assert summaries, out[-3000:]
    members, entries, exits = map(int, summaries[-1])
    assert entries > 0 and exits > 0, out[-3000:]
    assert 0 < members <= 100 and 0 < entries - exits <= 100, "never more than N members"
    assert re.search(r"\| vawg-escalation: \d+ in, \d+ out", out) and re.search(r"\| drugs-supply: \d+ in", out), (
        "the demo's three lists each announce their events")
    assert "demo stopped" in out
    assert seen_children, "the demo should have started a broker and a worker"
    alive = {pid for pid in seen_children if os.path.exists(f"/proc/{pid}")
             and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"}
    assert not alive, f"processes left behind: {alive}"
