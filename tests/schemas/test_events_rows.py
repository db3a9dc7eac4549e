"""The compact row form of input events, for the topics between the worker's stages."""
from __future__ import annotations

import json

from schemas.events import event_from_row, event_to_row
from schemas.harm_table import load_harm_table
from schemas.validate import Rejected, validate
from streams.simulate import dumps, generate


def test_every_simulated_event_survives_a_json_round_trip_of_its_row():
    harm = load_harm_table(None)
    events = [e for e in (validate(dumps(ev), harm) for ev in generate(seed=4, events=3000))
              if not isinstance(e, Rejected)]
    assert len({e.type for e in events}) == 6  # every input type is exercised
    for event in events:
        row = json.loads(json.dumps(event_to_row(event)))
        assert event_from_row(row) == event
