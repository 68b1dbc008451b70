"""Synthetic speech from Debian's command-line synthesisers, for spoken stimuli with a known text.

Two synthesisers that sound nothing alike, so a recogniser is not judged on one voice:
espeak-ng, a formant voice that speed and pitch vary, and flite, with a diphone voice and
statistical ones. Each call returns float samples at the rate asked for; the fixtures, the
firmware's recogniser tests and the voice benchmark all speak through here.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .analysis import Signal, resample
from .wavfile import read_wav

ESPEAK_VARIANTS = tuple((speed, pitch) for speed in (130, 160, 190) for pitch in (35, 50, 65))  # wpm, 0-99
FLITE_VARIANTS = tuple(
    (voice, stretch) for voice in ("kal16", "awb", "rms", "slt") for stretch in (0.85, 1.0, 1.2)
)  # voices built into Debian's flite; a stretch above 1 speaks slower


def voiced_power(samples: Signal) -> float:
    """The mean power of the words alone: a synthesiser's speech sits in digital silence, and
    padding would otherwise dilute it (the SNR of noise added to a clip is taken over this)."""
    return float(np.mean(np.square(samples[np.abs(samples) > 0.01])))


class SpeechError(RuntimeError):
    """A synthesiser that is missing or failed; the message says which and what to install."""


def espeak(text: str, rate: int, *, speed: int = 160, pitch: int = 50, pad_s: float = 0.0) -> Signal:
    """espeak-ng's American English, with ``pad_s`` of digital silence either side."""
    options = ["-v", "en-us", "-s", str(speed), "-p", str(pitch)]
    return _synthesise("espeak-ng", lambda wav: [*options, "-w", wav, text], text, rate, pad_s)


def flite(text: str, rate: int, *, voice: str = "slt", stretch: float = 1.0, pad_s: float = 0.0) -> Signal:
    """One of flite's voices, ``stretch`` times as long as its own pace, padded like :func:`espeak`."""
    options = ["-voice", voice, "--setf", f"duration_stretch={stretch}"]
    return _synthesise("flite", lambda wav: [*options, "-t", text, "-o", wav], text, rate, pad_s)


def _synthesise(program: str, arguments: Callable[[str], list[str]], text: str, rate: int, pad_s: float) -> Signal:
    """Run ``program`` with ``arguments(wav path)`` and read the WAV it wrote back at ``rate``."""
    executable = shutil.which(program)
    if executable is None:
        raise SpeechError(f"{program} is not installed (the bootstrap installs it as root: apt-get install {program})")
    with tempfile.TemporaryDirectory(prefix="rig-speech-") as folder:
        wav = Path(folder) / "speech.wav"
        done = subprocess.run([executable, *arguments(str(wav))], capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise SpeechError(f"{program} could not say {text!r}: {reason[-1] if reason else done.returncode}")
        samples, source_rate = read_wav(wav)
    pad = np.zeros(round(pad_s * rate))
    return np.concatenate([pad, resample(samples, source_rate, rate), pad])
