"""The ``error:`` line every entry point ends with on bad input or a failed write (a leaf)."""
from __future__ import annotations

import sys


def print_error(message: str) -> None:
    """Write ``error: <message>`` and its newline in one ``write``.

    Python leaves ``sys.stderr`` unbuffered when it is not a terminal, so ``print`` writes the text and the
    newline separately; the ranks of a torchrun share one stderr, and two ranks' lines then interleave
    (CI saw ``error: A error: B`` followed by a bare newline). One write of a line under ``PIPE_BUF`` bytes
    is atomic on a pipe.
    """
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


__all__ = ["print_error"]
