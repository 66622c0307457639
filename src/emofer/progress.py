"""A dependency-free progress bar with ETA for the command line (writes to stderr only when asked)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

BAR_WIDTH = 24
#: Seconds between redraws, so a fast loop does not flood the terminal.
REDRAW_INTERVAL = 0.2


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


class Progress:
    """``label  45% |#####-----| 45/100 00:12<00:15`` redrawn in place on a terminal.

    On a stream that is not a terminal (a log file, a pipe) only the final line is written.
    ``total`` None (unknown length) shows a count and the elapsed time.
    """

    def __init__(self, total: int | None, label: str = "", stream: TextIO | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._start = self._last = time.monotonic()
        self._live = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items done."""
        self.done += n
        now = time.monotonic()
        if self._live and now - self._last >= REDRAW_INTERVAL:
            self._last = now
            self.stream.write("\r" + self.line(now) + "\x1b[K")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The bar as text."""
        elapsed = (time.monotonic() if now is None else now) - self._start
        if not self.total:
            return f"{self.label} {self.done} {_clock(elapsed)}".strip()
        fraction = min(1.0, self.done / self.total)
        filled = round(BAR_WIDTH * fraction)
        eta = elapsed * (self.total - self.done) / self.done if self.done else 0.0
        return (
            f"{self.label} {fraction:4.0%} |{'#' * filled}{'-' * (BAR_WIDTH - filled)}| "
            f"{self.done}/{self.total} {_clock(elapsed)}<{_clock(max(0.0, eta))}"
        ).strip()

    def close(self) -> None:
        """Write the final line and a newline."""
        self.stream.write(("\r" if self._live else "") + self.line() + ("\x1b[K" if self._live else "") + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
