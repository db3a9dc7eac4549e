"""The ranker stage: each list's global top N over every ledger partition's candidates (one partition).

It keeps one `Ranker` per list (streams/ranker.py holds the rules), each over its
own part of the partition's store (keys "<list>/..."); a candidate update goes
to the ranker its list names (one of a list no longer configured is dropped).
The rankers are kept between batches and forgotten when a batch fails or the
partition may move; they are rebuilt from the store on next use. The ranking
events go to the output keyed by suspect id.

The events a batch emits depend on how the batch was cut (its as_of, ranks,
causes), and a replay after a crash may be cut otherwise: so this stage writes
its state first, with the batch's events in it (`PENDING_KEY`), and sends them
after; a crash in between re-sends exactly those bytes (`recover`), which
consumers drop by event_id, and never a differently cut second version.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import orjson

from schemas.lists import ListSpec, default_lists

from ..envelope import open_envelope
from ..messages import candidate_update_from_json
from ..ranker import Ranker
from ..store import PrefixedStore, Store
from .base import OFFSET_KEY, OUTPUT, PENDING_KEY, Work, unapplied


class RankerStage:
    writes_first = True  # state (with the batch's events) is written before the events are sent

    def __init__(self, stores: Callable[[int], Store], top_n: int, lists: Optional[Sequence[ListSpec]] = None):
        self.stores = stores
        self.lists = tuple(lists or default_lists(top_n))
        self._store: Optional[Store] = None
        self._rankers: Optional[dict] = None

    @property
    def rankers(self) -> dict:
        """list name -> its Ranker, in the order of the lists (the first is the default list)."""
        if self._rankers is None:
            self._store = self.stores(0)
            self._rankers = {spec.name: Ranker(PrefixedStore(self._store, spec.name + "/"), spec.top_n, spec.name)
                             for spec in self.lists}
        return self._rankers

    @property
    def store(self) -> Store:
        """The partition's whole store (every list's part, the offset and the pending events)."""
        self.rankers  # noqa: B018 (opens it)
        assert self._store is not None
        return self._store

    @property
    def ranker(self) -> Ranker:
        """The first list's ranker."""
        return next(iter(self.rankers.values()))

    def ranker_of(self, name: Optional[str]) -> Optional[Ranker]:
        """A list's ranker by name (None: the first list), or None for a list not configured."""
        return self.ranker if name is None else self.rankers.get(name)

    def work(self, messages: list) -> Work:
        """Apply a batch of candidate envelopes; the membership changes go out as ranking events."""
        work = Work()
        rankers = self.rankers
        store = self.store
        work.stores.append(store)
        work.partitions.append(0)
        for msg in unapplied(store, messages):
            envelope = open_envelope(msg.value)
            work.t0 = max(work.t0, envelope.t0)
            for item in envelope.items:
                update = candidate_update_from_json(item)
                ranker = rankers.get(update.list_name)
                if ranker is not None:
                    ranker.apply(update)
            if envelope.as_of is not None:
                for ranker in rankers.values():
                    ranker.advance(envelope.as_of)
        events = [event for ranker in rankers.values() for event in ranker.flush()]
        if events:
            store[PENDING_KEY] = events
        elif store.get(PENDING_KEY) is not None:
            del store[PENDING_KEY]
        for event in events:
            work.outbox.send(OUTPUT, event["suspect_id"].encode(), orjson.dumps(event))
            work.tally["output", event["type"], event.get("reason", ""), event["list"]] += 1
        return work

    def recover(self) -> Work:
        """The events of the last batch written, to send again after a restart (the same bytes)."""
        work = Work()
        for event in self.store.get(PENDING_KEY) or []:
            work.outbox.send(OUTPUT, event["suspect_id"].encode(), orjson.dumps(event))
        return work

    def applied_offset(self, partition: int) -> Optional[int]:
        """The offset of the last input message the ranker's state includes (None: none yet)."""
        return self.store.get(OFFSET_KEY)

    def failed(self, work: Work) -> None:
        self._rankers = None

    def reset(self) -> None:
        self._rankers = None
