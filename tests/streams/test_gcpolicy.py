"""streams.gcpolicy: the collector policies of the batch and of the streaming worker."""
from __future__ import annotations

import gc

import pytest

from streams.gcpolicy import STREAMING_THRESHOLDS, long_lived_state, tune_for_streaming


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_worker_policy_raises_the_thresholds_and_freezes_what_exists(restore_gc):
    before = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]  # start-up state
    tune_for_streaming()
    assert gc.get_threshold() == STREAMING_THRESHOLDS
    assert STREAMING_THRESHOLDS[0] > 700  # fewer young collections than CPython's default
    assert gc.get_freeze_count() >= before + len(kept)
    assert gc.isenabled()  # cycles are still collected


def test_cycles_made_after_tuning_are_still_collected(restore_gc):
    tune_for_streaming()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_the_batch_policy_freezes_every_n_ticks_and_unfreezes_at_the_end(restore_gc):
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    with long_lived_state(every=3) as tick:
        assert gc.get_threshold() == STREAMING_THRESHOLDS  # fewer young collections inside
        tick()
        tick()
        assert gc.get_freeze_count() == 0
        tick()
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)  # restored
