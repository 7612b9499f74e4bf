"""Quasimetric RL (QRL).

"Optimal Goal-Reaching Reinforcement Learning via Quasimetric Learning" (Wang, Torralba, Isola & Zhang 2023), as
implemented by OGBench (Park et al. 2024). The value is ``V(s, g) = -d(s, g)``, a learned quasimetric: an interval
quasimetric embedding (IQE; Wang & Isola 2022) of latents ``z = phi(s)``, so ``d(s, s) = 0`` and the triangle
inequality hold by construction. Among quasimetrics, the optimal cost-to-go is the *largest* one that respects
every one-step cost, so QRL maximises distances between random pairs subject to the local constraint
``d(s, s') <= 1`` (one step costs 1) with a Lagrange multiplier ``lambda >= 0``::

    objective:  L(d)      = E_{s, g random}[ 100 * softplus(5 - d(s, g) / 100) ] + stopgrad(lambda) * C
    constraint: C         = E_{(s, s')}[ relu(d(s, s') - 1)^2 ]  (+ E[ 1(s reaches g) d(s, g)^2 ] for oracle goals)
    dual:       L(lambda) = lambda * (eps - stopgrad(C)),    lambda = exp(log_lambda)
    dynamics:   z^' = z + f(z, a),   L(f, phi) = E[ d(phi(s'), z^') + d(z^', phi(s')) ] / 2
    actor (DDPG+BC): L(pi) = -E[ Q ] / stopgrad(E|Q|) - alpha E[ log pi(a | s, g_a) ],
                     Q = -d(z + f(z, mu(s, g_a)), g_a)
    actor (AWR):     L(pi) = -E[ min(exp(alpha (d(s, g_a) - d(s', g_a))), 100) log pi(a | s, g_a) ]

The softplus shaping (a linear reward for growing distances that saturates beyond ~500 steps) and ``eps = 0.05``
follow OGBench; the original objective is the same up to the transform. The step cost is the constant 1 (OGBench
writes it as ``-r`` with ``gc_negative`` rewards, which is 1 except on the rare rows where the random goal is the
state itself). Distances are gamma-free step counts: the agent's :meth:`QRLAgent.value` is ``-d`` (the
``gc_negative`` convention with ``gamma -> 1``), not a discounted value, so it sets ``value_in_reward_units = False``.

Goals: with ``goal_rep='observation'`` goals are states and share the encoder ``phi``. With oracle goal
representations a separate encoder ``psi(g)`` maps goals into the same latent space, and the constraint adds
``d(s, g) <= 0`` on rows whose goal is the state itself (``value_p_curgoal > 0``), which ties ``psi(rep(s))`` to
``phi(s)`` (by the triangle inequality, a goal is then never farther than the states that achieve it).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl.agents.common import adam_step, optimizer
from scalerl.agents.config import AgentConfig
from scalerl.networks import IQE, MLP, GaussianActor
from scalerl.sampling import ValueGoalConfig


@dataclasses.dataclass(frozen=True)
class QRLConfig(ValueGoalConfig, AgentConfig):
    """Hyper-parameters of QRL (defaults: OGBench, Park et al. 2024; ``alpha`` is tuned per dataset there).

    ``lr`` is also the learning rate of the log Lagrange multiplier.
    """

    hidden_dims: tuple[int, ...] = (512, 512, 512)
    value_p_curgoal: float = 0.1
    """Probability that a value goal is the current state (anchors oracle goals; OGBench: 0 with state goals)."""
    value_p_trajgoal: float = 0.0
    value_p_randomgoal: float = 0.9
    """Probability that a value goal is a random dataset state (the pairs whose distance is maximised)."""
    value_geom_sample: bool = True
    actor_p_trajgoal: float = 1.0
    actor_p_randomgoal: float = 0.0
    actor_geom_sample: bool = False
    discount: float = 0.99
    """Only the parameter of geometric goal offsets (QRL's distances are undiscounted)."""
    latent_dim: int = 512
    """Size of the latent ``phi(s)`` the quasimetric is computed on."""
    component_dim: int = 8
    """IQE coordinates per component (``latent_dim / component_dim`` components)."""
    actor_layer_norm: bool = False
    """Layer norm in the actor too (OGBench's actor has none)."""
    eps: float = 0.05
    """Allowed mean squared violation of the local constraint ``d(s, s') <= 1``."""
    actor_loss: str = "ddpgbc"
    """Policy extraction: ``ddpgbc`` (through the latent dynamics model) or ``awr`` (no dynamics model)."""
    alpha: float = 0.003
    """BC coefficient of DDPG+BC, or the AWR inverse temperature."""
    const_std: bool = True
    """Fix the actor's standard deviation to 1 (DDPG+BC then uses the mean action)."""
    temperature: float = 0.0
    """Standard-deviation multiplier when sampling actions (0: the mean action, as OGBench evaluates)."""

    RANGES = {"latent_dim": ">= 1", "component_dim": ">= 1", "eps": ">= 0", "alpha": ">= 0", "temperature": ">= 0"}

    def __post_init__(self):
        super().__post_init__()
        if self.actor_loss not in ("awr", "ddpgbc"):
            raise ValueError(f"actor_loss: expected 'awr' or 'ddpgbc', got '{self.actor_loss}'")
        if self.latent_dim % self.component_dim:
            raise ValueError(f"latent_dim: expected a multiple of component_dim={self.component_dim}")
        if self.goal_rep == "oracle" and self.value_p_curgoal <= 0:
            raise ValueError("value_p_curgoal: oracle goals need current-state value goals to anchor their encoder")


def build_networks(config: QRLConfig, action_dim: int) -> dict:
    """``encoder`` phi(s), ``goal_encoder`` psi(g) (oracle goals), ``iqe``, ``dynamics`` f(z, a) (DDPG+BC), actor."""
    latent_mlp = MLP((*config.hidden_dims, config.latent_dim), layer_norm=config.layer_norm)
    networks = {
        "encoder": latent_mlp,
        "iqe": IQE(config.component_dim),
        "actor": GaussianActor(
            config.hidden_dims, action_dim, layer_norm=config.actor_layer_norm, const_std=config.const_std
        ),
    }
    if config.goal_rep == "oracle":
        networks["goal_encoder"] = latent_mlp
    if config.actor_loss == "ddpgbc":
        networks["dynamics"] = latent_mlp
    return networks


class QRLAgent(struct.PyTreeNode):
    """QRL agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: ``{"encoder", "iqe", "actor", "log_lambda"}`` plus ``"goal_encoder"`` (oracle goals) and
            ``"dynamics"`` (DDPG+BC).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        config: the :class:`QRLConfig`.
    """

    rng: jax.Array
    params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    config: QRLConfig = struct.field(pytree_node=False)

    # ``value`` is ``-d`` in steps, not a discounted value in reward units: the generic value probes skip it.
    value_in_reward_units = False

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim)

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: QRLConfig) -> QRLAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`)."""
        keys = dict(zip(("rng", "encoder", "goal_encoder", "iqe", "dynamics", "actor"), jax.random.split(key, 6)))
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        networks = build_networks(config, actions.shape[-1])
        latents = jnp.zeros((*observations.shape[:-1], config.latent_dim))
        params = {
            "encoder": networks["encoder"].init(keys["encoder"], observations),
            "iqe": networks["iqe"].init(keys["iqe"], latents, latents),
            "actor": networks["actor"].init(keys["actor"], observations, goals),
            "log_lambda": jnp.zeros(()),
        }
        if "goal_encoder" in networks:
            params["goal_encoder"] = networks["goal_encoder"].init(keys["goal_encoder"], goals)
        if "dynamics" in networks:
            params["dynamics"] = networks["dynamics"].init(
                keys["dynamics"], jnp.concatenate([latents, actions], axis=-1)
            )
        return cls(
            rng=keys["rng"],
            params=params,
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            config=config,
        )

    def encode(self, params: dict, observations: jax.Array) -> jax.Array:
        """State latents ``phi(s)`` ``[B, latent_dim]``."""
        return self.networks["encoder"].apply(params["encoder"], observations)

    def encode_goals(self, params: dict, goals: jax.Array) -> jax.Array:
        """Goal latents ``[B, latent_dim]``: ``phi(g)`` for state goals, ``psi(g)`` for oracle goals."""
        if self.config.goal_rep == "oracle":
            return self.networks["goal_encoder"].apply(params["goal_encoder"], goals)
        return self.encode(params, goals)

    def latent_distance(self, params: dict, source: jax.Array, target: jax.Array) -> jax.Array:
        """IQE distance ``[B]`` between latents."""
        return self.networks["iqe"].apply(params["iqe"], source, target)

    def predict_next(self, params: dict, latents: jax.Array, actions: jax.Array) -> jax.Array:
        """Latent dynamics ``z + f(z, a)`` ``[B, latent_dim]``."""
        return latents + self.networks["dynamics"].apply(params["dynamics"], jnp.concatenate([latents, actions], -1))

    def value_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """Softplus-shaped distance maximisation under the Lagrangian local constraint, and the multiplier's loss."""
        latents = self.encode(params, batch["observations"])
        d_goal = self.latent_distance(params, latents, self.encode_goals(params, batch["value_goals"]))  # [B]
        d_step = self.latent_distance(params, latents, self.encode(params, batch["next_observations"]))  # [B]
        objective = jnp.mean(100.0 * jax.nn.softplus(5.0 - d_goal / 100.0))
        # One step costs 1; a goal that the state achieves (mask 0) costs 0 (zero by construction for state goals).
        constraint = jnp.mean(jax.nn.relu(d_step - 1.0) ** 2) + jnp.mean((1.0 - batch["masks"]) * d_goal**2)
        multiplier = jnp.exp(params["log_lambda"])
        dual_loss = multiplier * (self.config.eps - jax.lax.stop_gradient(constraint))
        loss = objective + jax.lax.stop_gradient(multiplier) * constraint + dual_loss
        return loss, {
            "value/loss": loss,
            "value/objective": objective,
            "value/constraint": constraint,
            "value/lambda": multiplier,
            "value/d_goal_mean": d_goal.mean(),
            "value/d_goal_max": d_goal.max(),
            "value/d_step_mean": d_step.mean(),
            "value/d_step_max": d_step.max(),
        }

    def dynamics_loss(self, batch: dict, params: dict) -> tuple[jax.Array, dict]:
        """Symmetrised quasimetric error of the latent dynamics (trains the encoder too)."""
        latents = self.encode(params, batch["observations"])
        next_latents = self.encode(params, batch["next_observations"])
        predicted = self.predict_next(params, latents, batch["actions"])
        forward = self.latent_distance(params, next_latents, predicted)
        backward = self.latent_distance(params, predicted, next_latents)
        loss = jnp.mean(forward + backward) / 2.0
        return loss, {"dynamics/loss": loss}

    def actor_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """DDPG+BC through the latent dynamics, or AWR on ``d(s, g) - d(s', g)`` (the distance networks held fixed)."""
        observations, goals, actions = batch["observations"], batch["actor_goals"], batch["actions"]
        dist = self.networks["actor"].apply(params["actor"], observations, goals)
        log_prob = dist.log_prob(actions)  # [B]
        info = {"actor/bc_log_prob": log_prob.mean(), "actor/mse": jnp.mean((dist.mode() - actions) ** 2)}
        goal_latents = self.encode_goals(self.params, goals)
        latents = self.encode(self.params, observations)
        if self.config.actor_loss == "awr":
            next_latents = self.encode(self.params, batch["next_observations"])
            advantages = self.latent_distance(self.params, latents, goal_latents) - self.latent_distance(
                self.params, next_latents, goal_latents
            )  # [B]
            weights = jnp.minimum(jnp.exp(self.config.alpha * advantages), 100.0)
            loss = -jnp.mean(weights * log_prob)
            info.update({"actor/adv_mean": advantages.mean(), "actor/weight_mean": weights.mean()})
        else:
            policy_actions = jnp.clip(dist.mode() if self.config.const_std else dist.sample(key), -1.0, 1.0)
            predicted = self.predict_next(self.params, latents, policy_actions)
            q = -self.latent_distance(self.params, predicted, goal_latents)  # [B]
            q_loss = -q.mean() / jax.lax.stop_gradient(jnp.abs(q).mean() + 1e-6)
            bc_loss = -self.config.alpha * log_prob.mean()
            loss = q_loss + bc_loss
            info.update({"actor/q_loss": q_loss, "actor/bc_loss": bc_loss, "actor/q_mean": q.mean()})
        info["actor/loss"] = loss
        return loss, info

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Value (+ dual) + dynamics + actor losses; returns ``(loss, info)``."""
        loss, info = self.value_loss(batch, params)
        if self.config.actor_loss == "ddpgbc":
            dynamics_loss, dynamics_info = self.dynamics_loss(batch, params)
            loss, info = loss + dynamics_loss, {**info, **dynamics_info}
        actor_loss, actor_info = self.actor_loss(batch, params, key)
        return loss + actor_loss, {**info, **actor_info}

    def update(self, batch: dict) -> tuple[QRLAgent, dict]:
        """One Adam step on :meth:`total_loss`. Pure; the training loop jits it."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        return self.replace(rng=rng, params=params, opt_state=opt_state), info

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``."""
        dist = self.networks["actor"].apply(self.params["actor"], observations, goals)
        return jnp.clip(dist.sample(key, self.config.temperature), -1.0, 1.0)

    def distance(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """The learned quasimetric ``d(s, g)`` ``[B]`` in environment steps."""
        latents = self.encode(self.params, observations)
        return self.latent_distance(self.params, latents, self.encode_goals(self.params, goals))

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V(s, g) = -d(s, g)`` ``[B]``: minus the steps to the goal (undiscounted; not in reward units)."""
        return -self.distance(observations, goals)
