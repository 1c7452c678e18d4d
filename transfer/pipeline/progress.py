"""Progress display of a pipeline run: which stage, k/n, elapsed, and the running stage's latest output line."""
from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


def fmt_s(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    """A tqdm bar over stages; the postfix follows the child's output. Off a terminal it refreshes rarely,
    so CI logs get a line per stage plus a heartbeat, not a flood of carriage returns."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 1.0 if tty else 60.0
        self.bar = tqdm(total=total, unit="stage", file=self.stream, disable=not enabled, dynamic_ncols=True,
                        mininterval=self.interval, bar_format="{desc} |{bar:12}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}")
        self.t0 = time.monotonic()
        self.stage_t0 = self.t0
        self._last_refresh = 0.0
        self.label = ""

    def begin(self, label: str) -> None:
        self.label = label
        self.stage_t0 = time.monotonic()
        self.bar.set_description_str(label, refresh=False)
        self.bar.set_postfix_str("", refresh=True)

    def line(self, text: str) -> None:
        """Show the running stage's latest output line (throttled)."""
        now = time.monotonic()
        if now - self._last_refresh < self.interval:
            return
        self._last_refresh = now
        self.bar.set_postfix_str(f"{fmt_s(now - self.stage_t0)} | {text[:70]}", refresh=True)

    def end(self, message: str, advance: bool = True) -> None:
        self.bar.write(f"[{self.bar.n + 1}/{self.bar.total}] {message} (total {fmt_s(time.monotonic() - self.t0)})",
                       file=self.stream)
        if advance:
            self.bar.update(1)

    def stage_seconds(self) -> float:
        return time.monotonic() - self.stage_t0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def close(self) -> None:
        self.bar.close()
