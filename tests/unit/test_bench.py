"""Bench files: good ones load into typed config; each mistake is one line naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig import paths
from rig.bench import BenchFileError, load_bench


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "rig.toml"
    file.write_text(text)
    return file


def test_example_sim_bench_loads() -> None:
    bench = load_bench(paths.SIM_BENCH)
    assert bench.is_sim
    assert bench.firmware.path == paths.FIRMWARE_DIR
    assert bench.firmware.contract == paths.DEFAULT_CONTRACT
    assert bench.timeouts.event_s == 3.0
    assert bench.sim.faults == ()


def test_example_pi_bench_loads() -> None:
    bench = load_bench(paths.FIXTURES / "benches" / "pi4.example.toml")
    assert bench.kind == "pi"
    assert bench.dut.url == "http://192.0.2.10:8000"
    assert bench.dut.boot_timeout_s == 90.0
    assert bench.ssh is not None
    assert (bench.ssh.user, bench.ssh.key_file) == ("musicbox", None)


def test_minimal_bench_gets_defaults(tmp_path: Path) -> None:
    bench = load_bench(write(tmp_path, '[bench]\nname = "b"\nkind = "sim"\n'))
    assert bench.name == "b"
    assert bench.sim.position_interval_ms == 500
    assert bench.dut.boot_timeout_s == 20.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[bench]\nname = "b"\nkind = "sim"\n[dut\n', "invalid TOML: "),
        ('[bench]\nname = "b"\nkind = "robot"\n', "[bench] kind: expected one of sim, pi, got 'robot'"),
        ('[bench]\nkind = "sim"\n', "[bench] name: required key is missing"),
        ('[dut]\nurl = "http://x"\n', "[bench]: missing section"),
        ('[bench]\nname = "b"\nkind = "sim"\n[dutt]\n', "[dutt]: unknown section"),
        ('[bench]\nname = "b"\nkind = "sim"\n[timeouts]\nevent_s = "fast"\n', "[timeouts] event_s: expected a number"),
        ('[bench]\nname = "b"\nkind = "sim"\n[timeouts]\nevnt_s = 2\n', "[timeouts] evnt_s: unknown key"),
        ('[bench]\nname = "b"\nkind = "sim"\n[sim]\nfaults = "duplicate_events"\n', "[sim] faults: expected a list"),
        ('[bench]\nname = "b"\nkind = "pi"\n', '[dut] url: required for kind = "pi"'),
        ('[bench]\nname = "b"\nkind = "pi"\n[dut]\nurl = "pi.local:8000"\n', "[dut] url: expected an http://"),
        (
            '[bench]\nname = "b"\nkind = "sim"\n[firmware]\npath = "nowhere"\n',
            "[firmware] path: 'nowhere' does not exist",
        ),
        (
            '[bench]\nname = "b"\nkind = "sim"\n[dut]\nboot_timeout_s = true\n',
            "[dut] boot_timeout_s: expected a number",
        ),
        ('[bench]\nname = "b"\nkind = "sim"\n[ssh]\nhost = "pi.local"\n', "[ssh] known_hosts: required key is missing"),
        (
            '[bench]\nname = "b"\nkind = "sim"\n[ssh]\nhost = "pi.local"\nknown_hosts = "kh"\npassword_env = "x y"\n',
            "[ssh] password_env: expected an environment variable NAME",
        ),
        (
            '[bench]\nname = "b"\nkind = "sim"\n[ssh]\nhost = "pi.local"\nknown_hosts = "kh"\nkey_file = "nokey"\n',
            "[ssh] key_file: 'nokey' does not exist",
        ),
        (
            '[bench]\nname = "b"\nkind = "sim"\n[ssh]\nhost = "pi.local"\nknown_hosts = "no/such/dir/kh"\n',
            "[ssh] known_hosts: folder",
        ),
        ('[bench]\nname = "b"\nkind = "sim"\n[ssh]\nhost = "pi.local"\nknown_hosts = "kh"\nport = 0\n', "[ssh] port"),
    ],
)
def test_bad_bench_files_get_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    file = write(tmp_path, text)
    with pytest.raises(BenchFileError) as caught:
        load_bench(file)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(file))
    assert expected in message


def test_ssh_section_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "id_ed25519").write_text("key")
    bench = load_bench(
        write(
            tmp_path,
            '[bench]\nname = "b"\nkind = "sim"\n[ssh]\nhost = "pi.local"\nknown_hosts = "known_hosts"\n'
            'key_file = "id_ed25519"\nuser = "musicbox"\npassword_env = "RIG_FIRST_BOOT_PASSWORD"\n',
        )
    )
    assert bench.ssh is not None
    assert (bench.ssh.host, bench.ssh.port, bench.ssh.user) == ("pi.local", 22, "musicbox")
    assert bench.ssh.known_hosts == tmp_path / "known_hosts"
    assert bench.ssh.key_file == tmp_path / "id_ed25519"
    assert bench.ssh.password_env == "RIG_FIRST_BOOT_PASSWORD"


def test_missing_bench_file(tmp_path: Path) -> None:
    with pytest.raises(BenchFileError, match="bench file not found"):
        load_bench(tmp_path / "absent.toml")


def test_toml_error_names_the_line(tmp_path: Path) -> None:
    file = write(tmp_path, '[bench]\nname = "b"\nkind = sim\n')
    with pytest.raises(BenchFileError, match=r"line 3"):
        load_bench(file)


PI = '[bench]\nname = "b"\nkind = "pi"\n[dut]\nurl = "http://192.0.2.10:8000"\n'


def test_gpio_wiring_loads(tmp_path: Path) -> None:
    bench = load_bench(
        write(
            tmp_path,
            PI + '[gpio]\nbackend = "local"\n[gpio.lines.next]\ndut_pin = 16\nhost_pin = 17\nactive_high = true\n'
            "[gpio.lines.a]\ndut_pin = 7\nhost_pin = 5\n[gpio.lines.b]\ndut_pin = 24\nhost_pin = 6\n"
            '[gpio.encoders]\nvolume = ["a", "b"]\n',
        )
    )
    assert bench.gpio.backend == "local"
    assert bench.gpio.wiring.line("next").host_pin == 17
    assert bench.gpio.wiring.line("next").active_high is True
    assert bench.gpio.wiring.encoders == {"volume": ("a", "b")}
    assert bench.gpio.loopback is None


def test_gpio_loopback_jumper_names_an_out_and_an_in_line(tmp_path: Path) -> None:
    bench = load_bench(
        write(
            tmp_path,
            PI + '[gpio]\nbackend = "local"\nloopback = ["jo", "ji"]\n[gpio.lines.jo]\ndut_pin = 5\nhost_pin = 5\n'
            '[gpio.lines.ji]\ndut_pin = 6\nhost_pin = 6\ndirection = "in"\n',
        )
    )
    assert bench.gpio.loopback == ("jo", "ji")
    assert load_bench(paths.SIM_BENCH).gpio.wiring.line("next").dut_pin == 16, "a sim bench gets the music box wiring"


@pytest.mark.parametrize(
    ("gpio", "expected"),
    [
        ('backend = "pigpio"\n', '[gpio] pigpio_host: required for backend = "pigpio"'),
        ('backend = "local"\n[gpio.lines.next]\ndut_pin = 16\n', "[gpio.lines.next] host_pin: required for backend"),
        (
            '[gpio.lines.next]\ndut_pin = 16\nactive_high = "yes"\n',
            "[gpio.lines.next] active_high: expected true or false",
        ),
        ("[gpio.lines.next]\ndut_pin = 99\n", "[gpio.lines.next] dut_pin: expected an integer from 0 to 53"),
        ('[gpio.lines.next]\ndut_pin = 16\n[gpio.encoders]\nvolume = ["next", "nope"]\n', "[gpio.encoders] volume:"),
        ("lines = 3\n", "[gpio] lines: expected a table, got 3"),
        ('loopback = ["next", "nope"]\n', '[gpio] loopback: expected ["out line", "in line"]'),
        ('loopback = ["next"]\n', '[gpio] loopback: expected ["out line", "in line"]'),
    ],
)
def test_gpio_mistakes_are_one_line(tmp_path: Path, gpio: str, expected: str) -> None:
    with pytest.raises(BenchFileError) as caught:
        load_bench(write(tmp_path, PI + "[gpio]\n" + gpio))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_nfc_serial_and_power_sections_load(tmp_path: Path) -> None:
    bench = load_bench(
        write(
            tmp_path,
            PI + '[gpio]\nbackend = "local"\n'
            '[nfc]\nbackend = "actuator"\nservo_pin = 12\nrest_angle = -10\n'
            "[nfc.mounts.red]\nsolenoid_pin = 5\n[nfc.mounts.blue]\nangle = 45\n"
            '[serial]\nport = "/dev/ttyUSB0"\nbaudrate = 921600\n'
            '[power]\nbackend = "relay"\nrelay_pin = 17\nactive_high = false\noff_s = 3\n'
            '[audio]\nbackend = "device"\noutput = "USB Audio"\ninput = "USB Audio"\nsample_rate = 44100\n',
        )
    )
    assert (bench.audio.backend, bench.audio.output, bench.audio.sample_rate) == ("device", "USB Audio", 44100)
    assert bench.nfc.backend == "actuator"
    assert bench.nfc.mounts["red"].solenoid_pin == 5
    assert bench.nfc.mounts["blue"].angle == 45
    assert bench.nfc.tags == paths.TAGS
    assert (bench.serial.port, bench.serial.baudrate) == ("/dev/ttyUSB0", 921600)
    assert (bench.power.backend, bench.power.relay_pin, bench.power.active_high) == ("relay", 17, False)
    sim = load_bench(paths.SIM_BENCH)
    assert (sim.nfc.backend, sim.power.backend, sim.audio.backend) == ("sim", "sim", "sim"), (
        "a virtual Pi brings its own"
    )


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        ('[nfc]\nbackend = "usb"\n', "[nfc] backend: expected one of sim, card, actuator, none"),
        ('[nfc]\nbackend = "sim"\n', '[nfc] backend: "sim" needs kind = "sim"'),
        ('[nfc]\nbackend = "actuator"\n', '[nfc.mounts]: backend = "actuator" needs at least one mounted tag'),
        ("[nfc.mounts.red]\nangle = 30\n", "[nfc.mounts.red] angle: needs [nfc] servo_pin"),
        ("[nfc.mounts.red]\nsolenoid_pin = 5\nangle = 30\n", "give exactly one of solenoid_pin or angle"),
        ("[nfc.mounts.purple]\nsolenoid_pin = 5\n", "[nfc.mounts.purple]: no tag file"),
        ('[power]\nbackend = "relay"\n', '[power] relay_pin: required for backend = "relay"'),
        ("[serial]\nbaudrate = 7\n", "[serial] baudrate: expected an integer from 300 to 4000000"),
        ('[audio]\nbackend = "device"\noutput = "USB"\n', '[audio] backend = "device" needs output and input'),
        ('[audio]\nbackend = "sim"\n', '[audio] backend: "sim" needs kind = "sim"'),
        ('[audio]\nbackend = "alsa"\n', "[audio] backend: expected one of sim, device, none"),
        ("[audio]\nsample_rate = 100\n", "[audio] sample_rate: expected an integer from 8000 to 192000"),
        ('[audio]\nspeaker = "x"\n', "speaker"),
    ],
)
def test_nfc_serial_and_power_mistakes_are_one_line(tmp_path: Path, sections: str, expected: str) -> None:
    with pytest.raises(BenchFileError) as caught:
        load_bench(write(tmp_path, PI + sections))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
