"""Pure selection rules and the samplers they drive (no trainer, no config): DaR (epoch-level), online
minibatch selection (step-level), the distributed record gathering. The methods that use them, and the
one registry of methods, are in ``pretrain.methods``."""

from .dar import (
    DaRParams,
    DaRState,
    dar_transition,
    initial_state,
    keep_count,
    plan_subset_sizes,
    relative_cost,
    select_hardest,
    select_random,
)
from .distributed import gather_records
from .online import OnlineParams, OnlineSelector, rank_probabilities, score_losses, select_by_rank
from .samplers import DaRSampler, FixedSubsetSampler, SubsetSampler, UniformSampler, derive_seed

__all__ = [
    "DaRParams",
    "DaRSampler",
    "DaRState",
    "FixedSubsetSampler",
    "OnlineParams",
    "OnlineSelector",
    "SubsetSampler",
    "UniformSampler",
    "derive_seed",
    "dar_transition",
    "gather_records",
    "initial_state",
    "keep_count",
    "plan_subset_sizes",
    "rank_probabilities",
    "relative_cost",
    "score_losses",
    "select_by_rank",
    "select_hardest",
    "select_random",
]
