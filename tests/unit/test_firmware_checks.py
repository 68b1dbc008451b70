"""The reference firmware's pure checks, without a Pi: upload filenames, decoding, and the
system figures read from /sys and /proc (given fake trees)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import soundfile

from device_drivers.audio.analysis import sine
from rig import paths

sys.path.insert(0, str(paths.FIRMWARE_DIR))
from musicbox.envelopes import ApiError
from musicbox.system import read_cpu_temperature, read_memory, read_uptime
from musicbox.upload_checks import decode_audio, upload_suffix


@pytest.mark.parametrize(
    ("name", "suffix"),
    [("song.wav", ".wav"), ("Song.FLAC", ".flac"), ("a b (live...).ogg", ".ogg"), ("x.oga", ".oga"), ("é.mp3", ".mp3")],
)
def test_plain_names_give_their_extension(name: str, suffix: str) -> None:
    assert upload_suffix(name) == suffix


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../etc/passwd.mp3", "bare file name"),
        ("C:\\x.wav", "bare file name"),
        ("..／x.wav", "bare file name"),  # fullwidth solidus (NFKC folds it to '/')
        ("a∕b.wav", "bare file name"),  # division slash (NFKC keeps it)
        ("．．.wav", "bare file name"),  # fullwidth full stops
        ("a\x00.wav", "U+0000"),
        ("a\u200b.wav", "U+200B"),  # zero-width space
        ("\u202ewav.exe", "U+202E"),  # right-to-left override
        (".wav", "start with a dot"),
        ("..", "start with a dot"),
        ("song.exe", "'.exe' is not allowed"),
        ("song", "'(none)' is not allowed"),
        ("x" * 300 + ".wav", "longer than 255"),
        ("", "filename is required"),
        (5, "filename is required"),
    ],
)
def test_hostile_names_are_refused_with_the_reason(name: object, reason: str) -> None:
    with pytest.raises(ApiError) as refused:
        upload_suffix(name)
    assert refused.value.error_type == "validation_error"
    assert reason in refused.value.message


def _audio(path: Path, fmt: str) -> Path:
    soundfile.write(path, sine(440.0, 1.0, 8000), 8000, format=fmt)
    return path


def test_decode_checks_the_content_against_the_extension(tmp_path: Path) -> None:
    decoded = decode_audio(_audio(tmp_path / "a.wav", "WAV"), ".wav")
    assert (decoded.format, decoded.duration_ms, decoded.channels) == ("WAV", 1000, 1)
    with pytest.raises(ApiError, match=r"the content is FLAC audio, not what \.wav holds"):
        decode_audio(_audio(tmp_path / "b.wav", "FLAC"), ".wav")
    (tmp_path / "c.mp3").write_bytes(b"ID3" + b"\0" * 5000)
    with pytest.raises(ApiError, match=r"does not decode as \.mp3 audio") as refused:
        decode_audio(tmp_path / "c.mp3", ".mp3")
    assert refused.value.error_type == "unsupported_media_type"


def test_system_figures_from_fake_sysfs_and_proc(tmp_path: Path) -> None:
    thermal = tmp_path / "thermal"
    for index, (kind, milli) in enumerate([("acpitz", "30000"), ("cpu-thermal", "48312")]):
        zone = thermal / f"thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert read_cpu_temperature(thermal) == 48.3, "the CPU's zone wins over the others"
    assert read_cpu_temperature(tmp_path / "none") is None, "no sensor: null, not an error"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        4000 kB\nMemFree:  100 kB\nMemAvailable:    1000 kB\n")
    assert read_memory(meminfo) == {"total_bytes": 4096000, "available_bytes": 1024000, "used_percent": 75.0}
    uptime = tmp_path / "uptime"
    uptime.write_text("1234.56 999.00\n")
    assert read_uptime(uptime) == 1234.6
    assert read_uptime(tmp_path / "missing") is None
