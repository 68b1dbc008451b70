"""What the rig hears, in numbers: frequency, level, onset, SNR, DTMF digits and alignment.

Everything takes a mono float array (full scale ±1.0) and its sample rate, so the same checks
run on a USB interface's recording, a PulseAudio monitor's, or a generated reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Signal = NDArray[np.float64]

# ITU-T Q.23 keypad: rows are the low group, columns the high group.
DTMF_LOW = (697.0, 770.0, 852.0, 941.0)
DTMF_HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
SILENCE_DBFS = -60.0  # below this a recording counts as silence
SILENCE_POWER = 10 ** (SILENCE_DBFS / 10)  # the same, as mean square


def as_signal(samples: NDArray[np.generic]) -> Signal:
    """Mono float64: multi-channel audio is averaged, signed integer PCM scaled to ±1.0."""
    data = np.asarray(samples)
    if data.dtype.kind == "i":
        data = data.astype(np.float64) / -float(np.iinfo(data.dtype).min)
    data = data.astype(np.float64, copy=False)
    return data.mean(axis=1) if data.ndim == 2 else data


def rms(x: Signal) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def dbfs(x: Signal) -> float:
    """RMS level in dB relative to a full-scale square wave; -inf for digital silence."""
    level = rms(x)
    return 20 * math.log10(level) if level > 0 else -math.inf


def is_silent(x: Signal, threshold_dbfs: float = SILENCE_DBFS) -> bool:
    return dbfs(x) < threshold_dbfs


def dominant_frequency(x: Signal, sample_rate: int) -> float:
    """The strongest frequency, refined between FFT bins by parabolic interpolation of the
    log magnitude (a 1 s recording resolves 1 Hz bins; interpolation gets well under that)."""
    if len(x) < 4:
        raise ValueError("a frequency needs at least 4 samples")
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    spectrum[0] = 0.0  # DC is not a tone
    peak = int(np.argmax(spectrum))
    if 0 < peak < len(spectrum) - 1:
        a, b, c = np.log(spectrum[peak - 1 : peak + 2] + 1e-300)
        denominator = a - 2 * b + c
        offset = 0.5 * (a - c) / denominator if denominator else 0.0
    else:
        offset = 0.0
    return float((peak + offset) * sample_rate / len(x))


def goertzel_power(x: Signal, sample_rate: int, frequency: float) -> float:
    """Power of one frequency over the block, normalised so a full-scale sine gives 0.25.

    The Goertzel recurrence costs one multiply per sample per frequency: the classic choice when
    a few known frequencies matter (DTMF, a tone check) and a full FFT would be waste."""
    n = len(x)
    if n == 0:
        return 0.0
    coefficient = 2 * math.cos(2 * math.pi * frequency / sample_rate)
    s1 = s2 = 0.0
    for sample in x.tolist():
        s1, s2 = sample + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return power / (n * n)


def snr_db(x: Signal, sample_rate: int, frequency: float, bandwidth_hz: float = 20.0) -> float:
    """Signal-to-noise ratio of a tone: power within ±bandwidth/2 of it against everything else."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / sample_rate)
    band = np.abs(freqs - frequency) <= bandwidth_hz / 2
    signal, noise = float(spectrum[band].sum()), float(spectrum[~band][1:].sum())
    if noise <= 0:
        return math.inf
    if signal <= 0:
        return -math.inf
    return 10 * math.log10(signal / noise)


def tone_onset(
    x: Signal, sample_rate: int, frequency: float, *, window_ms: float = 5.0, min_ratio: float = 0.5
) -> float | None:
    """Seconds from the start of ``x`` to where ``frequency`` starts, or None if it never does.

    Found in two steps: the first 5 ms window where the tone carries ``min_ratio`` of the power
    says it is there; its rising edge around that window says when it began (``_edge_start``),
    to within about 3 ms at 5 dB SNR whatever its fade-in."""
    window = max(8, round(sample_rate * window_ms / 1000))
    power, ratio = _tone_windows(x, sample_rate, frequency, window, 1)
    hits = np.nonzero((power >= SILENCE_POWER) & (ratio >= min_ratio))[0]
    if len(hits) == 0:
        return None
    start = int(hits[0]) * window
    return _edge_start(x, sample_rate, frequency, start, start + window) / sample_rate


EDGE_LOOKBACK_MS = 20.0  # how far before the detecting window a fade-in may have begun
EDGE_LEVEL_MS = 10.0  # the tone's steady level is taken over this much after it
EDGE_SMOOTHING_MS = 2.0


def _edge_start(x: Signal, sample_rate: int, frequency: float, start: int, end: int) -> float:
    """The sample where the tone detected in ``x[start:end]`` began (fractional).

    The tone's own envelope: ``x`` shifted down by ``frequency`` and averaged over 2 ms, which
    keeps 1/12 of white noise's power at 48 kHz (1/4 at 16 kHz) and none of other tones. Its
    level is the median over the 10 ms after the detecting window. The rising edge's last points
    below 60 % and then 20 % of that level, searched backwards so a noise peak in the quiet
    before cannot win, extrapolate the edge to zero: where a linear fade-in of any length starts,
    or a hard start less 1 ms (half the averaging). A fixed threshold would instead land a fixed
    fraction into the fade, late by 3 ms on a 10 ms fade at 30 %."""
    per_ms = sample_rate / 1000
    begin = max(0, start - round(EDGE_LOOKBACK_MS * per_ms))
    stop = min(len(x), end + round(EDGE_LEVEL_MS * per_ms))
    segment = x[begin:stop]
    shifted = segment * np.exp(-2j * np.pi * frequency / sample_rate * np.arange(begin, stop))
    width = max(1, round(EDGE_SMOOTHING_MS * per_ms))
    envelope = np.abs(np.convolve(shifted, np.ones(width) / width, mode="same"))
    edge_end = end - begin
    after = envelope[edge_end:] if stop - end >= width else envelope[start - begin :]
    level = float(np.median(after))
    high = np.nonzero(envelope[:edge_end] < 0.6 * level)[0]
    if len(high) == 0:  # already at its level where the search begins: the recording's start
        return float(begin)
    low = np.nonzero(envelope[: high[-1]] < 0.2 * level)[0]
    low_at = int(low[-1]) if len(low) else 0
    rise = high[-1] - low_at
    return max(0.0, begin + low_at - rise * 0.2 / (0.6 - 0.2))


def dropouts(x: Signal, sample_rate: int, min_ms: float = 5.0) -> list[tuple[float, float]]:
    """Runs of exact digital silence inside ``x`` at least ``min_ms`` long, as (start, length)
    in seconds; runs touching either end are not counted.

    A microphone always hears some noise, so a stretch of exact zeros in the middle of what it
    heard is audio the path dropped: a starved client or sound server fills the gap with silence.
    That tells "the machine was too busy" apart from "the recogniser was wrong"."""
    zero = np.concatenate([[False], x == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    shortest = round(sample_rate * min_ms / 1000)
    return [
        (start / sample_rate, (end - start) / sample_rate)
        for start, end in zip(starts, ends, strict=True)
        if end - start >= shortest and start > 0 and end < len(x)
    ]


def speech_end_s(x: Signal, sample_rate: int) -> float:
    """Where the words of a spoken clip end: the end of its last 20 ms frame within 20 dB of the
    loudest (the moment a listener could act on the command)."""
    frame = sample_rate // 50
    levels = [dbfs(x[i : i + frame]) for i in range(0, len(x) - frame + 1, frame)]
    loud = [i for i, level in enumerate(levels) if level > max(levels) - 20]
    return (loud[-1] + 1) * frame / sample_rate


def tone_present(
    x: Signal, sample_rate: int, frequency: float, *, min_ratio: float = 0.5, window_ms: float = 50.0
) -> bool:
    """Whether ``frequency`` carries ``min_ratio`` of the power of some audible ``window_ms``
    stretch of ``x`` (windows overlap by half, so any tone 1.5 windows long fills one).

    Windows, not the whole block: a listener polling a growing recording may first look when it
    is ten times the tone's length (a busy machine, a late audio block), and over the whole block
    0.3 s of tone in 3 s of quiet carries 10 % of the power."""
    power, ratio = _tone_windows(x, sample_rate, frequency, round(sample_rate * window_ms / 2000), 2)
    return bool(np.any((power >= SILENCE_POWER) & (ratio >= min_ratio)))


def _tone_windows(x: Signal, sample_rate: int, frequency: float, hop: int, hops: int) -> tuple[Signal, Signal]:
    """Each window of ``hops`` × ``hop`` samples, stepping by ``hop``: its mean power and the
    share of it at ``frequency`` (1.0: a pure tone there; ~0: absent).

    One DFT bin per window, as Goertzel gives, but vectorised: ``x`` times one phasor, summed per
    hop, so a listener's poll of 5 s of 48 kHz audio costs about 12 ms, not a Python loop over
    every sample."""
    count = len(x) // hop if hop > 0 else 0
    if count < hops:
        return np.zeros(0), np.zeros(0)
    body = x[: count * hop]
    phasor = np.exp(-2j * np.pi * frequency / sample_rate * np.arange(len(body)))
    bins = (body * phasor).reshape(count, hop).sum(axis=1)
    energy = np.square(body).reshape(count, hop).sum(axis=1)
    window_bins = sum(bins[i : count - hops + 1 + i] for i in range(hops))
    window_energy = sum(energy[i : count - hops + 1 + i] for i in range(hops))
    n = hops * hop
    ratio = 2 * np.square(np.abs(window_bins)) / (n * np.maximum(window_energy, 1e-300))
    return window_energy / n, np.minimum(1.0, ratio)


@dataclass(frozen=True)
class DtmfDigit:
    key: str
    start_s: float
    end_s: float


def decode_dtmf(
    x: Signal, sample_rate: int, *, window_ms: float = 20.0, min_ratio: float = 0.6, min_duration_ms: float = 40.0
) -> list[DtmfDigit]:
    """The keys of a DTMF sequence, in order, with their times.

    Each 20 ms window is scored with Goertzel at the 8 DTMF frequencies: a window holds a key
    when its strongest low and high tones together carry ``min_ratio`` of its power (speech and
    noise spread their power; a key puts it in two lines) and neither is 8 dB below the other.
    A key must last ``min_duration_ms`` (Q.24 asks for 40 ms), and a gap ends it, so a held key
    is one digit and a repeat is two."""
    window = round(sample_rate * window_ms / 1000)
    keys: list[str | None] = []
    for start in range(0, len(x) - window + 1, window):
        block = x[start : start + window]
        total = float(np.mean(np.square(block)))
        if total <= 0 or is_silent(block, -45.0):
            keys.append(None)
            continue
        low = [goertzel_power(block, sample_rate, f) for f in DTMF_LOW]
        high = [goertzel_power(block, sample_rate, f) for f in DTMF_HIGH]
        row, col = int(np.argmax(low)), int(np.argmax(high))
        low_share, high_share = 2 * low[row] / total, 2 * high[col] / total
        # Both groups must sound (a lone 697 Hz tone is no key), within 8 dB of each other (Q.24 twist).
        both = min(low_share, high_share) >= max(low_share, high_share) / 6.3
        keys.append(DTMF_KEYS[row][col] if both and low_share + high_share >= min_ratio else None)
    digits: list[DtmfDigit] = []
    minimum = max(1, math.ceil(min_duration_ms / window_ms))
    run_key, run_start = None, 0
    for index, key in enumerate([*keys, None]):
        if key == run_key:
            continue
        if run_key is not None and index - run_start >= minimum:
            digits.append(DtmfDigit(run_key, run_start * window / sample_rate, index * window / sample_rate))
        run_key, run_start = key, index
    return digits


def dtmf_tone(
    keys: str, sample_rate: int, *, tone_ms: float = 100.0, gap_ms: float = 100.0, level: float = 0.25
) -> Signal:
    """A DTMF sequence, each key ``tone_ms`` long with ``gap_ms`` of silence after it."""
    tone_n, gap_n = round(sample_rate * tone_ms / 1000), round(sample_rate * gap_ms / 1000)
    t = np.arange(tone_n) / sample_rate
    parts = []
    for key in keys.upper():
        row = next((i for i, r in enumerate(DTMF_KEYS) if key in r), None)
        if row is None:
            raise ValueError(f"{key!r} is not a DTMF key (0-9, A-D, * and #)")
        col = DTMF_KEYS[row].index(key)
        parts.append(level * (np.sin(2 * np.pi * DTMF_LOW[row] * t) + np.sin(2 * np.pi * DTMF_HIGH[col] * t)))
        parts.append(np.zeros(gap_n))
    return np.concatenate(parts) if parts else np.zeros(0)


def sine(frequency: float, seconds: float, sample_rate: int, level: float = 0.5, fade_ms: float = 10.0) -> Signal:
    """A tone with short fades, so its edges do not click (a click spreads over every frequency)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / (fade_ms / 1000)) if fade_ms > 0 else 1.0
    return level * fade * np.sin(2 * np.pi * frequency * t)


def add_noise(
    x: Signal, snr: float, rng: np.random.Generator, *, power: float | None = None, pink: bool = False
) -> Signal:
    """White noise over the whole signal, ``snr`` dB below ``power``: by default the signal's
    mean power; give the power of its tone, keys or words alone when silence surrounds them.
    ``pink``: noise whose power falls 3 dB per octave (fans, rooms), at the same total power."""
    if power is None:
        power = float(np.mean(np.square(x)))
    if not pink:
        return x + rng.normal(0.0, math.sqrt(power / 10 ** (snr / 10)), len(x))
    spectrum = np.fft.rfft(rng.normal(size=len(x)))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, len(x))
    return x + noise * math.sqrt(power / 10 ** (snr / 10) / float(np.mean(np.square(noise))))


def align(recording: Signal, reference: Signal) -> tuple[int, float]:
    """Where ``reference`` starts in ``recording``: (lag in samples, normalised peak 0..1).

    Cross-correlation through the FFT, O(n log n), so a minute of audio aligns in milliseconds;
    the normalised peak says how sure the match is (1.0: an exact copy at some gain)."""
    n = len(recording) + len(reference) - 1
    size = 1 << (n - 1).bit_length()
    correlation = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(reference, size)), size)
    correlation = correlation[: len(recording)]
    lag = int(np.argmax(correlation))
    window = recording[lag : lag + len(reference)]
    norm = math.sqrt(float(np.sum(np.square(window))) * float(np.sum(np.square(reference[: len(window)]))))
    return lag, float(correlation[lag] / norm) if norm > 0 else 0.0


def resample(x: Signal, source_rate: int, target_rate: int) -> Signal:
    """Band-limited resampling through the FFT: exact for the short clips the rig handles
    (spoken commands, tones), with no dependency beyond numpy."""
    if source_rate == target_rate or len(x) == 0:
        return x
    count = round(len(x) * target_rate / source_rate)
    spectrum = np.fft.rfft(x)
    out = np.zeros(count // 2 + 1, dtype=complex)
    keep = min(len(spectrum), len(out))
    out[:keep] = spectrum[:keep]
    return np.fft.irfft(out, count) * (count / len(x))
