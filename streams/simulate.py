"""A seeded synthetic feed of `crime-reports` input events (SPEC §2), shaped like VAWG data.

Pure Python, no Kafka: :func:`generate` yields plain dicts exactly in the JSON shape of
SPEC §2, :func:`write_jsonl` writes them one per line, :func:`describe` summarises a feed
and :func:`main` is ``harmrank simulate``.

Shape of the feed (all rates are shares of *events*, approximate):

* suspects are drawn from a population whose propensity to offend is Pareto-distributed
  (a few per cent of suspects are named on a large part of the reports); each suspect
  is active during one stretch of the timeline; prolific suspects lean towards the
  more serious offences and offend against several (mostly the same) victims;
* ~85 % of reports carry a VAWG offence (common assault, ABH, harassment, stalking,
  controlling or coercive behaviour, threats to kill, sexual assault, rape, GBH, breach
  of protective orders) and ~15 % a non-VAWG one (drug supply, robbery, burglary,
  theft) named against the same suspects;
* victims mostly female; ~5 % of reports name no suspect, ~8 % two; ~10 % carry an
  explicit ``vawg`` flag;
* corrections that refer to a crime recorded earlier and not cancelled:
  report.cancelled ~2 %, report.reclassified ~3 %, suspect.linked ~3 %,
  suspect.unlinked ~2 %, suspects.merged ~0.5 % (between two distinct live suspect
  records, sometimes chained A->B then B->C);
* exact duplicates ~1 % (a recent event re-sent with the same ``event_id``);
* late events ~1 % (a report whose ``at`` is 2 hours to 4 days older than the newest);
* invalid events at ``invalid_rate`` (default 0.5 %; 0 disables): unknown offence code,
  missing field, bad timestamp, correction for an unknown or cancelled crime_ref, a second
  report.recorded for a known crime_ref, a merge of a suspect into himself.

Scale: a London-sized city is taken as about 90,000 such events and 35,000 distinct
suspects a year; unless ``suspects`` is given, the suspect population is scaled from the
events per simulated year so that this ratio holds whatever the size of the feed.

Memory: the suspect population (two doubles per suspect) plus a bounded ring of recent
crimes for the corrections; victims are derived from the suspect by hashing, not stored.
The same arguments give the same output, byte for byte.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import datetime as _dt
import itertools
import json
import math
import os
import random
import sys
import time
from array import array
from collections import Counter, deque
from typing import IO, Iterable, Iterator, Mapping, Optional, Sequence, Union

from schemas.events import US_PER_DAY, US_PER_SECOND, datetime_to_us, us_to_iso

__all__ = [
    "OFFENCES",
    "VAWG_CODES",
    "DAYS",
    "generate",
    "write_jsonl",
    "describe",
    "main",
    "suspect_population",
    "load_days",
    "dumps",
]

# --------------------------------------------------------------------------------------
# Offence mix: (code, weight, days as in CCHI 2020 (hint only), vawg, title, victim kind)
# victim kind: "F" female victim forced, "P" partner/known victim (mostly F), "S" stranger
# of any sex, "-" no victim (state offences).  Weights are relative shares of reports.
# Every code exists in HOME_OFFICE_CLASSIFICATION of the CCHI 2020 source CSV.
# --------------------------------------------------------------------------------------
OFFENCES: tuple[tuple[str, float, float, bool, str, str], ...] = (
    # VAWG (~85 %)
    ("105/01", 32.0, 1.0, True, "Common assault and battery", "P"),
    ("008/06", 15.0, 10.0, True, "Assault occasioning actual bodily harm", "P"),
    ("195/94", 7.0, 10.0, True, "Harassment", "P"),
    ("008/30", 2.0, 5.0, True, "Harassment - putting people in fear of violence", "P"),
    ("195/12", 2.0, 10.0, True, "Course of conduct amounting to stalking", "P"),
    ("008/66", 2.5, 252.0, True, "Stalking involving serious alarm/distress", "P"),
    ("008/65", 1.5, 84.0, True, "Stalking involving fear of violence", "P"),
    ("008/67", 5.0, 84.0, True, "Controlling or coercive behaviour", "P"),
    ("008/71", 1.0, 5.0, True, "Disclose private sexual photographs and films", "P"),
    ("003/01", 3.0, 10.0, True, "Threats to kill", "P"),
    ("020/05", 4.0, 19.0, True, "Sexual assault on a female", "F"),
    ("019/08", 2.0, 1825.0, True, "Rape of a female aged 16 or over", "F"),
    ("019/12", 0.5, 1825.0, True, "Attempted rape of a female aged 16 or over", "F"),
    ("008/01", 2.0, 19.0, True, "Malicious wounding / inflicting GBH", "P"),
    ("005/01", 0.7, 1460.0, True, "Wounding with intent to do GBH", "P"),
    ("066/39", 2.0, 5.0, True, "Breach of non-molestation order", "P"),
    ("008/31", 1.5, 5.0, True, "Breach of a restraining order", "P"),
    # non-VAWG (~15 %), named against the same suspects
    ("092/34", 3.0, 547.5, False, "Supplying a controlled drug - Class A - Crack", "-"),
    ("092/31", 1.5, 547.5, False, "Supplying a controlled drug - Class A - Heroin", "-"),
    ("092/41", 2.0, 5.0, False, "Supplying a controlled drug - Class B - Cannabis", "-"),
    ("092/70", 1.5, 547.5, False, "Possession with intent to supply - Class A - Cocaine", "-"),
    ("034/01", 2.3, 365.0, False, "Robbery of personal property", "S"),
    ("028/03", 2.3, 10.0, False, "Burglary - residential", "S"),
    ("046/00", 1.5, 1.0, False, "Theft from shops and stalls", "-"),
    ("039/00", 1.0, 2.0, False, "Theft from the person", "S"),
    ("149/00", 1.0, 1.0, False, "Criminal damage under 5,000", "S"),
)

VAWG_CODES: frozenset[str] = frozenset(o[0] for o in OFFENCES if o[3])
DAYS: dict[str, float] = {o[0]: o[2] for o in OFFENCES}
_VICTIM_KIND = {o[0]: o[5] for o in OFFENCES}
# Offences that prolific suspects are more prone to (escalation).
_SERIOUS = frozenset({"008/06", "008/66", "008/65", "008/67", "003/01", "019/08", "019/12",
                      "008/01", "005/01", "020/05"})
_PROLIFIC_BOOST = 1.8

# London-sized city: events and distinct suspects per year.
LONDON_EVENTS_PER_YEAR = 90_000
LONDON_SUSPECTS_PER_YEAR = 35_000
# Measured: with the propensity law below, only about 1/2.9 of the population is named
# at least once in a year at the London rate; the population is scaled to compensate.
_POPULATION_FACTOR = 2.9

# Propensity law: Pareto(alpha), capped so that no single suspect dominates the feed.
_PARETO_ALPHA = 1.15
_PROPENSITY_CAP = 80.0
_PROLIFIC_WEIGHT = 8.0  # propensity above which a suspect counts as prolific

# Event-type rates (shares of all events); the rest are report.recorded.
_RATE_DUPLICATE = 0.01
_RATE_CANCELLED = 0.02
_RATE_RECLASSIFIED = 0.03
_RATE_LINKED = 0.03
_RATE_UNLINKED = 0.02
_RATE_MERGED = 0.005
_RATE_LATE = 0.011  # of reports, so that ~1 % of all events are late
_RATE_NO_SUSPECT = 0.05
_RATE_TWO_SUSPECTS = 0.08
_RATE_EXPLICIT_VAWG = 0.10
_RATE_TWO_VICTIMS = 0.08
_RATE_STRANGER = 0.15  # VAWG reports against a victim unknown to the suspect

_RING = 50_000  # recent crimes kept for corrections
_RECENT_EVENTS = 256  # recent events kept for duplicates
_VICTIM_SLOTS = 8  # known victims per suspect, at most

def _mix32(h: int) -> int:
    """A cheap 32-bit integer hash (murmur3 finaliser)."""
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def suspect_population(events: int, days: float) -> int:
    """The suspect population for a feed of ``events`` events over ``days`` days."""
    per_year = events * 365.0 / max(days, 1e-9)
    years = max(days, 1e-9) / 365.0
    per_year_suspects = per_year * LONDON_SUSPECTS_PER_YEAR / LONDON_EVENTS_PER_YEAR
    # A feed longer than a year sees some turnover of the population as well.
    return max(8, int(round(per_year_suspects * _POPULATION_FACTOR * max(1.0, years ** 0.5))))


#: The latest end of a timeline: two years before the last `at` that can be written, for the late corrections.
_LAST_END_US = datetime_to_us(_dt.datetime(9997, 12, 31, tzinfo=_dt.timezone.utc))


def _parse_start(start: Union[str, _dt.datetime]) -> int:
    if isinstance(start, str):
        value = _dt.datetime.fromisoformat(start.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    elif isinstance(start, _dt.datetime):
        value = start
    else:
        raise TypeError("start must be an RFC 3339 string or a datetime")
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return datetime_to_us(value)


class _Crime:
    __slots__ = ("num", "ref", "code", "suspects", "cancelled", "vawg")

    def __init__(self, num: int, ref: str, code: str, suspects: list[str], vawg: Optional[bool]):
        self.num = num
        self.ref = ref
        self.code = code
        self.suspects = suspects
        self.cancelled = False
        self.vawg = vawg


def generate(
    seed: int = 1,
    events: int = 10_000,
    start: Union[str, _dt.datetime] = "2025-01-01T00:00:00+00:00",
    days: float = 400.0,
    suspects: Optional[int] = None,
    invalid_rate: float = 0.005,
) -> Iterator[dict]:
    """Yield ``events`` input events (dicts in the JSON shape of SPEC §2).

    Do not mutate the yielded dicts: an exact duplicate is re-sent later as a copy of
    the original.

    ``at`` is non-decreasing except for the ~1 % late reports, the duplicates (re-sent
    as they were) and the invalid events.  ``suspects`` is the size of the suspect
    population (default: scaled from the events per year, see module docstring).
    """
    if events < 0:
        raise ValueError("events must be >= 0")
    if not 0 < days < math.inf:
        raise ValueError("days must be a number > 0")
    if not 0.0 <= invalid_rate < 0.5:
        raise ValueError("invalid_rate must be in [0, 0.5)")
    start_us = _parse_start(start)
    if start_us + days * US_PER_DAY > _LAST_END_US:
        raise ValueError("the timeline (start and days) must end by 9997-12-31, so that every `at` can be written")
    return _Generator(seed, events, start_us, days, suspects, invalid_rate).run()


class _Generator:
    def __init__(self, seed: int, events: int, start_us: int, days: float,
                 suspects: Optional[int], invalid_rate: float):
        self.seed = seed
        self.events = events
        self.start_us = start_us
        self.days = days
        self.span_us = int(days * US_PER_DAY)
        self.invalid_rate = invalid_rate
        self.rng = random.Random(seed)
        self.pool = suspects if suspects is not None else suspect_population(events, days)
        if self.pool < 1:
            raise ValueError("suspects must be >= 1")
        rng = self.rng
        # Pareto propensities, capped; cumulative for O(log n) draws.
        # Per suspect: a propensity (Pareto, capped; one double a suspect) and a stretch of
        # the timeline when he is active, derived from his index by hashing (no storage).
        inv_alpha = -1.0 / _PARETO_ALPHA
        cap = _PROPENSITY_CAP
        rand = rng.random
        weights = array("d", [min(cap, (1.0 - rand()) ** inv_alpha) for _ in range(self.pool)])
        self.weights = weights
        self.cum = array("d", itertools.accumulate(weights))
        self.total = self.cum[-1]
        self.h1 = (rng.getrandbits(32) | 1, rng.getrandbits(32))
        self.h2 = (rng.getrandbits(32) | 1, rng.getrandbits(32))
        # Offence tables (normal, prolific).
        self.codes = [o[0] for o in OFFENCES]
        self.cum_normal = list(itertools.accumulate(o[1] for o in OFFENCES))
        self.cum_prolific = list(itertools.accumulate(
            o[1] * (_PROLIFIC_BOOST if o[0] in _SERIOUS else 1.0) for o in OFFENCES))
        vawg = [o for o in OFFENCES if o[3]]
        self.vawg_codes = [o[0] for o in vawg]
        self.cum_vawg = list(itertools.accumulate(o[1] for o in vawg))
        # State.
        self.now = start_us  # simulated clock: newest `at` so far
        self.gap_us = self.span_us / max(events, 1)
        self.n_event = 0
        self.n_crime = 0
        self._year = (0, 0, 1970)
        self.n_stranger = 0
        self.ring: deque[_Crime] = deque(maxlen=_RING)
        self.recent: deque[dict] = deque(maxlen=_RECENT_EVENTS)
        self.alias: dict[str, str] = {}  # merged id -> into
        self.merge_targets: deque[str] = deque(maxlen=64)
        # Recency of corrections: mean distance back, in crimes (~3 weeks of reports).
        self.corr_mean = max(3.0, 21.0 * events / days)

    # ---- ids -------------------------------------------------------------------------
    def event_id(self) -> str:
        self.n_event += 1
        return f"sim-{self.seed}-{self.n_event:08d}"

    def crime_ref(self, at_us: int) -> tuple[int, str]:
        self.n_crime += 1
        lo, hi, year = self._year
        if not lo <= at_us < hi:
            year = (_dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=at_us)).year
            lo = datetime_to_us(_dt.datetime(year, 1, 1, tzinfo=_dt.timezone.utc))
            hi = datetime_to_us(_dt.datetime(year + 1, 1, 1, tzinfo=_dt.timezone.utc))
            self._year = (lo, hi, year)
        return self.n_crime, f"CR-{year}-{self.n_crime:07d}"

    @staticmethod
    def sid(index: int) -> str:
        return f"S{index + 1:06d}"

    # ---- draws -----------------------------------------------------------------------
    def active(self, s: int, t: int) -> bool:
        """Whether suspect s is active at t: a stretch of 35-100 % of the timeline."""
        a, b = self.h1
        length = 0.35 + 0.65 * (((_mix32(s * a + b)) & 0xFFFFFFFF) / 4294967296.0)
        a, b = self.h2
        begin = (((_mix32(s * a + b)) & 0xFFFFFFFF) / 4294967296.0) * (1.0 + length) - length
        x = (t - self.start_us) / self.span_us
        return begin <= x <= begin + length

    def draw_suspect(self, t: int, exclude: Sequence[int] = ()) -> int:
        rng = self.rng
        s = 0
        for _ in range(8):
            s = bisect.bisect_right(self.cum, rng.random() * self.total)
            if s >= self.pool:
                s = self.pool - 1
            if s in exclude:
                continue
            if self.active(s, t):
                return s
        if s in exclude and self.pool > len(exclude):
            while s in exclude:
                s = rng.randrange(self.pool)
        return s

    def draw_code(self, prolific: bool) -> str:
        cum = self.cum_prolific if prolific else self.cum_normal
        return self.codes[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def draw_vawg_code(self) -> str:
        return self.vawg_codes[bisect.bisect_right(self.cum_vawg, self.rng.random() * self.cum_vawg[-1])]

    def victim_known(self, s: int) -> dict:
        """A victim known to suspect s (partner, ex-partner, family): stable by hashing."""
        slots = 1 + min(_VICTIM_SLOTS - 1, int(math.log2(1.0 + self.weights[s] / 2.0)))
        k = 0 if self.rng.random() < 0.5 else self.rng.randrange(slots)
        u = (((s * _VICTIM_SLOTS + k) * 0x9E3779B1 + self.seed * 0x85EBCA77) & 0xFFFFFFFF) / 2.0**32
        sex = "F" if u < 0.90 else ("M" if u < 0.97 else "U")
        return {"id": f"V{s * _VICTIM_SLOTS + k + 1:06d}", "sex": sex}

    def victim_stranger(self, female_share: float) -> dict:
        self.n_stranger += 1
        u = self.rng.random()
        sex = "F" if u < female_share else ("M" if u < female_share + (1 - female_share) * 0.9 else "U")
        return {"id": f"V{self.pool * _VICTIM_SLOTS + self.n_stranger:06d}", "sex": sex}

    def pick_crime(self, live: bool = True) -> Optional[_Crime]:
        ring = self.ring
        if not ring:
            return None
        for _ in range(12):
            d = int(self.rng.expovariate(1.0 / self.corr_mean))
            if d >= len(ring):
                d = self.rng.randrange(len(ring))
            c = ring[len(ring) - 1 - d]
            if not live or not c.cancelled:
                return c
        return None

    def resolve(self, s: str) -> str:
        seen = 0
        while s in self.alias and seen < 1000:
            s = self.alias[s]
            seen += 1
        return s

    # ---- the clock -------------------------------------------------------------------
    def tick(self) -> int:
        gap = self.rng.expovariate(1.0) * self.gap_us
        self.now = max(self.now, int(self.now + gap) // US_PER_SECOND * US_PER_SECOND)
        return self.now

    # ---- events ----------------------------------------------------------------------
    def report(self, at: Optional[int] = None) -> dict:
        rng = self.rng
        if at is None:
            at = self.tick()
            if rng.random() < _RATE_LATE and at - self.start_us > 2 * 3600 * US_PER_SECOND:
                back = int(rng.uniform(2 * 3600, 4 * 86_400)) * US_PER_SECOND
                at = max(self.start_us, at - back)
        u = rng.random()
        n_suspects = 0 if u < _RATE_NO_SUSPECT else (2 if u < _RATE_NO_SUSPECT + _RATE_TWO_SUSPECTS else 1)
        idx: list[int] = []
        for _ in range(n_suspects):
            idx.append(self.draw_suspect(at, exclude=idx))
        prolific = bool(idx) and self.weights[idx[0]] >= _PROLIFIC_WEIGHT
        code = self.draw_code(prolific)
        kind = _VICTIM_KIND[code]
        victims: list[dict] = []
        if kind == "-":
            pass
        elif kind == "S":
            victims.append(self.victim_stranger(0.45))
        else:
            if idx and rng.random() >= _RATE_STRANGER:
                victims.append(self.victim_known(idx[0]))
            else:
                victims.append(self.victim_stranger(0.85))
            if rng.random() < _RATE_TWO_VICTIMS:
                other = self.victim_stranger(0.7) if rng.random() < 0.6 or not idx else self.victim_known(idx[0])
                if other["id"] != victims[0]["id"]:
                    victims.append(other)
            if kind == "F":
                for v in victims:
                    v["sex"] = "F"
        names = [self.sid(i) for i in idx]
        num, ref = self.crime_ref(at)
        event = {
            "event_id": self.event_id(),
            "type": "report.recorded",
            "at": us_to_iso(at),
            "crime_ref": ref,
            "offence_code": code,
            "suspects": names,
            "victims": victims,
        }
        flag: Optional[bool] = None
        if rng.random() < _RATE_EXPLICIT_VAWG:
            derived = code in VAWG_CODES and any(v["sex"] == "F" for v in victims)
            flag = derived if rng.random() < 0.85 else not derived
            event["vawg"] = flag
        self.ring.append(_Crime(num, ref, code, list(names), flag))
        return event

    def cancelled(self) -> Optional[dict]:
        c = self.pick_crime()
        if c is None:
            return None
        c.cancelled = True
        return {"event_id": self.event_id(), "type": "report.cancelled", "at": us_to_iso(self.tick()),
                "crime_ref": c.ref}

    def reclassified(self) -> Optional[dict]:
        c = self.pick_crime()
        if c is None:
            return None
        rng = self.rng
        for _ in range(5):
            code = self.draw_vawg_code() if (c.code in VAWG_CODES and rng.random() < 0.9) else self.draw_code(False)
            if code != c.code:
                break
        c.code = code
        event = {"event_id": self.event_id(), "type": "report.reclassified", "at": us_to_iso(self.tick()),
                 "crime_ref": c.ref, "offence_code": code}
        if rng.random() < 0.3:
            event["vawg"] = code in VAWG_CODES if rng.random() < 0.85 else code not in VAWG_CODES
        return event

    def linked(self) -> Optional[dict]:
        c = self.pick_crime()
        if c is None:
            return None
        rng = self.rng
        at = self.tick()
        if c.suspects and rng.random() < 0.08:
            name = rng.choice(c.suspects)  # already on the report: accepted no-op
        else:
            taken = [int(x[1:]) - 1 for x in c.suspects if x[1:].isdigit()]
            name = self.sid(self.draw_suspect(at, exclude=taken))
        if name not in c.suspects:
            c.suspects.append(name)
        return {"event_id": self.event_id(), "type": "suspect.linked", "at": us_to_iso(at),
                "crime_ref": c.ref, "suspect_id": name}

    def unlinked(self) -> Optional[dict]:
        rng = self.rng
        c = None
        for _ in range(4):
            c = self.pick_crime()
            if c is not None and c.suspects:
                break
        if c is None:
            return None
        at = self.tick()
        if c.suspects and rng.random() >= 0.05:
            name = c.suspects.pop(rng.randrange(len(c.suspects)))
        else:
            name = self.sid(self.draw_suspect(at))  # not on the report: accepted no-op
            if name in c.suspects:
                c.suspects.remove(name)
        return {"event_id": self.event_id(), "type": "suspect.unlinked", "at": us_to_iso(at),
                "crime_ref": c.ref, "suspect_id": name}

    def merged(self) -> Optional[dict]:
        rng = self.rng
        at = self.tick()
        a = b = None
        if self.merge_targets and rng.random() < 0.2:
            # chain: a former target is itself merged on (A->B, then B->C)
            cand = self.merge_targets[-1 - rng.randrange(len(self.merge_targets))]
            if cand not in self.alias:
                a = cand
        for _ in range(10):
            c = self.pick_crime(live=False)
            if c is None or not c.suspects:
                continue
            name = rng.choice(c.suspects)
            if name in self.alias:
                continue
            if a is None:
                a = name
            elif name != a and self.resolve(name) != a:
                b = name
                break
        if a is None or b is None:
            # fall back to the population: a record the feed has (probably) named
            return None
        self.alias[a] = b
        self.merge_targets.append(b)
        return {"event_id": self.event_id(), "type": "suspects.merged", "at": us_to_iso(at),
                "suspect_id": a, "into": b}

    def invalid(self) -> dict:
        rng = self.rng
        kind = rng.randrange(8)
        at = self.tick()
        if kind == 0:  # unknown offence code
            num, ref = self.crime_ref(at)
            return {"event_id": self.event_id(), "type": "report.recorded", "at": us_to_iso(at),
                    "crime_ref": ref, "offence_code": rng.choice(["999/99", "000/00", "105/99"]),
                    "suspects": [self.sid(self.draw_suspect(at))],
                    "victims": [{"id": f"V{rng.randrange(1, 10**6):06d}", "sex": "F"}]}
        if kind == 1:  # missing field
            num, ref = self.crime_ref(at)
            event = {"event_id": self.event_id(), "type": "report.recorded", "at": us_to_iso(at),
                     "crime_ref": ref, "offence_code": "105/01",
                     "suspects": [self.sid(self.draw_suspect(at))],
                     "victims": [{"id": f"V{rng.randrange(1, 10**6):06d}", "sex": "F"}]}
            del event[rng.choice(["crime_ref", "offence_code", "victims", "suspects", "at"])]
            return event
        if kind == 2:  # bad timestamp
            num, ref = self.crime_ref(at)
            iso = us_to_iso(at)
            bad = rng.choice([iso[:19], iso[:10] + " 25:61:00+00:00", "yesterday", iso.replace("-", "/", 2)])
            return {"event_id": self.event_id(), "type": "report.recorded", "at": bad,
                    "crime_ref": ref, "offence_code": "008/06",
                    "suspects": [self.sid(self.draw_suspect(at))],
                    "victims": [{"id": f"V{rng.randrange(1, 10**6):06d}", "sex": "F"}]}
        if kind == 3:  # correction for an unknown crime_ref
            ref = f"CR-{us_to_iso(at)[:4]}-9{rng.randrange(10**6):06d}"
            return {"event_id": self.event_id(), "type": "report.cancelled", "at": us_to_iso(at),
                    "crime_ref": ref}
        if kind == 4:  # correction for a cancelled crime (if any), else unknown
            cancelled = [c for c in itertools.islice(reversed(self.ring), 0, 2000) if c.cancelled]
            ref = cancelled[0].ref if cancelled else f"CR-{us_to_iso(at)[:4]}-8{rng.randrange(10**6):06d}"
            return {"event_id": self.event_id(), "type": "report.reclassified", "at": us_to_iso(at),
                    "crime_ref": ref, "offence_code": "008/06"}
        if kind == 5:  # second report.recorded for a known crime_ref
            c = self.pick_crime(live=False)
            ref = c.ref if c is not None else "CR-2000-0000000"
            s = self.sid(self.draw_suspect(at))
            return {"event_id": self.event_id(), "type": "report.recorded", "at": us_to_iso(at),
                    "crime_ref": ref, "offence_code": "105/01", "suspects": [s],
                    "victims": [{"id": f"V{rng.randrange(1, 10**6):06d}", "sex": "F"}]}
        if kind == 6:  # merge into himself (after alias resolution when possible)
            if self.alias and rng.random() < 0.5:
                a, b = next(reversed(self.alias.items()))  # a -> b; b into a resolves to b into b
                return {"event_id": self.event_id(), "type": "suspects.merged", "at": us_to_iso(at),
                        "suspect_id": b, "into": a}
            s = self.sid(self.draw_suspect(at))
            return {"event_id": self.event_id(), "type": "suspects.merged", "at": us_to_iso(at),
                    "suspect_id": s, "into": s}
        # kind 7: malformed values
        num, ref = self.crime_ref(at)
        return {"event_id": self.event_id(), "type": "report.recorded", "at": us_to_iso(at),
                "crime_ref": ref, "offence_code": "105/01",
                "suspects": self.sid(self.draw_suspect(at)),  # a string, not a list
                "victims": [{"id": f"V{rng.randrange(1, 10**6):06d}", "sex": "female"}]}

    def run(self) -> Iterator[dict]:
        rng = self.rng
        corrections = (
            (_RATE_DUPLICATE, "dup"),
            (_RATE_CANCELLED, "cancelled"),
            (_RATE_RECLASSIFIED, "reclassified"),
            (_RATE_LINKED, "linked"),
            (_RATE_UNLINKED, "unlinked"),
            (_RATE_MERGED, "merged"),
            (self.invalid_rate, "invalid"),
        )
        for _ in range(self.events):
            u = rng.random()
            event: Optional[dict] = None
            acc = 0.0
            choice = "report"
            for rate, name in corrections:
                acc += rate
                if u < acc:
                    choice = name
                    break
            if choice == "dup":
                if self.recent:
                    event = self.recent[rng.randrange(len(self.recent))]
                    yield json.loads(json.dumps(event))  # an exact, independent copy
                    continue
            elif choice == "invalid":
                event = self.invalid()
            elif choice != "report":
                event = getattr(self, choice)()
            if event is None:
                event = self.report()
            if choice != "invalid":
                self.recent.append(event)
            yield event


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------
def dumps(event: Mapping) -> str:
    """One event as a compact JSON line (no newline); stable field order."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def write_jsonl(events_iter: Iterable[Mapping], fh: IO[str]) -> int:
    """Write events one JSON object per line; returns the number written."""
    n = 0
    write = fh.write
    for event in events_iter:
        write(dumps(event))
        write("\n")
        n += 1
    return n


# --------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------
def load_days(path: Optional[str] = None) -> dict[str, float]:
    """{code: days} from a harm table CSV (default: the shipped one, else :data:`DAYS`)."""
    if path is None:
        path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "schemas", "data", "harm-table.csv")
        if not os.path.exists(path):
            return dict(DAYS)
    out: dict[str, float] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            try:
                out[row["offence_code"].strip()] = float(row["days"])
            except (KeyError, TypeError, ValueError):
                continue
    return out


class _FeedTally:
    """Running counts of a feed for :func:`describe`; one event at a time, duplicates skipped."""

    def __init__(self, days: Mapping[str, float], vawg_codes: frozenset) -> None:
        self.days = days
        self.vawg_codes = vawg_codes
        self.by_type: Counter = Counter()
        self.by_offence: Counter = Counter()
        self.suspects: set = set()
        self.victims: set = set()
        self.sexes: Counter = Counter()
        self.harm: Counter = Counter()
        self.seen_ids: set = set()
        self.events = self.reports = self.no_suspect = self.two_suspects = 0
        self.explicit = self.vawg_reports = self.late = self.duplicates = 0
        self.newest = ""

    def add(self, ev: Mapping) -> None:
        """Count one event: its type, its lateness, and what a report names."""
        self.events += 1
        if self._is_duplicate(ev.get("event_id")):
            return
        typ = ev.get("type")
        self.by_type[str(typ)] += 1
        self._note_time(ev.get("at"))
        if typ == "report.recorded":
            self._add_report(ev)
        elif typ == "suspect.linked" and isinstance(ev.get("suspect_id"), str):
            self.suspects.add(ev["suspect_id"])

    def _is_duplicate(self, eid: object) -> bool:
        """True for an ``event_id`` seen already; a new one is remembered."""
        if not isinstance(eid, str):
            return False
        if eid in self.seen_ids:
            self.duplicates += 1
            return True
        self.seen_ids.add(eid)
        return False

    def _note_time(self, at: object) -> None:
        """Count an event older than the newest seen as late; ``at`` unreadable is ignored."""
        if not (isinstance(at, str) and len(at) >= 20):
            return
        try:
            at_us = datetime_to_us(_dt.datetime.fromisoformat(at))
        except ValueError:
            return
        if self.newest and at_us < self.newest:
            self.late += 1
        self.newest = max(self.newest or at_us, at_us)

    def _add_report(self, ev: Mapping) -> None:
        """Count a report.recorded: its code, its suspects and victims, its VAWG harm."""
        self.reports += 1
        code = ev.get("offence_code")
        self.by_offence[str(code)] += 1
        names = ev.get("suspects") if isinstance(ev.get("suspects"), list) else []
        vics = ev.get("victims") if isinstance(ev.get("victims"), list) else []
        names = list(dict.fromkeys(x for x in names if isinstance(x, str)))
        if not names:
            self.no_suspect += 1
        elif len(names) == 2:
            self.two_suspects += 1
        self.suspects.update(names)
        for v in vics:
            if isinstance(v, dict):
                self.victims.add(v.get("id"))
                self.sexes[v.get("sex")] += 1
        if self._is_vawg(ev, code, vics):
            self.vawg_reports += 1
            d = float(self.days.get(code, 0.0)) if isinstance(code, str) else 0.0
            for s in names:
                self.harm[s] += d

    def _is_vawg(self, ev: Mapping, code: object, vics: list) -> bool:
        """The report's ``vawg`` flag, else a female victim and a VAWG code."""
        if "vawg" in ev:
            self.explicit += 1
            return ev["vawg"] is True
        return code in self.vawg_codes and any(
            isinstance(v, dict) and v.get("sex") == "F" for v in vics)

    def summary(self, top_share: float) -> dict:
        """The counts as :func:`describe` returns them."""
        ranked = sorted(self.harm.values(), reverse=True)
        ranked = [h for h in ranked if h > 0]
        total = sum(ranked)
        k = max(1, math.ceil(len(ranked) * top_share)) if ranked else 0
        nv = sum(self.sexes.values())
        reports = self.reports
        return {
            "events": self.events,
            "by_type": dict(sorted(self.by_type.items())),
            "by_offence": dict(sorted(self.by_offence.items())),
            "reports": reports,
            "distinct_suspects": len(self.suspects),
            "distinct_victims": len(self.victims),
            "share_no_suspect": self.no_suspect / reports if reports else 0.0,
            "share_two_suspects": self.two_suspects / reports if reports else 0.0,
            "share_explicit_vawg": self.explicit / reports if reports else 0.0,
            "share_vawg_reports": self.vawg_reports / reports if reports else 0.0,
            "victim_sex": {k2: (c / nv if nv else 0.0)
                           for k2, c in sorted(self.sexes.items(), key=lambda x: str(x[0]))},
            "late": self.late,
            "duplicates": self.duplicates,
            "vawg_harm_days": total,
            "suspects_with_vawg_harm": len(ranked),
            "top_share": top_share,
            "top_harm_share": (sum(ranked[:k]) / total) if total else 0.0,
        }


def describe(events: Iterable[Mapping], days: Optional[Mapping[str, float]] = None,
             vawg_codes: Optional[Iterable[str]] = None, top_share: float = 0.05) -> dict:
    """Sanity summary of a feed.

    Counts by type and offence code, distinct suspects and victims, shares of the report
    features, late and duplicate events, and the share of VAWG harm (sum of ``days`` of
    report.recorded events, per named suspect, corrections ignored) held by the top
    ``top_share`` of the suspects with any VAWG harm.  ``days`` defaults to :data:`DAYS`;
    the VAWG status of a report is its ``vawg`` field, else a female victim and a code in
    ``vawg_codes`` (default :data:`VAWG_CODES`).
    """
    tally = _FeedTally(DAYS if days is None else days,
                       VAWG_CODES if vawg_codes is None else frozenset(vawg_codes))
    for ev in events:
        tally.add(ev)
    return tally.summary(top_share)


# --------------------------------------------------------------------------------------
# CLI: harmrank simulate
# --------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="harmrank simulate",
        description="Write a seeded synthetic feed of crime-reports events (JSON lines).")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--events", type=_positive_int, default=10_000, help="number of events (default 10000)")
    p.add_argument("--start", default="2025-01-01T00:00:00+00:00",
                   help="RFC 3339 start of the simulated timeline (default 2025-01-01T00:00:00+00:00)")
    p.add_argument("--days", type=float, default=400.0, help="length of the simulated timeline in days (default 400)")
    p.add_argument("--suspects", type=_positive_int, default=None,
                   help="size of the suspect population (default: scaled from events per year)")
    p.add_argument("--invalid-rate", type=float, default=0.005,
                   help="share of invalid events a real feed has (default 0.005; 0 disables)")
    p.add_argument("--out", default="-", help="output file, or - for stdout (default)")
    p.add_argument("--rate", type=float, default=None,
                   help="live feed: events per second, with `at` rewritten to the wall clock")
    p.add_argument("--summary", action="store_true", help="print describe() of the feed as JSON on stderr")
    return p


def _live(events: Iterator[dict], rate: float) -> Iterator[dict]:
    """Pace events at ``rate`` per second and move `at` onto the wall clock.

    A late event keeps its lateness; a duplicate is re-sent exactly as first written;
    an unparseable `at` (deliberately invalid event) is left alone.
    """
    interval = 1.0 / rate
    first: Optional[float] = None
    newest_sim: Optional[int] = None
    sent: dict[str, str] = {}
    order: deque[str] = deque()
    for i, ev in enumerate(events):
        if first is None:
            first = time.monotonic()
        delay = first + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ev = dict(ev)
        eid = ev.get("event_id")
        at = ev.get("at")
        if isinstance(eid, str) and eid in sent:
            ev["at"] = sent[eid]
        elif isinstance(at, str):
            try:
                sim = _dt.datetime.fromisoformat(at)
                if sim.tzinfo is None:
                    raise ValueError
                sim_us = datetime_to_us(sim)
            except ValueError:
                sim_us = None
            if sim_us is not None:
                newest_sim = sim_us if newest_sim is None else max(newest_sim, sim_us)
                now_us = datetime_to_us(_dt.datetime.now(_dt.timezone.utc))
                now_us = now_us // US_PER_SECOND * US_PER_SECOND
                ev["at"] = us_to_iso(now_us - (newest_sim - sim_us))
            if isinstance(eid, str):
                sent[eid] = ev["at"]
                order.append(eid)
                if len(order) > 4 * _RECENT_EVENTS:
                    sent.pop(order.popleft(), None)
        yield ev


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``harmrank simulate [options]``; argv excludes the program and sub-command names."""
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.rate is not None and not args.rate > 0:
        parser.error("--rate must be > 0")
    try:
        feed = generate(seed=args.seed, events=args.events, start=args.start, days=args.days,
                        suspects=args.suspects, invalid_rate=args.invalid_rate)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    out: IO[str]
    close = False
    if args.out == "-":
        out = sys.stdout
    else:
        try:
            out = open(args.out, "w", encoding="utf-8", newline="\n")
        except OSError as exc:
            parser.error(f"cannot write {args.out}: {exc.strerror}")
        close = True
    try:
        if args.rate is not None:
            for ev in _live(feed, args.rate):
                out.write(dumps(ev) + "\n")
                out.flush()
        else:
            write_jsonl(feed, out)
            out.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if close:
            out.close()
    if args.summary:  # the feed is deterministic: describe a fresh copy of it
        again = generate(seed=args.seed, events=args.events, start=args.start, days=args.days,
                         suspects=args.suspects, invalid_rate=args.invalid_rate)
        print(json.dumps(describe(again), indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
