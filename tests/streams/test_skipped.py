"""streams.stages.base.skipped: a batch that skips a message of a partition, past its state or inside the batch, is refused."""
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


def test_a_skip_inside_the_batch_reads_the_partition_again_from_where_its_state_ends():
    assert skipped(batch((3, 1), (3, 2), (3, 5)), {3: 0}.get) == {3: 1}
    assert skipped(batch((0, 5), (1, 10), (0, 6), (1, 12)), {0: 4, 1: 9}.get) == {1: 10}


def test_a_partition_with_no_state_is_read_again_from_its_first_message_in_the_batch():
    assert skipped(batch((2, 40), (2, 41), (2, 43)), {2: None}.get) == {2: 40}
    assert skipped(batch((2, 40), (2, 41)), {2: None}.get) == {}


def test_messages_that_come_again_are_replays_not_skips():
    assert skipped(batch((3, 2), (3, 1)), {3: 0}.get) == {3: 1}
    assert skipped(batch((3, 1), (3, 2), (3, 1), (3, 2), (3, 3)), {3: 0}.get) == {}
    assert skipped(batch((3, 1), (3, 2), (3, 1), (3, 4)), {3: 0}.get) == {3: 1}
