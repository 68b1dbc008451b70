"""The library, the player state and server_seq survive a restart of the virtual Pi."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from rig import paths
from rig.bench import load_bench
from rig.contract import ContractValidator
from rig.dut import start_sim
from rig.observer import WebSocketTestClient
from rig.virtual_pi import SimError, SimSettings, VirtualPi

from .conftest import pid_alive


async def test_state_survives_down_and_up(virtual_pi_factory) -> None:
    virtual_pi = virtual_pi_factory("persist")
    url = virtual_pi.info().url
    async with httpx.AsyncClient(base_url=url) as http:
        playlist = (await http.post("/api/playlists", json={"title": "Kept across reboots"})).json()["data"]
        await http.post("/api/player/volume", json={"volume": 23})
        morning = next(
            p for p in (await http.get("/api/playlists")).json()["data"]["playlists"] if p["title"] == "Morning Tones"
        )
        await http.post(f"/api/playlists/{morning['id']}/start", json={"track_number": 2})
        await http.post("/api/player/pause")
        before = (await http.post("/api/player/seek", json={"position_ms": 1200})).json()

    virtual_pi.down()
    virtual_pi.up()
    url = virtual_pi.info().url

    async with httpx.AsyncClient(base_url=url) as http:
        titles = [p["title"] for p in (await http.get("/api/playlists")).json()["data"]["playlists"]]
        status = (await http.get("/api/player/status")).json()["data"]
    assert "Kept across reboots" in titles
    assert titles.count("Morning Tones") == 1, "the rescan on restart must not duplicate the library"
    assert (status["volume"], status["active_playlist_id"], status["active_track_number"]) == (23, morning["id"], 2)
    assert (status["position_ms"], status["is_playing"]) == (1200, False)

    async with WebSocketTestClient(url, ContractValidator(paths.DEFAULT_CONTRACT)) as observer:
        await observer.join_room("playlists")
        snapshot = observer.get_events("state:playlists")[0]
        assert snapshot.server_seq > before["server_seq"], "server_seq must not restart from zero"
        assert any(p["id"] == playlist["id"] for p in snapshot.payload["playlists"])
        assert observer.findings() == []


def test_each_test_session_boots_a_fresh_virtual_pi(tmp_path) -> None:
    """A session never inherits an earlier run's library, and stops a virtual Pi that run left behind."""
    bench = load_bench(paths.SIM_BENCH)
    earlier = start_sim(bench, tmp_path / "virtual-pi")
    leftover_pid = earlier.virtual_pi.info().supervisor_pid  # type: ignore[union-attr]
    httpx.post(f"{earlier.url}/api/playlists", json={"title": "Left by a killed run"}).raise_for_status()
    # The earlier session never stopped its virtual Pi, as when pytest is killed.
    session = start_sim(bench, tmp_path / "virtual-pi")
    try:
        assert not pid_alive(leftover_pid)
        titles = [p["title"] for p in httpx.get(f"{session.url}/api/playlists").json()["data"]["playlists"]]
        assert "Left by a killed run" not in titles
        assert sorted(titles) == ["Chimes", "Evening Tones", "Long Tones", "Morning Tones"]
    finally:
        session.stop()


def test_firmware_that_never_gets_healthy_fails_the_boot_with_its_log(tmp_path) -> None:
    """The boot waits within its timeout, then says why, with the firmware's own last lines; nothing stays up."""
    firmware = Path(shutil.copytree(paths.FIRMWARE_DIR, tmp_path / "firmware"))
    (firmware / "musicbox" / "app.py").write_text("raise RuntimeError('firmware bug at import')\n")
    virtual_pi = VirtualPi(tmp_path / "pi", SimSettings(firmware_dir=firmware, form="local", boot_timeout_s=3.0))
    with pytest.raises(SimError) as caught:
        virtual_pi.up()
    message = str(caught.value)
    assert "the firmware was not healthy within 3s" in message
    assert "firmware bug at import" in message
    assert virtual_pi.info() is None, "a failed boot leaves nothing running"
