"""Ports: the rig only ever takes ephemeral ones, because other processes share these machines."""

from __future__ import annotations

import socket


def free_port(address: str = "127.0.0.1") -> int:
    """A port the kernel just handed out as free on ``address``.

    Another process could take it before our server binds it; the window is microseconds and the
    virtual Pi fails loudly (its health check) if it ever happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])
