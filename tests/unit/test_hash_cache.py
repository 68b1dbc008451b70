"""The hash cache: unchanged files are not read again, and no change slips past it."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from rig import hash_cache
from rig.hash_cache import HashCache


def walk(root: Path, folder: Path) -> tuple[dict[str, str], int]:
    """Every file's hash through a fresh cache object (a new deploy), and how many were read."""
    cache = HashCache(root, folder)
    sums = {p.name: cache.sha256(p.name, str(p), p.stat()) for p in sorted(root.iterdir())}
    cache.save()
    return sums, cache.hashed


def age(path: Path, seconds: float) -> None:
    """Make a file look written ``seconds`` ago (mtime), as files are between two deploys.
    ctime cannot be set back, so the cache's clock is what moves: see ``later``."""
    stamp = path.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(stamp, stamp))


def later(monkeypatch, seconds: float) -> None:
    """Hash as if ``seconds`` had passed since the files were written (past the racy window)."""
    real = hash_cache.time.time_ns
    monkeypatch.setattr(hash_cache.time, "time_ns", lambda: real() + int(seconds * 1e9))


def test_an_unchanged_file_is_not_read_again(tmp_path: Path, monkeypatch) -> None:
    root, folder = tmp_path / "tree", tmp_path / "cache"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 1000)
    (root / "b.bin").write_bytes(b"b" * 1000)
    later(monkeypatch, 5)
    first, read = walk(root, folder)
    assert read == 2
    assert first["a.bin"] == hashlib.sha256(b"a" * 1000).hexdigest()
    again, read = walk(root, folder)
    assert (again, read) == (first, 0)


def test_a_file_hashed_within_the_racy_window_is_read_again(tmp_path: Path) -> None:
    """Written and hashed within a second: a second write in the same clock tick would keep every
    timestamp, so the remembered hash cannot be trusted yet."""
    root, folder = tmp_path / "tree", tmp_path / "cache"
    root.mkdir()
    (root / "a.bin").write_bytes(b"1")
    walk(root, folder)
    _, read = walk(root, folder)
    assert read == 1


def test_same_size_and_restored_mtime_is_still_seen(tmp_path: Path, monkeypatch) -> None:
    """A tool that rewrites a file and puts its mtime back (``touch -r``, ``rsync -t``) still moves
    its ctime, so the change is found."""
    root, folder = tmp_path / "tree", tmp_path / "cache"
    root.mkdir()
    target = root / "a.bin"
    target.write_bytes(b"one")
    age(target, 60)
    later(monkeypatch, 5)
    first, _ = walk(root, folder)
    mtime = target.stat().st_mtime_ns
    time.sleep(0.05)  # past the kernel's coarse clock tick, as any real edit is
    target.write_bytes(b"two")
    os.utime(target, ns=(mtime, mtime))
    second, read = walk(root, folder)
    assert read == 1
    assert second["a.bin"] == hashlib.sha256(b"two").hexdigest() != first["a.bin"]


def test_a_corrupt_or_foreign_cache_is_ignored(tmp_path: Path, monkeypatch) -> None:
    root, folder = tmp_path / "tree", tmp_path / "cache"
    root.mkdir()
    (root / "a.bin").write_bytes(b"x")
    later(monkeypatch, 5)
    first, _ = walk(root, folder)
    cache_file = HashCache(root, folder).path
    cache_file.write_text("{not json")
    assert walk(root, folder) == (first, 1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.bin").write_bytes(b"y")
    cache_file.rename(HashCache(other, folder).path)  # a cache file that names another tree
    sums, read = walk(other, folder)
    assert (sums["a.bin"], read) == (hashlib.sha256(b"y").hexdigest(), 1)


def test_an_unwritable_cache_folder_costs_only_the_shortcut(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    (root / "a.bin").write_bytes(b"x")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    sums, read = walk(root, blocker / "cache")
    assert (sums["a.bin"], read) == (hashlib.sha256(b"x").hexdigest(), 1)
