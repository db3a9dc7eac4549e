"""The ledger's expiry index: every allegation in the window under the hour it was recorded in.

A bucket ("x:<hour>") is three parallel lists, [recorded_at...], [suspect...],
[crime_ref...], in the order of (recorded_at, suspect, crime_ref): a search
compares plain ints, not lists. The window's end takes whole buckets from the
cursor on (`due`); an escalation list's recent part, or a list window shorter
than the ledger's, reads the entries that crossed its span (`crossing`).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

from schemas.events import US_PER_DAY

from .store import Store

US_PER_HOUR = US_PER_DAY // 24


class ExpiryIndex:
    def __init__(self, store: Store):
        self.store = store
        self._xkey: tuple = (None, None)  # (hour, "x:<hour>") of the last bucket written

    def index(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        """Index an allegation under the hour it was recorded in."""
        hour = recorded_at // US_PER_HOUR
        last_hour, key = self._xkey
        if hour != last_hour:
            key = f"x:{hour}"
            self._xkey = (hour, key)
        store = self.store
        bucket = store.get(key)
        if bucket is None:
            store[key] = [[recorded_at], [suspect], [crime_ref]]
            # Every bucket at or after the cursor survives due(), so only a new one can move it.
            cursor = store.get("x-cursor")
            if cursor is None or hour < cursor:
                store["x-cursor"] = hour
            return
        times, suspects, refs = bucket
        last = times[-1]
        if recorded_at > last or (recorded_at == last and (suspect, crime_ref) >= (suspects[-1], refs[-1])):
            times.append(recorded_at)  # in order of arrival
            suspects.append(suspect)
            refs.append(crime_ref)
        else:  # after every entry that is not greater (bisect.insort of the whole entry)
            i = bisect_left(times, recorded_at)
            end = bisect_right(times, recorded_at, i)
            while i < end and (suspects[i], refs[i]) <= (suspect, crime_ref):
                i += 1
            times.insert(i, recorded_at)
            suspects.insert(i, suspect)
            refs.insert(i, crime_ref)
        store[key] = bucket

    def unindex(self, suspect: str, crime_ref: str, recorded_at: int) -> None:
        """Take an allegation that leaves before its time (cancel, unlink, merge) out of its bucket."""
        key = f"x:{recorded_at // US_PER_HOUR}"
        bucket = self.store.get(key)
        if bucket is None:
            return
        times, suspects, refs = bucket
        i = bisect_left(times, recorded_at)
        end = bisect_right(times, recorded_at, i)
        while i < end and (suspects[i] != suspect or refs[i] != crime_ref):
            i += 1
        if i == end:
            return
        if len(times) == 1:
            del self.store[key]
            return
        del times[i], suspects[i], refs[i]
        self.store[key] = bucket

    def due(self, cutoff: int) -> list:
        """Take out and return every entry (recorded_at, suspect, crime_ref) recorded at or before `cutoff`."""
        store = self.store
        cursor = store.get("x-cursor")
        if cursor is None:
            return []
        last_hour = cutoff // US_PER_HOUR
        if last_hour < cursor:
            return []
        out: list = []
        for hour in range(cursor, last_hour + 1):
            key = f"x:{hour}"
            bucket = store.get(key)
            if bucket is None or bucket[0][0] > cutoff:
                continue
            times, suspects, refs = bucket
            split = bisect_right(times, cutoff)
            out.extend(zip(times[:split], suspects[:split], refs[:split]))
            if split < len(times):
                del times[:split]
                del suspects[:split]
                del refs[:split]
                store[key] = bucket
            else:
                del store[key]
        store["x-cursor"] = last_hour
        return out

    def crossing(self, low: int, high: int) -> list:
        """The entries (recorded_at, suspect, crime_ref) with low < recorded_at <= high, left in place."""
        store = self.store
        cursor = store.get("x-cursor")
        if cursor is None or high <= low:
            return []
        out: list = []
        for hour in range(max(cursor, low // US_PER_HOUR), high // US_PER_HOUR + 1):
            bucket = store.get(f"x:{hour}")
            if bucket is None:
                continue
            times, suspects, refs = bucket
            i, j = bisect_right(times, low), bisect_right(times, high)
            out.extend(zip(times[i:j], suspects[i:j], refs[i:j]))
        return out
