"""The serial console reader on a real pty: lines in order, expect after a mark, and a timeout
that shows what arrived instead."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_drivers.serial import ConsoleError, ConsoleTimeout, SerialConsole


@pytest.fixture
def pty_console(tmp_path: Path) -> Iterator[tuple[int, SerialConsole, list[str]]]:
    master, slave = os.openpty()
    seen: list[str] = []
    log_path = tmp_path / "console.log"
    console = SerialConsole(os.ttyname(slave), log_path=log_path, on_line=lambda line: seen.append(line.text))
    yield master, console, seen
    console.close()
    os.close(master)
    os.close(slave)


def test_lines_are_kept_logged_and_expected_after_a_mark(
    pty_console: tuple[int, SerialConsole, list[str]], tmp_path: Path
) -> None:
    master, console, seen = pty_console
    os.write(master, b"[    0.1] musicbox: starting\r\n[    0.2] musicbox: ready on port 8080\r\n")
    assert console.expect(r"ready on port \d+", 5).text.endswith("ready on port 8080")
    mark = console.mark()
    os.write(master, b"button next\r\npartial")
    assert console.expect("button next", 5, since=mark).text == "button next"
    with pytest.raises(ConsoleTimeout) as caught:
        console.expect("starting", 0.3, since=mark)
    message = str(caught.value)
    assert "no console line matched 'starting' within 0.3 s; last lines:" in message
    assert "button next" in message, "the timeout shows what did arrive after the mark"
    log = (tmp_path / "console.log").read_text()
    assert log.splitlines() == ["[    0.1] musicbox: starting", "[    0.2] musicbox: ready on port 8080", "button next"]
    assert seen == log.splitlines(), "each line reached the timeline callback too"


def test_a_missing_port_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConsoleError, match=r"cannot open the serial console .*/ttyNOPE"):
        SerialConsole(str(tmp_path / "ttyNOPE"))
