"""Figure 6: how well the audio checks hold up in noise, against generated ground truth.

- Tone onset (``analysis.tone_onset``, what audio-out tests time a track's start with): a tone of
  random frequency (300-3000 Hz) after a random lead-in, white noise over all of it; the error
  is the detected onset less the true one. Once with a 10 ms fade-in (the generated tracks'),
  once starting hard.
- DTMF (``analysis.decode_dtmf``): six random keys of 100 ms, 100 ms apart; a trial counts when
  the decoded keys are exactly the keys sent.
- Spoken commands: the firmware's own recogniser (``musicbox.voice``: pocketsphinx, a JSGF
  grammar with a filler branch) on synthetic speech of the seven commands from two synthesisers
  that sound nothing alike: espeak-ng's formant voice in nine variants (three speeds, three
  pitches) and flite's four voices (a diphone voice and three statistical ones) at three speeds.
  The firmware's front end was tuned on espeak-ng alone, and flite's voices show how far that
  tuning carries. Each clip is padded with 300 ms either side as the firmware's detector cuts a
  segment; a trial counts when the command comes out. The detector itself is not part of this
  figure (its own threshold decides what becomes a segment). A recogniser that accepts
  everything would score well, so the same voices also say twelve phrases that are no command,
  clean and at 10 dB: each one taken for a command is a false accept.

SNR is the signal's power (during the tone, the keys or the words) over the noise's, in dB.

    python -m benchmarks.signal_detection [--trials 100]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import numpy as np

from device_drivers.audio import analysis, speech
from device_drivers.audio.wavfile import to_pcm16
from rig import paths

from .common import report, setup_logging

SNRS_DB = (20.0, 10.0, 5.0)
RATE = 48_000  # the rig's audio port
KEYS = "0123456789ABCD*#"
Heard = tuple[str, str, str | None]  # (synthesiser, text said, command heard or None)
NOT_COMMANDS = (
    "what is the weather like today",
    "hello there",
    "turn on the lights",
    "good morning",
    "set a timer",
    "how are you",
    "call mom",
    "open the door",
    "thank you",
    "what time is it",
    "tell me a joke",
    "i am hungry",
)


def tone_onsets(trials: int, snr_db: float, rng: np.random.Generator, fade_ms: float) -> dict[str, Any]:
    errors_ms, missed = [], 0
    for _ in range(trials):
        lead, frequency = rng.uniform(0.1, 0.4), float(rng.uniform(300, 3000))
        tone = analysis.sine(frequency, 0.4, RATE, level=0.5, fade_ms=fade_ms)
        x = np.concatenate([np.zeros(round(lead * RATE)), tone, np.zeros(RATE // 10)])
        noisy = analysis.add_noise(x, snr_db, rng, power=float(np.mean(np.square(tone))))
        onset = analysis.tone_onset(noisy, RATE, frequency)
        if onset is None:
            missed += 1
        else:
            errors_ms.append((onset - lead) * 1e3)
    absolute = np.abs(errors_ms) if errors_ms else np.zeros(1)
    return {
        "trials": trials,
        "missed": missed,
        "error_ms_p50": round(float(np.percentile(absolute, 50)), 2),
        "error_ms_p99": round(float(np.percentile(absolute, 99)), 2),
        "error_ms_max": round(float(absolute.max()), 2),
        "mean_signed_error_ms": round(float(np.mean(errors_ms)), 2) if errors_ms else None,
    }


def dtmf(trials: int, snr_db: float, rng: np.random.Generator) -> dict[str, Any]:
    right = 0
    for _ in range(trials):
        keys = "".join(rng.choice(list(KEYS), 6))
        x = np.concatenate([np.zeros(RATE // 10), analysis.dtmf_tone(keys, RATE)])
        power = float(np.mean(np.square(x[np.abs(x) > 0])))  # during the keys
        decoded = "".join(d.key for d in analysis.decode_dtmf(analysis.add_noise(x, snr_db, rng, power=power), RATE))
        right += decoded == keys
    return {"trials": trials, "recognised": right, "rate": round(right / trials, 3)}


def spoken_clips(texts: tuple[str, ...]) -> list[tuple[str, str, np.ndarray]]:
    """(synthesiser, text, samples) for each text in every voice of both synthesisers, at the
    firmware's 16 kHz, with 300 ms of silence either side."""
    from musicbox.voice import SAMPLE_RATE

    clips = []
    for text in texts:
        for speed, pitch in speech.ESPEAK_VARIANTS:
            clips.append(("espeak-ng", text, speech.espeak(text, SAMPLE_RATE, speed=speed, pitch=pitch, pad_s=0.3)))
        for voice, stretch in speech.FLITE_VARIANTS:
            clips.append(("flite", text, speech.flite(text, SAMPLE_RATE, voice=voice, stretch=stretch, pad_s=0.3)))
    return clips


_recognizer: Any = None  # a worker process's own


def start_recognizer() -> None:
    """Give a worker process the firmware's recogniser: decodes are most of this benchmark's
    time, and one process per core halves it on two."""
    global _recognizer  # one per process, made once by the pool's initializer
    from musicbox.voice import CommandRecognizer

    _recognizer = CommandRecognizer()


def command_in(pcm16: bytes) -> str | None:
    return _recognizer.recognize(pcm16).command


def heard(
    pool: Executor, clips: list[tuple[str, str, np.ndarray]], snr_db: float | None, rng: np.random.Generator
) -> list[Heard]:
    """(synthesiser, text said, command heard or None) per clip, with noise at snr_db over its
    voiced part. The noise is drawn here, in order, so it does not depend on the workers."""
    segments = []
    for _, _, x in clips:
        if snr_db is not None:
            x = analysis.add_noise(x, snr_db, rng, power=speech.voiced_power(x))
        segments.append(to_pcm16(x))
    commands = pool.map(command_in, segments, chunksize=8)
    return [(synthesiser, text, command) for (synthesiser, text, _), command in zip(clips, commands, strict=True)]


def by_synthesiser(results: list[Heard], counts: Callable[[list[Heard]], dict[str, Any]]) -> dict[str, Any]:
    """``counts`` over all the results, then over each synthesiser's."""
    figures = counts(results)
    for synthesiser in dict.fromkeys(name for name, _, _ in results):
        figures[synthesiser] = counts([r for r in results if r[0] == synthesiser])
    return figures


def voice(
    pool: Executor, clips: list[tuple[str, str, np.ndarray]], snr_db: float | None, rng: np.random.Generator
) -> dict[str, Any]:
    def counts(results: list[Heard]) -> dict[str, Any]:
        right = sum(command == text for _, text, command in results)
        confused = [f"{text} -> {command or 'nothing'}" for _, text, command in results if command != text]
        return {
            "trials": len(results),
            "recognised": right,
            "rate": round(right / len(results), 3),
            "misses": confused[:8],
        }

    return by_synthesiser(heard(pool, clips, snr_db, rng), counts)


def false_accepts(
    pool: Executor, clips: list[tuple[str, str, np.ndarray]], snr_db: float | None, rng: np.random.Generator
) -> dict[str, Any]:
    def counts(results: list[Heard]) -> dict[str, Any]:
        accepted = [f"{text} -> {command}" for _, text, command in results if command]
        return {
            "trials": len(results),
            "accepted": len(accepted),
            "rate": round(len(accepted) / len(results), 3),
            "which": accepted[:8],
        }

    return by_synthesiser(heard(pool, clips, snr_db, rng), counts)


def measure(
    pool: Executor,
    clips: list[tuple[str, str, np.ndarray]],
    others: list[tuple[str, str, np.ndarray]],
    trials: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Every figure, keyed by SNR ("clean", "20_db", ...)."""
    by_snr: dict[str, Any] = {
        "clean": {
            "voice": voice(pool, clips, None, rng),
            "voice_false_accepts": false_accepts(pool, others, None, rng),
        }
    }
    for snr in SNRS_DB:
        by_snr[f"{snr:g}_db"] = {
            "tone_onset": tone_onsets(trials, snr, rng, fade_ms=10.0),
            "tone_onset_hard_start": tone_onsets(trials, snr, rng, fade_ms=0.0),
            "dtmf": dtmf(trials, snr, rng),
            "voice": voice(pool, clips, snr, rng),
        }
    by_snr["10_db"]["voice_false_accepts"] = false_accepts(pool, others, 10.0, rng)
    return by_snr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="tone and DTMF trials per SNR")
    args = parser.parse_args()
    setup_logging()
    rng = np.random.default_rng(6)
    sys.path.insert(0, str(paths.FIRMWARE_DIR))
    from musicbox.voice import COMMANDS  # the firmware's own list

    try:
        clips, others = spoken_clips(COMMANDS), spoken_clips(NOT_COMMANDS)
    except speech.SpeechError as exc:
        raise SystemExit(f"signal_detection: {exc}") from None
    with ProcessPoolExecutor(os.cpu_count(), initializer=start_recognizer) as pool:
        by_snr = measure(pool, clips, others, args.trials, rng)
    ten = by_snr["10_db"]
    report(
        "signal_detection",
        {
            "sample_rate_hz": RATE,
            "snr": by_snr,
            "targets": {
                "onset_error_ms_p99_worst <= 5": max(
                    by_snr[f"{snr:g}_db"][kind]["error_ms_p99"]
                    for snr in SNRS_DB
                    for kind in ("tone_onset", "tone_onset_hard_start")
                ),
                "dtmf_rate_at_10_db >= 0.95": ten["dtmf"]["rate"],
                "voice_rate_at_10_db >= 0.95": ten["voice"]["rate"],
                "voice_rate_at_10_db_espeak-ng": ten["voice"]["espeak-ng"]["rate"],
                "voice_rate_at_10_db_flite": ten["voice"]["flite"]["rate"],
                "voice_false_accepts_at_10_db (lower is better)": ten["voice_false_accepts"]["rate"],
            },
        },
    )


if __name__ == "__main__":
    main()
