"""A list's global ranker: the top N over every partition's candidates, and the events it emits.

Its input is only the ledgers' local top-N changes of its list (at most
partitions x N candidates), so it stays small at any scale. At each flush it
compares the top N with what it last announced (kept in the store: "m:<suspect>"
holds his announced score, allegations, victims and the as_of he entered at)
and emits `ranking.exited` events first, then `ranking.entered`, then
`ranking.updated` for members whose own standing changed, so a consumer that
applies them in order never holds more than N members. Each exit is kept
("h:<suspect>": at, reason, score) for the briefing, HISTORY_DAYS long.

An event's id is a digest of its content, its cause and its place in the list's
events ("seq": how many the list has emitted before it). Content and cause alone
can repeat: one report naming two suspects on two ledger partitions may displace
the same member twice, at one as_of, with him back in between; a consumer that
drops re-sends by id would then drop a real exit. The count is kept in the store
and moves with the state it belongs to; a re-send is the stored bytes, id and all.
"""
from __future__ import annotations

import hashlib
import json
from typing import Optional

from schemas.defaults import TOP_N
from schemas.events import US_PER_DAY, us_to_iso
from schemas.lists import DEFAULT_LIST_NAME

from .book import TopBook
from .messages import LOWERING_WHYS, WHY_DISPLACED, CandidateUpdate, Summary, rank_key
from .store import Store

#: How long an exit is kept for the briefing (SPEC §8: at least 400 days).
HISTORY_DAYS = 400


def output_event_id(body: dict, seq: int) -> str:
    """Derived from content (the list included), cause and the event's place in its list's events, so a
    consumer can drop the re-sends of a restart and no two events of a list share one."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{seq}:{canonical}".encode()).hexdigest()[:32]


def days(cents: int) -> float:
    """Hundredths of a day as the JSON number of SPEC §3 (exact for two decimals)."""
    return cents / 100


class Ranker:
    def __init__(self, store: Store, top_n: int = TOP_N, name: str = DEFAULT_LIST_NAME):
        self.store = store
        self.top_n = top_n
        self.name = name
        self._book: Optional[TopBook] = None
        self._touched: dict = {}  # suspect -> (why, cause, summary) since the last flush
        self._rechecks: set = set()  # touched only to be compared after a restart: a change names the cause

    @property
    def as_of(self) -> int:
        return self.store.get("clock", 0)

    @property
    def book(self) -> TopBook:
        if self._book is None:
            self._book = TopBook(self.top_n)
            self._book.rebuild(rank_key(k[2:], Summary(*v)) for k, v in self.store.scan("c:"))
            self._reconcile()
        return self._book

    def _reconcile(self) -> None:
        """After a restart, have the next flush compare every announced and every current member.

        A crash between apply() and flush() leaves candidates in the store that
        were never announced, and the members they displaced still announced;
        replaying the input touches only the replayed suspects, so the rest of
        the difference is found here (O(N), once per restart).
        """
        cause = "clock:" + us_to_iso(self.as_of)  # unless a candidate names a better one before the flush
        for suspect in [key[2:] for key, _ in self.store.scan("m:")] + self._book.members():
            if suspect not in self._touched:
                self._touched[suspect] = (WHY_DISPLACED, cause, self.candidate(suspect))
                self._rechecks.add(suspect)

    def candidate(self, suspect: str) -> Optional[Summary]:
        v = self.store.get("c:" + suspect)
        return None if v is None else Summary(*v)

    def ranking(self) -> list[tuple[int, str, Summary]]:
        """The current top N as (rank, suspect, summary)."""
        return [(i, key[-1], self.candidate(key[-1])) for i, key in enumerate(self.book.top(), start=1)]

    def entered_at(self, suspect: str) -> Optional[int]:
        """The as_of (epoch us) at which an announced member last entered, or None."""
        announced = self.store.get("m:" + suspect)
        return None if announced is None else announced[3]

    def exits(self):
        """(suspect, [at, reason, score]) of each suspect's last exit kept, unordered."""
        for key, value in self.store.scan("h:"):
            yield key[2:], value

    def threshold(self) -> Optional[Summary]:
        key = self.book.threshold()
        return None if key is None else self.candidate(key[-1])

    def advance(self, as_of: int) -> None:
        if as_of > self.store.get("clock", 0):
            self.store["clock"] = as_of

    def apply(self, update: CandidateUpdate) -> None:
        book = self.book  # built (after a restart) before the store changes: the change is then a move in it
        suspect = update.suspect
        if update.candidate:
            self.store["c:" + suspect] = list(update.summary)
            key = rank_key(suspect, update.summary)
        else:
            if self.store.get("c:" + suspect) is not None:
                del self.store["c:" + suspect]
            key = None
        self._touched[suspect] = (update.why, update.cause, update.summary)
        self._rechecks.discard(suspect)
        entered, exited = book.update(suspect, key)
        for other in entered + exited:
            if other not in self._touched or other in self._rechecks:
                self._touched[other] = (WHY_DISPLACED, update.cause, self.candidate(other))
                self._rechecks.discard(other)

    def apply_many(self, updates) -> None:
        for update in updates:
            self.apply(update)

    def flush(self) -> list[dict]:
        """Ranking events for the changes since the last flush: exits, entries, then updates."""
        as_of_us = self.as_of
        self._forget_old_exits(as_of_us)
        if not self._touched:
            return []
        book = self.book
        store = self.store
        as_of = us_to_iso(as_of_us)
        exits, entries, updates = [], [], []
        for suspect, (why, cause, summary) in self._touched.items():
            member_key = "m:" + suspect
            announced = store.get(member_key)
            if book.is_member(suspect):
                now = self.candidate(suspect)
                state = [now.score, now.allegations, now.victims]
                if announced is None:
                    store[member_key] = state + [as_of_us]
                    entries.append((book.rank(suspect), suspect, now, cause))
                elif announced[:3] != state:
                    store[member_key] = state + [announced[3]]
                    updates.append((book.rank(suspect), suspect, now, cause))
            elif announced is not None:
                del store[member_key]
                summary = summary or Summary(0, 0, 0, 0)
                reason = why if why in LOWERING_WHYS else WHY_DISPLACED
                store["h:" + suspect] = [as_of_us, reason, summary.score]
                exits.append(self._body("ranking.exited", suspect, summary, as_of, cause, reason=reason))
        self._touched.clear()
        self._rechecks.clear()
        entries.sort()
        updates.sort()
        bodies = (exits + [self._body("ranking.entered", s, summ, as_of, cause, rank=rank)
                           for rank, s, summ, cause in entries]
                  + [self._body("ranking.updated", s, summ, as_of, cause, rank=rank)
                     for rank, s, summ, cause in updates])
        return self._numbered(bodies)

    def _numbered(self, bodies: list) -> list[dict]:
        """The events of `bodies`, each with its id from its place in the list's events ("seq")."""
        seq = self.store.get("seq", 0)
        if bodies:
            self.store["seq"] = seq + len(bodies)
        return [{"event_id": output_event_id(body, seq + i), **body} for i, body in enumerate(bodies)]

    def _forget_old_exits(self, as_of_us: int) -> None:
        """Once a day of the clock: drop the exits older than HISTORY_DAYS (the briefing's history)."""
        day = as_of_us // US_PER_DAY
        if not as_of_us or self.store.get("h-day") == day:
            return
        self.store["h-day"] = day
        cutoff = as_of_us - HISTORY_DAYS * US_PER_DAY
        for key, (at, _, _) in list(self.store.scan("h:")):
            if at < cutoff:
                del self.store[key]

    def _body(self, kind: str, suspect: str, summary: Summary, as_of: str, cause: str, rank=None,
              reason=None) -> dict:
        body = {"type": kind, "list": self.name, "suspect_id": suspect}
        if rank is not None:
            body["rank"] = rank
        if reason is not None:
            body["reason"] = reason
        body.update(score=days(summary.score), allegations=summary.allegations, victims=summary.victims,
                    as_of=as_of, cause=cause)
        return body
