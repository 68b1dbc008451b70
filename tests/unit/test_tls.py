"""The rig's HTTP clients share one TLS context, and it still verifies what it connects to."""

from __future__ import annotations

import ssl

from rig.tls import tls


def test_one_context_that_verifies_certificates_and_hostnames() -> None:
    assert tls() is tls(), "built once, not per client"
    assert tls().verify_mode == ssl.CERT_REQUIRED
    assert tls().check_hostname
