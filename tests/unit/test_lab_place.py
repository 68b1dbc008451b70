"""A labgrid place's resources as bench tables (the coordinator flow itself: tests/integration/test_lab_place.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rig.bench import BenchFileError
from rig.lab_place import PlaceError, bench_for_place, holder_in, tables_from_resources

SERVICE = {("NetworkService", "NetworkService"): {"address": "10.0.0.7", "username": "musicbox", "port": 2222}}


def test_the_network_service_is_the_pis_ssh_and_firmware_address() -> None:
    tables = tables_from_resources("p", SERVICE)
    assert tables["ssh"] == {"host": "10.0.0.7", "port": 2222, "user": "musicbox"}
    assert tables["dut"] == {"url": "http://10.0.0.7:8000"}


def test_rig_resources_are_bench_tables() -> None:
    resources = {
        **SERVICE,
        ("firmware", "RigDut"): {"port": 8080, "boot_timeout_s": 60},
        ("gpio", "RigGpio"): {"backend": "local", "loopback": "jumper-out, jumper-in"},
        ("jumper-out", "RigGpioLine"): {"dut_pin": 5, "host_pin": 6},
        ("jumper-in", "RigGpioLine"): {"dut_pin": 7, "host_pin": 8, "direction": "in"},
        ("reader", "RigNfc"): {"backend": "card", "device": "usb:054c:06c1"},
        ("power", "SiSPMPowerPort"): {"host": "x", "index": 1},  # labgrid's own business
    }
    tables = tables_from_resources("p", resources)
    assert tables["dut"] == {"url": "http://10.0.0.7:8080", "boot_timeout_s": 60}
    assert tables["gpio"]["loopback"] == ["jumper-out", "jumper-in"]
    assert tables["gpio"]["lines"]["jumper-in"] == {"dut_pin": 7, "host_pin": 8, "direction": "in"}
    assert tables["nfc"] == {"backend": "card", "device": "usb:054c:06c1"}
    assert "power" not in tables


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({}, "expected one NetworkService resource (the Pi's SSH address), found 0"),
        ({**SERVICE, ("a", "RigNfc"): {}, ("b", "RigNfc"): {}}, "two resources of class RigNfc"),
    ],
)
def test_a_place_that_is_not_a_bench_is_one_line(resources: dict, message: str) -> None:
    with pytest.raises(PlaceError, match=re.escape(message)):
        tables_from_resources("p", resources)


def test_the_place_lies_over_the_base_bench_file(tmp_path: Path) -> None:
    base = tmp_path / "lab.toml"
    base.write_text('[bench]\nname = "ignored"\n[ssh]\nknown_hosts = "known_hosts"\nport = 22\n')
    base.write_text(base.read_text() + "[timeouts]\nevent_s = 9\n")
    bench = bench_for_place("shelf-3", tables_from_resources("shelf-3", SERVICE), base)
    assert (bench.name, bench.kind) == ("shelf-3", "pi")
    assert bench.ssh is not None
    assert (bench.ssh.host, bench.ssh.port, bench.ssh.known_hosts) == ("10.0.0.7", 2222, tmp_path / "known_hosts")
    assert bench.timeouts.event_s == 9


def test_a_bad_resource_value_names_the_place_and_the_table(tmp_path: Path) -> None:
    base = tmp_path / "lab.toml"
    base.write_text('[ssh]\nknown_hosts = "known_hosts"\n')
    tables = tables_from_resources("shelf-3", {**SERVICE, ("next", "RigGpioLine"): {"dut_pin": 99}})
    with pytest.raises(BenchFileError) as error:
        bench_for_place("shelf-3", tables, base)
    assert str(error.value).startswith(f"labgrid place 'shelf-3' over {base}: [gpio.lines.next] dut_pin: expected")


def test_the_holder_is_read_from_labgrids_refusal_even_with_a_dotted_host() -> None:
    why = "Place shelf-3 is already acquired by ci-2.lab.example/runner. To work simultaneously, runner can execute"
    assert holder_in(why) == "ci-2.lab.example/runner"
