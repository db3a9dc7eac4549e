"""The identity directory: which suspect records are one person (one global partition).

Merges are rare, and deciding one needs every earlier merge (alias chains, and
"merging an id into itself after resolution" is rejected), so they pass through
this single sequential stage. It keeps the alias forest acyclic by construction:
it only ever links one canonical id under another, distinct canonical id. Each
accepted merge becomes an `Alias` that every register partition applies.
"""
from __future__ import annotations

from typing import Optional

from schemas.events import SuspectsMerged

from .messages import Alias
from .register import ACCEPTED, DUPLICATE_OUTCOME, Outcome, rejected, resolve
from .store import Store


class Identity:
    def __init__(self, store: Store):
        self.store = store

    def canonical(self, suspect: str) -> str:
        return resolve(self.store, suspect)

    def merged_into(self, suspect: str) -> Optional[str]:
        """The canonical id `suspect` now belongs to, or None if it is canonical itself."""
        canonical = self.canonical(suspect)
        return None if canonical == suspect else canonical

    def apply(self, event: SuspectsMerged) -> Outcome:
        store = self.store
        if store.get("e:" + event.event_id) is not None:
            return DUPLICATE_OUTCOME
        src, into = self.canonical(event.suspect_id), self.canonical(event.into)
        if src == into:
            return rejected("self_merge", f"{event.suspect_id!r} and {event.into!r} are already one suspect ({src!r})")
        store["al:" + src] = into
        store["e:" + event.event_id] = 1
        return Outcome(ACCEPTED, None, [Alias(src, into, event.event_id, event.at)])
