"""The audio fixtures of ``fixtures/audio/clips.toml``: what each WAV holds, by name.

Tests and ``rig say`` name a clip ("command-next-track") or give a WAV path; a bad name gets
one line listing the known clips.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from device_drivers.audio.analysis import Signal
from device_drivers.audio.wavfile import read_wav

from . import paths

# A firmware that listens for voice commands closes a segment only after its hangover (the music
# box's: 400 ms of quiet). Words spoken sooner after any sound it heard join that sound's segment
# and are cut off, so the rig waits this long first.
VOICE_SETTLE_S = 1.0


class ClipError(ValueError):
    """No such clip or WAV; the message lists the known clips."""


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    kind: str  # "command", "speech", "noise", "tone", "dtmf", or "file" for a WAV given by path
    text: str | None = None

    def load(self) -> tuple[Signal, int]:
        return read_wav(self.path)


def clips(manifest: Path = paths.AUDIO_CLIPS) -> dict[str, Clip]:
    raw = tomllib.loads(manifest.read_text(encoding="utf-8"))["clip"]
    return {
        name: Clip(name, manifest.parent / entry["file"], entry["kind"], entry.get("text"))
        for name, entry in raw.items()
    }


def command_clip(text: str) -> Clip:
    """The spoken command ``text`` ("next track")."""
    found = [c for c in clips().values() if c.kind == "command" and c.text == text]
    if not found:
        raise ClipError(f"no spoken command {text!r} in {paths.AUDIO_CLIPS}")
    return found[0]


def resolve(name_or_path: str) -> Clip:
    """A clip by name (with or without .wav), or any WAV file by path."""
    known = clips()
    path = Path(name_or_path)
    stem = path.name.removesuffix(".wav")
    if path.is_file():
        in_fixtures = path.resolve().parent == paths.AUDIO_CLIPS.parent
        return known[stem] if in_fixtures and stem in known else Clip(path.stem, path, "file")
    if stem in known and path.parent == Path("."):
        return known[stem]
    raise ClipError(f"no clip or WAV file {name_or_path!r}; known clips: {', '.join(sorted(known))}")
