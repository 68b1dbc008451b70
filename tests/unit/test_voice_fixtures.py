"""The firmware's voice pipeline on the audio fixtures, without a device: the detector cuts one
segment per spoken clip and none for noise, and the recogniser accepts the seven commands and
rejects everything else, also with more noise than the fixtures carry."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from device_drivers.audio.analysis import add_noise
from device_drivers.audio.wavfile import to_pcm16
from rig import paths
from rig.audio_clips import ClipError, clips, resolve

sys.path.insert(0, str(paths.FIRMWARE_DIR))
from musicbox.mic import FRAME, Segmenter
from musicbox.voice import COMMANDS, CommandRecognizer

CLIPS = clips()


@pytest.fixture(scope="module")
def recognizer() -> CommandRecognizer:
    return CommandRecognizer()


def segments(samples: np.ndarray) -> list[bytes]:
    """Run the detector over a clip with the silence a null sink gives before and after it."""
    pcm = np.frombuffer(to_pcm16(np.concatenate([np.zeros(8000), samples, np.zeros(16000)])), dtype="<i2")
    detector = Segmenter(threshold_db=12.0)
    found = [detector.push(pcm[i : i + FRAME]) for i in range(0, len(pcm) - FRAME + 1, FRAME)]
    return [s for s in found if s is not None]


def test_every_command_has_a_clip() -> None:
    spoken = {c.text for c in CLIPS.values() if c.kind == "command"}
    assert spoken == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_detector_and_recognizer_on_each_clip(name: str, recognizer: CommandRecognizer) -> None:
    clip = CLIPS[name]
    samples, rate = clip.load()
    assert rate == 16000
    found = segments(samples)
    if clip.kind == "noise":
        assert found == [], "white noise must not make a voiced segment"
        return
    assert len(found) == 1, f"{name}: {len(found)} segments"
    heard = recognizer.recognize(found[0])
    expected = clip.text if clip.kind == "command" else None
    assert heard.command == expected, f"{name}: decoded {heard.hypothesis!r}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_commands_survive_fresh_noise(seed: int, recognizer: CommandRecognizer) -> None:
    """Another 20 dB of noise on top of the clips' own (about 17 dB SNR in all): the issue's
    "6 out of 6 at 20 dB" with margin. At 10 dB pocketsphinx loses 2-3 of 7 (issue 8 measures it)."""
    rng = np.random.default_rng(seed)
    wrong = []
    for clip in (c for c in CLIPS.values() if c.kind == "command"):
        samples, _ = clip.load()
        heard = recognizer.recognize(to_pcm16(add_noise(samples, 20.0, rng)))
        if heard.command != clip.text:
            wrong.append(f"{clip.text!r} → {heard.hypothesis!r}")
    assert not wrong, f"with 20 dB more noise: {wrong}"


def test_clip_names_resolve_and_bad_names_list_the_known(tmp_path) -> None:
    assert resolve("command-next-track").text == "next track"
    assert resolve("command-next-track.wav").kind == "command"
    assert resolve(str(paths.AUDIO_CLIPS.parent / "tone-440hz.wav")).kind == "tone"
    other = tmp_path / "mine.wav"
    other.write_bytes((paths.AUDIO_CLIPS.parent / "tone-440hz.wav").read_bytes())
    assert resolve(str(other)).kind == "file"
    with pytest.raises(ClipError, match="known clips: command-next-track"):
        resolve("command-next-trak")
