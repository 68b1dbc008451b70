"""The bench check's verdict: which tests a failed part skips, and the table a technician reads."""

from __future__ import annotations

from rig.bench_check import CheckReport, PartResult


def report(*parts: PartResult) -> CheckReport:
    return CheckReport(list(parts), 0.5)


def test_a_failed_part_is_the_one_reason_for_what_needs_it() -> None:
    checked = report(
        PartResult("firmware", True, "healthy", 12.0, "ms"),
        PartResult("nfc", False, "the DUT's reader did not poll"),
        PartResult("audio", None, "no audio interface"),
    )
    assert checked.bench_error_for(("nfc", "gpio")) == "bench error: nfc: the DUT's reader did not poll"
    assert checked.bench_error_for(("nfc_reader_pull",)) == "bench error: nfc: the DUT's reader did not poll"
    assert checked.bench_error_for(("gpio", "audio_in")) is None, "a part the bench lacks is no bench error"
    assert not checked.ok
    assert [p.part for p in checked.failed] == ["nfc"]


def test_a_dead_firmware_carries_every_test() -> None:
    checked = report(PartResult("firmware", False, "unreachable"), PartResult("gpio", True, "5 lines", 1.0, "ms"))
    assert checked.bench_error_for(("gpio",)) == "bench error: firmware: unreachable"


def test_the_table_shows_each_part_with_its_figure_and_the_verdict() -> None:
    lines = report(
        PartResult("ssh", True, "pi@host:22, host key pinned", 51.25, "ms"),
        PartResult("console", False, "cannot open /dev/ttyUSB0"),
        PartResult("audio", None, "no audio interface"),
    ).table()
    assert lines[0].split() == ["part", "result", "figure", "detail"]
    assert lines[1].split()[:4] == ["ssh", "ok", "51.2", "ms"]
    assert lines[2].split()[:2] == ["console", "FAIL"]
    assert lines[3].split()[:2] == ["audio", "n/a"]
    assert lines[-1] == "BENCH ERROR in console (0.50 s)"
