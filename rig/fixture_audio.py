"""Seeds a music folder with the fixture library of ``fixtures/audio/library.toml``.

Tracks are synthesised rather than stored, so every track's frequency and duration are known
exactly; libsndfile (soundfile) writes each in the format its suffix names.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import soundfile

from device_drivers.audio.analysis import sine

from . import paths

FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}


@dataclass(frozen=True)
class FixtureTrack:
    playlist: str
    file: str
    frequency_hz: float
    seconds: float

    @property
    def title(self) -> str:
        return Path(self.file).stem


@dataclass(frozen=True)
class FixtureLibrary:
    sample_rate: int
    amplitude: float
    tracks: tuple[FixtureTrack, ...]

    @classmethod
    def load(cls, path: Path = paths.AUDIO_LIBRARY) -> FixtureLibrary:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        tracks = tuple(
            FixtureTrack(playlist["folder"], t["file"], float(t["frequency_hz"]), float(t["seconds"]))
            for playlist in raw["playlist"]
            for t in playlist["tracks"]
        )
        unknown = [t.file for t in tracks if Path(t.file).suffix not in FORMATS]
        if unknown:
            raise ValueError(f"{path}: {unknown[0]!r} has no known format; use one of {', '.join(FORMATS)}")
        return cls(int(raw["sample_rate"]), float(raw["amplitude"]), tracks)

    def playlists(self) -> dict[str, list[FixtureTrack]]:
        grouped: dict[str, list[FixtureTrack]] = {}
        for track in self.tracks:
            grouped.setdefault(track.playlist, []).append(track)
        return grouped

    def seed(self, music_dir: Path) -> list[Path]:
        """Write every fixture track that is missing; returns the files written."""
        written = []
        for track in self.tracks:
            target = music_dir / track.playlist / track.file
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            self._write_tone(target, track)
            written.append(target)
        return written

    def _write_tone(self, target: Path, track: FixtureTrack) -> None:
        samples = sine(track.frequency_hz, track.seconds, self.sample_rate, level=self.amplitude)
        partial = target.with_name(target.name + ".partial")
        container, subtype = FORMATS[target.suffix]
        soundfile.write(partial, samples, self.sample_rate, format=container, subtype=subtype)
        partial.rename(target)
