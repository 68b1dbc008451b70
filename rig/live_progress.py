"""Live progress on a terminal: the running test, its last events, and the deploy (rich).

pytest's own lines keep scrolling above a small live panel. The panel draws on a duplicate of the
terminal's file descriptor taken before pytest captures output, so a test's captured output never
swallows it; pytest's lines are routed through rich so the two never overwrite each other. Off a
terminal, in CI and on xdist workers nothing of this runs and the output stays plain.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import pytest
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from .timeline import Timeline

EVENT_LINES = 4  # the running test's last timeline entries shown


@dataclass
class _Deploy:
    name: str = ""
    done: int = 0
    count: int = 0
    sent: int = 0
    total: int = 0


class _LinesThroughLive:
    """A file for pytest's terminal writer: whole lines are printed above the live panel. A line
    is held until it ends, because pytest flushes after every progress dot."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._partial = ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._console.print(Text.from_ansi(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """pytest flushes after each dot; a partial line waits for its end (or for ``close``)."""

    def close(self) -> None:
        if self._partial:
            self._console.print(Text.from_ansi(self._partial), soft_wrap=True)
            self._partial = ""

    def isatty(self) -> bool:
        return True


class LiveProgress:
    """pytest plugin object: registered by the rig's plugin only on an interactive terminal."""

    def __init__(self, config: pytest.Config, terminal: IO[str], timeline: Callable[[], Timeline | None]) -> None:
        self.config = config
        self._timeline = timeline  # the running test's (it changes with every test)
        self.console = Console(file=terminal, force_terminal=True)
        self._lock = threading.Lock()
        self.test: str | None = None
        self.test_started = 0.0
        self.stage: str | None = None
        self.deploying: _Deploy | None = None
        self.counts = {"passed": 0, "failed": 0, "skipped": 0}
        self.total = 0
        self._reporter_file: Any = None
        self._proxy: _LinesThroughLive | None = None
        # pytest owns sys.stdout and sys.stderr (its capture): the panel leaves them alone.
        self.live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    @classmethod
    def wanted(cls, config: pytest.Config, in_ci: bool) -> bool:
        """Only for a person watching: a terminal, not CI, not an xdist worker, not ``--no-live``."""
        return bool(
            sys.stdout.isatty()
            and not in_ci
            and not hasattr(config, "workerinput")
            and config.getoption("rig_live")
            and config.getoption("verbose") > -2  # -q keeps it; -qq asks for silence
        )

    @classmethod
    def open(cls, config: pytest.Config, timeline: Callable[[], Timeline | None]) -> LiveProgress:
        """Duplicates the terminal's descriptor now, while pytest does not capture it yet."""
        terminal = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")
        return cls(config, terminal, timeline)

    # -- what the rig tells it -----------------------------------------------------------------
    def set_stage(self, stage: str | None) -> None:
        with self._lock:
            self.stage, self.deploying = stage, None

    def deploy_progress(self, name: str, done: int, count: int, sent: int, total: int) -> None:
        """The Deployer's progress callback (files and bytes sent so far)."""
        with self._lock:
            self.deploying = _Deploy(name, done, count, sent, total)

    # -- pytest hooks --------------------------------------------------------------------------
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            self._reporter_file = reporter._tw._file  # pytest's writer has no public way to redirect it
            self._proxy = _LinesThroughLive(self.console)
            reporter._tw._file = self._proxy
        self.live.start()

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        with self._lock:
            self.test, self.test_started = nodeid, time.monotonic()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            outcome = report.outcome if report.outcome in self.counts else "failed"
            self.counts[outcome] += 1

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Before pytest's summary: the panel goes, pytest's writer gets its file back."""
        self.close()

    def close(self) -> None:
        if self.live.is_started:
            self.live.stop()
        if self._proxy is not None:
            self._proxy.close()
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter._tw._file = self._reporter_file
            self._proxy = None

    # -- the panel -----------------------------------------------------------------------------
    def render(self) -> Group:
        with self._lock:
            lines: list[Text] = []
            done = sum(self.counts.values())
            tally = (
                f"{done}/{self.total}  {self.counts['passed']} passed, {self.counts['failed']} failed, "
                f"{self.counts['skipped']} skipped"
            )
            running = f"  {self.test} ({time.monotonic() - self.test_started:.1f} s)" if self.test else ""
            lines.append(Text.assemble(("▶ ", "bold cyan"), (tally, "bold"), running))
            if self.deploying is not None:
                d = self.deploying
                text = (
                    f"  deploy: {d.done}/{d.count} files, {d.sent / 1e3:.0f}/{d.total / 1e3:.0f} kB  {d.name}"
                    if d.done < d.count
                    else f"  deploy: {d.count} files sent ({d.total / 1e3:.0f} kB); the Pi sets up the release"
                )
                lines.append(Text(text, style="yellow"))
            elif self.stage:
                lines.append(Text(f"  {self.stage}", style="yellow"))
            timeline = self._timeline()
            entries = timeline.tail(EVENT_LINES) if timeline is not None else []
            lines += [Text("  " + entry.line(), style="dim") for entry in entries]
        for line in lines:
            line.no_wrap, line.overflow = True, "ellipsis"
        return Group(*lines)
