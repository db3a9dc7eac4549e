"""agents.compat.faust_tables_start: Faust's tables start without its one-second wait, and otherwise as Faust starts them."""
from __future__ import annotations

import asyncio
import inspect

import pytest
from faust.tables.manager import TableManager

from agents.compat import faust_tables_start


@pytest.fixture(autouse=True)
def clean():
    faust_tables_start.uninstall()
    yield
    faust_tables_start.uninstall()


def test_faust_s_start_is_the_wait_then_what_the_work_around_keeps():
    """A Faust upgrade that changes the method this replaces fails here, not in a worker."""
    lines = [line.strip() for line in inspect.getsource(TableManager.on_start).splitlines() if line.strip()]
    wait = lines.index("await self.sleep(1.0)")
    assert lines[wait + 1:] == ["if not self.should_stop:", "await self._update_channels()",
                                "await self.recovery.start()"]


class _Manager:
    """What `on_start` touches of a TableManager, recording the order it is used in."""

    def __init__(self, stopping: bool = False):
        self.should_stop = stopping
        self.calls: list = []
        manager = self

        class _Recovery:
            async def start(self):
                manager.calls.append("recovery.start")

        self.recovery = _Recovery()

    async def sleep(self, seconds: float) -> None:
        self.calls.append(f"sleep {seconds}")

    async def _update_channels(self) -> None:
        self.calls.append("update_channels")


def test_installed_the_tables_open_at_once_and_in_faust_s_order():
    assert faust_tables_start.install()
    manager = _Manager()
    asyncio.run(TableManager.on_start(manager))
    assert manager.calls == ["update_channels", "recovery.start"]


def test_a_stopping_manager_opens_nothing():
    faust_tables_start.install()
    manager = _Manager(stopping=True)
    asyncio.run(TableManager.on_start(manager))
    assert manager.calls == []


def test_uninstalled_faust_waits_its_second_again():
    faust_tables_start.install()
    assert not faust_tables_start.install()
    faust_tables_start.uninstall()
    manager = _Manager()
    asyncio.run(TableManager.on_start(manager))
    assert manager.calls == ["sleep 1.0", "update_channels", "recovery.start"]
