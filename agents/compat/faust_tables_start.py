"""Faust's table manager without its one-second wait at start.

`TableManager.on_start` (faust-streaming 0.15.3, faust/tables/manager.py) sleeps a
second before it closes the set of tables and opens them, time for tables that
agents declare late to register. Every harmrank table is declared by
`agents.topology.build_app` before the app starts, so the wait only delays the
worker's group join, and every start with it. `install()` drops the wait; the rest
of the method is Faust's, unchanged.
"""
from __future__ import annotations

from typing import Any

_original: Any = None


async def _on_start(self: Any) -> None:
    if not self.should_stop:
        await self._update_channels()
        await self.recovery.start()


def install() -> bool:
    """Start Faust's tables without the wait; False if already installed."""
    global _original
    from faust.tables.manager import TableManager

    if _original is not None:
        return False
    _original = TableManager.on_start
    TableManager.on_start = _on_start  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    global _original
    from faust.tables.manager import TableManager

    if _original is not None:
        TableManager.on_start = _original  # type: ignore[method-assign]
        _original = None


def is_installed() -> bool:
    return _original is not None
