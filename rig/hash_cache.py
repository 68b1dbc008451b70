"""Remembered sha256 sums of a tree's files, so that a redeploy hashes only what changed.

A redeploy of an unchanged 50 MB tree spent most of its time hashing every file again. A file
whose size, mtime, ctime and inode are what they were when it was hashed still holds that
content, with one exception that git calls "racily clean": a file written again within the
timestamp granularity of its hashing keeps its timestamps. So a remembered hash is trusted only
when the file's ctime is older than the hashing by more than ``RACY_NS``; a younger file is
hashed again (cheap: it is a file someone is editing right now). ctime rather than mtime
because any write, chmod or rename moves it and no tool can set it back.

The cache is only ever a shortcut: an unreadable or corrupt file is treated as empty and a
failed write is logged, never raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from . import paths

log = logging.getLogger(__name__)

RACY_NS = 1_000_000_000  # coarse filesystem clocks lag by a jiffy; network filesystems by more
FORGET_AFTER_S = 14 * 24 * 3600  # caches of trees not hashed for this long are removed
VERSION = 1

# relative path -> [size, mtime_ns, ctime_ns, inode, sha256, hashed_at_ns]
Entry = list[int | str]


def sha256_file(path: str | Path) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


class HashCache:
    """The remembered hashes of one tree; ``sha256`` answers for a file, ``save`` keeps the answers."""

    def __init__(self, root: Path, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else paths.cache_home() / "hashes"
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        self.path = self.folder / f"{key}.json"
        self._root = str(root.resolve())
        self._old = self._load()
        self._new: dict[str, Entry] = {}
        self.hashed = 0  # files actually read this time

    def _load(self) -> dict[str, Entry]:
        try:
            body = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(body, dict) or body.get("version") != VERSION or body.get("root") != self._root:
            return {}
        files = body.get("files")
        return files if isinstance(files, dict) else {}

    def sha256(self, relative: str, path: str, info: os.stat_result) -> str:
        """The file's sha256: remembered when its stat is unchanged and it was not racily hashed."""
        key: Entry = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
        entry = self._old.get(relative)
        if (
            isinstance(entry, list)
            and len(entry) == 6
            and entry[:4] == key
            and isinstance(entry[5], int)
            and info.st_ctime_ns < entry[5] - RACY_NS
        ):
            self._new[relative] = entry
            return str(entry[4])
        hashed_at = time.time_ns()  # before the read: a write during it leaves a newer ctime
        digest = sha256_file(path)
        self._new[relative] = [*key, digest, hashed_at]
        self.hashed += 1
        return digest

    def save(self) -> None:
        """Keep this walk's hashes (only when they differ from what was loaded), and forget trees
        nobody hashed for two weeks: every tree a test ever deployed leaves one small file."""
        if self._new == self._old:
            with contextlib.suppress(OSError):
                os.utime(self.path)  # still in use
            return
        body = {"version": VERSION, "root": self._root, "files": self._new}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        except OSError as exc:
            log.debug("cannot keep the file hashes in %s: %s", self.folder, exc)
            return
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(json.dumps(body, separators=(",", ":")))  # dumps: the C encoder
            os.replace(temporary, self.path)
        except OSError as exc:
            log.debug("cannot keep the file hashes in %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return
        self._forget_stale()

    def _forget_stale(self) -> None:
        cutoff = time.time() - FORGET_AFTER_S
        for other in [*self.folder.glob("*.json"), *self.folder.glob("*.tmp")]:
            with contextlib.suppress(OSError):
                if other.stat().st_mtime < cutoff:
                    other.unlink()
