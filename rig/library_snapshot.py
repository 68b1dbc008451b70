"""Before-and-after snapshots of the DUT's library, so a probe can prove that bad input changed
nothing: every playlist and track as the API reports them, and every file of the music folder
with its sha256 (read on the host for a virtual Pi, over SSH on a bench Pi).

A diff names each difference on one line, e.g. ``file added: Evil/passwd.mp3 (sha256 1f2e...)``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import httpx

from .dut import BenchError, Dut
from .hash_cache import sha256_file

TRACK_FIELDS = ("id", "number", "title", "filename", "file_size", "duration_ms")


@dataclass(frozen=True)
class LibrarySnapshot:
    playlists: dict[str, dict[str, Any]]  # id -> title, tag and tracks as the API reports them
    files: dict[str, str] | None  # path under the music folder -> sha256; None: the rig cannot see the disk

    def diff(self, after: LibrarySnapshot) -> list[str]:
        """What changed from this snapshot to ``after``, one line per difference."""
        lines = [
            f"playlist removed: {self.playlists[p]['title']!r} ({p})"
            for p in self.playlists.keys() - after.playlists.keys()
        ]
        lines += [
            f"playlist added: {after.playlists[p]['title']!r} ({p})"
            for p in after.playlists.keys() - self.playlists.keys()
        ]
        for playlist_id in sorted(self.playlists.keys() & after.playlists.keys()):
            old, new = self.playlists[playlist_id], after.playlists[playlist_id]
            if old != new:
                lines.append(f"playlist {old['title']!r} changed:\n  - before: {old}\n  + after:  {new}")
        if self.files is not None and after.files is not None:
            lines += [f"file removed: {name}" for name in sorted(self.files.keys() - after.files.keys())]
            lines += [
                f"file added: {name} (sha256 {after.files[name][:12]}...)"
                for name in sorted(after.files.keys() - self.files.keys())
            ]
            lines += [
                f"file changed: {name}"
                for name in sorted(self.files.keys() & after.files.keys())
                if self.files[name] != after.files[name]
            ]
        return lines


async def take_snapshot(http: httpx.AsyncClient, dut: Dut) -> LibrarySnapshot:
    summaries = (await _data(http, "/api/playlists?limit=100"))["playlists"]
    playlists = {}
    for summary in summaries:
        detail = await _data(http, f"/api/playlists/{summary['id']}")
        playlists[detail["id"]] = {
            "title": detail["title"],
            "nfc_tag_id": detail.get("nfc_tag_id"),
            "tracks": [{k: t.get(k) for k in TRACK_FIELDS} for t in detail["tracks"]],
        }
    return LibrarySnapshot(playlists, music_files(dut))


async def _data(http: httpx.AsyncClient, path: str) -> Any:
    response = await http.get(path)
    if response.status_code != 200:
        raise BenchError(f"GET {path} answered HTTP {response.status_code}: {response.text[:200]}")
    return response.json()["data"]


def music_files(dut: Dut) -> dict[str, str] | None:
    """sha256 of every file under the DUT's music folder, by relative path."""
    if dut.virtual_pi is not None:
        root = dut.virtual_pi.music_dir
        return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    if dut.ssh is None:
        return None
    folder = f"{dut.bench.deploy.root}/data/music"
    command = f"cd {shlex.quote(folder)} && find . -type f -print0 | xargs -0 -r sha256sum"
    result = dut.ssh.run(command, timeout=120)
    if result.exit_code != 0:
        raise BenchError(f"cannot list the Pi's music folder {folder}: {result.stderr.strip()[:200]}")
    files = {}
    for line in result.stdout.splitlines():
        digest, _, name = line.partition("  ")
        files[name.removeprefix("./")] = digest
    return files
