"""Goal-conditioned behaviour cloning (GCBC) with a Gaussian policy.

The GCBC baseline of OGBench (Park et al. 2024, "OGBench: Benchmarking Offline Goal-Conditioned RL"), after
Ghosh et al. (2021) and Lynch et al. (2020): maximum likelihood of the dataset action under a Gaussian policy whose
goal ``g`` is a future state of the same trajectory (hindsight relabelling)::

    L(pi) = -E[ log pi(a | s, g) ],   pi(. | s, g) = N(mu(s, g), diag(sigma^2))

With ``const_std`` (OGBench's default) ``sigma = 1`` and the loss is half the squared error ``||mu - a||^2`` plus a
constant. Actions are ``mu + temperature * sigma * eps``, clipped to ``[-1, 1]`` (OGBench evaluates at temperature 0).
There is no value function.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl.agents.common import adam_step, optimizer
from scalerl.agents.config import AgentConfig
from scalerl.networks import GaussianActor
from scalerl.sampling import ActorGoalConfig


@dataclasses.dataclass(frozen=True)
class GCBCConfig(ActorGoalConfig, AgentConfig):
    """Hyper-parameters of GCBC (defaults: OGBench, Park et al. 2024): policy goals from the same trajectory."""

    hidden_dims: tuple[int, ...] = (512, 512, 512)
    layer_norm: bool = False
    """Layer norm after each hidden activation (OGBench's actor has none)."""
    actor_p_trajgoal: float = 1.0
    actor_p_randomgoal: float = 0.0
    actor_geom_sample: bool = False
    discount: float = 0.99
    const_std: bool = True
    """Fix the standard deviation to 1 (otherwise learn one log-std per action dimension)."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling actions (0: the mean action, as OGBench evaluates)."""

    RANGES = {"temperature": ">= 0"}


def build_actor(config: GCBCConfig, action_dim: int) -> GaussianActor:
    """The Gaussian policy ``pi(a | s, g)``."""
    return GaussianActor(config.hidden_dims, action_dim, layer_norm=config.layer_norm, const_std=config.const_std)


class GCBCAgent(struct.PyTreeNode):
    """GCBC agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"actor": ...}``.
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`GCBCConfig`.
    """

    rng: jax.Array
    params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: GCBCConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: GCBCConfig) -> GCBCAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        rng, init_key = jax.random.split(key)
        action_dim = example_batch["actions"].shape[-1]
        actor = build_actor(config, action_dim)
        params = {"actor": actor.init(init_key, example_batch["observations"], example_batch["actor_goals"])}
        opt_state = optimizer(config.lr).init(params)
        return cls(rng=rng, params=params, opt_state=opt_state, action_dim=action_dim, config=config)

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Negative log-likelihood of the dataset actions; returns ``(loss, info)`` (``key`` is unused)."""
        dist = build_actor(self.config, self.action_dim).apply(
            params["actor"], batch["observations"], batch["actor_goals"]
        )
        log_prob = dist.log_prob(batch["actions"])  # [B]
        loss = -log_prob.mean()
        return loss, {
            "actor/loss": loss,
            "actor/mse": jnp.mean((dist.mode() - batch["actions"]) ** 2),
            "actor/std": jnp.exp(dist.log_stds).mean(),
        }

    def update(self, batch: dict) -> tuple[GCBCAgent, dict]:
        """One Adam step on :meth:`total_loss`. Pure; the training loop jits it."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        return self.replace(rng=rng, params=params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        dist = build_actor(self.config, self.action_dim).apply(self.params["actor"], observations, goals)
        return jnp.clip(dist.sample(key, self.config.temperature), -1.0, 1.0)
