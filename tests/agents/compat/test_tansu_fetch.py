"""agents.compat.tansu_fetch: Faust's worker consumer waits at most a few ms for data on the local tansu.

tansu holds a fetch that finds no data for its whole max wait, even when records
arrive meanwhile, so Faust's hard-coded 1,500 ms wait became the latency of every
stage hop (measured numbers in the module docstring).
"""
from __future__ import annotations

import asyncio

import faust
import pytest

from agents.compat import tansu_fetch


def _worker_consumer_wait(tmp_path) -> int:
    """The fetch wait of the consumer Faust's worker would create (no connection is made)."""
    async def make() -> int:
        app = faust.App("tansu-fetch-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        return consumer._fetch_max_wait_ms

    return asyncio.run(make())


def test_faust_default_wait_is_the_long_one(tmp_path):
    tansu_fetch.uninstall()
    assert _worker_consumer_wait(tmp_path) == 1500  # what the fix exists for; fails if Faust changes it


def test_install_shortens_the_worker_consumer_wait_and_uninstall_restores_it(tmp_path):
    try:
        assert tansu_fetch.install_fetch_wait() is True
        assert tansu_fetch.is_installed()
        assert _worker_consumer_wait(tmp_path) == tansu_fetch.WORKER_FETCH_WAIT_MS
        assert tansu_fetch.install_fetch_wait(25) is False  # already installed: only the wait changes
        assert _worker_consumer_wait(tmp_path) == 25
    finally:
        tansu_fetch.uninstall()
    assert not tansu_fetch.is_installed()
    assert _worker_consumer_wait(tmp_path) == 1500


def test_a_wait_below_one_ms_is_refused():
    with pytest.raises(ValueError):
        tansu_fetch.install_fetch_wait(0)


@pytest.mark.parametrize("raw,expected", [("", tansu_fetch.WORKER_FETCH_WAIT_MS), (" 25 ", 25), ("1", 1)])
def test_wait_from_env(raw, expected):
    assert tansu_fetch.wait_from_env({tansu_fetch.ENV_VAR: raw}) == expected
    assert tansu_fetch.wait_from_env({}) == tansu_fetch.WORKER_FETCH_WAIT_MS


@pytest.mark.parametrize("raw", ["0", "-5", "ten", "1.5", "60001"])
def test_a_bad_wait_in_the_environment_names_the_variable(raw):
    with pytest.raises(ValueError, match="HARMRANK_TANSU_FETCH_WAIT_MS"):
        tansu_fetch.wait_from_env({tansu_fetch.ENV_VAR: raw})
