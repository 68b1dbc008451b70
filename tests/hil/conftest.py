"""Fixtures of the HIL suite. They use only the firmware's HTTP API, so the suite runs unchanged
against a virtual Pi, a bench Pi, or ``--attach URL``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile

from device_drivers.audio.analysis import sine
from rig.dut import Dut
from rig.fixture_audio import FORMATS
from rig.tls import tls


@dataclass(frozen=True)
class LibraryPlaylist:
    id: str
    title: str
    tracks: list[dict[str, Any]]

    def track_ids(self) -> list[str]:
        return [t["id"] for t in self.tracks]


def _get(dut: Dut, path: str) -> Any:
    response = httpx.get(f"{dut.url}{path}", timeout=dut.bench.timeouts.http_s, verify=tls())
    response.raise_for_status()
    return response.json()["data"]


@pytest.fixture(autouse=True)
def idle_player(dut: Dut) -> None:
    """Every test starts with the player stopped, before its observers connect."""
    httpx.post(f"{dut.url}/api/player/stop", timeout=dut.bench.timeouts.http_s, verify=tls()).raise_for_status()


@pytest.fixture
def library(dut: Dut) -> list[LibraryPlaylist]:
    """Playlists of the DUT's library that hold at least two tracks with real durations."""
    summaries = _get(dut, "/api/playlists?limit=100")["playlists"]
    playlists = []
    for summary in summaries:
        if summary["track_count"] >= 2:
            detail = _get(dut, f"/api/playlists/{summary['id']}")
            if all(t.get("duration_ms") for t in detail["tracks"]):
                playlists.append(LibraryPlaylist(detail["id"], detail["title"], detail["tracks"]))
    if not playlists:
        pytest.fail(f"the firmware at {dut.url} has no playlist with two playable tracks to test with", pytrace=False)
    return playlists


@pytest.fixture
def playlist_factory(dut: Dut) -> Iterator[Any]:
    """Create playlists through the API; every one is deleted after the test."""
    created: list[str] = []

    def create(title: str, description: str = "created by the HIL suite") -> dict[str, Any]:
        response = httpx.post(
            f"{dut.url}/api/playlists",
            json={"title": title, "description": description},
            timeout=dut.bench.timeouts.http_s,
            verify=tls(),
        )
        assert response.status_code == 201, response.text
        playlist = response.json()["data"]
        created.append(playlist["id"])
        return playlist

    yield create
    for playlist_id in created:
        httpx.delete(f"{dut.url}/api/playlists/{playlist_id}", timeout=dut.bench.timeouts.http_s, verify=tls())


@pytest.fixture
def restore_library(dut: Dut) -> Iterator[None]:
    """For tests that delete or move fixture tracks: the rig puts the fixture library back afterwards."""
    yield
    dut.reseed_library()


def tone_bytes(
    seconds: float, frequency: float, *, rate: int = 16000, channels: int = 1, suffix: str = ".wav"
) -> bytes:
    """A tone as the bytes of an audio file in the format ``suffix`` names (the fixture library's
    synthesis and formats), for the upload tests."""
    container, subtype = FORMATS[suffix]
    tone = sine(frequency, seconds, rate, level=0.3)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.repeat(tone[:, None], channels, axis=1), rate, format=container, subtype=subtype)
    return buffer.getvalue()
