"""One work-around's patch: attributes of one class replaced, the originals kept to put back."""
from __future__ import annotations

from typing import Any, Optional


class Patched:
    """What `apply` replaced on a class, so that `undo` (for tests) puts Faust's or aiokafka's own back."""

    def __init__(self) -> None:
        self._owner: Optional[type] = None
        self._originals: dict = {}

    @property
    def active(self) -> bool:
        return self._owner is not None

    def apply(self, owner: type, **replacements: Any) -> None:
        self._originals = {name: getattr(owner, name) for name in replacements}
        for name, value in replacements.items():
            setattr(owner, name, value)
        self._owner = owner

    def undo(self) -> None:
        if self._owner is not None:
            for name, value in self._originals.items():
                setattr(self._owner, name, value)
            self._owner, self._originals = None, {}
