"""The bench's audio interface through sounddevice: its output feeds the DUT's microphone, its
input listens to the DUT's speaker.

On a bench both are a USB interface's ALSA devices, chosen by name. On a virtual Pi they are
the PulseAudio server's null sinks, reached through ALSA's ``pulse`` device: libpulse reads
``PULSE_SERVER``, ``PULSE_SINK`` (where playback goes: ``dut_mic``) and ``PULSE_SOURCE``
(what is recorded: ``dut_speaker.monitor``) when a stream opens, so the sim backend sets them
in this process's environment.

Playback to a virtual Pi goes through PulseAudio's own client, ``pacat``, instead: PortAudio
through ALSA's pulse plugin keeps a few milliseconds queued, and on a starved machine ALSA
reported underruns ("snd_pcm_recover underrun occurred") whose gaps of 5-40 ms reached the
firmware's microphone and cut words (larger PortAudio latencies did not stop them). pacat gets
the whole clip on its standard input and keeps PULSE_LATENCY_MS queued in the server.

A ``Listener`` keeps the input open and stamps every block on the monotonic clock, so a test
can ask "when, after this broadcast, did 440 Hz start?" about sound that already arrived.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import analysis
from .analysis import Signal
from .wavfile import write_wav

log = logging.getLogger(__name__)

Stamp = Callable[[str, dict[str, Any]], Any]
PULSE_LATENCY_MS = 200  # what pacat keeps queued in the server: a starved pacat has this long


class AudioError(RuntimeError):
    """An audio device cannot be opened or used; the message names it and lists what exists."""


class AudioTimeout(AssertionError):
    """What the test listened for did not come; the message says what was heard instead."""


def _devices() -> str:
    import sounddevice as sd

    try:
        names = [
            f"{d['name']!r} ({d['max_input_channels']} in, {d['max_output_channels']} out)" for d in sd.query_devices()
        ]
    except Exception as exc:  # PortAudio's own errors have no common base but Exception
        return f"(cannot list devices: {exc})"
    return ", ".join(names) or "none"


@dataclass
class Recording:
    """Samples with the monotonic time of the first one, and where they were saved."""

    samples: Signal
    sample_rate: int
    start_ns: int
    path: Path | None = None

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate

    def at(self, mono_ns: int) -> int:
        """The sample index of a monotonic time (clamped to the recording)."""
        return min(max(0, round((mono_ns - self.start_ns) / 1e9 * self.sample_rate)), len(self.samples))

    def between(self, start_ns: int, end_ns: int | None = None) -> Signal:
        return self.samples[self.at(start_ns) : self.at(end_ns) if end_ns is not None else None]

    def describe(self) -> str:
        """'440.2 Hz at -16.5 dBFS', or 'silence (-inf dBFS)': what a timeout says was heard."""
        level = analysis.dbfs(self.samples)
        if len(self.samples) < 64 or analysis.is_silent(self.samples):
            return f"silence ({level:.1f} dBFS over {self.seconds:.2f} s)"
        frequency = analysis.dominant_frequency(self.samples, self.sample_rate)
        return f"{frequency:.1f} Hz at {level:.1f} dBFS over {self.seconds:.2f} s"


@dataclass
class _Block:
    start_ns: int
    samples: np.ndarray


@dataclass
class Listener:
    """A running input stream's recent past (``keep_s`` seconds), block by block."""

    sample_rate: int
    keep_s: float
    blocks: deque[_Block] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)
    overflows: int = 0

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def _add(self, start_ns: int, samples: np.ndarray) -> None:
        with self.lock:
            self.blocks.append(_Block(start_ns, samples))
            horizon = start_ns - int(self.keep_s * 1e9)
            while self.blocks and self.blocks[0].start_ns < horizon:
                self.blocks.popleft()
            self.arrived.notify_all()

    def recording(self, since_ns: int | None = None, until_ns: int | None = None) -> Recording:
        """What arrived between two monotonic times (all that is kept, by default)."""
        with self.lock:
            blocks = [b for b in self.blocks if since_ns is None or b.start_ns + self._span_ns(b) > since_ns]
        if not blocks:
            return Recording(np.zeros(0), self.sample_rate, since_ns or time.monotonic_ns())
        samples = np.concatenate([b.samples for b in blocks]).astype(np.float64)
        whole = Recording(samples, self.sample_rate, blocks[0].start_ns)
        start = since_ns if since_ns is not None else whole.start_ns
        return Recording(whole.between(start, until_ns), self.sample_rate, max(start, whole.start_ns))

    def _span_ns(self, block: _Block) -> int:
        return int(len(block.samples) / self.sample_rate * 1e9)

    def wait(self, condition: Callable[[Recording], Any], since_ns: int, timeout: float, what: str) -> Any:
        """Re-check ``condition`` on the audio since ``since_ns`` as blocks arrive, until it
        returns something other than None or False; on timeout, AudioTimeout says what was heard."""
        deadline = time.monotonic() + timeout
        while True:
            heard = self.recording(since_ns)
            result = condition(heard) if len(heard.samples) else None
            if result is not None and result is not False:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AudioTimeout(f"no {what} within {timeout:g} s; heard {heard.describe()}")
            with self.lock:
                self.arrived.wait(min(left, 0.05))


class AudioPort:
    """Play into the DUT's microphone and listen to its speaker, by device name."""

    def __init__(
        self,
        output_device: str,
        input_device: str,
        sample_rate: int = 48000,
        *,
        env: dict[str, str] | None = None,
        stamp: Stamp | None = None,
        artifacts: Path | None = None,
    ) -> None:
        self.output_device = output_device
        self.input_device = input_device
        self.sample_rate = sample_rate
        self.stamp: Stamp = stamp or (lambda name, detail: None)
        self.artifacts = artifacts
        self.saved: list[Path] = []
        self.block_s = 0.01  # input blocks of 10 ms
        # libpulse reads these when each stream opens (the sim's devices); a bench sets none.
        os.environ.update(env or {})
        self._pulse_sink = (env or {}).get("PULSE_SINK") if "PULSE_SERVER" in (env or {}) else None
        try:
            import sounddevice  # PortAudio initialises on import, after the environment is set
        except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
            raise AudioError(f"PortAudio is not available ({exc}): install libportaudio2") from None
        self._sd = sounddevice

    # -- output: into the DUT's microphone ------------------------------------------------------
    def play(self, x: Signal, sample_rate: int, label: str) -> Any:
        """Play ``x`` to the end (paced by the device); returns the stamp of its first sample."""
        data = np.asarray(x, dtype=np.float32).reshape(-1, 1)
        if self._pulse_sink is not None:
            return self._play_pulse(data, sample_rate, label, self._pulse_sink)
        try:
            with self._sd.OutputStream(
                samplerate=sample_rate, device=self.output_device, channels=1, dtype="float32", latency="low"
            ) as stream:
                stamped = self.stamp(f"play {label}", {"seconds": round(len(data) / sample_rate, 3)})
                stream.write(data)
                # write() returns once the last block is queued: wait for the device to sound it.
                time.sleep(stream.latency)
        except (self._sd.PortAudioError, ValueError) as exc:
            raise AudioError(
                f"cannot play on audio output {self.output_device!r}: {exc}. Devices: {_devices()}"
            ) from None
        return stamped

    def _play_pulse(self, data: np.ndarray, sample_rate: int, label: str, sink: str) -> Any:
        """Play through pacat, which exits once the server has played the last sample (it drains
        the stream at the end of its input). The stamp is taken as pacat starts: its first
        sample sounds a few milliseconds later (it connects, then fills PULSE_LATENCY_MS)."""
        pacat = shutil.which("pacat")
        if pacat is None:
            raise AudioError("pacat is not installed: install pulseaudio-utils (the bootstrap does, as root)")
        seconds = len(data) / sample_rate
        command = [
            pacat,
            "--playback",
            "--raw",
            "--format=float32le",
            f"--rate={sample_rate}",
            "--channels=1",
            f"--device={sink}",
            f"--latency-msec={PULSE_LATENCY_MS}",
            "--client-name=rig",
            f"--stream-name={label}",
        ]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stamped = self.stamp(f"play {label}", {"seconds": round(seconds, 3)})
        limit = seconds + 10.0
        try:
            _, errors = process.communicate(data.astype("<f4").tobytes(), timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AudioError(f"pacat did not finish playing {label!r} ({seconds:.2f} s) within {limit:g} s") from None
        if process.returncode != 0:
            reason = errors.decode(errors="replace").strip().splitlines()
            raise AudioError(f"cannot play on PulseAudio sink {sink!r}: {reason[-1] if reason else process.returncode}")
        return stamped

    # -- input: the DUT's speaker ------------------------------------------------------------
    @contextmanager
    def listening(self, label: str = "speaker", keep_s: float = 30.0) -> Iterator[Listener]:
        """Keep the input open; the listener holds the last ``keep_s`` seconds, stamped, and
        what it holds at the end is saved as a WAV artifact."""
        listener = Listener(self.sample_rate, keep_s)
        latency = [0.0]

        def arrived(indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
            if status.input_overflow:
                listener.overflows += 1
            # The first sample reached the converter one block plus the input latency ago.
            start = time.monotonic_ns() - int((frames / self.sample_rate + latency[0]) * 1e9)
            listener._add(start, indata[:, 0].copy())

        try:
            stream = self._sd.InputStream(
                samplerate=self.sample_rate,
                device=self.input_device,
                channels=1,
                dtype="float32",
                latency="low",
                blocksize=round(self.sample_rate * self.block_s),  # onsets to the block
                callback=arrived,
            )
        except (self._sd.PortAudioError, ValueError) as exc:
            raise AudioError(
                f"cannot listen on audio input {self.input_device!r}: {exc}. Devices: {_devices()}"
            ) from None
        latency[0] = float(stream.latency)
        try:
            with stream:
                yield listener
        finally:
            self.save(listener.recording(), label)
        if listener.overflows:
            log.warning("audio input %s overflowed %d times", self.input_device, listener.overflows)

    def record(self, seconds: float, label: str = "recording") -> Recording:
        """Record ``seconds`` of the DUT's speaker, saved as a WAV artifact."""
        with self.listening(label, keep_s=seconds + 5) as listener:
            opened = time.monotonic_ns()
            listener.wait(lambda heard: True, 0, 5.0, "audio from the input")  # the stream has started
            start = max(opened, time.monotonic_ns())
            time.sleep(seconds + 0.1)  # the last block, through the input latency
        return listener.recording(start, start + int(seconds * 1e9))

    def save(self, recording: Recording, label: str) -> Recording:
        """Keep a recording as ``<artifacts>/audio/<label>-N.wav`` (nothing without artifacts)."""
        if self.artifacts is None:
            return recording
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)[:60]
        path = self.artifacts / "audio" / f"{stem}-{len(self.saved) + 1}.wav"
        recording.path = write_wav(path, recording.samples, recording.sample_rate)
        self.saved.append(path)
        return recording
