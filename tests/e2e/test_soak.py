"""End-to-end: the soak (tests/soak/soak.py) in short: two workers, three kill -9 at random points.

The long one (100,000 events, twenty kills) is run by hand: `python -m tests.soak.soak`.
"""
from __future__ import annotations

import pytest

from tests.soak.soak import soak

pytestmark = pytest.mark.e2e


def test_three_kills_on_two_workers_lose_nothing_and_count_nothing_twice(tmp_path):
    figures = soak(tmp_path, events=6000, kills=3, seed=31, rate=250, max_pause=5.0, say=lambda text: None)
    assert figures.kills == 3
    assert figures.passed(), "\n".join(figures.problems + [figures.report()])
