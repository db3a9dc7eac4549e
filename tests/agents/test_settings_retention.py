"""HARMRANK_RETENTION_DAYS: defaults to the window + 90 days, never shorter than the window."""
from __future__ import annotations

import pytest

from agents.settings import Settings


def test_default_is_the_window_and_90_days():
    assert Settings().retention_days == 455
    assert Settings.from_env({"HARMRANK_WINDOW_DAYS": "10"}).retention_days == 100


def test_set_from_the_environment_or_a_flag():
    assert Settings.from_env({"HARMRANK_RETENTION_DAYS": "400"}).retention_days == 400
    assert Settings.from_env({"HARMRANK_RETENTION_DAYS": "400"}, retention_days="365").retention_days == 365


@pytest.mark.parametrize("value", ["x", "0", "-5", "1.5"])
def test_not_a_positive_integer_is_refused_by_name(value):
    with pytest.raises(ValueError, match="HARMRANK_RETENTION_DAYS must be a positive integer"):
        Settings.from_env({"HARMRANK_RETENTION_DAYS": value})


def test_shorter_than_the_window_is_refused():
    with pytest.raises(ValueError, match="must be at least HARMRANK_WINDOW_DAYS"):
        Settings.from_env({"HARMRANK_RETENTION_DAYS": "364"})
    assert Settings.from_env({"HARMRANK_RETENTION_DAYS": "365"}).retention_days == 365
