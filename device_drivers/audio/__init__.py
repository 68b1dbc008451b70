"""Audio: sounddevice plays into the DUT's microphone and records its speaker; numpy analyses."""

from .analysis import decode_dtmf, dominant_frequency, rms, snr_db, tone_onset
from .port import AudioError, AudioPort, AudioTimeout, Listener, Recording
from .wavfile import WavError, read_wav, write_wav

__all__ = [
    "AudioError",
    "AudioPort",
    "AudioTimeout",
    "Listener",
    "Recording",
    "WavError",
    "decode_dtmf",
    "dominant_frequency",
    "read_wav",
    "rms",
    "snr_db",
    "tone_onset",
    "write_wav",
]
