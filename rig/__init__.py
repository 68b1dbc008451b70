"""Host-side orchestrator of the HIL rig: bench config, virtual Pi, observer, timeline, contract, pytest plugin."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pi-hil-rig")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0.0.0+source"
