"""Synthetic speech (``device_drivers.audio.speech``): both synthesisers give speech at the rate
asked for, padded as asked, and a missing one is a one-line error that says what to install."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from device_drivers.audio import speech
from tests.conftest import unavailable

RATE = 16000


@pytest.mark.parametrize("say", [speech.espeak, speech.flite], ids=["espeak-ng", "flite"])
def test_speech_comes_padded_at_the_rate_asked_for(say) -> None:
    program = "espeak-ng" if say is speech.espeak else "flite"
    if shutil.which(program) is None:
        unavailable(f"{program} is not installed")
    samples = say("volume up", RATE, pad_s=0.25)
    pad = round(0.25 * RATE)
    assert not samples[:pad].any()
    assert not samples[-pad:].any()
    spoken = samples[pad:-pad]
    assert 0.3 < len(spoken) / RATE < 3.0, f"{len(spoken) / RATE:.2f} s for two words"
    assert float(np.sqrt(np.mean(np.square(spoken)))) > 0.01


def test_a_missing_synthesiser_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(speech.SpeechError, match=r"^flite is not installed .*apt-get install flite\)$"):
        speech.flite("play", RATE)
