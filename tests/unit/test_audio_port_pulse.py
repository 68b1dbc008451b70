"""Playback to a virtual Pi goes through pacat: a server that is not there is a one-line
AudioError naming the sink and pacat's reason, not a hang or a traceback."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from device_drivers.audio.port import AudioError, AudioPort
from tests.conftest import unavailable


def test_playing_to_a_missing_pulseaudio_server_says_why(tmp_path, monkeypatch) -> None:
    if shutil.which("pacat") is None:
        unavailable("pacat is not installed (pulseaudio-utils)")
    env = {"PULSE_SERVER": f"unix:{tmp_path / 'no-server'}", "PULSE_SINK": "dut_mic", "PULSE_SOURCE": "x.monitor"}
    for name in env:  # AudioPort writes its env into os.environ: monkeypatch puts it back afterwards
        monkeypatch.setenv(name, "")
    port = AudioPort("pulse", "pulse", env=env)
    with pytest.raises(AudioError, match=r"^cannot play on PulseAudio sink 'dut_mic': .+") as raised:
        port.play(np.zeros(480), 48000, "silence")
    assert "\n" not in str(raised.value)
