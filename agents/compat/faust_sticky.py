"""Faust's partition assignor, sticky across a restart of the whole group.

Faust's assignor (faust-streaming 0.15.3, faust/assignor) keeps a partition with
the member that says it holds it: each member sends its current assignment
(`PartitionAssignor._assignment`) when it joins, and the leader keeps those
claims where it can. A process that starts claims nothing, so when every worker
process restarts together (a deploy, a machine reboot, a kill -9 of the group)
the partitions are dealt afresh and may land on a process whose data directory
does not hold them, which then recovers every table of them from the changelogs
(the cost of that is in docs/PERFORMANCE.md).

`install()` makes each process remember: every assignment it receives is saved to
`ASSIGNMENT_FILE` in the app's versioned data directory (removed with the state
when the broker's epoch changes, agents/epoch.py), and the first join of a process
claims what that file names. A claim is only a preference: the leader still
balances, and settles two processes claiming one partition, as after a moved
partition's old owner comes back (faust/assignor/copartitioned_assignor.py).
A file that cannot be read or does not hold an assignment is logged and ignored.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("harmrank")

ASSIGNMENT_FILE = "assignment.json"

_originals: Optional[tuple] = None


def assignment_path(app: Any) -> Path:
    return Path(app.conf.appdir) / ASSIGNMENT_FILE


def save(path: Path, actives: dict, standbys: dict) -> None:
    """Write an assignment (topic: partitions) whole: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"actives": actives, "standbys": standbys}, sort_keys=True))
    os.replace(temporary, path)


def _partitions_of(value: Any, partitions: int) -> dict:
    """{topic: sorted partitions below `partitions`} from a saved mapping; ValueError if it is not one."""
    if not isinstance(value, dict):
        raise ValueError("not a mapping of topics")
    kept = {}
    for topic, numbers in value.items():
        if not isinstance(numbers, list) or not all(type(n) is int for n in numbers):
            raise ValueError(f"the partitions of {topic!r} are not a list of integers")
        kept[topic] = sorted({n for n in numbers if 0 <= n < partitions})
    return kept


def load(path: Path, partitions: int) -> Optional[tuple]:
    """(actives, standbys) saved at `path`, without partitions that no topic of the app has; None if none."""
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError("not an assignment")
        return _partitions_of(saved.get("actives"), partitions), _partitions_of(saved.get("standbys", {}), partitions)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        log.warning("the saved partition assignment %s is not used (%s): this process claims no partitions", path, exc)
        return None


def _claim_saved(assignor: Any) -> None:
    """Once per process, before its first join: claim the saved assignment if Faust holds none."""
    if getattr(assignor, "_harmrank_claimed", False):
        return
    assignor._harmrank_claimed = True
    from faust.assignor.client_assignment import ClientAssignment

    current = assignor._assignment
    if current.actives or current.standbys:
        return
    saved = load(assignment_path(assignor.app), assignor.app.conf.topic_partitions)
    if saved is not None:
        assignor._assignment = ClientAssignment(actives=saved[0], standbys=saved[1])
        log.info("claiming the partitions this process held before it stopped: %s",
                 ", ".join(f"{topic} {parts}" for topic, parts in sorted(saved[0].items()) if parts) or "none")


def install() -> bool:
    """Save every assignment and claim the saved one at the first join; False if already installed."""
    global _originals
    from faust.assignor.partition_assignor import PartitionAssignor

    if _originals is not None:
        return False
    original_metadata, original_on_assignment = PartitionAssignor.metadata, PartitionAssignor.on_assignment

    def metadata(self: Any, topics: Any) -> Any:
        _claim_saved(self)
        return original_metadata(self, topics)

    def on_assignment(self: Any, assignment: Any) -> None:
        original_on_assignment(self, assignment)
        self._harmrank_claimed = True
        try:
            save(assignment_path(self.app), self._assignment.actives, self._assignment.standbys)
        except OSError as exc:  # a lost preference, never a lost partition: the worker goes on
            log.warning("the partition assignment was not saved (%s): a restart may move partitions", exc)

    _originals = (original_metadata, original_on_assignment)
    PartitionAssignor.metadata = metadata  # type: ignore[method-assign]
    PartitionAssignor.on_assignment = on_assignment  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    global _originals
    from faust.assignor.partition_assignor import PartitionAssignor

    if _originals is not None:
        PartitionAssignor.metadata, PartitionAssignor.on_assignment = _originals  # type: ignore[method-assign]
        _originals = None


def is_installed() -> bool:
    return _originals is not None
