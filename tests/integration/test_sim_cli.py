"""`rig sim up --json`, `rig sim status`, `rig events` and `rig sim down`, as a technician runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rig.virtual_pi import VirtualPi

from .conftest import RIG, LineReader, pid_alive, run_rig


def firmware_pid(state_dir: Path) -> int:
    result = subprocess.run(
        [str(RIG.parent / "python"), "-m", "supervisor.supervisorctl", "-c", str(state_dir / "supervisord.conf"),
         "pid", "firmware"],
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return int(result.stdout.strip())


@pytest.fixture
def cli_sim(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A local-form virtual Pi started with `rig sim up --json`: (its state folder, what up printed);
    `rig sim down` after the test."""
    state = str(tmp_path / "sim")
    up = run_rig("sim", "up", "--json", "--local", "--state-dir", state)
    assert up.returncode == 0, up.stderr
    try:
        yield state, json.loads(up.stdout)
    finally:
        run_rig("sim", "down", "--state-dir", state)


def test_sim_lifecycle_and_events(tmp_path: Path) -> None:
    state = str(tmp_path / "sim")
    up = run_rig("sim", "up", "--json", "--local", "--state-dir", state)
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    assert info["url"].startswith("http://127.0.0.1:")
    try:
        assert httpx.get(f"{info['url']}/api/health").json()["data"]["status"] == "healthy"
        firmware = firmware_pid(Path(state))
        assert pid_alive(firmware)

        again = run_rig("sim", "up", "--state-dir", state)
        assert again.returncode == 1
        assert f"a virtual Pi already runs at {info['url']}" in again.stderr
        assert again.stderr.strip().count("\n") <= 1

        status = run_rig("sim", "status", "--json", "--state-dir", state)
        assert status.returncode == 0
        parsed = json.loads(status.stdout)
        assert (parsed["running"], parsed["firmware"], parsed["health"]) == (True, "RUNNING", "healthy")

        watcher = subprocess.Popen(
            [str(RIG), "events", "--url", info["url"], "--room", "playlists"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines = LineReader(watcher)
        try:
            lines.until('"ack:join"', timeout=10)
            httpx.post(f"{info['url']}/api/player/volume", json={"volume": 33}).raise_for_status()
            event = json.loads(lines.until('"state:volume_changed"', timeout=10)[-1])
            assert event["data"]["data"] == {"volume": 33}
            assert "contract_violations" not in event
        finally:
            watcher.send_signal(signal.SIGINT)
            assert watcher.wait(timeout=10) == 0, watcher.stderr.read() if watcher.stderr else ""
    finally:
        down = run_rig("sim", "down", "--state-dir", state)
    assert down.returncode == 0
    assert f"stopped virtual Pi at {info['url']}" in down.stdout
    assert not pid_alive(info["supervisor_pid"])
    assert not pid_alive(firmware)
    after = run_rig("sim", "status", "--state-dir", state)
    assert after.returncode == 1
    assert "no virtual Pi runs" in after.stdout


def test_events_without_a_running_sim_is_one_clear_line(tmp_path: Path) -> None:
    result = run_rig("events", "--state-dir", str(tmp_path / "none"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "rig: no --url given and no virtual Pi runs; start one with 'rig sim up'"
    )


def test_events_against_an_unreachable_url(tmp_path: Path) -> None:
    result = run_rig("events", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("rig: events: cannot connect Socket.IO to http://127.0.0.1:9")


def test_sim_up_with_a_bad_bench_file(tmp_path: Path) -> None:
    bench = tmp_path / "rig.toml"
    bench.write_text('[bench]\nname = "b"\nkind = "sim"\n[timeouts]\nevent_s = "soon"\n')
    result = run_rig("sim", "up", "--bench", str(bench), "--state-dir", str(tmp_path / "sim"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"rig: {bench}: [timeouts] event_s: expected a number from 0.1 to 600, got 'soon'"
    assert not (tmp_path / "sim").exists(), "a bad bench file must not leave anything behind"


def test_press_and_turn_by_hand(cli_sim: tuple[str, dict[str, Any]]) -> None:
    """`rig press` and `rig turn` against `rig sim up`: each prints what the firmware broadcast in reply."""
    state, url = cli_sim[0], cli_sim[1]["url"]
    playlists = httpx.get(f"{url}/api/playlists").json()["data"]["playlists"]
    playlist = next(p for p in playlists if p["track_count"] >= 3)
    httpx.post(f"{url}/api/playlists/{playlist['id']}/start", json={"track_number": 1}).raise_for_status()

    pressed = run_rig("press", "next", "--wait", "0.5", "--state-dir", state)
    assert pressed.returncode == 0, pressed.stderr
    first = json.loads(pressed.stdout.splitlines()[0])
    assert first["event"] == "state:player"
    second = httpx.get(f"{url}/api/playlists/{playlist['id']}").json()["data"]["tracks"][1]["id"]
    assert first["data"]["data"]["active_track_id"] == second, "next went to the second track"
    assert first["after_ms"] < 1000

    turned = run_rig("turn", "volume", "-2", "--wait", "0.5", "--state-dir", state)
    assert turned.returncode == 0, turned.stderr
    volumes = [json.loads(line) for line in turned.stdout.splitlines()]
    changes = [e["data"]["data"]["volume"] for e in volumes if e["event"] == "state:volume_changed"]
    assert len(changes) == 2, turned.stdout
    assert changes[0] - changes[1] == 5, "one volume step per detent"

    unknown = run_rig("press", "nope", "--state-dir", state)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "rig: no line 'nope' in the wiring map; it has: next, play_pause, previous, volume_clk, volume_dt"
    )


def test_tap_and_console_by_hand(cli_sim: tuple[str, dict[str, Any]]) -> None:
    """`rig tap` lays a named tag on the virtual Pi's reader and prints the broadcasts; `rig console`
    follows the serial console, where the firmware writes each tag and button."""
    state, info = cli_sim
    url = info["url"]
    assert info["console"], "socat is part of the bootstrap: the virtual Pi must have a console"
    console = subprocess.Popen(
        [str(RIG), "console", "--for", "30", "--state-dir", state],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Like a UART, the console loses what is sent before anyone listens: wait until it does.
        assert console.stderr is not None
        assert console.stderr.readline().startswith("following the console on "), "rig console did not start"
        playlist = next(p for p in httpx.get(f"{url}/api/playlists").json()["data"]["playlists"] if p["track_count"])
        red = "02fe00000000a001"
        httpx.post(f"{url}/api/nfc/associate", json={"playlist_id": playlist["id"], "tag_id": red}).raise_for_status()

        tapped = run_rig("tap", "red", "--dwell", "0.3", "--wait", "0.5", "--state-dir", state)
        assert tapped.returncode == 0, tapped.stderr
        events = [json.loads(line) for line in tapped.stdout.splitlines()]
        players = [e for e in events if e["event"] == "state:player"]
        assert players, tapped.stdout
        assert players[0]["data"]["data"]["active_playlist_id"] == playlist["id"], "the tap played the tag's playlist"
        assert any(e["event"] == "nfc_association_state" and e["data"]["state"] == "activated" for e in events)
        LineReader(console).until(f"nfc: tag {red} arrived", timeout=10)

        unknown = run_rig("tap", "nope", "--state-dir", state)
        assert unknown.returncode == 2
        assert unknown.stderr.startswith("rig: no tag named 'nope' in "), unknown.stderr
        assert "(known: blue, green, red, sticker, stranger)" in unknown.stderr
    finally:
        console.terminate()
        console.wait(timeout=10)


def test_say_and_listen_by_hand(cli_sim: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    """`rig say` speaks a clip into the virtual Pi's microphone and prints what followed;
    `rig listen` records its speaker and names the frequency."""
    state, info = cli_sim
    url = info["url"]
    assert info["pulse_server"], "PulseAudio is part of the bootstrap: the virtual Pi must have audio"
    long_tones = next(p for p in httpx.get(f"{url}/api/playlists").json()["data"]["playlists"]
                      if p["title"] == "Long Tones")  # fmt: skip
    httpx.post(f"{url}/api/playlists/{long_tones['id']}/start", json={}).raise_for_status()
    httpx.post(f"{url}/api/player/volume", json={"volume": 50}).raise_for_status()

    out = tmp_path / "speaker.wav"
    heard = run_rig("listen", "1", "--out", str(out), "--state-dir", state)
    assert heard.returncode == 0, heard.stderr
    report = json.loads(heard.stdout)
    assert abs(report["frequency_hz"] - 440.0) < 3, report
    assert -30 < report["level_dbfs"] < -10, report
    assert out.stat().st_size > 40_000

    said = run_rig("say", "command-next-track", "--wait", "3", "--state-dir", state)
    assert said.returncode == 0, said.stderr
    events = [json.loads(line) for line in said.stdout.splitlines()]
    players = [e["data"]["data"] for e in events if e["event"] == "state:player"]
    assert any(p["active_track_number"] == 2 for p in players), said.stdout

    unknown = run_rig("say", "command-dance", "--state-dir", state)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("rig: no clip or WAV file 'command-dance'; known clips: "), unknown.stderr


def wait_for_services(url: str, names: tuple[str, ...], timeout: float, *, up: bool = True) -> None:
    """Until the firmware's health says every one of ``names`` is up (or, ``up=False``, down);
    the error shows what it said last."""
    deadline = time.monotonic() + timeout
    services: dict[str, Any] = {}
    while time.monotonic() < deadline:
        services = httpx.get(f"{url}/api/health", timeout=5).json()["data"]["services"]
        if all(services.get(name) is up for name in names):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"{', '.join(names)} not all {'up' if up else 'down'} within {timeout:g} s; last health: {services}"
    )


def running_pi(state: str) -> VirtualPi:
    running = VirtualPi.running(Path(state))
    assert running is not None, f"no virtual Pi runs in {state}"
    return running[0]


def stop_audio_server(pi: VirtualPi) -> None:
    """Stop the virtual Pi's PulseAudio server, as pulling the USB audio interface would."""
    pid = json.loads((pi.state_dir / "pulseaudio.pid").read_text())["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "PulseAudio did not stop"


def test_the_firmware_hears_and_plays_again_after_its_audio_server_restarts(
    cli_sim: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """A replugged USB audio interface, as the virtual Pi has it: its PulseAudio server stops and
    starts again mid-track. The firmware reopens its speaker and microphone by itself: the track
    is heard going on, and a spoken command acts."""
    state, info = cli_sim
    url = info["url"]
    long_tones = next(p for p in httpx.get(f"{url}/api/playlists").json()["data"]["playlists"]
                      if p["title"] == "Long Tones")  # fmt: skip
    httpx.post(f"{url}/api/playlists/{long_tones['id']}/start", json={}).raise_for_status()
    pi = running_pi(state)
    stop_audio_server(pi)
    wait_for_services(url, ("audio", "audio_in"), timeout=5, up=False)  # a device silent for 1 s is gone

    pi._start_audio()
    wait_for_services(url, ("audio", "audio_in"), timeout=10)
    heard = run_rig("listen", "1", "--out", str(tmp_path / "after.wav"), "--state-dir", state)
    assert heard.returncode == 0, heard.stderr
    report = json.loads(heard.stdout)
    assert abs(report["frequency_hz"] - 440.0) < 3, f"the track did not go on: {report}"
    said = run_rig("say", "command-next-track", "--wait", "3", "--state-dir", state)
    assert said.returncode == 0, said.stderr
    players = [json.loads(line)["data"]["data"] for line in said.stdout.splitlines()
               if json.loads(line)["event"] == "state:player"]  # fmt: skip
    assert any(p["active_track_number"] == 2 for p in players), said.stdout


def test_a_track_started_without_a_speaker_plays_on_the_clock(
    cli_sim: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """With no output device to pace it, the player's clock does, so the position goes on. Once
    the device is back, the next track is heard."""
    state, info = cli_sim
    url = info["url"]
    pi = running_pi(state)
    stop_audio_server(pi)
    long_tones = next(p for p in httpx.get(f"{url}/api/playlists").json()["data"]["playlists"]
                      if p["title"] == "Long Tones")  # fmt: skip
    httpx.post(f"{url}/api/playlists/{long_tones['id']}/start", json={}).raise_for_status()
    first = httpx.get(f"{url}/api/player/status").json()["data"]["position_ms"]
    time.sleep(1.0)
    status = httpx.get(f"{url}/api/player/status").json()["data"]
    assert status["is_playing"], status
    assert status["position_ms"] - first >= 500, f"the clock did not run: {first} ms, then {status}"
    assert httpx.get(f"{url}/api/health").json()["data"]["services"]["audio"] is False

    pi._start_audio()
    httpx.post(f"{url}/api/player/next").raise_for_status()
    wait_for_services(url, ("audio",), timeout=10)
    heard = run_rig("listen", "1", "--out", str(tmp_path / "next.wav"), "--state-dir", state)
    assert heard.returncode == 0, heard.stderr
    report = json.loads(heard.stdout)
    assert abs(report["frequency_hz"] - 660.0) < 3, f"the next track is not heard: {report}"


def test_down_stops_a_supervisor_whose_state_file_is_gone(virtual_pi_factory) -> None:
    """``down`` stops everything ``up`` started, even when the state file that records it is lost."""
    virtual_pi = virtual_pi_factory()
    info = virtual_pi.info()
    assert info is not None
    virtual_pi.state_file.unlink()
    assert virtual_pi.down() is None
    assert not pid_alive(info.supervisor_pid), "the supervisord found by its pidfile must be stopped"
    sockets = (virtual_pi.gpio_socket, virtual_pi.nfc_control, *virtual_pi.console_links)
    assert [str(path) for path in sockets if path.exists()] == [], "down leaves no socket of the Pi's in the temp dir"
