"""Content-hash manifests of a firmware tree, and the difference between two of them.

Deploys send only what changed, so the manifest must say exactly what a tree is: every file's
sha256, size and mode, with build litter (bytecode, VCS folders, local data) left out. Hashes of
files unchanged since the last walk come from the hash cache (hash_cache.py), so a walk of an
unchanged tree reads no file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .hash_cache import HashCache

MANIFEST_NAME = ".rig-manifest.json"
IGNORED_DIRS = frozenset({"__pycache__", ".git", ".venv", "data", ".pytest_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class Manifest:
    files: dict[str, FileEntry]

    def _canonical(self) -> str:
        return json.dumps({path: vars(entry) for path, entry in self.files.items()}, sort_keys=True)

    @property
    def tree_hash(self) -> str:
        """One hash for the whole tree: equal trees, equal hashes, whatever the order of the walk."""
        return hashlib.sha256(self._canonical().encode()).hexdigest()

    def to_json(self) -> str:
        files = {path: vars(entry) for path, entry in self.files.items()}
        return json.dumps({"tree_hash": self.tree_hash, "files": files}, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        body = json.loads(text)
        return cls({path: FileEntry(**entry) for path, entry in body["files"].items()})


def build_manifest(root: Path) -> Manifest:
    """Walk ``root``; symlinks are refused, since a deploy must not copy what lies outside the tree.
    Plain strings rather than Path objects: a redeploy walks the whole tree, and pathlib's parsing
    was most of the cost of a walk whose hashes all come from the cache."""
    files: dict[str, FileEntry] = {}
    hashes = HashCache(root)
    top = os.fspath(root)
    for folder, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS)
        prefix = os.path.relpath(folder, top).replace(os.sep, "/") + "/"
        for name in sorted(names):
            if name == MANIFEST_NAME or name.endswith(IGNORED_SUFFIXES):
                continue
            path = os.path.join(folder, name)
            relative = name if prefix == "./" else prefix + name
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                raise ValueError(f"{relative}: symlinks are not deployed; copy the file into the tree")
            if stat.S_ISREG(info.st_mode):
                digest = hashes.sha256(relative, path, info)
                files[relative] = FileEntry(digest, info.st_size, stat.S_IMODE(info.st_mode))
    hashes.save()
    return Manifest(files)


@dataclass(frozen=True)
class Plan:
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def upload(self) -> list[str]:
        return sorted(self.added + self.changed)

    def describe(self, manifest: Manifest) -> list[str]:
        lines = [f"+ {p} ({manifest.files[p].size} B)" for p in self.added]
        lines += [f"~ {p} ({manifest.files[p].size} B)" for p in self.changed]
        lines += [f"- {p}" for p in self.removed]
        return lines


def plan(local: Manifest, deployed: Manifest | None) -> Plan:
    before = deployed.files if deployed is not None else {}
    added = sorted(set(local.files) - set(before))
    removed = sorted(set(before) - set(local.files))
    common = set(local.files) & set(before)
    changed = sorted(p for p in common if local.files[p] != before[p])
    return Plan(added, changed, removed, len(common) - len(changed))
