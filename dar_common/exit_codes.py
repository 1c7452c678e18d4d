"""Exit codes with a meaning shared by every launcher, trainer and pipeline of the project (a leaf)."""
from __future__ import annotations

# EX_TEMPFAIL (sysexits.h): "a temporary failure; the user is invited to retry". Training exits with it
# after a preemption signal and its checkpoint, and only then; launchers pass it on, schedulers requeue.
PREEMPTED_EXIT_CODE = 75

__all__ = ["PREEMPTED_EXIT_CODE"]
