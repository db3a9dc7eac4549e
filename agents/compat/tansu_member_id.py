"""Work round tansu's stale group leader: a worker process rejoins its groups under its last member id.

When the members of a group leave it one after the other (each worker process
sends LeaveGroup as it stops), the local tansu (0.6, tansu-broker/src/coordinator/
group/administrator.rs) can remove the leader without forgetting that it led:
`Forming::leave` drops the member but keeps `state.leader`, and `Forming::join`
elects a leader only when there is none. Members that join afterwards under new
ids are told a leader that is gone; none of them gets the member list, their
SyncGroup fails (after 0.8 of the session timeout) and they join again, round
after round, until a race inside tansu reloads the group (docs/PERFORMANCE.md).
After a kill -9 the old members stay until their session expires: one round more.

`install(directory)` makes every aiokafka group member of this process save the
member id of each join it completes (`member-id-<group>` in `directory`, the
process's own data directory) and start its next life with it. The stale leader
is then the restarted process itself, or an old member it simply continues as,
and the group forms in one round. A broker that does not know the id (a new
local broker) takes it as a new member's. Only for the local broker, and only
where one process uses the directory (a worker's data directory is its own).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from .patching import Patched

log = logging.getLogger("harmrank")

FILE_PREFIX = "member-id-"
#: Longer than any member id a broker hands out (aiokafka's are about 50 characters).
MAX_LENGTH = 255

_patch = Patched()


def member_id_path(directory: Path, group_id: str) -> Path:
    return Path(directory) / (FILE_PREFIX + quote(group_id, safe=""))


def saved_member_id(path: Path) -> Optional[str]:
    """The member id saved at `path`, or None (no file, or one that does not hold an id: said in the log)."""
    try:
        member_id = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("the saved group member id %s is not used (%s)", path, exc)
        return None
    if not member_id or len(member_id) > MAX_LENGTH or not member_id.isprintable():
        log.warning("the saved group member id %s is not used (not a member id)", path)
        return None
    return member_id


def save_member_id(path: Path, member_id: str) -> None:
    """Write the id whole (a crash leaves the old file or the new one); a failure is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(member_id, encoding="ascii")
        os.replace(temporary, path)
    except (OSError, ValueError) as exc:
        log.warning("the group member id was not saved at %s (%s): a restart may take longer to join", path, exc)


def install(directory: Path) -> bool:
    """Reuse and save each group's member id in `directory`; False if already installed."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    if _patch.active:
        return False
    home = Path(directory)
    original_init, original_join_complete = GroupCoordinator.__init__, GroupCoordinator._on_join_complete

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)  # the coordination task starts later, at the first await
        self._harmrank_member_id_path = member_id_path(home, self.group_id)
        saved = saved_member_id(self._harmrank_member_id_path)
        if saved is not None:
            self.member_id = saved

    async def _on_join_complete(self: Any, generation: int, member_id: str, protocol: str, assignment: bytes):
        path = getattr(self, "_harmrank_member_id_path", None)  # None: made before install()
        if path is not None:
            save_member_id(path, member_id)
        return await original_join_complete(self, generation, member_id, protocol, assignment)

    _patch.apply(GroupCoordinator, __init__=__init__, _on_join_complete=_on_join_complete)
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    _patch.undo()


def is_installed() -> bool:
    return _patch.active
