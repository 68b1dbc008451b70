"""What every test folder shares."""

from __future__ import annotations

from typing import NoReturn

import pytest

from rig.pytest_plugin import in_ci

pytest_plugins = ["pytester"]


def unavailable(reason: str) -> NoReturn:
    """Something the bootstrap provides is missing: skipped on a developer's machine, a failure
    under CI, whose fresh machine must have everything."""
    if in_ci():
        pytest.fail(f"{reason} (CI must have it: the bootstrap installs it, and CI runs as root)", pytrace=False)
    pytest.skip(reason)
