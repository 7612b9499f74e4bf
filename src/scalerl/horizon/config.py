"""The settings of ``scalerl diagnose`` (a module without JAX, so the command line builds its flags quickly)."""

from __future__ import annotations

import dataclasses

from scalerl.ranges import Range, check_ranges, option_flag


@dataclasses.dataclass(frozen=True)
class DiagnoseConfig:
    """How a trained run's values are compared with the exact ones (:mod:`scalerl.horizon.diagnostics`)."""

    bins: int = 10
    """Distance bins: equal widths from 1 step to the task's longest shortest path."""
    pairs_per_bin: int = 256
    """(state, goal) pairs drawn per bin (uniformly among the pairs of the task whose true distance falls in it)."""
    rollouts_per_bin: int = 8
    """Episodes of the agent's policy per bin (the first pairs of the bin), for success by distance (0: none)."""
    seed: int = 0
    """Seed of the pairs and of the rollouts' policy keys."""
    value_floor: float = 1e-6
    """Values (0/1 reward scale) below this are read as this, so their implied distance stays finite."""
    checkpoint: int = 0
    """The checkpoint's step (0: the latest)."""

    RANGES = {
        **dict.fromkeys(("bins", "pairs_per_bin"), Range(">= 1", "a positive integer")),
        **dict.fromkeys(("rollouts_per_bin", "seed", "checkpoint"), Range(">= 0", "a non-negative integer")),
        "value_floor": "(0, 1)",
    }

    def __post_init__(self):
        check_ranges(self, flag=option_flag)
