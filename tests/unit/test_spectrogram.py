"""A failed audio test attaches its recordings with a spectrogram each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_drivers.audio.analysis import sine
from device_drivers.audio.wavfile import write_wav
from rig import pytest_plugin, spectrogram


def test_spectrogram_png_beside_the_wav(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "speaker-1.wav", sine(440.0, 0.5, 16000), 16000)
    png = spectrogram.render(wav)
    assert png == tmp_path / "speaker-1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_silence_and_a_too_short_recording_still_render(tmp_path: Path) -> None:
    for name, samples in (("silent", np.zeros(16000)), ("short", np.zeros(10))):
        assert spectrogram.render(write_wav(tmp_path / f"{name}.wav", samples, 16000)).stat().st_size > 0


def test_report_section_names_each_wav_and_its_png(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", sine(660.0, 0.2, 16000), 16000)
    broken = tmp_path / "b.wav"
    broken.write_bytes(b"RIFF garbage")
    section = pytest_plugin._attach_audio([wav, broken]).splitlines()
    assert section[0] == f"{wav}  {tmp_path / 'a.png'}"
    assert section[1].startswith(f"{broken}  (no spectrogram: ")
