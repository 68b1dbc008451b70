"""Where the project's resources live: the rig is installed editable from its checkout."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = PROJECT_ROOT / "fixtures"
FIRMWARE_DIR = FIXTURES / "firmware"
MOCK_PINS = PROJECT_ROOT / "device_drivers" / "gpio" / "mockpins"  # the virtual Pi's gpiozero pin factory
DEFAULT_CONTRACT = FIXTURES / "contracts" / "musicbox-rig.json"
SIM_BENCH = FIXTURES / "benches" / "sim.toml"
AUDIO_LIBRARY = FIXTURES / "audio" / "library.toml"
AUDIO_CLIPS = FIXTURES / "audio" / "clips.toml"  # spoken commands, noise, tones, DTMF (generate.py)
TAGS = FIXTURES / "tags"  # named NFC tags (device_drivers/nfc/tags.py)
SUPERVISOR_TEMPLATE = PROJECT_ROOT / "deploy" / "supervisor" / "virtual-pi.conf.in"


def state_home() -> Path:
    """Per-user state for long-lived things such as the CLI's virtual Pi (XDG base directories)."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "rig"


def cache_home() -> Path:
    """Per-user cache for things worth keeping between runs, such as downloaded wheels."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rig"
