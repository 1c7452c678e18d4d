"""From a config's ``method`` / ``schedule`` to what a run trains: pure functions, no data, no model.

``--dry-run`` and the engine use the same :func:`make_plan`, so the printed cost is the trained one.

``method.type`` is one of

* ``uniform`` -- every sample every epoch (the 100% baseline);
* ``dar`` / ``dar_random`` -- Drop-and-Refresh with loss-ranked / random dropping:
  ``warmup``, ``interval``, ``keep``, ``refresh`` (list), ``active`` (None = unlimited);
* ``fixed_subset`` -- one random subset, trained every epoch;
* ``shortened`` -- uniform training with the epochs (and LR milestones) scaled to the budget;
* ``online`` -- fast online minibatch selection: ``pool_size`` (None = 2b), ``score_resolution``,
  ``beta``, ``warmup_steps``, ``cooldown_fraction``; b is ``data.batch_size`` (per rank).

The equal-budget controls take their budget as ``budget=<relative cost>`` or ``match=dict(<DaR params>)``
(the relative cost of that DaR schedule on this dataset).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .cost import dar_relative_cost, online_relative_cost, shortened_epochs
from .selection.dar import DaRParams, keep_count, plan_subset_sizes
from .selection.online import OnlineParams

METHODS = ("uniform", "dar", "dar_random", "fixed_subset", "shortened", "online")
DAR_KEYS = ("warmup", "interval", "keep", "refresh", "active")
ONLINE_KEYS = ("pool_size", "score_resolution", "beta", "warmup_steps", "cooldown_fraction")


class ConfigError(ValueError):
    """A bad config value; the message is one line."""


def _only(method: dict, allowed: tuple[str, ...]) -> None:
    extra = sorted(set(method) - set(allowed) - {"type"})
    if extra:
        raise ConfigError(f"method {method['type']!r} does not take {', '.join(extra)} "
                          f"(takes: {', '.join(allowed) or 'nothing'})")


def dar_params(method: dict, epochs: int) -> DaRParams:
    """``DaRParams`` from a ``dar``-like dict (P1's validation, re-raised as one config line)."""
    try:
        return DaRParams(warmup=method.get("warmup", 0), interval=method.get("interval", 1),
                         keep=method.get("keep", 1.0), epochs=epochs,
                         refresh=tuple(method.get("refresh", ())), active=method.get("active"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def online_params(method: dict, batch_size: int, img_size: int) -> OnlineParams:
    try:
        params = OnlineParams(batch_size=batch_size, **{k: method[k] for k in ONLINE_KEYS if k in method})
        params.validate_against(img_size)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    return params


def budget(method: dict, epochs: int, num_samples: int) -> float:
    """Relative cost an equal-budget control must match: ``budget`` or the cost of the ``match`` DaR."""
    if ("budget" in method) == ("match" in method):
        raise ConfigError(f"method {method['type']!r} needs exactly one of budget=<fraction> or match=dict(<DaR params>)")
    if "match" in method:
        unknown = sorted(set(method["match"]) - set(DAR_KEYS))
        if unknown:
            raise ConfigError(f"method.match takes DaR parameters ({', '.join(DAR_KEYS)}), not {', '.join(unknown)}")
        return dar_relative_cost(num_samples, dar_params(method["match"], epochs))
    value = method["budget"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"method.budget must be a relative cost in (0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Plan:
    """Samples trained per epoch of a run, against a uniform run of ``ref_epochs`` epochs."""

    method: str
    epochs: int  # epochs this run trains
    ref_epochs: int  # epochs of the uniform baseline it is compared with
    sizes: tuple[int, ...]  # samples trained per epoch (planned)
    num_samples: int
    flops_cost: float  # planned training + selection FLOPs relative to the baseline

    @property
    def relative_cost(self) -> float:
        return sum(self.sizes) / (self.ref_epochs * self.num_samples)


def make_plan(method: dict, epochs: int, num_samples: int, *, batch_size: int = 1, img_size: int = 224,
              world_size: int = 1) -> Plan:
    """Check ``method`` and plan the run (``batch_size`` per rank and ``img_size`` matter for online)."""
    kind = method.get("type")
    if kind not in METHODS:
        raise ConfigError(f"method.type must be one of {', '.join(METHODS)}, got {kind!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"schedule.epochs must be a positive integer, got {epochs!r}")
    n, run_epochs = num_samples, epochs
    if kind == "uniform":
        _only(method, ())
        sizes = [n] * epochs
    elif kind in ("dar", "dar_random"):
        _only(method, DAR_KEYS)
        sizes = plan_subset_sizes(n, dar_params(method, epochs))
    elif kind == "fixed_subset":
        _only(method, ("budget", "match"))
        sizes = [keep_count(n, budget(method, epochs, n))] * epochs
    elif kind == "shortened":
        _only(method, ("budget", "match"))
        run_epochs = shortened_epochs(epochs, budget(method, epochs, n))
        sizes = [n] * run_epochs
    else:
        _only(method, ONLINE_KEYS)
        params = online_params(method, batch_size, img_size)
        steps = epochs * online_steps_per_epoch(n, batch_size, world_size)
        sizes = [n] * epochs
        return Plan(kind, epochs, epochs, tuple(sizes), n, online_relative_cost(params, steps, img_size))
    # without a scoring pass, FLOPs scale with trained samples
    return Plan(kind, run_epochs, epochs, tuple(sizes), n, sum(sizes) / (epochs * n))


def online_steps_per_epoch(num_samples: int, batch_size: int, world_size: int = 1) -> int:
    """Steps of a uniform epoch (``DistributedSampler``-style padding, last batch kept)."""
    return math.ceil(math.ceil(num_samples / world_size) / batch_size)


def describe(plan: Plan) -> list[str]:
    """Human-readable lines: per-epoch subset fraction (runs of equal epochs merged) and the total cost."""
    lines, start = [], 1
    for e in range(1, plan.epochs + 1):
        if e == plan.epochs or plan.sizes[e] != plan.sizes[e - 1]:
            span = f"{start}" if start == e else f"{start}-{e}"
            lines.append(f"  epochs {span:>9}: {100 * plan.sizes[e - 1] / plan.num_samples:6.2f}% of the data")
            start = e + 1
    lines.append(f"relative cost (samples): {100 * plan.relative_cost:.1f}% of uniform training for "
                 f"{plan.ref_epochs} epochs")
    lines.append(f"relative cost (FLOPs):   {100 * plan.flops_cost:.1f}%")
    return lines
