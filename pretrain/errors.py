"""The error a bad pre-training config raises: one line, reported by the CLI as ``error: ...`` (exit 2)."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key."""


def unknown_keys_error(where: str, unknown: Iterable[str], allowed: Iterable[str]) -> ConfigError:
    """``<where> does not take <key> (did you mean <close>?; takes: a, b)`` for the first unknown key."""
    allowed = sorted(allowed) if not isinstance(allowed, (list, tuple)) else list(allowed)
    unknown = sorted(unknown)
    close = difflib.get_close_matches(unknown[0], allowed, n=1)
    hint = f"did you mean {close[0]}?; " if close else ""
    return ConfigError(f"{where} does not take {', '.join(unknown)} ({hint}takes: {', '.join(allowed) or 'nothing'})")
