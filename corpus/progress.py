"""The one progress reporter: a live bar on a terminal, a plain line per step in a log.

On a terminal (stderr is a TTY) it draws a rich bar with the latest status; anywhere else (a Slurm
log, a pipe) it prints one line per ``update`` (or per ``every`` units), so a batch job's log shows
progress while it runs::

    with Progress("build", total=30_000, unit="tokens") as bar:
        bar.update(6_262, "chunk 0: 64 docs kept of 64 prompts")
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, desc: str, total: float | None = None, unit: str = "", *, initial: float = 0,
                 every: float = 0, live: bool | None = None, stream=None):
        """``desc``: the command (``[desc]`` starts every log line); ``total``: units to do (None:
        unknown); ``every``: in a log, print at most one line per this many units (0: every update);
        ``live``: force the bar on or off (default: on when the stream is a terminal)."""
        self.desc, self.total, self.unit, self.every = desc, total, unit, every
        self.done = self._logged = initial
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._start = initial
        self._bar = None
        if self.stream.isatty() if live is None else live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn(desc), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(),
                            TimeRemainingColumn(), TextColumn("{task.description}"), console=Console(file=self.stream),
                            transient=False)
            self._task = self._bar.add_task("", total=total, completed=initial)
            self._bar.start()

    def update(self, n: float = 1, status: str = "", *, completed: float | None = None) -> None:
        """Advance by ``n`` units (or set the count to ``completed``) and show ``status``."""
        self.done = completed if completed is not None else self.done + n
        if self._bar is not None:
            shown = min(self.done, self.total) if self.total is not None else self.done
            self._bar.update(self._task, completed=shown, description=status)
            return
        finished = self.total is not None and self.done >= self.total
        if self.every and self.done - self._logged < self.every and not finished:
            return
        self._logged = self.done
        self.log(status)

    def log(self, status: str = "") -> None:
        """One line with the count, the rate and ``status`` (printed above the bar on a terminal)."""
        dt = time.perf_counter() - self.t0
        count = f"{self.done:,.0f}" + (f"/{self.total:,.0f}" if self.total is not None else "")
        rate = (self.done - self._start) / dt if dt > 0 else 0.0
        line = f"[{self.desc}] {count} {self.unit}".rstrip() + (f"; {status}" if status else "")
        if rate and "/s" not in status:
            line += f"; {rate:,.1f} {self.unit or 'units'}/s"
        if self._bar is not None:
            self._bar.console.print(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
