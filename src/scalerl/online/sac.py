"""Soft actor-critic for online continuous control, with an optional BRO critic.

SAC (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"): twin critics with Polyak-averaged
targets, a tanh-Gaussian actor and an entropy coefficient tuned toward a target entropy::

    critic: L(Q_j) = E[(Q_j(s, a) - y)^2],  y = r + gamma * (1 - d) * (min_j Qbar_j(s', a') - lambda log pi(a' | s'))
    actor:  L(pi)  = E[lambda log pi(a~ | s) - min_j Q_j(s, a~)]
    entropy:  L(lambda) = lambda * (H - H_target),  H = -E log pi(a~ | s),  H_target = -k * dim(A)

with ``a' ~ pi(. | s')`` and reparameterised ``a~ ~ pi(. | s)``. The critic is either a GELU MLP
(``critic_depth`` hidden layers of ``critic_width``) or a BRO network (Nauman et al. 2024, "Bigger, Regularized,
Optimistic"): a dense layer with layer norm followed by ``critic_depth`` residual blocks
``x + LN(W2 relu(LN(W1 x)))``, so the critic size N scales with width and depth.

Two regularisers of the follow-up axes (Rybkin et al. 2025 name weight decay and resets as the next ones):

- decoupled weight decay (Loshchilov & Hutter 2019, AdamW, as optax's ``adamw`` and BRO's optimiser):
  ``theta <- theta - lr * (adam_direction + wd * theta)`` on every critic (``critic_weight_decay``) or actor
  (``actor_weight_decay``) parameter, never on the entropy coefficient (BRO: plain Adam for the temperature);
- periodic resets (Nikishin et al. 2022, "The Primacy Bias in Deep Reinforcement Learning"; BRO): every
  ``reset_every`` updates the chosen networks get freshly initialised parameters and a fresh optimiser state, the
  critic's target network restarts from the new critic, and the replay buffer is kept (:meth:`SACAgent.reset`; the
  training loop counts the updates).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl.agents.common import adam_step, optimizer, polyak_update
from scalerl.errors import ScalerlError
from scalerl.networks import MLP, GaussianActor, default_init, ensemble
from scalerl.ranges import agent_flag, check_ranges


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Hyper-parameters of online SAC (defaults: Haarnoja et al. 2018 with jaxrl's target entropy)."""

    lr: float = 3e-4
    """Adam learning rate eta (actor, critics and entropy coefficient)."""
    batch_size: int = 256
    """Transitions per gradient update (B)."""
    actor_hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor MLP."""
    critic_type: str = "mlp"
    """Critic architecture: ``mlp`` (plain MLP) or ``bro`` (residual blocks with layer norm; Nauman et al. 2024)."""
    critic_width: int = 256
    """Hidden width of each critic (the critic size N scales with width and depth)."""
    critic_depth: int = 2
    """Hidden layers of the MLP critic, or residual blocks of the BRO critic."""
    num_qs: int = 2
    """Critics in the ensemble; targets take their minimum."""
    discount: float = 0.99
    """Discount factor gamma."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    init_entropy_coef: float = 1.0
    """Initial entropy coefficient lambda (tuned in log space)."""
    target_entropy_multiplier: float = 0.5
    """Target entropy ``-target_entropy_multiplier * action_dim``."""
    critic_weight_decay: float = 0.0
    """Decoupled (AdamW) weight decay of the critics: ``theta -= lr * wd * theta`` per update (0: plain Adam; BRO
    uses 1e-4)."""
    actor_weight_decay: float = 0.0
    """Decoupled (AdamW) weight decay of the actor (0: plain Adam; BRO uses 1e-4). The entropy coefficient is never
    decayed."""
    reset_every: int = 0
    """Re-initialise the networks chosen by ``reset_networks`` after every this many gradient updates, keeping the
    replay buffer (Nikishin et al. 2022; 0: never)."""
    reset_networks: str = "both"
    """What a reset re-initialises (parameters and optimiser state): ``critic`` (critics and their targets),
    ``actor`` (actor and entropy coefficient) or ``both`` (a whole new agent, as Nikishin et al. 2022 and BRO do)."""

    RANGES = {
        "lr": "> 0",
        "batch_size": ">= 1",
        "actor_hidden_dims": ">= 1",
        "critic_width": ">= 1",
        "critic_depth": ">= 1",
        "num_qs": ">= 1",
        "discount": "(0, 1]",  # episodes end (terminal or truncated), so an undiscounted return is finite
        "tau": "(0, 1]",
        "init_entropy_coef": "> 0",  # tuned in log space
        "target_entropy_multiplier": "finite",
        "critic_weight_decay": ">= 0",
        "actor_weight_decay": ">= 0",
        "reset_every": ">= 0",
    }
    # The named flags of `scalerl online` (besides --agent.FIELD); errors name these, the other fields --agent.FIELD.
    NAMED_FLAGS = {
        "lr": "--lr",
        "batch_size": "--batch-size",
        "critic_type": "--critic",
        "critic_width": "--critic-width",
        "critic_depth": "--critic-depth",
        "discount": "--discount",
        "tau": "--tau",
    }

    def __post_init__(self):
        if self.critic_type not in ("mlp", "bro"):
            raise ScalerlError(f"--critic: expected 'mlp' or 'bro', got '{self.critic_type}'")
        if self.reset_networks not in RESET_NETWORKS:
            choices = ", ".join(f"'{name}'" for name in RESET_NETWORKS)
            raise ScalerlError(
                f"{agent_flag('reset_networks')}: expected one of {choices}, got '{self.reset_networks}'"
            )
        # Worded as `scalerl online` always has: --critic-width: expected >= 1, got 0.
        check_ranges(self, flag=lambda name: self.NAMED_FLAGS.get(name, agent_flag(name)), nouns=False)


RESET_NETWORKS = {
    "critic": ("critic",),
    "actor": ("actor", "log_entropy_coef"),
    "both": ("critic", "actor", "log_entropy_coef"),
}
"""The parameter groups (keys of ``SACAgent.params``) each ``reset_networks`` choice re-initialises."""


def sac_optimizer(config: SACConfig) -> optax.GradientTransformation:
    """The agent's optimiser over ``{"critic", "actor", "log_entropy_coef"}``.

    Without weight decay or resets it is :func:`scalerl.agents.common.optimizer` (one Adam over all parameters,
    the behaviour and checkpoint layout of runs made before these options). Otherwise each group has its own Adam
    state (``optax.multi_transform``), so a reset can restart one group's moments and step count, and the critic
    and actor groups add their decoupled decay as optax's ``adamw`` does (decay scaled by the learning rate).
    """
    if not (config.critic_weight_decay or config.actor_weight_decay or config.reset_every):
        return optimizer(config.lr)

    def adam_with_decay(weight_decay: float) -> optax.GradientTransformation:
        return optax.adamw(config.lr, weight_decay=weight_decay) if weight_decay else optax.adam(config.lr)

    transforms = {
        "critic": adam_with_decay(config.critic_weight_decay),
        "actor": adam_with_decay(config.actor_weight_decay),
        "log_entropy_coef": optax.adam(config.lr),
    }
    return optax.multi_transform(transforms, group_labels)


def group_labels(params: dict) -> dict:
    """Every leaf of ``params`` labelled with its top-level group name (``critic``, ``actor``, ``log_entropy_coef``)."""
    return {name: jax.tree.map(lambda _, label=name: label, group) for name, group in params.items()}


class BroCritic(nn.Module):
    """BRO critic ``Q(s, a)`` (Nauman et al. 2024): ``Dense-LN-ReLU``, ``depth`` residual blocks, a scalar head.

    Attributes:
        width: hidden width.
        depth: residual blocks ``x + LN(Dense(ReLU(LN(Dense(x)))))``.
    """

    width: int
    depth: int

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        """``[..., 1]`` values for inputs ``[..., dim]``."""
        x = nn.relu(nn.LayerNorm()(nn.Dense(self.width, kernel_init=default_init())(inputs)))
        for _ in range(self.depth):
            residual = nn.relu(nn.LayerNorm()(nn.Dense(self.width, kernel_init=default_init())(x)))
            x = x + nn.LayerNorm()(nn.Dense(self.width, kernel_init=default_init())(residual))
        return nn.Dense(1, kernel_init=default_init())(x)


class Critic(nn.Module):
    """An ensemble of ``num_qs`` critics ``Q_j(s, a)``; returns ``[num_qs, ...]``.

    Attributes:
        config: the :class:`SACConfig` (``critic_type``, ``critic_width``, ``critic_depth``, ``num_qs``).
    """

    config: SACConfig

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        inputs = jnp.concatenate([observations, actions], axis=-1)
        config = self.config
        if config.critic_type == "bro":
            values = ensemble(BroCritic, config.num_qs)(config.critic_width, config.critic_depth)(inputs)
        else:
            dims = (*([config.critic_width] * config.critic_depth), 1)
            values = ensemble(MLP, config.num_qs)(dims)(inputs)
        return values[..., 0]


def build_networks(config: SACConfig, action_dim: int) -> dict:
    """``critic`` (:class:`Critic`) and ``actor`` (tanh-Gaussian with state-dependent std, no goal input)."""
    actor = GaussianActor(
        config.actor_hidden_dims, action_dim, tanh_squash=True, const_std=False, state_dependent_std=True
    )
    return {"critic": Critic(config), "actor": actor}


def _no_goals(observations: jax.Array) -> jax.Array:
    """The empty goal ``[..., 0]`` that turns the goal-conditioned :class:`GaussianActor` into ``pi(a | s)``."""
    return jnp.zeros((*observations.shape[:-1], 0), observations.dtype)


class SACAgent(struct.PyTreeNode):
    """Online SAC agent; ``update`` is pure and returns a new agent.

    Attributes:
        params: ``{"critic", "actor", "log_entropy_coef"}``.
        target_params: ``{"critic"}`` (Polyak average, not optimised).
        opt_state: state of :func:`sac_optimizer` for ``params``.
        observation_dim: observation dimension.
        action_dim: action dimension.
        config: the :class:`SACConfig`.
    """

    params: dict
    target_params: dict
    opt_state: optax.OptState
    observation_dim: int = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)
    config: SACConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, observation_dim: int, action_dim: int, config: SACConfig) -> SACAgent:
        """A fresh agent for observations ``[observation_dim]`` and actions ``[action_dim]`` in ``[-1, 1]``."""
        critic_key, actor_key = jax.random.split(key)
        observations, actions = jnp.zeros((1, observation_dim)), jnp.zeros((1, action_dim))
        networks = build_networks(config, action_dim)
        params = {
            "critic": networks["critic"].init(critic_key, observations, actions),
            "actor": networks["actor"].init(actor_key, observations, _no_goals(observations)),
            "log_entropy_coef": jnp.log(jnp.asarray(config.init_entropy_coef, jnp.float32)),
        }
        return cls(
            params=params,
            target_params={"critic": params["critic"]},
            opt_state=sac_optimizer(config).init(params),
            observation_dim=observation_dim,
            action_dim=action_dim,
            config=config,
        )

    def reset(self, key: jax.Array) -> SACAgent:
        """The agent with the groups of ``config.reset_networks`` re-initialised from ``key`` (Nikishin et al. 2022).

        Each reset group gets the parameters and optimiser state of ``SACAgent.create(key, ...)``, so resetting
        ``both`` gives exactly a new agent; a reset critic also restarts its target network from the new critic.
        Needs the per-group optimiser of :func:`sac_optimizer` (``reset_every > 0``).
        """
        fresh = SACAgent.create(key, self.observation_dim, self.action_dim, self.config)
        groups = RESET_NETWORKS[self.config.reset_networks]
        params = {name: fresh.params[name] if name in groups else value for name, value in self.params.items()}
        target_params = {
            name: fresh.target_params[name] if name in groups else value for name, value in self.target_params.items()
        }
        inner = self.opt_state.inner_states
        opt_state = self.opt_state._replace(
            inner_states={name: fresh.opt_state.inner_states[name] if name in groups else inner[name] for name in inner}
        )
        return self.replace(params=params, target_params=target_params, opt_state=opt_state)

    def policy(self, params: dict, observations: jax.Array):
        """The action distribution ``pi(. | s)`` for observations ``[..., obs_dim]``."""
        return self.networks["actor"].apply(params["actor"], observations, _no_goals(observations))

    def td_target(self, batch: dict, key: jax.Array) -> jax.Array:
        """Soft TD target ``y`` ``[B]`` with the target critics and a fresh next action."""
        next_actions, next_log_prob = self.policy(self.params, batch["next_observations"]).sample_and_log_prob(key)
        next_q = self.networks["critic"].apply(self.target_params["critic"], batch["next_observations"], next_actions)
        coef = jnp.exp(self.params["log_entropy_coef"])
        next_value = next_q.min(axis=0) - coef * next_log_prob  # [B]
        target = batch["rewards"] + self.config.discount * (1.0 - batch["terminals"]) * next_value
        return jax.lax.stop_gradient(target)

    def critic_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Squared TD error summed over the critics, averaged over the batch."""
        target = self.td_target(batch, key)
        q = self.networks["critic"].apply(params["critic"], batch["observations"], batch["actions"])  # [E, B]
        loss = jnp.mean((q - target) ** 2, axis=1).sum()
        return loss, {"critic/loss": loss, "critic/q_mean": q.mean(), "critic/target_mean": target.mean()}

    def actor_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Entropy-regularised Q maximisation and the entropy coefficient's Lagrangian loss."""
        actions, log_prob = self.policy(params, batch["observations"]).sample_and_log_prob(key)  # [B, A], [B]
        q = self.networks["critic"].apply(self.params["critic"], batch["observations"], actions).min(axis=0)  # [B]
        log_coef = params["log_entropy_coef"]
        coef = jnp.exp(jax.lax.stop_gradient(log_coef))
        entropy = -jax.lax.stop_gradient(log_prob).mean()
        target_entropy = -self.config.target_entropy_multiplier * self.action_dim
        coef_loss = jnp.exp(log_coef) * (entropy - target_entropy)
        sac_loss = jnp.mean(coef * log_prob - q)
        return sac_loss + coef_loss, {
            "actor/loss": sac_loss,
            "actor/entropy": entropy,
            "actor/entropy_coef": coef,
            "actor/q_mean": q.mean(),
        }

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Critic + actor + entropy coefficient losses; gradients flow only into ``params``."""
        critic_key, actor_key = jax.random.split(key)
        critic_loss, critic_info = self.critic_loss(batch, params, critic_key)
        actor_loss, actor_info = self.actor_loss(batch, params, actor_key)
        return critic_loss + actor_loss, {**critic_info, **actor_info}

    def update(self, batch: dict, key: jax.Array) -> tuple[SACAgent, dict]:
        """One optimiser step on :meth:`total_loss` (Adam, AdamW with weight decay), then the Polyak update of the
        target critics. Pure; the caller jits."""
        tx = sac_optimizer(self.config)
        params, opt_state, info = adam_step(
            self.total_loss, batch, self.params, self.opt_state, self.config.lr, key, tx
        )
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(params=params, target_params=target_params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, key: jax.Array, deterministic: bool = False) -> jax.Array:
        """Actions ``[..., A]`` in ``[-1, 1]``: a sample of ``pi(. | s)``, or its mode when ``deterministic``."""
        dist = self.policy(self.params, observations)
        return dist.mode() if deterministic else jnp.clip(dist.sample(key), -1.0, 1.0)
