"""Spectrogram PNGs of recorded audio, attached to a failed test next to its WAVs.

A spectrogram answers "what did the Pi actually play?" at a glance: the wrong tone, silence
where a track should be, a click, or speech that never reached the microphone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_drivers.audio.wavfile import read_wav


def render(wav: Path) -> Path:
    """Write ``<wav>.png`` beside the WAV; returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a lab runner
    import matplotlib.pyplot as plt

    samples, rate = read_wav(wav)
    figure, axes = plt.subplots(figsize=(10, 4), dpi=100)
    try:
        if len(samples) >= 256:
            window = 1024 if len(samples) >= 1024 else 256
            with np.errstate(divide="ignore"):  # digital silence is -inf dB, drawn as the floor
                axes.specgram(samples, NFFT=window, Fs=rate, noverlap=window // 2, cmap="magma", vmin=-140)
        axes.set(title=f"{wav.name} ({len(samples) / rate:.2f} s)", xlabel="seconds", ylabel="Hz")
        axes.set_ylim(0, min(rate / 2, 8000))
        target = wav.with_suffix(".png")
        figure.savefig(target, bbox_inches="tight")
    finally:
        plt.close(figure)
    return target
