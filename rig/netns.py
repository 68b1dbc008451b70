"""A network namespace that plays a Pi on the LAN (DESIGN.md form (a)): its own stack, its own address.

Why a namespace: the virtual Pi's sshd and firmware then sit behind a link the rig reaches by an
address and port 22, as on a bench, and a fault test can take that link down under a live deploy.
Names derive from the virtual Pi's state folder, so a run that was killed is cleaned up by the
next one that uses the same folder. Addresses come from ``SUBNET``, one /29 per virtual Pi: the
host side (.1), the Pi (.2), and the host side's second address (.5) where the rig's NFC field
answers the Pi's udp reader. Its traffic crosses only the veth pair and never leaves the machine.
Only root can do any of this.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUBNET = ipaddress.ip_network("10.213.0.0/16")
PI_INTERFACE = "eth0"
NETNS_DIR = Path("/run/netns")
ALLOCATION_LOCK = Path("/run/rig-netns.lock")  # two virtual Pis booting at once must not pick one /29
PREFIX = 29
FALLBACK_METRIC = "4242"


class NamespaceError(RuntimeError):
    """The namespace could not be made or changed; the message has the failing command's own words."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise NamespaceError(f"'ip {' '.join(args)}' failed: {result.stderr.strip() or result.returncode}")
    return result


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Networks on an interface or in a route (a fallback route marks a /30 as taken too)."""
    out = _ip("-o", "-4", "addr", "show").stdout
    used = [ipaddress.ip_interface(line.split()[3]).network for line in out.splitlines() if len(line.split()) > 3]
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        words = [w for w in line.split() if w not in ("unreachable", "blackhole", "local", "broadcast")]
        with contextlib.suppress(ValueError, IndexError):
            if words[0] != "default":
                used.append(ipaddress.ip_network(words[0], strict=False))
    return used


def _drop_orphan_fallbacks() -> None:
    """Fallback routes whose virtual Pi vanished without 'down' (a killed run); call under the lock."""
    on_interfaces = {
        str(ipaddress.ip_interface(line.split()[3]).network)
        for line in _ip("-o", "-4", "addr", "show").stdout.splitlines()
        if len(line.split()) > 3
    }
    for line in _ip("-4", "route", "show").stdout.splitlines():
        words = line.split()
        if words[:1] == ["unreachable"] and f"metric {FALLBACK_METRIC}" in line and words[1] not in on_interfaces:
            _ip("route", "del", "unreachable", words[1], "metric", FALLBACK_METRIC, check=False)


@dataclass(frozen=True)
class Namespace:
    key: str  # 8 hex digits from the state folder

    @property
    def name(self) -> str:
        return f"rigpi-{self.key}"

    @property
    def host_interface(self) -> str:
        return f"rv{self.key}"  # the kernel allows 15 characters

    @property
    def exists(self) -> bool:
        return (NETNS_DIR / self.name).exists()

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def pi_address(self) -> str:
        """The address inside the namespace, read back from the kernel."""
        out = _ip("-n", self.name, "-o", "-4", "addr", "show", "dev", PI_INTERFACE).stdout.split()
        if len(out) < 4:
            raise NamespaceError(f"namespace {self.name} has no IPv4 address on {PI_INTERFACE}")
        return str(ipaddress.ip_interface(out[3]).ip)

    def create(self) -> str:
        """Make the namespace, its veth pair and addresses; returns the Pi's address."""
        if os.geteuid() != 0:
            raise NamespaceError('a network namespace needs root; as a user, use the SSH form (form = "ssh")')
        ALLOCATION_LOCK.touch(exist_ok=True)
        with ALLOCATION_LOCK.open() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _drop_orphan_fallbacks()
            network = self._free_network()
            host, pi, _, _, field = list(network.hosts())[:5]
            try:
                _ip("netns", "add", self.name)
                _ip(
                    "link", "add", self.host_interface, "type", "veth", "peer", "name", PI_INTERFACE, "netns", self.name
                )
                # Should the veth's own route ever go, this one answers "unreachable" at once, so no
                # packet for the Pi can take the default route off the machine.
                _ip("route", "add", "unreachable", str(network), "metric", FALLBACK_METRIC)
                _ip("addr", "add", f"{host}/{network.prefixlen}", "dev", self.host_interface)
                _ip("addr", "add", f"{field}/32", "dev", self.host_interface)
                _ip("link", "set", self.host_interface, "up")
                _ip("-n", self.name, "addr", "add", f"{pi}/{network.prefixlen}", "dev", PI_INTERFACE)
                _ip("-n", self.name, "link", "set", PI_INTERFACE, "up")
                _ip("-n", self.name, "link", "set", "lo", "up")
            except NamespaceError:
                self.delete()
                raise
        log.info("namespace %s: Pi at %s, host side %s on %s", self.name, pi, host, self.host_interface)
        return str(pi)

    def _free_network(self) -> ipaddress.IPv4Network:
        used = _used_networks()
        candidates = list(SUBNET.subnets(new_prefix=PREFIX))
        start = int(self.key, 16) % len(candidates)  # stable for one state folder, spread across folders
        for offset in range(len(candidates)):
            network = candidates[(start + offset) % len(candidates)]
            if not any(network.overlaps(other) for other in used):
                return network
        raise NamespaceError(f"no free /{PREFIX} left in {SUBNET} for another virtual Pi")

    def field_address(self) -> str:
        """The host-side address where the Pi's udp NFC reader finds the rig's field (.5 of its /29)."""
        network = ipaddress.ip_interface(f"{self.pi_address()}/{PREFIX}").network
        return str(list(network.hosts())[4])

    def set_reader(self, present: bool) -> None:
        """The Pi's NFC reader unplugged or plugged back: an unreachable route to the field makes the
        reader's next send fail at once (EHOSTUNREACH), as a USB reader's I/O fails when it is pulled."""
        field = f"{self.field_address()}/32"
        if present:
            _ip("-n", self.name, "route", "del", "unreachable", field, check=False)
        else:
            _ip("-n", self.name, "route", "replace", "unreachable", field)

    def set_link(self, up: bool) -> None:
        """The Pi's cable pulled or put back: its end of the veth goes down or up. Packets to it are
        then lost, not refused, as on a real link, and the host's route stays on the veth."""
        _ip("-n", self.name, "link", "set", PI_INTERFACE, "up" if up else "down")

    def pids(self) -> list[int]:
        if not self.exists:
            return []
        return [int(pid) for pid in _ip("netns", "pids", self.name, check=False).stdout.split()]

    def kill_all(self, except_pids: frozenset[int] = frozenset(), timeout: float = 5.0) -> None:
        """SIGTERM every process in the namespace, SIGKILL what is left after ``timeout``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            victims = [pid for pid in self.pids() if pid not in except_pids]
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while victims and time.monotonic() < deadline:
                victims = [pid for pid in self.pids() if pid not in except_pids]
                time.sleep(0.05)
            if not victims:
                return

    def delete(self) -> None:
        """Stop what runs inside, then remove the namespace and both ends of the veth pair."""
        self.kill_all()
        out = _ip("-o", "-4", "addr", "show", "dev", self.host_interface, check=False).stdout.split()
        if self.exists:
            _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_interface, check=False)  # gone with its peer, unless creation failed
        if len(out) > 3:
            network = str(ipaddress.ip_interface(out[3]).network)
            _ip("route", "del", "unreachable", network, "metric", FALLBACK_METRIC, check=False)
