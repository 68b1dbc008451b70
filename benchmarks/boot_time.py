"""Figure 5 (boot): a virtual Pi from nothing to a healthy firmware, and a deployed one from power
on to healthy. Target: boot to healthy within 3 s.

"Cold" is ``VirtualPi.up()`` with the firmware run straight from its tree (the local form) and,
as root, the namespace form up to a listening sshd; "power on" is a deployed namespace Pi's power
cycle, measured from power on to the first healthy ``/api/health``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx

from rig.virtual_pi import SimSettings, VirtualPi

from .common import report, setup_logging, stats_ms, virtual_pi

BOOTS = 5


def healthy_after(url: str, started: float, timeout: float = 30.0) -> float:
    """Seconds from ``started`` to the first healthy answer; raises with the last answer otherwise."""
    last = "no answer"
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            try:
                answer = client.get(f"{url}/api/health")
                if answer.status_code == 200:
                    return time.monotonic() - started
                last = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.01)
    raise TimeoutError(f"{url} not healthy within {timeout} s (last: {last})")


def cold_boots(form: str) -> list[float]:
    samples = []
    for _ in range(BOOTS):
        with tempfile.TemporaryDirectory(prefix="rig-boot-") as folder:
            pi = VirtualPi(Path(folder) / "pi", SimSettings(form=form))
            started = time.monotonic()
            info = pi.up()
            try:
                samples.append(healthy_after(info.url, started) if form == "local" else time.monotonic() - started)
            finally:
                pi.down()
    return samples


def power_on_boots() -> list[float]:
    samples = []
    with virtual_pi("netns") as pi:
        info = pi.info()
        assert info is not None
        for _ in range(BOOTS):
            pi.power_off()
            started = time.monotonic()
            pi.power_on()
            samples.append(healthy_after(info.url, started))
    return samples


def main() -> None:
    setup_logging()
    figures: dict[str, object] = {"cold_local_to_healthy": stats_ms(cold_boots("local"))}
    if os.geteuid() == 0:
        figures["cold_netns_to_sshd"] = stats_ms(cold_boots("netns"))
        figures["power_on_to_healthy_netns"] = stats_ms(power_on_boots())
    figures["target"] = "boot to healthy <= 3000 ms"
    report("boot_time", figures)


if __name__ == "__main__":
    main()
