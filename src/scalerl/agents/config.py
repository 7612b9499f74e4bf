"""Config fields the agents share, each written once with its docstring: optimiser, networks, target networks.

An agent's config inherits :class:`AgentConfig`, :class:`TargetNetworkConfig` when it keeps target networks, and the
goal-sampling field groups of :mod:`scalerl.sampling` it uses (:class:`~scalerl.sampling.ActorGoalConfig`,
:class:`~scalerl.sampling.ValueGoalConfig`, ...). It restates only the fields whose default differs;
:func:`scalerl.overrides.field_docs` finds each field's docstring in whichever class writes one.

Each class declares the ranges of the numeric fields it writes (``RANGES``, :mod:`scalerl.ranges`);
:meth:`AgentConfig.__post_init__` checks them all, so an agent's ``__post_init__`` starts with
``super().__post_init__()``.
"""

from __future__ import annotations

import dataclasses

from scalerl.ranges import check_ranges


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Fields of every agent (defaults: Park et al. 2025)."""

    lr: float = 3e-4
    """Adam learning rate."""
    batch_size: int = 1024
    """Transitions per gradient update."""
    hidden_dims: tuple[int, ...] = (1024, 1024, 1024, 1024)
    """Hidden layer sizes of every MLP of the agent."""
    layer_norm: bool = True
    """Layer norm after each hidden activation (in the actor too, unless the agent has ``actor_layer_norm``)."""

    RANGES = {"lr": "> 0", "batch_size": ">= 1", "hidden_dims": ">= 1"}

    def __post_init__(self):
        # Every declared range of the agent's config, its bases' included (one-line errors naming --agent.FIELD).
        check_ranges(self)


@dataclasses.dataclass(frozen=True)
class TargetNetworkConfig:
    """Fields of agents with target networks."""

    tau: float = 0.005
    """Polyak rate of the target networks (``target <- tau * online + (1 - tau) * target`` after each update)."""

    RANGES = {"tau": "(0, 1]"}
