"""WAV files in and out: 16-bit PCM, the format every recorder, player and diff tool reads.

The standard library's ``wave`` does the container; numpy does the samples. A recording is
written to a ``.partial`` name and renamed, so an artifact is never half a file.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from .analysis import Signal, as_signal


class WavError(ValueError):
    """A file that is not a PCM WAV the rig can read; the message names it and says why."""


def read_wav(path: Path) -> tuple[Signal, int]:
    """(mono samples in ±1.0, sample rate). Multi-channel files are mixed down."""
    try:
        with wave.open(str(path), "rb") as source:
            width, channels, rate = source.getsampwidth(), source.getnchannels(), source.getframerate()
            raw = source.readframes(source.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: not a PCM WAV file ({exc})") from None
    dtypes = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}
    if width not in dtypes:
        raise WavError(f"{path}: {8 * width}-bit samples; the rig reads 8, 16 and 32-bit PCM")
    samples = np.frombuffer(raw, dtype=dtypes[width]).reshape(-1, channels)
    if width == 1:  # 8-bit WAV is unsigned, centred on 128
        return (samples.astype(np.float64) - 128.0).mean(axis=1) / 128.0, rate
    return as_signal(samples if channels > 1 else samples[:, 0]), rate


def to_pcm16(x: Signal) -> bytes:
    """Little-endian 16-bit PCM, clipped at full scale (the wire format of /ws/audio too)."""
    return (np.clip(x, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> Signal:
    return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0


def write_wav(path: Path, x: Signal, sample_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(to_pcm16(x))
    partial.rename(path)
    return path
