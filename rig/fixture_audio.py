"""Seeds a music folder with the fixture library of ``fixtures/audio/library.toml``.

Tones are synthesised rather than stored so the repository holds no binary audio and every
track's frequency and duration are known exactly.
"""

from __future__ import annotations

import tomllib
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import paths


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
        frames = round(track.seconds * self.sample_rate)
        t = np.arange(frames) / self.sample_rate
        ramp = np.minimum(1.0, np.minimum(t, track.seconds - t) / 0.01)  # 10 ms fades: no clicks
        samples = (self.amplitude * ramp * np.sin(2 * np.pi * track.frequency_hz * t) * 32767).astype("<i2")
        partial = target.with_suffix(".partial")
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate)
            out.writeframes(samples.tobytes())
        partial.rename(target)
