"""Recursive SHARSA: a SHARSA-style hierarchy of ``levels`` levels, level ``i`` working ``subgoal_steps ** i`` ahead.

"Horizon Reduction Makes RL Scalable" (Park et al. 2025) reduce the horizon once: SHARSA's high level proposes subgoals
``k = subgoal_steps`` steps ahead, ranked by a subgoal-level SARSA critic, and a flow BC policy acts toward them. The
paper asks for hierarchies of more than two levels; this agent applies the same reduction recursively (it is not in
the paper or its code). With ``L = levels`` and ``h_i = subgoal_steps ** i``::

    level L-1 (top):   w_{L-1} ~ pi_{L-1}(w | s, g)       a subgoal h_{L-1} steps ahead toward the goal g
    level i (0<i<L-1): w_i     ~ pi_i(w | s, w_{i+1})     a subgoal h_i steps ahead toward the subgoal of level i+1
    level 0:           a       ~ pi_0(a | s, w_1)         an action toward the subgoal of level 1

Every subgoal level ``i >= 1`` has SHARSA's value and critic at its own time scale, over ``h_i``-step chunks
``(s_t, w^i_t, s_{t+h_i})`` toward its value goals ``g^i`` (:func:`scalerl.sampling.level_targets`)::

    critic: L(Q^i_j) = E[ BCE(Q^i_j(s_t, w^i_t, g^i), R^i_t + gamma^{k^i_t} m^i_t sigmoid(V^i(s_{t+h_i}, g^i))) ]
    value:  L(V^i)   = E[ BCE(V^i(s_t, g^i), agg_j sigmoid(Qbar^i_j(s_t, w^i_t, g^i))) ]          (SARSA)
    policy: flow BC of the dataset state h_i ahead given (s_t, actor goal of level i)

and proposes ``num_samples`` subgoals at acting time, keeping the one with the highest ``min_j Q^i_j`` (rejection
sampling). Level 0 is flow BC of actions toward the dataset state ``h_1`` ahead, without a value, as in SHARSA.

* **Discount.** ``gamma`` per environment step at every level: a chunk of ``k_t <= h_i`` real steps bootstraps with
  ``gamma ** k_t`` (the reference's ``discount ** high_value_subgoal_steps``), so every level's ``V^i(s, g)``
  estimates the same ``gamma ** d(s, g)`` and one ground truth serves every level's diagnostics.
* **Value goals.** The top level's are the ``value_p_*`` goals (SHARSA's). A lower level ``i`` only ranks subgoals
  toward the subgoal of level ``i + 1``, about ``h_{i+1}`` steps away; by default (``scaled_level_goals``) it learns
  on goals at that scale (the ``value_p_*`` mix with geometric offsets of mean ``h_{i+1}``, as double SHARSA's low
  level does with mean ``subgoal_steps``), so each level bootstraps about ``subgoal_steps`` times toward its goals;
  ``--agent.scaled-level-goals false`` trains every level on the top level's goals instead.
* **Why a value per subgoal level.** Each level ranks its own proposals; the top critic's "action" is a subgoal
  ``h_{L-1}`` ahead, so it has never seen the nearer subgoals of lower levels.
* ``L = 2`` is SHARSA exactly: the same parameter names, key splits, losses, infos and actions
  (:mod:`scalerl.agents.sharsa`; tested bit for bit). ``L = 1`` is the flat limit: level 0 is the top, with a one-step
  SARSA value ``V(s, g)`` and critic ``Q(s, a, g)`` on the dataset's transitions and rejection sampling of
  ``num_samples`` flow BC actions toward the goal by ``min_j Q_j``.

Networks are named by role: the top level owns ``value``, ``critic`` and ``high_actor`` (``low_actor`` at ``L = 1``),
level 0 ``low_actor``, and a middle level ``i`` ``level{i}_value``, ``level{i}_critic`` and ``level{i}_actor``; their
infos are namespaced the same way.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from scalerl import losses
from scalerl.agents.common import adam_step, aggregate, optimizer, polyak_update
from scalerl.agents.sharsa import SHARSAConfig, sarsa_value_loss
from scalerl.errors import ScalerlError
from scalerl.networks import GCValue, VelocityField, euler_sample
from scalerl.ranges import agent_flag
from scalerl.sampling import LevelsConfig

MAX_TOP_HORIZON = 100_000
"""The largest top-level horizon ``subgoal_steps ** (levels - 1)``: the sampler's chunk holds ``batch_size`` times that
many steps."""


@dataclasses.dataclass(frozen=True)
class RSHARSAConfig(LevelsConfig, SHARSAConfig):
    """Hyper-parameters of recursive SHARSA: SHARSA's (defaults: Park et al. 2025) plus ``levels`` (3) and
    ``scaled_level_goals``. ``levels = 2`` is SHARSA."""

    def __post_init__(self):
        super().__post_init__()
        horizon = self.subgoal_steps ** (self.levels - 1)
        if horizon > MAX_TOP_HORIZON:
            raise ScalerlError(
                f"{agent_flag('levels')}: expected subgoal_steps ** (levels - 1) <= {MAX_TOP_HORIZON} steps, got "
                f"{self.subgoal_steps} ** {self.levels - 1} = {horizon}"
            )


def levels_with_values(levels: int) -> tuple[int, ...]:
    """The levels with a value and a critic: every subgoal level ``1 .. levels - 1``, or level 0 alone when flat."""
    return tuple(range(1, levels)) if levels >= 2 else (0,)


def level_names(level: int, levels: int) -> dict:
    """The network names of ``level``: ``{"value", "critic", "actor"}`` (SHARSA's names at the top and at level 0)."""
    top = level == levels - 1
    if level == 0:
        actor = "low_actor"
    else:
        actor = "high_actor" if top else f"level{level}_actor"
    return {
        "value": "value" if top else f"level{level}_value",
        "critic": "critic" if top else f"level{level}_critic",
        "actor": actor,
    }


def build_networks(config: RSHARSAConfig, action_dim: int, goal_dim: int) -> dict:
    """Per level: a value V(s, g) and two critic heads Q(s, w, g) (logits) for the levels of
    :func:`levels_with_values`, and a velocity field over subgoals (levels >= 1) or actions (level 0)."""
    networks = {}
    for level in range(config.levels):
        names = level_names(level, config.levels)
        if level in levels_with_values(config.levels):
            networks[names["value"]] = GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=1)
            networks[names["critic"]] = GCValue(config.hidden_dims, layer_norm=config.layer_norm, num_ensembles=2)
        networks[names["actor"]] = VelocityField(
            config.hidden_dims, output_dim=goal_dim if level > 0 else action_dim, layer_norm=config.layer_norm
        )
    return networks


class RSHARSAAgent(struct.PyTreeNode):
    """Recursive SHARSA agent.

    Attributes:
        rng: key consumed by :meth:`update`.
        params: every level's networks (:func:`build_networks`; optimised).
        target_params: every critic (Polyak averages, not optimised).
        opt_state: Adam state of ``params``.
        action_dim: action dimension (from the example batch).
        goal_dim: goal (and subgoal) dimension (from the example batch).
        config: the :class:`RSHARSAConfig`.
    """

    rng: jax.Array
    params: dict
    target_params: dict
    opt_state: optax.OptState
    action_dim: int = struct.field(pytree_node=False)
    goal_dim: int = struct.field(pytree_node=False)
    config: RSHARSAConfig = struct.field(pytree_node=False)

    @property
    def networks(self) -> dict:
        """The modules (stateless; parameters live in ``params``)."""
        return build_networks(self.config, self.action_dim, self.goal_dim)

    @property
    def top_level(self) -> int:
        """The top level, ``levels - 1``: the one conditioned on the goal."""
        return self.config.levels - 1

    @property
    def value_levels(self) -> tuple[int, ...]:
        """The levels with a value (:func:`levels_with_values`), for per-level read-outs."""
        return levels_with_values(self.config.levels)

    def level_horizon(self, level: int) -> int:
        """Steps between a state and what ``level`` proposes: ``subgoal_steps ** level`` (1 at level 0)."""
        return self.config.subgoal_steps**level

    @classmethod
    def create(cls, key: jax.Array, example_batch: dict, config: RSHARSAConfig) -> RSHARSAAgent:
        """A fresh agent whose shapes come from ``example_batch`` (a batch of :func:`scalerl.sampling.sample_batch`).

        The top value, top critic, top actor and level-0 actor take SHARSA's keys; a middle level ``i`` splits
        ``fold_in(key, i)``.
        """
        rng, value_key, critic_key, high_key, low_key = jax.random.split(key, 5)
        observations, goals, actions = (
            example_batch["observations"],
            example_batch["value_goals"],
            example_batch["actions"],
        )
        times = actions[..., :1]
        networks = build_networks(config, actions.shape[-1], goals.shape[-1])
        params = {}
        for level in range(config.levels):
            names = level_names(level, config.levels)
            if level == config.levels - 1:
                keys = {"value": value_key, "critic": critic_key, "actor": high_key if level > 0 else low_key}
            elif level == 0:
                keys = {"actor": low_key}
            else:
                keys = dict(zip(("value", "critic", "actor"), jax.random.split(jax.random.fold_in(key, level), 3)))
            choices = goals if level > 0 else actions  # what the level proposes: subgoals or actions
            if level in levels_with_values(config.levels):
                params[names["value"]] = networks[names["value"]].init(keys["value"], observations, goals)
                params[names["critic"]] = networks[names["critic"]].init(keys["critic"], observations, goals, choices)
            params[names["actor"]] = networks[names["actor"]].init(keys["actor"], observations, goals, choices, times)
        critics = [level_names(level, config.levels)["critic"] for level in levels_with_values(config.levels)]
        return cls(
            rng=rng,
            params=params,
            target_params={name: params[name] for name in critics},
            opt_state=optimizer(config.lr).init(params),
            action_dim=actions.shape[-1],
            goal_dim=goals.shape[-1],
            config=config,
        )

    def value_transitions(self, batch: dict, level: int) -> dict:
        """The SARSA transitions of ``level``: ``goals``, ``choices`` (the dataset subgoal ``w_t``: the goal if
        reached inside the chunk, else the state ``h_i`` ahead; the dataset action at level 0), ``next_observations``
        (where the critic bootstraps), ``rewards``, ``masks`` and ``steps`` (``gamma ** steps`` discounts the
        bootstrap)."""
        if level == 0:
            return {
                "goals": batch["value_goals"],
                "choices": batch["actions"],
                "next_observations": batch["next_observations"],
                "rewards": batch["rewards"],
                "masks": batch["masks"],
                "steps": jnp.ones_like(batch["masks"]),
            }
        prefix = f"level{level}_"
        goals = batch[prefix + "value_goals"]
        reached = (batch[prefix + "masks"] == 0.0)[:, None]
        return {
            "goals": goals,
            "choices": jnp.where(reached, goals, batch[prefix + "subgoals"]),  # [B, goal_dim]
            "next_observations": batch[prefix + "subgoal_observations"],
            "rewards": batch[prefix + "rewards"],
            "masks": batch[prefix + "masks"],
            "steps": batch[prefix + "steps_taken"],
        }

    def value_loss(self, batch: dict, params: dict, level: int) -> tuple[jax.Array, dict]:
        """SARSA value of ``level``: BCE of ``V^i(s, g)`` toward its target critic at the dataset subgoal."""
        names, nets = level_names(level, self.config.levels), self.networks
        transitions = self.value_transitions(batch, level)
        observations, goals = batch["observations"], transitions["goals"]
        target_q = nets[names["critic"]].apply(
            self.target_params[names["critic"]], observations, goals, transitions["choices"]
        )  # [2, B]
        v_logits = nets[names["value"]].apply(params[names["value"]], observations, goals)  # [B]
        loss = jnp.mean(sarsa_value_loss(v_logits, target_q, self.config.q_agg))
        v = jax.nn.sigmoid(v_logits)
        name = names["value"]
        return loss, {
            f"{name}/loss": loss,
            f"{name}/v_mean": v.mean(),
            f"{name}/v_max": v.max(),
            f"{name}/v_min": v.min(),
        }

    def critic_loss(self, batch: dict, params: dict, level: int) -> tuple[jax.Array, dict]:
        """Chunk-level TD of ``level``: BCE of both heads toward ``R + gamma^k * m * sigmoid(V^i(s_{t+h_i}, g))``."""
        names, nets = level_names(level, self.config.levels), self.networks
        transitions = self.value_transitions(batch, level)
        goals = transitions["goals"]
        next_v = jax.nn.sigmoid(
            nets[names["value"]].apply(self.params[names["value"]], transitions["next_observations"], goals)
        )
        bootstrap = self.config.discount ** transitions["steps"].astype(jnp.float32)
        target = transitions["rewards"] + bootstrap * transitions["masks"] * jax.lax.stop_gradient(next_v)  # [B]
        q_logits = nets[names["critic"]].apply(
            params[names["critic"]], batch["observations"], goals, transitions["choices"]
        )  # [2, B]
        loss = jnp.sum(jnp.mean(losses.bce_with_logits(q_logits, target), axis=1))
        name = names["critic"]
        return loss, {
            f"{name}/loss": loss,
            f"{name}/q_mean": jax.nn.sigmoid(q_logits).mean(),
            f"{name}/target_mean": target.mean(),
        }

    def actor_targets(self, batch: dict, level: int) -> tuple[jax.Array, jax.Array]:
        """``(goals, targets)`` of the flow BC of ``level``: the top level's actor goals and subgoals, a middle level's
        state ``h_{i+1}`` ahead and state ``h_i`` ahead, level 0's state ``h_1`` ahead and action."""
        if level == 0:
            goals = batch["actor_goals"] if self.top_level == 0 else batch["level1_subgoals"]
            return goals, batch["actions"]
        prefix = f"level{level}_"
        return batch[prefix + "actor_goals"], batch[prefix + "actor_subgoals"]

    def actor_losses(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Flow BC of every level's policy. The top and level-0 policies take SHARSA's two keys, a middle level ``i``
        ``fold_in(key, i)``."""
        high_key, low_key = jax.random.split(key)
        nets, observations = self.networks, batch["observations"]
        total, info = 0.0, {}
        for level in reversed(range(self.config.levels)):
            name = level_names(level, self.config.levels)["actor"]
            goals, targets = self.actor_targets(batch, level)
            if level == 0:
                level_key = low_key
            else:
                level_key = high_key if level == self.top_level else jax.random.fold_in(key, level)

            def velocity(noisy, times, name=name, goals=goals):
                return nets[name].apply(params[name], observations, goals, noisy, times)

            loss = losses.flow_matching_loss(velocity, level_key, targets)
            total, info[f"{name}/loss"] = total + loss, loss
        return total, info

    def total_loss(self, batch: dict, params: dict, key: jax.Array) -> tuple[jax.Array, dict]:
        """Every level's value and critic plus every policy; gradients flow only into ``params``."""
        loss, info = 0.0, {}
        for level in reversed(self.value_levels):
            value_loss, value_info = self.value_loss(batch, params, level)
            critic_loss, critic_info = self.critic_loss(batch, params, level)
            loss, info = loss + value_loss + critic_loss, {**info, **value_info, **critic_info}
        actor_loss, actor_info = self.actor_losses(batch, params, key)
        return loss + actor_loss, {**info, **actor_info}

    def update(self, batch: dict) -> tuple[RSHARSAAgent, dict]:
        """One Adam step on :meth:`total_loss`, then the Polyak update of every target critic. Pure; the caller jits."""
        rng, key = jax.random.split(self.rng)
        params, opt_state, info = adam_step(self.total_loss, batch, self.params, self.opt_state, self.config.lr, key)
        target_params = polyak_update(params, self.target_params, self.config.tau)
        return self.replace(rng=rng, params=params, target_params=target_params, opt_state=opt_state), info

    def propose(self, level: int, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """``num_samples`` proposals of ``level``'s flow policy per state: subgoals ``[N, B, goal_dim]``, or actions
        ``[N, B, A]`` clipped to ``[-1, 1]`` at level 0."""
        num = self.config.num_samples
        many_observations = jnp.broadcast_to(observations, (num, *observations.shape))  # [N, B, obs_dim]
        many_goals = jnp.broadcast_to(goals, (num, *goals.shape))  # [N, B, goal_dim]
        name = level_names(level, self.config.levels)["actor"]
        actor = self.networks[name]
        dim = self.goal_dim if level > 0 else self.action_dim
        proposals = euler_sample(
            lambda x, t: actor.apply(self.params[name], many_observations, many_goals, x, t),
            jax.random.normal(key, (num, *observations.shape[:-1], dim)),
            self.config.flow_steps,
        )
        return proposals if level > 0 else jnp.clip(proposals, -1.0, 1.0)

    def choose(self, level: int, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Rejection sampling at ``level``: of its proposals, the one with the highest :meth:`level_subgoal_scores`.
        ``[B, goal_dim]`` (``[B, A]`` at level 0)."""
        candidates = self.propose(level, observations, goals, key)  # [N, B, D]
        scores = jax.vmap(lambda c: self.level_subgoal_scores(level, observations, c, goals))(candidates)  # [N, B]
        best = jnp.argmax(scores, axis=0)  # [B]
        return jnp.take_along_axis(candidates, best[None, :, None], axis=0)[0]

    def plan(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> dict:
        """The chain of subgoals toward ``goals``: ``{level: [B, goal_dim]}`` for every level ``>= 1``, each chosen
        among proposals toward the one above (the top level's toward ``goals``). Uses SHARSA's high-level key at the
        top and ``fold_in`` of it below."""
        high_key, _ = jax.random.split(key)
        subgoals, target = {}, goals
        for level in reversed(range(1, self.config.levels)):
            level_key = high_key if level == self.top_level else jax.random.fold_in(high_key, level)
            target = subgoals[level] = self.choose(level, observations, target, level_key)
        return subgoals

    def sample_actions(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> jax.Array:
        """Actions ``[B, A]`` in ``[-1, 1]`` for observations ``[B, obs_dim]`` and goals ``[B, goal_dim]``: the chain
        of :meth:`plan`, then level 0's flow policy toward level 1's subgoal (at ``levels = 1``: the best of
        ``num_samples`` actions toward the goal)."""
        _, low_key = jax.random.split(key)
        if self.top_level == 0:
            return self.choose(0, observations, goals, low_key)
        subgoals = self.plan(observations, goals, key)[1]
        noise = jax.random.normal(low_key, (*observations.shape[:-1], self.action_dim))
        actions = euler_sample(
            lambda x, t: self.networks["low_actor"].apply(self.params["low_actor"], observations, subgoals, x, t),
            noise,
            self.config.flow_steps,
        )
        return jnp.clip(actions, -1.0, 1.0)

    def level_critic(self, level: int, observations: jax.Array, subgoals: jax.Array, goals: jax.Array) -> jax.Array:
        """``[2, B]`` critic logits of ``level`` (a level of :attr:`value_levels`) for subgoals (actions at level 0)."""
        name = level_names(level, self.config.levels)["critic"]
        return self.networks[name].apply(self.params[name], observations, goals, subgoals)

    def level_subgoal_scores(
        self, level: int, observations: jax.Array, subgoals: jax.Array, goals: jax.Array
    ) -> jax.Array:
        """``min_j Q^i_j(s, w, g)`` ``[B]`` (logits): how ``level`` ranks its proposals, whatever ``q_agg``."""
        return jnp.min(self.level_critic(level, observations, subgoals, goals), axis=0)

    def level_value(self, level: int, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """``V^i(s, g)`` ``[B]`` of ``level`` (a level of :attr:`value_levels`) as a probability."""
        name = level_names(level, self.config.levels)["value"]
        return jax.nn.sigmoid(self.networks[name].apply(self.params[name], observations, goals))

    def level_q_value(self, level: int, observations: jax.Array, subgoals: jax.Array, goals: jax.Array) -> jax.Array:
        """``agg_j Q^i_j(s, w, g)`` ``[B]`` of ``level`` as a probability (``agg``: ``q_agg``)."""
        return aggregate(jax.nn.sigmoid(self.level_critic(level, observations, subgoals, goals)), self.config.q_agg)

    def diagnostic_levels(self, observations: jax.Array, goals: jax.Array, key: jax.Array) -> dict:
        """The values of the levels below the top, ``{"level{i}_value": V^i(s, g) [B]}``, for
        :mod:`scalerl.horizon.diagnostics` (which reads the top level's as ``value``). Probabilities with the per-step
        ``discount``, like the top level's; ``key`` is unused."""
        lower = [level for level in self.value_levels if level != self.top_level]
        return {f"level{level}_value": self.level_value(level, observations, goals) for level in lower}

    def subgoal_scores(self, observations: jax.Array, subgoals: jax.Array, goals: jax.Array) -> jax.Array:
        """The top level's :meth:`level_subgoal_scores` ``[B]`` (SHARSA's read-out)."""
        return self.level_subgoal_scores(self.top_level, observations, subgoals, goals)

    def value(self, observations: jax.Array, goals: jax.Array) -> jax.Array:
        """The top level's ``V(s, g)`` ``[B]`` as a probability (SHARSA's read-out)."""
        return self.level_value(self.top_level, observations, goals)

    def q_value(self, observations: jax.Array, subgoals: jax.Array, goals: jax.Array) -> jax.Array:
        """The top level's ``agg_j Q_j(s, w, g)`` ``[B]`` as a probability; ``w`` is a subgoal ``h_{L-1}`` ahead (an
        action when ``levels = 1``)."""
        return self.level_q_value(self.top_level, observations, subgoals, goals)
