"""The NFC protocol the suite uses: tap, place and remove, by tag name.

Each stimulus is stamped through ``stamp`` (the running test's timeline); ``tap`` and ``place``
return the stamp of the moment the tag reached the antenna, so a test measures tap→broadcast
from it. The backend is the sim field, card emulation on a USB reader, or an actuator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from .tags import Tag, TagShelf

Stamp = Callable[[str, dict[str, Any]], Any]


class NfcBackend(Protocol):
    def place(self, tag: Tag) -> None: ...
    def remove(self) -> None: ...
    def close(self) -> None: ...


class Nfc:
    def __init__(self, backend: NfcBackend, shelf: TagShelf, stamp: Stamp | None = None) -> None:
        self.backend = backend
        self.shelf = shelf
        self.stamp: Stamp = stamp or (lambda name, detail: None)
        self.placed: Tag | None = None

    def tag(self, name: str) -> Tag:
        """The named tag (TagError names the known ones when there is no such tag)."""
        return self.shelf.get(name)

    def place(self, name: str) -> Any:
        """Lay the tag on the antenna and leave it there; returns the stamp of the placement."""
        tag = self.tag(name)
        if self.placed is not None:
            self.remove()
        self.backend.place(tag)
        self.placed = tag
        return self.stamp(f"place {name}", {"tag_id": tag.tag_id})

    def remove(self) -> Any:
        """Take the tag away (nothing happens when none lies there)."""
        if self.placed is None:
            return None
        tag, self.placed = self.placed, None
        self.backend.remove()
        return self.stamp(f"remove {tag.name}", {"tag_id": tag.tag_id})

    def tap(self, name: str, dwell: float = 0.3) -> Any:
        """Place, wait ``dwell`` seconds, remove; returns the stamp of the placement."""
        placed = self.place(name)
        time.sleep(dwell)
        self.remove()
        return placed

    def close(self) -> None:
        self.remove()
