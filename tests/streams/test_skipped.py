"""streams.stages.base.skipped: a batch that begins past what a partition's state has applied is refused."""
from __future__ import annotations

from streams.stages import Message
from streams.stages.base import skipped


def batch(*pairs) -> list:
    return [Message("t", partition, offset, None, b"") for partition, offset in pairs]


def test_a_batch_that_goes_on_from_the_state_is_worked():
    applied = {0: 4, 1: 9}.get
    assert skipped(batch((0, 5), (0, 6), (1, 10)), applied) == {}


def test_a_replayed_batch_is_worked_its_applied_messages_are_skipped_by_offset():
    assert skipped(batch((0, 2), (0, 3), (0, 4), (0, 5)), {0: 4}.get) == {}


def test_a_partition_whose_batch_begins_past_the_next_offset_is_named_with_that_offset():
    applied = {0: 4, 1: 9, 2: None}.get
    assert skipped(batch((0, 7), (0, 8), (1, 10), (2, 40)), applied) == {0: 5}


def test_only_the_first_message_of_each_partition_counts():
    assert skipped(batch((3, 1), (3, 5)), {3: 0}.get) == {}
    assert skipped(batch((3, 2), (3, 1)), {3: 0}.get) == {3: 1}
