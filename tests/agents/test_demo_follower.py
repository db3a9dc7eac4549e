"""The demo's follower: every list's entries and exits, each event counted once (a re-send is skipped)."""
from __future__ import annotations

import json
import time

from agents.commands.demo import Follower
from agents.commands.publish import publish_lines
from agents.kafka_admin import ensure_topics

from .test_publish_follow import ENTERED, EXITED


def test_the_demo_counts_a_resent_event_once(broker, fresh_topics):
    topic = fresh_topics("harm-ranking")
    ensure_topics(broker.bootstrap, {topic: 1})
    later = dict(ENTERED, event_id="o3", suspect_id="S124", list="rising")
    events = [dict(ENTERED, list="vawg"), dict(EXITED, list="vawg"), dict(EXITED, list="vawg"), later]
    result = publish_lines([json.dumps(e) for e in events], broker.bootstrap, topic)
    assert result.sent == len(events) and result.failed == 0
    follower = Follower(broker.bootstrap, topic)
    follower.start()
    try:
        deadline = time.monotonic() + 30
        while "rising" not in follower.counts and time.monotonic() < deadline:  # the last event read
            time.sleep(0.1)
    finally:
        follower.stop.set()
        follower.join(timeout=10)
    assert follower.counts == {"vawg": [1, 1], "rising": [1, 0]}
    assert [e["event_id"] for e in follower.recent] == ["o3", "o2", "o1"]  # newest first
