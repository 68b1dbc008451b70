"""The NFC driver off the DUT: named tags, the sim field answering a real nfcpy reader, card
emulation (nfcpy's listen side, here on its udp transport) and the actuator on gpiozero's mock pins."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import nfc
import nfc.clf
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device_drivers.nfc import Nfc, TagError, TagShelf
from device_drivers.nfc.actuator import Actuator, ActuatorError, TagMount
from device_drivers.nfc.card import CardEmulator
from device_drivers.nfc.field import FieldError, UdpField
from device_drivers.nfc.field_service import FieldServiceError, RemoteField, serve
from device_drivers.nfc.tags import load_tag
from device_drivers.nfc.type3 import attribute_block
from device_drivers.power import Power, RelaySwitch
from rig import paths
from rig.net import free_port

SHELF = TagShelf(paths.TAGS)
TARGETS = ("106A", "212F")


def sense(reader: nfc.ContactlessFrontend) -> nfc.clf.RemoteTarget | None:
    return reader.sense(*(nfc.clf.RemoteTarget(t) for t in TARGETS), iterations=1)


@pytest.fixture
def field() -> Iterator[UdpField]:
    opened = UdpField("127.0.0.1", free_port())
    yield opened
    opened.close()


@pytest.fixture
def reader(field: UdpField) -> Iterator[nfc.ContactlessFrontend]:
    clf = nfc.ContactlessFrontend(f"udp:{field.address[0]}:{field.address[1]}")
    yield clf
    clf.close()


def test_every_fixture_tag_loads_with_its_identifier_and_records() -> None:
    names = SHELF.names()
    assert {"red", "blue", "green", "stranger"} <= set(names)
    tags = [SHELF.get(name) for name in names]
    assert len({t.tag_id for t in tags}) == len(tags), "two tag files share an identifier"
    red = SHELF.get("red")
    assert red.tag_id == "02fe00000000a001"
    assert [r.type for r in red.records] == ["urn:nfc:wkt:U", "urn:nfc:wkt:T"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            'type = "type3"\nidm = "02fe"\npmm = "ffffffffffffffff"\nsystem_code = "12fc"',
            "idm: expected 8 bytes, got 2",
        ),
        ('type = "type3"\nidm = "zz"', "idm: 'zz' is not hex"),
        ('type = "type5"', "type: expected one of type3, type2, got 'type5'"),
        ('type = "type2"\nuid = "04a2"\ncolour = "red"', "unknown key 'colour'"),
        ('type = "type2"\nuid = "04a2243a5c6b80"\n[[ndef]]\ntype = "mime"', "ndef[0]: expected type = "),
        ("type = ", "invalid TOML"),
    ],
)
def test_a_bad_tag_file_is_one_line_naming_the_file(tmp_path: Path, body: str, error: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(body)
    with pytest.raises(TagError) as caught:
        load_tag(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: ")
    assert error in message
    assert "\n" not in message


def test_a_bad_tag_name_lists_the_known_ones() -> None:
    with pytest.raises(TagError, match=r"no tag named 'purple' in .* \(known: blue, green, red, sticker, stranger\)"):
        SHELF.get("purple")
    with pytest.raises(TagError, match="no tag named"):
        SHELF.get("../red")


def test_attribute_block_checksum_and_length() -> None:
    block = attribute_block(b"x" * 40)
    assert len(block) == 16
    assert block[0] == 0x10, "NFC Forum Type 3 version 1.0"
    assert int.from_bytes(block[3:5], "big") == 3, "40 bytes take three 16-byte blocks"
    assert int.from_bytes(block[11:14], "big") == 40
    assert int.from_bytes(block[14:16], "big") == sum(block[:14])


def test_the_field_answers_a_real_nfcpy_reader(field: UdpField, reader: nfc.ContactlessFrontend) -> None:
    assert sense(reader) is None, "an empty field: no target"
    assert field.polls >= 2, "both technologies were polled and answered"
    field.place(SHELF.get("red"))
    tag = nfc.tag.activate(reader, sense(reader))
    assert tag.identifier.hex() == "02fe00000000a001"
    assert [r.uri for r in tag.ndef.records[:1]] == ["https://musicbox.example/figure/red"]
    assert tag.is_present
    field.remove()
    assert not tag.is_present, "a removed tag stops answering its reader"
    assert sense(reader) is None


def test_a_tag_laid_back_before_the_next_presence_check_is_a_new_tap(
    field: UdpField, reader: nfc.ContactlessFrontend
) -> None:
    """Two taps of one tag, the second before the reader checked on the first: the first
    activation must not carry on into the second tap, or the reader sees one long stay and the
    firmware acts once (the suite's consecutive red taps, one test after the other)."""
    field.place(SHELF.get("red"))
    tag = nfc.tag.activate(reader, sense(reader))
    assert tag.is_present
    field.remove()
    field.place(SHELF.get("red"))
    assert not tag.is_present, "the first tap's activation ended with its removal"
    again = nfc.tag.activate(reader, sense(reader))
    assert again.identifier.hex() == "02fe00000000a001", "the second tap is found as a new arrival"
    assert again.is_present


def test_a_new_socket_on_the_cut_activations_port_is_answered(field: UdpField) -> None:
    """The removed tag's activation stays silent only until the reader closes its socket (RFOFF):
    the kernel may give the port to the reader's next socket, and its discovery poll must then
    find the tag, not wait out nfcpy's one-second discovery timeout."""
    polling = b"212F 0600ffff0100"  # SENSF_REQ, any system code: nfcpy's type F discovery
    field.place(SHELF.get("red"))
    first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first.settimeout(0.3)
    first.sendto(polling, field.address)
    assert first.recv(1024).startswith(b"212F "), "the tag answers its first activation"
    port = first.getsockname()[1]
    field.remove()
    field.place(SHELF.get("red"))
    first.sendto(polling, field.address)
    with pytest.raises(TimeoutError):
        first.recv(1024)  # the cut activation: a removed tag is silent
    first.sendto(b"RFOFF", field.address)
    first.close()
    second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    second.bind(("127.0.0.1", port))
    second.settimeout(1.0)
    second.sendto(polling, field.address)
    assert second.recv(1024).startswith(b"212F "), "a new socket on the same port is a new reader"
    second.close()


def test_the_field_refuses_a_tag_it_cannot_emulate(field: UdpField) -> None:
    with pytest.raises(TagError, match="'sticker' is a type2 tag; only type3 tags can be emulated"):
        field.place(SHELF.get("sticker"))


def test_a_second_field_on_the_same_port_is_one_clear_error(field: UdpField) -> None:
    with pytest.raises(FieldError, match="is held by another process"):
        UdpField(*field.address)


def test_the_field_service_takes_tags_over_its_control_socket(field: UdpField, tmp_path: Path) -> None:
    server = serve(field, tmp_path / "nfc.sock")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = RemoteField(tmp_path / "nfc.sock", timeout=2)
    try:
        assert remote.status()["tag"] is None
        remote.place(SHELF.get("green"))
        assert remote.status()["tag"] == "green"
        assert field.tag is not None
        assert field.tag.tag_id == "02fe00000000a003"
        with pytest.raises(FieldServiceError, match=r"the NFC field refused place: .*only type3 tags can be emulated"):
            remote.place(SHELF.get("sticker"))
        with pytest.raises(FieldServiceError, match=r"did not poll the NFC field within 0.2 s \(last poll: never\)"):
            remote.wait_for_poll(0.2)
        remote.close()
        assert field.tag is None, "closing the rig's side lifts the tag"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(FieldServiceError, match="does not answer"):
        RemoteField(tmp_path / "nfc.sock", timeout=1).status()


def test_card_emulation_is_read_by_a_reader() -> None:
    """The card backend on nfcpy's udp transport: the same listen-side code a USB reader runs."""
    port = free_port()
    emulator = CardEmulator(f"udp:127.0.0.1:{port}")
    clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{port}")
    try:
        emulator.place(SHELF.get("blue"))
        # Type 3 commands have millisecond timeouts; on a loaded machine the emulating thread can
        # miss one, so the reader tries again, as a real reader polling a tag does.
        records = None
        for _ in range(5):
            target = clf.sense(nfc.clf.RemoteTarget("212F"), iterations=10, interval=0.1)
            assert target is not None, "the reader never saw the emulated tag"
            tag = nfc.tag.activate(clf, target)
            assert tag.identifier.hex() == "02fe00000000a002"
            if tag.ndef is not None:
                records = tag.ndef.records
                break
        assert records is not None, "the reader never read the emulated tag's NDEF"
        assert records[0].uri == "https://musicbox.example/figure/blue"
    finally:
        clf.close()
        emulator.close()
    assert emulator.activations >= 1


def test_actuator_moves_the_tags_solenoid_and_servo() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    actuator = Actuator(
        {"red": TagMount(solenoid_pin=5), "blue": TagMount(angle=45.0)},
        servo_pin=12,
        settle_s=0,
        pin_factory=factory,
    )
    driver = Nfc(actuator, SHELF)
    try:
        driver.place("red")
        assert factory.pin(5).state == 1, "the red tag's solenoid pushes it onto the antenna"
        driver.place("blue")
        assert factory.pin(5).state == 0, "placing another tag lifts the first"
        assert actuator._servo is not None
        assert actuator._servo.angle == pytest.approx(45.0, abs=1)
        driver.remove()
        assert actuator._servo.angle == pytest.approx(0.0, abs=1), "the arm parks at rest"
        with pytest.raises(ActuatorError, match="'green' is not mounted on this bench's actuator"):
            driver.place("green")
    finally:
        actuator.close()


def test_power_relay_starts_closed_and_cycles() -> None:
    factory = MockFactory()
    relay = RelaySwitch(17, active_high=False, pin_factory=factory)
    stamps: list[str] = []
    power = Power(relay, stamp=lambda name, detail: stamps.append(name))
    try:
        assert relay.is_on
        assert factory.pin(17).state == 0, "an active-low relay is closed by a low line"
        power.off()
        assert factory.pin(17).state == 1
        power.cycle(0)
        assert relay.is_on
        assert stamps == ["power off", "power off", "power on"]
    finally:
        relay.close()
