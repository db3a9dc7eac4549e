"""Read again a stage partition whose state stays behind its topic's end: the tail Faust dropped.

Faust drops the messages it fetched in an older consumer generation (a
rebalance) without marking them unread. A stage notices such a loss when a
later message comes (`streams.stages.base.skipped`), but not when the dropped
messages were the partition's last: nothing comes after them. So a timer looks
at every stage partition this worker holds: one whose state has stayed at the
same offset for STALL_S seconds while its topic holds messages after it is
read again from where its state ends, by the stage runner's `reread` (counted in
`harmrank_skipped_reads_total` and logged like a gap within a batch).
"""
from __future__ import annotations

import time
from typing import Callable

STALL_CHECK_S = 5.0  # how often the partitions are looked at
STALL_S = 10.0  # how long a state may stand behind its topic's end before its partition is read again


def watch_stalls(app, is_ready: Callable[[], bool], stages: dict, reread: Callable) -> None:
    """`stages`: input topic -> (stage name, stage with `applied_offset(partition)`);
    `reread(stage name, topic, {partition: offset}, how)` seeks those partitions back."""
    behind: dict = {}  # tp -> (offset its state holds, monotonic time first seen behind with it)

    @app.timer(interval=STALL_CHECK_S)
    async def stalled_reads():
        if not is_ready():
            behind.clear()
            return
        now = time.monotonic()
        for tp in app.assignor.assigned_actives():
            named = stages.get(tp.topic)
            if named is None:
                continue
            name, stage = named
            applied = stage.applied_offset(tp.partition)
            expected = 0 if applied is None else applied + 1
            high = app.consumer.highwater(tp)
            if high is None or high <= expected:
                behind.pop(tp, None)
                continue
            seen = behind.get(tp)
            if seen is None or seen[0] != applied:
                behind[tp] = (applied, now)
            elif now - seen[1] >= STALL_S:
                del behind[tp]
                await reread(name, tp.topic, {tp.partition: expected},
                             f"{tp.topic}[{tp.partition}] has stood at offset {applied} for {now - seen[1]:.0f} s "
                             f"with messages up to {high - 1} after it")
