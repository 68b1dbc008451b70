"""One TLS context for every HTTP client the rig makes.

httpx builds a new context for each client it creates, loading the CA bundle each time (about
55 ms on these machines; ``httpx.get`` makes a client per call). A test session made several per
test — the player reset, the test's own client, health checks — and the boot wait one per poll:
seconds over the suite. Built once, a client costs a quarter of a millisecond; https to a bench
that serves it is verified exactly as before.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()
