"""Sample selection for pre-training: DaR (epoch-level) and online minibatch selection (step-level)."""

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
from .samplers import (
    SAMPLERS,
    DaRSampler,
    FixedSubsetSampler,
    SubsetSampler,
    UniformSampler,
    build_sampler,
    register_sampler,
)

__all__ = [
    "SAMPLERS",
    "DaRParams",
    "DaRSampler",
    "DaRState",
    "FixedSubsetSampler",
    "OnlineParams",
    "OnlineSelector",
    "SubsetSampler",
    "UniformSampler",
    "build_sampler",
    "dar_transition",
    "gather_records",
    "initial_state",
    "keep_count",
    "plan_subset_sizes",
    "rank_probabilities",
    "register_sampler",
    "relative_cost",
    "score_losses",
    "select_by_rank",
    "select_hardest",
    "select_random",
]
