"""The ranker stage: the global top N over every ledger partition's candidates (one partition).

Its `Ranker` (streams/ranker.py holds the rules) is kept between batches and
forgotten when a batch fails or the partition may move; it is rebuilt from the
store on next use. The ranking events go to the output keyed by suspect id.

The events a batch emits depend on how the batch was cut (its as_of, ranks,
causes), and a replay after a crash may be cut otherwise: so this stage writes
its state first, with the batch's events in it (`PENDING_KEY`), and sends them
after; a crash in between re-sends exactly those bytes (`recover`), which
consumers drop by event_id, and never a differently cut second version.
"""
from __future__ import annotations

from typing import Callable, Optional

import orjson

from ..envelope import open_envelope
from ..messages import candidate_update_from_json
from ..ranker import Ranker
from ..store import Store
from .base import OFFSET_KEY, OUTPUT, Work, unapplied


#: In the ranker's store: the ranking events of the last batch, sent again by `recover`.
PENDING_KEY = "out"


class RankerStage:
    writes_first = True  # state (with the batch's events) is written before the events are sent

    def __init__(self, stores: Callable[[int], Store], top_n: int):
        self.stores = stores
        self.top_n = top_n
        self._ranker: Optional[Ranker] = None

    @property
    def ranker(self) -> Ranker:
        if self._ranker is None:
            self._ranker = Ranker(self.stores(0), self.top_n)
        return self._ranker

    def work(self, messages: list) -> Work:
        """Apply a batch of candidate envelopes; the membership changes go out as ranking events."""
        work = Work()
        ranker = self.ranker
        work.stores.append(ranker.store)
        work.partitions.append(0)
        for msg in unapplied(ranker.store, messages):
            envelope = open_envelope(msg.value)
            work.t0 = max(work.t0, envelope.t0)
            ranker.apply_many([candidate_update_from_json(item) for item in envelope.items])
            if envelope.as_of is not None:
                ranker.advance(envelope.as_of)
        events = ranker.flush()
        if events:
            ranker.store[PENDING_KEY] = events
        elif ranker.store.get(PENDING_KEY) is not None:
            del ranker.store[PENDING_KEY]
        for event in events:
            work.outbox.send(OUTPUT, event["suspect_id"].encode(), orjson.dumps(event))
            work.tally["output", event["type"], event.get("reason", "")] += 1
        return work

    def recover(self) -> Work:
        """The events of the last batch written, to send again after a restart (the same bytes)."""
        work = Work()
        for event in self.ranker.store.get(PENDING_KEY) or []:
            work.outbox.send(OUTPUT, event["suspect_id"].encode(), orjson.dumps(event))
        return work

    def applied_offset(self, partition: int) -> Optional[int]:
        """The offset of the last input message the ranker's state includes (None: none yet)."""
        return self.ranker.store.get(OFFSET_KEY)

    def failed(self, work: Work) -> None:
        self._ranker = None

    def reset(self) -> None:
        self._ranker = None
