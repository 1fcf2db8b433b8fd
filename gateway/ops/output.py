"""Plain-text output for operator commands: aligned tables and a progress bar.

Hand-written rather than a dependency: one table layout and one bar are all the
commands need, and both must stay readable in a log file or a CI job's output.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is never padded."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


class Progress:
    """A one-line bar redrawn in place: ``users  [#######.............]  350/1000``.

    Drawn only on a terminal (or when forced), and at most ten times a second, so a
    redirected stderr gets no carriage-return noise and a fast scan costs nothing.
    """

    WIDTH = 30

    def __init__(self, stream: TextIO, *, enabled: bool | None = None, interval: float = 0.1) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.interval = interval
        self._last = 0.0
        self._drawn = False

    def update(self, label: str, done: int, total: int | None, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if total:
            filled = min(self.WIDTH, self.WIDTH * done // total)
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}]  {done}/{total}"
        else:
            bar = f"{done}"
        self.stream.write(f"\r{label:<16}{bar}\033[K")
        self.stream.flush()
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
