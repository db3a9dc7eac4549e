"""Input and output events of SPEC §2-3 as immutable Python values.

Validation (`schemas.validate`) turns raw Kafka message bytes into one of the
input classes below; the core (`streams`) only ever sees these, never raw JSON.
Times are integers of microseconds since the Unix epoch (UTC) so that window
arithmetic is exact; `at_iso` renders them back for output.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, fields
from typing import Optional, Union

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def us_to_iso(us: int) -> str:
    """Render epoch microseconds as RFC 3339 in UTC, e.g. 2025-03-01T10:00:00+00:00."""
    return (_EPOCH + _dt.timedelta(microseconds=us)).isoformat()


def datetime_to_us(value: _dt.datetime) -> int:
    """Exact epoch microseconds of an aware datetime."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


@dataclass(frozen=True, slots=True)
class Victim:
    id: str
    sex: str  # "F", "M" or "U"


@dataclass(frozen=True, slots=True)
class ReportRecorded:
    event_id: str
    at: int
    crime_ref: str
    offence_code: str
    suspects: tuple[str, ...]
    victims: tuple[Victim, ...]
    vawg: Optional[bool] = None
    type = "report.recorded"


@dataclass(frozen=True, slots=True)
class ReportReclassified:
    event_id: str
    at: int
    crime_ref: str
    offence_code: str
    vawg: Optional[bool] = None
    type = "report.reclassified"


@dataclass(frozen=True, slots=True)
class ReportCancelled:
    event_id: str
    at: int
    crime_ref: str
    type = "report.cancelled"


@dataclass(frozen=True, slots=True)
class SuspectLinked:
    event_id: str
    at: int
    crime_ref: str
    suspect_id: str
    type = "suspect.linked"


@dataclass(frozen=True, slots=True)
class SuspectUnlinked:
    event_id: str
    at: int
    crime_ref: str
    suspect_id: str
    type = "suspect.unlinked"


@dataclass(frozen=True, slots=True)
class SuspectsMerged:
    event_id: str
    at: int
    suspect_id: str
    into: str
    type = "suspects.merged"


CrimeEvent = Union[ReportRecorded, ReportReclassified, ReportCancelled, SuspectLinked, SuspectUnlinked]
InputEvent = Union[CrimeEvent, SuspectsMerged]

EVENT_TYPES: dict[str, type] = {
    cls.type: cls
    for cls in (ReportRecorded, ReportReclassified, ReportCancelled, SuspectLinked, SuspectUnlinked, SuspectsMerged)
}

EXIT_REASONS = ("displaced", "expired", "corrected", "merged")

#: The Kafka key of every merge on `crime-reports`: merges name no crime_ref, and each depends on
#: the ones before it (alias chains), so one key keeps them all in one partition, in order.
MERGE_KEY = SuspectsMerged.type.encode()


# --- the compact row form, for the topics between the worker's stages ------------------

_ROW_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in EVENT_TYPES.values()
}


def event_to_row(event: InputEvent) -> list:
    """A validated event as a JSON-able list: [type, field values in declaration order]."""
    row: list = [event.type]
    for name in _ROW_FIELDS[type(event)]:
        value = getattr(event, name)
        if name == "victims":
            value = [[v.id, v.sex] for v in value]
        elif name == "suspects":
            value = list(value)
        row.append(value)
    return row


def event_from_row(row: list) -> InputEvent:
    """The event of `event_to_row`, rebuilt without validation: only for rows this program wrote."""
    cls = EVENT_TYPES[row[0]]
    if cls is ReportRecorded:
        event_id, at, crime_ref, code, suspects, victims, vawg = row[1:]
        return ReportRecorded(event_id, at, crime_ref, code, tuple(suspects),
                              tuple(Victim(v[0], v[1]) for v in victims), vawg)
    return cls(*row[1:])
