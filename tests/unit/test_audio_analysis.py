"""The audio driver's analysis against signals whose truth is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device_drivers.audio import analysis
from device_drivers.audio.wavfile import WavError, from_pcm16, read_wav, to_pcm16, write_wav

RATE = 16000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.mark.parametrize("frequency", [392.0, 440.0, 659.25, 1046.5])
def test_dominant_frequency_within_a_fraction_of_a_bin(frequency: float, rng: np.random.Generator) -> None:
    tone = analysis.add_noise(analysis.sine(frequency, 0.5, RATE), 20.0, rng)
    assert analysis.dominant_frequency(tone, RATE) == pytest.approx(frequency, abs=0.5)


def test_rms_and_dbfs_of_a_sine() -> None:
    tone = analysis.sine(1000.0, 1.0, RATE, level=0.5, fade_ms=0)
    assert analysis.rms(tone) == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert analysis.dbfs(tone) == pytest.approx(-9.03, abs=0.05)
    assert analysis.dbfs(np.zeros(100)) == -math.inf
    assert analysis.is_silent(np.zeros(100))


@pytest.mark.parametrize("snr", [30.0, 20.0, 10.0])
def test_snr_of_a_tone_in_white_noise(snr: float, rng: np.random.Generator) -> None:
    tone = analysis.add_noise(analysis.sine(440.0, 2.0, RATE, fade_ms=0), snr, rng)
    # White noise spreads over 8 kHz; the 20 Hz band around the tone keeps 1/400 of it.
    assert analysis.snr_db(tone, RATE, 440.0) == pytest.approx(snr, abs=1.5)


def test_pink_noise_has_the_snr_and_falls_3_db_per_octave(rng: np.random.Generator) -> None:
    noise = analysis.add_noise(np.zeros(4 * RATE), 10.0, rng, power=0.01, pink=True)
    assert float(np.mean(np.square(noise))) == pytest.approx(0.001, rel=1e-6)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    hz = np.fft.rfftfreq(len(noise), 1 / RATE)

    def density_db(low: float) -> float:
        """Mean power per bin over [low, 1.2 × low)."""
        return 10 * math.log10(float(spectrum[(hz >= low) & (hz < 1.2 * low)].mean()))

    assert density_db(500.0) - density_db(1000.0) == pytest.approx(3.0, abs=0.5)
    assert density_db(1000.0) - density_db(2000.0) == pytest.approx(3.0, abs=0.5)


@pytest.mark.parametrize("fade_ms", [10.0, 0.0])
@pytest.mark.parametrize("snr", [30.0, 10.0, 5.0])
def test_tone_onset_within_5_ms(snr: float, fade_ms: float, rng: np.random.Generator) -> None:
    """Twenty starts each, with and without a fade-in: the error is in the estimate, not in
    where a window boundary happens to fall."""
    for start_s in rng.uniform(0.05, 0.5, 20):
        tone = analysis.sine(660.0, 0.5, RATE, fade_ms=fade_ms)
        signal = np.concatenate([np.zeros(round(start_s * RATE)), tone])
        noise = rng.normal(0.0, math.sqrt(float(np.mean(np.square(tone)))) / 10 ** (snr / 20), len(signal))
        onset = analysis.tone_onset(signal + noise, RATE, 660.0)
        assert onset is not None
        assert abs(onset - start_s) <= 0.005, f"started at {start_s:.4f} s, found at {onset:.4f} s"
        assert analysis.tone_onset(signal + noise, RATE, 440.0) is None  # another tone is not this one


def test_tone_presence() -> None:
    tone = analysis.sine(523.25, 0.3, RATE)
    assert analysis.tone_present(tone, RATE, 523.25)
    assert not analysis.tone_present(tone, RATE, 660.0)
    assert not analysis.tone_present(np.zeros(1000), RATE, 523.25)


def test_a_short_tone_in_a_long_recording_is_present(rng: np.random.Generator) -> None:
    """A listener polling a growing recording may first look when it is ten times the tone's
    length (a busy machine, a late audio block): the tone must not be diluted by the rest."""
    tone = analysis.sine(1000.0, 0.3, RATE)
    recording = analysis.add_noise(np.concatenate([np.zeros(RATE), tone, np.zeros(2 * RATE)]), 30.0, rng)
    assert analysis.tone_present(recording, RATE, 1000.0)
    assert not analysis.tone_present(recording, RATE, 1200.0)
    click = np.concatenate([np.zeros(RATE), analysis.sine(1000.0, 0.02, RATE), np.zeros(RATE)])
    assert not analysis.tone_present(click, RATE, 1000.0), "20 ms of it is a click, not a tone"


@pytest.mark.parametrize("keys", ["1234", "*0#", "A5D9"])
def test_dtmf_round_trip(keys: str, rng: np.random.Generator) -> None:
    signal = analysis.add_noise(analysis.dtmf_tone(keys, RATE), 20.0, rng)
    digits = analysis.decode_dtmf(signal, RATE)
    assert "".join(d.key for d in digits) == keys
    assert digits[0].start_s == pytest.approx(0.0, abs=0.03)
    assert digits[1].start_s == pytest.approx(0.2, abs=0.03)


def test_dtmf_ignores_a_single_tone_and_noise(rng: np.random.Generator) -> None:
    assert analysis.decode_dtmf(analysis.sine(697.0, 0.5, RATE), RATE) == []
    assert analysis.decode_dtmf(rng.normal(0, 0.1, RATE), RATE) == []


def test_dtmf_rejects_an_unknown_key() -> None:
    with pytest.raises(ValueError, match="not a DTMF key"):
        analysis.dtmf_tone("12x", RATE)


def test_align_finds_the_lag_of_a_copy(rng: np.random.Generator) -> None:
    reference = rng.normal(0, 0.2, 4000)
    recording = np.concatenate([np.zeros(1234), 0.3 * reference, np.zeros(500)])
    lag, score = analysis.align(analysis.add_noise(recording, 20.0, rng), reference)
    assert lag == 1234
    assert score > 0.9


def test_resample_keeps_frequency_and_length() -> None:
    tone = analysis.sine(440.0, 1.0, 22050, fade_ms=0)
    out = analysis.resample(tone, 22050, RATE)
    assert len(out) == RATE
    assert analysis.dominant_frequency(out, RATE) == pytest.approx(440.0, abs=0.5)


def test_wav_round_trip(tmp_path) -> None:
    tone = analysis.sine(440.0, 0.25, RATE)
    path = write_wav(tmp_path / "tone.wav", tone, RATE)
    samples, rate = read_wav(path)
    assert rate == RATE
    assert np.max(np.abs(samples - tone)) < 1e-4
    assert not list(tmp_path.glob("*.partial"))
    assert np.allclose(from_pcm16(to_pcm16(tone)), samples)


def test_bad_wav_is_one_clear_error(tmp_path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(WavError, match=r"bad\.wav: not a PCM WAV"):
        read_wav(bad)
    with pytest.raises(WavError, match="no such file"):
        read_wav(tmp_path / "missing.wav")


def test_dropouts_are_runs_of_digital_silence_inside_the_recording(rng: np.random.Generator) -> None:
    heard = rng.normal(0.0, 0.01, RATE)
    assert analysis.dropouts(heard, RATE) == []
    heard[4000:4400] = 0.0  # 25 ms lost
    heard[9000:9040] = 0.0  # 2.5 ms: shorter than a dropout
    heard[:800] = 0.0  # before the sound started: not a dropout
    assert analysis.dropouts(heard, RATE) == [(0.25, 0.025)]
