"""Faust's partition assignor, sticky across restarts: each process claims its home partitions.

Faust's assignor (faust-streaming 0.15.3, faust/assignor) keeps a partition with
the member that says it holds it: each member sends its current assignment
(`PartitionAssignor._assignment`) when it joins, and the leader keeps those
claims where it can. A process that starts claims nothing, so when every worker
process restarts together (a deploy, a machine reboot, a kill -9 of the group)
the partitions are dealt afresh and may land on a process whose data directory
does not hold them, which then recovers every table of them from the changelogs
(the cost of that is in docs/PERFORMANCE.md).

`install()` makes each process remember its home: the partitions it was last dealt,
less any it took over from a member that left (an assignment that holds all of the
home and more leaves the home as it was). The home is saved in `ASSIGNMENT_FILE`
in the app's versioned data directory (removed with the state when the broker's
epoch changes, agents/epoch.py), read at the process's first join, and is what
the process claims at every join. So after a restart of the whole group each
process gets its partitions back, and after one process was away long enough for
another to take its partitions, both go home. A claim is only a preference: the
leader still balances, and settles two processes claiming one partition
(faust/assignor/copartitioned_assignor.py). A file that cannot be read or does
not hold an assignment is logged and ignored.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

from .patching import Patched

log = logging.getLogger("harmrank")

ASSIGNMENT_FILE = "assignment.json"

_patch = Patched()


def assignment_path(app: Any) -> Path:
    return Path(app.conf.appdir) / ASSIGNMENT_FILE


def save(path: Path, home: dict) -> None:
    """Write a home (topic: partitions) whole: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"actives": home}, sort_keys=True))
    os.replace(temporary, path)


def load(path: Path, partitions: int) -> Optional[dict]:
    """The home saved at `path`, without partitions that no topic of the app has; None if none."""
    try:
        saved = json.loads(path.read_text())
        home = saved.get("actives") if isinstance(saved, dict) else None
        if not isinstance(home, dict):
            raise ValueError("not an assignment")
        kept = {}
        for topic, numbers in home.items():
            if not isinstance(numbers, list) or not all(type(n) is int for n in numbers):
                raise ValueError(f"the partitions of {topic!r} are not a list of integers")
            kept[topic] = sorted({n for n in numbers if 0 <= n < partitions})
        return kept
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        log.warning("the saved partition assignment %s is not used (%s): this process claims no partitions", path, exc)
        return None


def next_home(home: Optional[dict], dealt: dict) -> dict:
    """The home after an assignment of `dealt`: unchanged if `dealt` holds all of it and more (partitions
    taken over from a member that left), else what was dealt."""
    dealt = {topic: sorted(parts) for topic, parts in dealt.items()}
    if home is not None and any(set(parts) - set(home.get(topic, ())) for topic, parts in dealt.items()) \
            and all(set(parts) <= set(dealt.get(topic, ())) for topic, parts in home.items()):
        return home
    return dealt


def _home(assignor: Any) -> Optional[dict]:
    """This process's home; at the first call, the saved one (None when there is none)."""
    if not hasattr(assignor, "_harmrank_home"):
        assignor._harmrank_home = load(assignment_path(assignor.app), assignor.app.conf.topic_partitions)
        if assignor._harmrank_home is not None:
            log.info("claiming the partitions this process held before it stopped: %s", ", ".join(
                f"{topic} {parts}" for topic, parts in sorted(assignor._harmrank_home.items()) if parts) or "none")
    return assignor._harmrank_home


def install() -> bool:
    """Claim the home at every join and keep it after every assignment; False if already installed."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
    from faust.assignor.client_assignment import ClientAssignment
    from faust.assignor.partition_assignor import PartitionAssignor

    if _patch.active:
        return False
    original_metadata, original_on_assignment = PartitionAssignor.metadata, PartitionAssignor.on_assignment

    def metadata(self: Any, topics: Any) -> Any:
        """Faust's join metadata with the home as the claim; Faust's own assignment stays as it is."""
        home = _home(self)
        if home is None:
            return original_metadata(self, topics)
        claim = self._metadata  # a new ClientMetadata at each read
        claim.assignment = ClientAssignment(actives=home, standbys=self._assignment.standbys)
        return ConsumerProtocolMemberMetadata(self.version, list(topics), claim.dumps())

    def on_assignment(self: Any, assignment: Any) -> None:
        original_on_assignment(self, assignment)
        self._harmrank_home = next_home(_home(self), self._assignment.actives)
        try:
            save(assignment_path(self.app), self._harmrank_home)
        except OSError as exc:  # a lost preference, never a lost partition: the worker goes on
            log.warning("the partition assignment was not saved (%s): a restart may move partitions", exc)

    _patch.apply(PartitionAssignor, metadata=metadata, on_assignment=on_assignment)
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    _patch.undo()


def is_installed() -> bool:
    return _patch.active
