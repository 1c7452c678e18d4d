"""A library function replaced by a wrapper that counts its calls by first argument (for the compat fixes that
cache a library's pure function: the tests apply the fix over the counting wrapper and compare counts)."""
from __future__ import annotations

import collections
from collections.abc import Callable

import pytest


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, original: Callable) -> collections.Counter:
    """Set ``owner.name`` to ``original`` behind a counter of its first arguments (undone after the test)."""
    calls: collections.Counter = collections.Counter()

    def counting(first, *args, **kwargs):
        calls[first] += 1
        return original(first, *args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls
