"""Progress display of a pipeline run: which stage, k/n, elapsed, and the running stage's latest output line.

On a terminal: a tqdm bar over the stages whose postfix follows the running child's output. Elsewhere (CI,
a log file): plain lines -- one when a stage starts and ends, and a heartbeat with the child's latest line
every ``heartbeat_s`` -- instead of a stream of carriage returns. A ticker thread keeps the display
moving while a child is silent. Stages are keyed by their label, so that several can run at once
(``launch.jobs``); with one at a time the label may be left out.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from tqdm import tqdm


def fmt_s(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, heartbeat_s: float = 60.0,
                 tick: bool = True):
        self.stream = stream or sys.stderr
        self.total, self.done, self.enabled = total, 0, enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 1.0 if self.tty else heartbeat_s
        self.bar = tqdm(total=total, unit="stage", file=self.stream, dynamic_ncols=True,
                        bar_format="{desc} |{bar:12}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}") if self.tty else None
        self.t0 = self._last = time.monotonic()
        self.started: dict[str, float] = {}  # label -> when it began (kept after it ends, for stage_seconds)
        self.running: list[str] = []  # labels of the stages running now, oldest first
        self.numbers: dict[str, int] = {}  # label -> its [k/total] from begin, which its end line repeats
        self.latest = ""  # the newest output line of any running stage
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        if enabled and tick:
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(max(0.1, min(self.interval, 5.0))):
            self.line(None)

    def _print(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        elif self.enabled:
            print(text, file=self.stream, flush=True)

    def _prefix(self, k: int | None = None) -> str:
        return f"[{self.done + 1 if k is None else k}/{self.total}]"

    def _describe(self) -> str:
        if len(self.running) == 1:
            return self.running[0]
        return f"{len(self.running)} stages: " + ", ".join(self.running)

    def begin(self, label: str) -> None:
        with self._lock:
            self.started[label] = self._last = time.monotonic()
            self.running.append(label)
            self.latest = ""
            k = self.numbers[label] = self.done + len(self.running)
        if self.bar is not None:
            self.bar.set_description_str(f"{self._prefix(k)} {self._describe()}", refresh=False)
            self.bar.set_postfix_str("", refresh=True)
        else:
            self._print(f"{self._prefix(k)} {label} ... (total {fmt_s(self.elapsed())})")

    def line(self, text: str | None, label: str | None = None) -> None:
        """Record a running stage's latest output line (``label``: which one, default the newest); show it at
        most once per interval (``None``: no new output, just the clock)."""
        with self._lock:
            if text is not None:
                self.latest = text if len(self.running) < 2 or label is None else f"{label}: {text}"
            now = time.monotonic()
            if not self.running or now - self._last < self.interval:
                return
            self._last = now
            status = f"{fmt_s(now - self.started[self.running[0]])} | {self.latest[:90]}"
            if self.bar is not None:
                self.bar.set_postfix_str(status, refresh=True)
            else:
                self._print(f"{self._prefix()} {self._describe()}: {status}")

    def end(self, message: str, label: str | None = None) -> None:
        """A stage ended (``label``: which one, default the newest running)."""
        with self._lock:
            key = (label if label in self.running else self.running[-1]) if self.running else None
            # the number its begin line showed: with stages side by side, they end out of order
            self._print(f"{self._prefix(self.numbers.pop(key, None))} {message} (total {fmt_s(self.elapsed())})")
            self.done += 1
            if key is not None:
                self.running.remove(key)
            if self.bar is not None:
                if self.running:
                    self.bar.set_description_str(f"{self._prefix()} {self._describe()}", refresh=False)
                self.bar.update(1)

    def stage_seconds(self, label: str | None = None) -> float:
        """Seconds since ``label`` (default: the newest running stage) began."""
        key = label if label in self.started else (self.running[-1] if self.running else None)
        return time.monotonic() - self.started.get(key, self.t0)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def close(self) -> None:
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join()
        if self.bar is not None:
            self.bar.close()
