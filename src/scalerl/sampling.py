"""Jittable goal-conditioned sampling: goals, subgoals and n-step chunks as gathers driven by ``jax.random`` keys.

Conventions follow OGBench (Park et al. 2024) and "Horizon Reduction Makes RL Scalable" (Park et al. 2025):

* A transition is a row ``i`` with ``valids[i] == 1``; its next state is row ``i + 1``.
* A trajectory ends, for goals, at its last valid row ``last = traj_ends - 1`` (the final row is only a next state,
  never a current state, as in OGBench's compact datasets; see :meth:`scalerl.data.Dataset.last_valid`).
* A goal is drawn as the current state (prob. ``p_curgoal``), a future state of the same trajectory
  (``p_trajgoal``; uniform over ``i+1 .. last`` or ``i + Geometric(1 - discount)`` clipped to ``last``; ``i`` itself
  when ``i == last``), or a random valid row (``p_randomgoal``).
* Reward and mask: the goal is reached when the goal row *is* the current row (``success = i == goal``);
  ``reward = success`` (or ``success - 1`` with ``gc_negative``), ``mask = 1 - success``.
* Subgoals lie ``subgoal_steps`` ahead, clipped to ``last`` (and, for actor subgoals, to a goal that lies ahead in
  the same trajectory); they never cross into another trajectory.
* An n-step chunk holds the ``n`` actions from ``i`` (clipped to the trajectory), the discounted reward sum up to and
  including the first success, the mask (0 if the goal was reached inside the chunk), the state it stops at and the
  number of real steps taken. An n-step chunk stops ``n`` steps ahead or at the final row (a real next state, as for
  one-step transitions); a subgoal chunk stops at its subgoal (at most ``last``). A chunk cut short by a
  trajectory's end keeps its mask (the end is not a success), unlike the reference, which counts it as reaching the
  goal.
* A recursive hierarchy of ``levels`` levels (:mod:`scalerl.agents.rsharsa`) gets, for each subgoal level
  ``1 <= i < levels``, SHARSA's subgoal targets at the horizon ``subgoal_steps ** i`` (keys ``level{i}_*``); see
  :func:`level_targets`.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from scalerl.data import Dataset
from scalerl.ranges import check_ranges


@dataclasses.dataclass(frozen=True)
class ActorGoalConfig:
    """Where actor (policy) goals come from, the discount and the goal representation: fields of every agent config."""

    actor_p_curgoal: float = 0.0
    """Probability that an actor goal is the current state."""
    actor_p_trajgoal: float = 0.5
    """Probability that an actor goal is a future state of the same trajectory."""
    actor_p_randomgoal: float = 0.5
    """Probability that an actor goal is a random dataset state."""
    actor_geom_sample: bool = True
    """Draw same-trajectory actor goals with geometric offsets (True; mean ``1 / (1 - discount)`` steps) or uniformly
    over the rest of the trajectory."""
    discount: float = 0.999
    """Discount factor per environment step (a k-step transition is discounted by ``discount ** k``); also the
    parameter of geometric goal offsets (success probability ``1 - discount``), its only role in agents without a
    value."""
    goal_rep: str = "observation"
    """Goal (and subgoal) representation: ``observation`` (full states) or ``oracle`` (the dataset's oracle
    representations). ``scalerl train`` follows the environment name unless this is given: ``oracle`` for
    ``-oraclerep`` names, else ``observation``."""

    RANGES = {
        "actor_p_curgoal": "[0, 1]",
        "actor_p_trajgoal": "[0, 1]",
        "actor_p_randomgoal": "[0, 1]",
        "discount": "(0, 1)",  # < 1: geometric goal offsets need a success probability 1 - discount > 0
    }
    SUMS_TO_ONE = (("actor_p_curgoal", "actor_p_trajgoal", "actor_p_randomgoal"),)


@dataclasses.dataclass(frozen=True)
class ValueGoalConfig(ActorGoalConfig):
    """Where value goals come from: fields of every agent config with a value or a critic."""

    value_p_curgoal: float = 0.2
    """Probability that a value goal is the current state."""
    value_p_trajgoal: float = 0.5
    """Probability that a value goal is a future state of the same trajectory."""
    value_p_randomgoal: float = 0.3
    """Probability that a value goal is a random dataset state."""
    value_geom_sample: bool = False
    """Draw same-trajectory value goals with geometric offsets (True) or uniformly over the rest of the trajectory."""

    RANGES = {"value_p_curgoal": "[0, 1]", "value_p_trajgoal": "[0, 1]", "value_p_randomgoal": "[0, 1]"}
    SUMS_TO_ONE = (("value_p_curgoal", "value_p_trajgoal", "value_p_randomgoal"),)


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The reward convention of agents that regress on rewards."""

    gc_negative: bool = False
    """Use rewards ``1(s == g) - 1`` (0 at the goal, -1 elsewhere) instead of ``1(s == g)``."""


@dataclasses.dataclass(frozen=True)
class SubgoalConfig:
    """The subgoal distance of hierarchical agents."""

    subgoal_steps: int = 25
    """Steps between a state and its subgoal (the horizon reduction factor; 25 for puzzles, 50 for cube-octuple and
    humanoidmaze in Park et al. 2025). If > 0 the sampler adds subgoals this many steps ahead (``low_goals``,
    ``actor_subgoals``, ``subgoal_*``)."""

    RANGES = {"subgoal_steps": ">= 1"}  # the agents with subgoals need one; the sampler allows 0 (none)


@dataclasses.dataclass(frozen=True)
class NStepConfig:
    """The return length of n-step agents."""

    nstep: int = 25
    """Steps of the return before bootstrapping (an n-step transition is discounted by ``discount ** n``; the paper's
    ``subgoal_steps`` flag: 25 for puzzles, 50 for cube-octuple and humanoidmaze). If > 1 the sampler adds n-step
    chunks (``action_chunks``, ``nstep_rewards``, ``nstep_masks``, ...)."""

    RANGES = {"nstep": ">= 1"}


@dataclasses.dataclass(frozen=True)
class LowGoalConfig:
    """The low-level value goals of double SHARSA."""

    low_discount: float = 0.0
    """Discount of the low-level value, also the parameter of its geometric goal offsets (double SHARSA resolves 0 to
    ``1 - 1 / subgoal_steps``). If > 0 the sampler adds low-level value goals (``low_value_goals``,
    ``low_value_rewards``, ``low_value_masks``), drawn with the ``value_p_*`` probabilities and geometric offsets."""

    RANGES = {"low_discount": "[0, 1)"}  # 0: none (double SHARSA: resolved); < 1 for geometric offsets


@dataclasses.dataclass(frozen=True)
class LevelsConfig:
    """The levels of a recursive SHARSA-style hierarchy (:mod:`scalerl.agents.rsharsa`)."""

    levels: int = 3
    """Levels of the hierarchy: level ``i >= 1`` proposes subgoals ``subgoal_steps ** i`` steps ahead toward the
    subgoal of level ``i + 1`` (the top level, ``levels - 1``, toward the goal) and level 0 proposes actions; 1 is a
    flat agent, 2 is SHARSA. If >= 2 the sampler adds each subgoal level's targets (``level{i}_*`` keys)."""
    scaled_level_goals: bool = True
    """Value goals of the subgoal levels below the top at their own time scale: the ``value_p_*`` mix with geometric
    same-trajectory offsets of mean ``subgoal_steps ** (i + 1)`` for level ``i`` (True), or the top level's value goals
    at every level (False)."""

    RANGES = {"levels": ">= 1"}


@dataclasses.dataclass(frozen=True)
class GoalSamplerConfig(LevelsConfig, LowGoalConfig, NStepConfig, SubgoalConfig, RewardConfig, ValueGoalConfig):
    """How batches are drawn: every field group above, with no subgoals, no subgoal levels, one-step transitions and
    geometric value goals by default.

    Every agent config inherits the groups it uses, with its paper's defaults; :func:`scalerl.agents.sampler_config`
    turns one into a sampler config (the groups it lacks keep the defaults here).
    """

    value_geom_sample: bool = True
    subgoal_steps: int = 0
    nstep: int = 1
    levels: int = 0

    RANGES = {"subgoal_steps": ">= 0", "levels": ">= 0"}  # 0: no subgoals; 0 or 1: no subgoal levels

    def __post_init__(self):
        # The field groups' ranges, errors naming the fields (a sampler config is built in code, not from flags).
        check_ranges(self, flag=lambda name: name)
        if self.goal_rep not in ("observation", "oracle"):
            raise ValueError(f"goal_rep: expected 'observation' or 'oracle', got '{self.goal_rep}'")
        if self.levels >= 2 and self.subgoal_steps < 1:
            raise ValueError(f"subgoal_steps: expected >= 1 with levels >= 2, got {self.subgoal_steps}")


def sample_indices(key: jax.Array, dataset: Dataset, batch_size: int) -> jax.Array:
    """Uniform rows with a valid next state. Returns ``[batch_size]`` int32."""
    positions = jax.random.randint(key, (batch_size,), 0, dataset.valid_idxs.shape[0])
    return dataset.valid_idxs[positions]


def future_indices(key: jax.Array, idxs: jax.Array, last_idxs: jax.Array, geometric: bool, discount: float):
    """Future rows of the same trajectory, strictly after ``idxs`` (unless ``i == last``) and at most ``last``.

    Uniform: offset uniform on ``1 .. last - i``. Geometric: offset ``~ Geometric(1 - discount)`` (support 1, 2, ...,
    mean ``1 / (1 - discount)``), clipped to ``last``. At ``i == last`` the goal is ``i`` itself (OGBench's rule).

    Args:
        idxs: ``[B]`` rows with a valid next state.
        last_idxs: ``[B]`` the last row a goal may be (``>= idxs``): the last valid row of each row's trajectory.
    """
    uniform = jax.random.uniform(key, idxs.shape, minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    if geometric:
        # Inverse CDF of the geometric distribution on {1, 2, ...}: ceil(log u / log discount).
        offsets = jnp.ceil(jnp.log(uniform) / jnp.log(discount))
        offsets = jnp.clip(offsets, 1, jnp.iinfo(jnp.int32).max // 2).astype(jnp.int32)
    else:
        span = (last_idxs - idxs).astype(jnp.float32)
        offsets = jnp.clip(jnp.floor((1.0 - uniform) * span).astype(jnp.int32) + 1, 1, None)
    return jnp.minimum(idxs + offsets, last_idxs)


def sample_goal_indices(
    key: jax.Array,
    dataset: Dataset,
    idxs: jax.Array,
    p_curgoal: float,
    p_trajgoal: float,
    geometric: bool,
    discount: float,
) -> jax.Array:
    """Goal rows for ``idxs``: current, same-trajectory future (up to the last valid row), or a random valid row, with
    the given probabilities; every goal is a valid row (a state that is some transition's current state)."""
    type_key, traj_key, random_key = jax.random.split(key, 3)
    future = future_indices(traj_key, idxs, dataset.last_valid(idxs), geometric, discount)
    random = sample_indices(random_key, dataset, idxs.shape[0])
    choice = jax.random.uniform(type_key, idxs.shape)
    return jnp.where(choice < p_curgoal, idxs, jnp.where(choice < p_curgoal + p_trajgoal, future, random))


def nstep_chunk(
    dataset: Dataset,
    idxs: jax.Array,
    goal_idxs: jax.Array,
    nstep: int,
    discount: float,
    gc_negative: bool,
    stop_idxs: jax.Array | None = None,
):
    """n-step quantities toward a goal.

    The chunk takes the transitions from rows ``i, i + 1, ...`` until it has taken ``nstep`` or reached ``stop``
    (default: the trajectory's final row, a real next state; a subgoal chunk stops at the last valid row, so that it
    bootstraps at its subgoal). Each row ``i + j`` (``0 <= j < nstep``) up to the last valid row is checked for the
    goal: ``success_j = (i + j == goal)``. The reward of step ``j`` is ``success_j`` (minus 1 with ``gc_negative``),
    summed over the steps taken plus the step at which the goal is reached; steps after the first success contribute
    nothing and the mask is 0 if a success happened inside the chunk. Reaching ``stop`` before ``nstep`` steps is not
    a success (the reference counts it as one; Park et al. 2025).

    Args:
        stop_idxs: ``[B]`` the last row the chunk may stop at, ``i <= stop <= traj_ends[i]``; default ``traj_ends``.

    Returns:
        dict with ``action_chunks [B, n, A]``, ``nstep_rewards [B]`` (``sum_j discount^j r_j`` up to the first
        success), ``nstep_masks [B]``, ``nstep_steps [B]`` (steps taken, ``min(n, stop - i)``; bootstrap with
        ``discount ** nstep_steps``) and ``nstep_next_idxs [B]`` (``min(i + n, stop)``, the row it stops at).
    """
    ends = dataset.traj_ends[idxs]  # [B]
    stops = ends if stop_idxs is None else stop_idxs  # [B]
    offsets = jnp.arange(nstep)  # [n]
    step_idxs = idxs[:, None] + offsets[None, :]  # [B, n]
    taken = step_idxs < stops[:, None]  # the chunk takes the transition that starts at this row
    success = (step_idxs == goal_idxs[:, None]) & (step_idxs < ends[:, None])  # a current state that is the goal
    before_success = jnp.cumsum(success, axis=1) - success  # successes strictly before step j
    alive = (taken | success) & (before_success == 0)
    rewards = success.astype(jnp.float32) - (1.0 if gc_negative else 0.0)
    weights = jnp.where(alive, discount ** offsets[None, :].astype(jnp.float32), 0.0)
    action_idxs = jnp.minimum(step_idxs, ends[:, None] - 1)
    return dict(
        action_chunks=dataset.actions[action_idxs],
        nstep_rewards=jnp.sum(weights * rewards, axis=1),
        nstep_masks=1.0 - jnp.any(success, axis=1).astype(jnp.float32),
        nstep_steps=jnp.sum(taken, axis=1).astype(jnp.int32),
        nstep_next_idxs=jnp.minimum(idxs + nstep, stops),
    )


@partial(jax.jit, static_argnames=("config", "batch_size"))
def sample_batch(key: jax.Array, dataset: Dataset, config: GoalSamplerConfig, batch_size: int) -> dict:
    """Draw one goal-conditioned batch. Jitted; call it inside a larger jit (a ``lax.scan``) for training.

    Returns a dict of arrays (``B = batch_size``):
        ``observations``, ``next_observations`` ``[B, obs_dim]``; ``actions`` ``[B, A]``;
        ``value_goals`` ``[B, goal_dim]``, ``rewards``, ``masks`` ``[B]``; ``actor_goals`` ``[B, goal_dim]``;
        with ``subgoal_steps > 0``: ``low_goals`` (``subgoal_steps`` ahead, clipped to the last valid row),
        ``actor_subgoals`` (likewise, and clipped to the actor goal when it lies ahead in the same trajectory),
        ``subgoal_observations`` (the full state at ``low_goals``), ``subgoal_rewards``/``subgoal_masks``/
        ``subgoal_steps_taken`` (the chunk toward the value goal that stops at ``low_goals``) and
        ``actor_subgoal_observations`` (the full state at ``actor_subgoals``, for HIQL's high-level advantage);
        with ``nstep > 1``: ``action_chunks``, ``nstep_rewards``, ``nstep_masks``, ``nstep_steps``,
        ``nstep_next_observations``;
        with ``low_discount > 0``: ``low_value_goals`` ``[B, goal_dim]``, ``low_value_rewards``, ``low_value_masks``
        ``[B]`` (drawn with ``fold_in(key, 1)``, so the other keys' draws do not change);
        with ``levels >= 2``: the ``level{i}_*`` keys of :func:`level_targets` for ``i = 1 .. levels - 1``.
    """
    goal_source = dataset.observations if config.goal_rep == "observation" else dataset.oracle_reps
    if goal_source is None:
        raise ValueError("goal_rep='oracle' needs a dataset loaded with an '-oraclerep' environment name")
    idxs, value_goal_idxs, actor_goal_idxs = draw_indices(key, dataset, config, batch_size)
    successes = (idxs == value_goal_idxs).astype(jnp.float32)
    batch = dict(
        observations=dataset.observations[idxs],
        next_observations=dataset.observations[idxs + 1],
        actions=dataset.actions[idxs],
        value_goals=goal_source[value_goal_idxs],
        rewards=successes - (1.0 if config.gc_negative else 0.0),
        masks=1.0 - successes,
        actor_goals=goal_source[actor_goal_idxs],
    )
    if config.subgoal_steps > 0:
        ends, last = dataset.traj_ends[idxs], dataset.last_valid(idxs)
        low_idxs = jnp.minimum(idxs + config.subgoal_steps, last)
        goal_ahead = (dataset.traj_ends[actor_goal_idxs] == ends) & (actor_goal_idxs >= idxs)
        actor_sub_idxs = jnp.minimum(idxs + config.subgoal_steps, jnp.where(goal_ahead, actor_goal_idxs, last))
        # The subgoal chunk stops at its subgoal (low_idxs), so the critic bootstraps at the subgoal it conditions on.
        chunk = nstep_chunk(
            dataset, idxs, value_goal_idxs, config.subgoal_steps, config.discount, config.gc_negative, last
        )
        batch.update(
            low_goals=goal_source[low_idxs],
            actor_subgoals=goal_source[actor_sub_idxs],
            subgoal_observations=dataset.observations[low_idxs],
            subgoal_rewards=chunk["nstep_rewards"],
            subgoal_masks=chunk["nstep_masks"],
            subgoal_steps_taken=chunk["nstep_steps"],
            actor_subgoal_observations=dataset.observations[actor_sub_idxs],
        )
    if config.nstep > 1:
        chunk = nstep_chunk(dataset, idxs, value_goal_idxs, config.nstep, config.discount, config.gc_negative)
        next_idxs = chunk.pop("nstep_next_idxs")
        batch.update(chunk, nstep_next_observations=dataset.observations[next_idxs])
    if config.low_discount > 0:
        low_goal_idxs = sample_goal_indices(
            jax.random.fold_in(key, 1),
            dataset,
            idxs,
            config.value_p_curgoal,
            config.value_p_trajgoal,
            True,
            config.low_discount,
        )
        low_successes = (idxs == low_goal_idxs).astype(jnp.float32)
        batch.update(
            low_value_goals=goal_source[low_goal_idxs],
            low_value_rewards=low_successes - (1.0 if config.gc_negative else 0.0),
            low_value_masks=1.0 - low_successes,
        )
    if config.levels >= 2:
        batch.update(level_targets(key, dataset, config, goal_source, idxs, value_goal_idxs, actor_goal_idxs))
    return batch


LEVEL_GOAL_STREAM = 100
"""Scaled value goals of level ``i`` are drawn with ``fold_in(key, LEVEL_GOAL_STREAM + i)``: a stream of their own, so
adding levels changes no other draw of the batch."""


def level_targets(
    key: jax.Array,
    dataset: Dataset,
    config: GoalSamplerConfig,
    goal_source: jax.Array,
    idxs: jax.Array,
    value_goal_idxs: jax.Array,
    actor_goal_idxs: jax.Array,
) -> dict:
    """SHARSA's subgoal targets for every subgoal level of a recursive hierarchy (Park et al. 2025, generalised).

    Level ``i`` (``1 <= i < L``, ``L = config.levels``) works at the horizon ``h_i = subgoal_steps ** i``. Its rows:

    * subgoal: ``min(t + h_i, last)``, the dataset state ``h_i`` ahead (SHARSA's ``low_goals`` at ``i = 1``);
    * value goal: the batch's value goal at the top level ``i = L - 1``; below it, with ``scaled_level_goals``, a goal
      of its own drawn with the ``value_p_*`` probabilities and geometric offsets of mean ``h_{i+1}`` (success
      probability ``1 / h_{i+1}``; the scale of the subgoals level ``i`` is asked to reach, as double SHARSA's low
      goals), else the top level's;
    * the subgoal chunk toward the value goal that stops at the subgoal (:func:`nstep_chunk` of ``h_i`` steps, stopped
      at the last valid row), with the per-step ``discount``;
    * actor goal: the batch's actor goal at the top level, else the dataset state ``h_{i+1}`` ahead (the subgoal of
      level ``i + 1``; SHARSA's low-level goal); actor subgoal: the state ``h_i`` ahead, clipped to the actor goal
      when it lies ahead in the same trajectory (a no-op below the top).

    With ``L = 2`` the ``level1_*`` keys equal SHARSA's keys (``value_goals``, ``low_goals``, ``subgoal_*``,
    ``actor_goals``, ``actor_subgoals``) element for element. A chunk holds ``[B, h_i]`` steps, so memory grows as
    ``batch_size * subgoal_steps ** (L - 1)``.

    Returns:
        dict with, for each level ``i``: ``level{i}_value_goals``, ``level{i}_subgoals``, ``level{i}_actor_goals``,
        ``level{i}_actor_subgoals`` ``[B, goal_dim]``; ``level{i}_subgoal_observations`` ``[B, obs_dim]`` (the full
        state at the subgoal, where the critic bootstraps); ``level{i}_rewards``, ``level{i}_masks``,
        ``level{i}_steps_taken`` ``[B]`` (the chunk's discounted reward, mask and steps; bootstrap with
        ``discount ** level{i}_steps_taken``).
    """
    top = config.levels - 1
    last = dataset.last_valid(idxs)
    goal_ahead = (dataset.traj_ends[actor_goal_idxs] == dataset.traj_ends[idxs]) & (actor_goal_idxs >= idxs)
    targets = {}
    for level in range(1, config.levels):
        steps = config.subgoal_steps**level
        sub_idxs = jnp.minimum(idxs + steps, last)
        if level == top:
            goal_idxs, actor_idxs, actor_ahead = value_goal_idxs, actor_goal_idxs, goal_ahead
        else:
            upper_steps = config.subgoal_steps ** (level + 1)
            goal_idxs = value_goal_idxs
            if config.scaled_level_goals:
                goal_idxs = sample_goal_indices(
                    jax.random.fold_in(key, LEVEL_GOAL_STREAM + level),
                    dataset,
                    idxs,
                    config.value_p_curgoal,
                    config.value_p_trajgoal,
                    True,
                    1.0 - 1.0 / upper_steps,
                )
            actor_idxs, actor_ahead = jnp.minimum(idxs + upper_steps, last), True
        actor_sub_idxs = jnp.minimum(idxs + steps, jnp.where(actor_ahead, actor_idxs, last))
        chunk = nstep_chunk(dataset, idxs, goal_idxs, steps, config.discount, config.gc_negative, last)
        prefix = f"level{level}_"
        targets.update(
            {
                prefix + "value_goals": goal_source[goal_idxs],
                prefix + "subgoals": goal_source[sub_idxs],
                prefix + "subgoal_observations": dataset.observations[sub_idxs],
                prefix + "rewards": chunk["nstep_rewards"],
                prefix + "masks": chunk["nstep_masks"],
                prefix + "steps_taken": chunk["nstep_steps"],
                prefix + "actor_goals": goal_source[actor_idxs],
                prefix + "actor_subgoals": goal_source[actor_sub_idxs],
            }
        )
    return targets


def draw_indices(key: jax.Array, dataset: Dataset, config: GoalSamplerConfig, batch_size: int):
    """The rows of a batch: ``(idxs, value_goal_idxs, actor_goal_idxs)``, each ``[batch_size]`` int32.

    :func:`sample_batch` gathers everything else from these, so tests can check index-level properties directly.
    """
    idx_key, value_key, actor_key = jax.random.split(key, 3)
    idxs = sample_indices(idx_key, dataset, batch_size)
    value_goal_idxs = sample_goal_indices(
        value_key,
        dataset,
        idxs,
        config.value_p_curgoal,
        config.value_p_trajgoal,
        config.value_geom_sample,
        config.discount,
    )
    actor_goal_idxs = sample_goal_indices(
        actor_key,
        dataset,
        idxs,
        config.actor_p_curgoal,
        config.actor_p_trajgoal,
        config.actor_geom_sample,
        config.discount,
    )
    return idxs, value_goal_idxs, actor_goal_idxs
