"""streams.stages.base.write_order: the order of a batch's keys in a changelog write."""
from __future__ import annotations

from streams.stages.base import OFFSET_KEY, PENDING_KEY, write_order


def test_the_output_goes_first_and_the_input_offset_last():
    keys = {"p:S2", OFFSET_KEY, "x:17", PENDING_KEY, "ann:vawg:S2", "clock"}
    order = write_order(keys)
    assert order[0] == PENDING_KEY and order[-1] == OFFSET_KEY
    assert order[1:-1] == sorted(keys - {PENDING_KEY, OFFSET_KEY})


def test_a_batch_without_output_or_offset_keeps_its_keys_in_key_order():
    assert write_order(["r:C2", "al:S1", "r:C1"]) == ["al:S1", "r:C1", "r:C2"]
