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

import os
import re
import select
import shutil
import subprocess
import tempfile
from pathlib import Path

import dpkt

EVENT = re.compile(rb'42\["([^"]+)",\{.*?"event_id":\s*"([^"]+)"')
READY_TIMEOUT_S = 10.0


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
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

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
