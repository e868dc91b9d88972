"""The progress line of long reads: a bar with percent and time left when sizes are known.

Shown on an interactive stderr only (logs and pipes stay clean), and only once a read has
taken a second. For files the position is measured in bytes on disk (compressed bytes for
gzip), over all inputs; for stdin, whose size is unknown, it is a line counter.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from rbac_advisor.audit import Block
from rbac_advisor.cli.errors import quiet
from rbac_advisor.usage_report import printable

WIDTH = 24
DELAY = 1.0
PERIOD = 0.5


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def render(
    fraction: float | None,
    lines: int,
    elapsed: float,
    what: str = "",
    since: tuple[float, float] = (0.0, 0.0),
) -> str:
    """One progress line: ``[#####.....]  41%  820,000 lines  190k lines/s  6s left``.

    ``fraction`` is the share of the input read (None when unknown: no bar, no estimate);
    without ``lines`` the bar shows the share and the time left only. ``since``: the
    elapsed time and share at the first report; the time left is the pace from there
    (what came before the first share, such as building an index, is not the pace).
    """
    rate = lines / elapsed if elapsed > 0 else 0.0
    speed = f"{rate / 1000:,.0f}k lines/s"
    if fraction is None:
        text = f"{lines:,} lines read  {speed}"
    else:
        f = min(max(fraction, 0.0), 1.0)
        filled = int(f * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        text = f"[{bar}] {f * 100:3.0f}%"
        if lines:  # an input read in lines (a saved model is read in bytes only)
            text += f"  {lines:,} lines  {speed}"
        t0, f0 = since
        if 0.02 <= f < 1.0 and elapsed > t0 and f > f0:
            text += f"  {_duration((elapsed - t0) * (1 - f) / (f - f0))} left"
    return f"{text}  {what}" if what else text


class Progress:
    """Progress over a set of inputs of known total size (0: unknown)."""

    def __init__(
        self,
        enabled: bool,
        total: int = 0,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Enable only when asked and the stream (stderr by default) is a terminal."""
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty() and not quiet()
        self.total = total
        self.clock = clock
        self.start = clock()
        self.next = self.start + DELAY
        self.lines = 0
        self.finished = 0  # bytes of the inputs already read
        self.size = 0  # bytes of the current input
        self.within = 0.0  # share of the current input read
        self.what = ""
        self.shown = False
        self.since: tuple[float, float] | None = None  # elapsed and share at the first report

    def file(self, size: int, name: str = "") -> None:
        """A new input of ``size`` bytes starts (the previous one is complete)."""
        self.finished += self.size
        # File names come from directory listings: no control character reaches the terminal.
        self.size, self.within, self.what = size, 0.0, printable(name)

    def count(self, blocks: Iterable[Block], position: Callable[[], int]) -> Iterator[Block]:
        """Pass blocks of lines through, counting lines; ``position()`` is bytes read."""
        if not self.enabled:
            yield from blocks
            return
        size = self.size
        for block in blocks:
            self.tick(len(block[2]), position() / size if size else None)
            yield block

    def tick(self, lines: int, within: float | None = None) -> None:
        """Add ``lines``; ``within`` is the share of the current input read.

        Redraws at most twice a second.
        """
        self.lines += lines
        if within is not None:
            self.within = within
        if not self.enabled:
            return
        now = self.clock()
        if now < self.next and self.since is not None:
            return
        fraction = None
        if self.total > 0:
            fraction = (self.finished + min(self.within, 1.0) * self.size) / self.total
            if self.since is None:  # the first report, drawn or not
                self.since = (now - self.start, fraction)
        if now < self.next:
            return
        line = render(fraction, self.lines, now - self.start, self.what, self.since or (0.0, 0.0))
        self.stream.write("\r" + line)
        self.stream.write("\033[K")
        self.stream.flush()
        self.shown = True
        self.next = now + PERIOD

    def phase(self, text: str) -> None:
        """Say which step follows the reading (a merge, the model build), in place of the bar.

        Shown when the run has already taken a second, or the bar was shown.
        """
        if not self.enabled:
            return
        now = self.clock()
        if not self.shown and now - self.start < DELAY:
            return
        self.stream.write(f"\r{printable(text)}  {_duration(now - self.start)}\033[K")
        self.stream.flush()
        self.shown = True
        self.next = now + PERIOD

    def done(self) -> None:
        """Clear the progress line (once)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
