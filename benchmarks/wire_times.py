"""When each broadcast reached each observer's socket, from a packet capture on the loopback.

A Socket.IO server writes one broadcast to its clients one after the other, and between two
writes it may run other work of its own (another task, another thread): two clients' copies of
one tap's ``state:player`` left the firmware up to 1.9 ms apart. Comparing when the rig's
observer and a bare client handed an event over therefore counts the firmware's order of writes
as the rig's overhead. tcpdump stamps each segment as the kernel
passes it to the receiving socket, so the rig's handling time is its hand-over less its own
socket's stamp, whatever the firmware did in between.

Needs tcpdump and the right to capture (root); without them the figure is left out, and says why.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import dpkt

EVENT = re.compile(rb'42\["([^"]+)",\{.*?"event_id":\s*"([^"]+)"')
READY_TIMEOUT_S = 10.0
SETTLE_QUIET_S = 0.2  # the file unchanged this long: tcpdump has written what it had
SETTLE_LIMIT_S = 3.0
COUNT = re.compile(r"(\d+) packets? (captured|received by filter)")
log = logging.getLogger(__name__)


class CaptureUnavailable(RuntimeError):
    """This machine cannot capture the loopback (no tcpdump, or not root); one line."""


class LoopbackCapture:
    """tcpdump of what a server on the loopback sends; ``arrivals`` after ``stop``."""

    def __init__(self, server_port: int) -> None:
        if os.geteuid() != 0:
            raise CaptureUnavailable("capturing the loopback needs root (tcpdump)")
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise CaptureUnavailable("tcpdump is not installed (apt-get install tcpdump)")
        self._folder = tempfile.TemporaryDirectory(prefix="rig-capture-")
        self._file = Path(self._folder.name) / "lo.pcap"
        # --immediate-mode and -U: each packet is read and written as it comes (the kernel would
        # otherwise hand them over in blocks, once a second), so stop() loses none.
        command = [
            tcpdump,
            "-i",
            "lo",
            "-n",
            "--immediate-mode",
            "-U",
            "-s",
            "4096",
            "-w",
            str(self._file),
            f"tcp src port {server_port}",
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self._process.stderr is not None
        ready, _, _ = select.select([self._process.stderr], [], [], READY_TIMEOUT_S)
        said = self._process.stderr.readline().decode(errors="replace").strip() if ready else ""
        if "listening on" not in said:
            self.stop()
            raise CaptureUnavailable(f"tcpdump did not start capturing within {READY_TIMEOUT_S:g} s: {said!r}")

    def stop(self) -> None:
        """End the capture once tcpdump has written what it was handed. A signal ends it at once,
        and segments still in its ring buffer are lost: on a busy machine it may not have run
        since the last one was sent. So the file must first stay the same size for a while;
        tcpdump's own count at exit then says whether anything matched but was not written."""
        if self._process.poll() is not None:
            return
        self._settle()
        self._process.terminate()
        try:
            _, said = self._process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            return
        counts = {name: int(n) for n, name in COUNT.findall(said.decode(errors="replace"))}
        lost = counts.get("received by filter", 0) - counts.get("captured", 0)
        if lost > 0:
            log.warning("tcpdump ended before it wrote %d of the segments it matched: their arrivals are missing", lost)

    def _settle(self) -> None:
        deadline = time.monotonic() + SETTLE_LIMIT_S
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self._file.stat().st_size if self._file.exists() else 0
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= SETTLE_QUIET_S:
                return
            time.sleep(0.02)

    def arrivals(self, event: str) -> dict[tuple[int, str], float]:
        """``arrivals`` of what was captured (call ``stop`` first)."""
        return arrivals(self._file, event)

    def close(self) -> None:
        self.stop()
        self._folder.cleanup()


def arrivals(pcap: Path, event: str) -> dict[tuple[int, str], float]:
    """(client port, event_id) → when the segment carrying that Socket.IO event reached the
    client's socket (wall-clock seconds), for every ``event`` in a capture of the loopback."""
    found: dict[tuple[int, str], float] = {}
    with pcap.open("rb") as capture:
        for stamp, frame in dpkt.pcap.Reader(capture):
            segment = dpkt.ethernet.Ethernet(frame).data.data
            for match in EVENT.finditer(bytes(segment.data)):
                if match[1].decode() == event:
                    found.setdefault((segment.dport, match[2].decode()), float(stamp))
    return found
