"""Value-error diagnostics on the horizon tasks: how far an agent's values are from the exact ones, by true distance.

For (state, goal) pairs drawn uniformly within bins of true distance ``d`` (:func:`sample_pairs`), each *level* of
an agent (its value, its critic, each level of a hierarchy) is read as an implied distance ``d_hat`` in steps::

    d_hat = log V / log gamma                          (V in 0/1 reward units, floored at ``value_floor``;
                                                        with gc_negative rewards V is mapped to 1 + (1 - gamma) V first)
    abs error (steps) = |log V - log V*| / |log gamma| = |d_hat - d|      since V* = gamma ** d exactly
    bias (steps)      = d_hat - d                      > 0: the value is too low (the goal looks farther than it is);
                                                       < 0: too high (over-estimation)

QRL's value is an undiscounted distance (``d_hat`` is its ``distance``). CRL's critic is a contrastive logit, a log
occupancy ratio up to an unknown per-goal normaliser, not a value: only its ranking is compared (the Spearman
correlation of the score with ``-d``, reported for every level). Hierarchical agents add levels: SHARSA's high-level
critic ``Q(s, w, g)`` at the subgoal ``w`` its policy proposes, against ``gamma ** d(s -> w -> g)`` with ``w`` snapped
to the nearest state (an ideal low level: the shortest path through ``w``, or to ``g`` if ``g`` lies on it);
double SHARSA's low-level value ``V_l(s, g)`` against ``low_discount ** d``. An agent may expose more levels with
``diagnostic_levels(observations, goals, key) -> {name: values [B]}`` (reward units and discount of its config).

Success by distance comes from rollouts of the agent's policy from the first pairs of every bin (the evaluation's
rules: the episode ends at the goal or after ``2 d + 50`` steps). For the point mass, distances are reference
distances, ``POINT_STEPS_PER_CELL`` steps per cell of the maze (see :mod:`scalerl.horizon.tasks`).

:func:`diagnose_run` restores a run's agents and writes ``RUN_DIR/diagnostics.csv`` (one row per seed, level and
bin), ``diagnostics.json`` (the settings, the rows and a summary over seeds) and ``diagnostics.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from scalerl.errors import ScalerlError
from scalerl.horizon.config import DiagnoseConfig
from scalerl.horizon.env import cell_of, graph_step, point_step, point_success
from scalerl.horizon.tasks import (
    POINT_RESET_NOISE,
    UNREACHABLE,
    HorizonSpec,
    diameter_pair,
    distances_from,
    is_horizon_name,
    maze_positions,
    optimal_values,
    parse_horizon_name,
    scale_positions,
    task_graph,
)

ALL_PAIRS_LIMIT = 4096
"""Tasks with at most this many states draw pairs from all pairs; larger ones from 1024 random start states."""
SUBGOAL_PAIRS_PER_BIN = 32
"""The subgoal level (which samples subgoals from a flow policy) reads at most this many pairs per bin."""
CHUNK = 512
DIAGNOSTICS_FILES = ("diagnostics.csv", "diagnostics.json", "diagnostics.png")
COLUMNS = (
    "seed",
    "level",
    "bin",
    "distance_lo",
    "distance_hi",
    "pairs",
    "distance_mean",
    "value_mean",
    "optimal_value_mean",
    "abs_error_steps",
    "median_abs_error_steps",
    "bias_steps",
    "rollouts",
    "success",
)


@dataclasses.dataclass(frozen=True)
class PairSet:
    """(state, goal) pairs binned by true distance.

    Attributes:
        starts, goals: ``[P]`` graph states (the point mass: cells).
        distances: ``[P]`` true distances in environment steps (the point mass: reference steps).
        bins: ``[P]`` the bin of each pair.
        edges: ``[B + 1]`` bin edges in steps: bin ``b`` holds ``edges[b] <= d < edges[b + 1]``.
    """

    starts: np.ndarray
    goals: np.ndarray
    distances: np.ndarray
    bins: np.ndarray
    edges: np.ndarray


def sample_pairs(spec: HorizonSpec, bins: int, pairs_per_bin: int, rng: np.random.Generator) -> PairSet:
    """Draw ``pairs_per_bin`` pairs uniformly among the reachable pairs of each of ``bins`` equal-width distance bins
    (from 1 to the longest shortest path ``D``; fewer bins when ``D < bins``). Pairs are drawn with replacement only in
    bins holding fewer pairs than asked for."""
    graph = task_graph(spec)
    longest = diameter_pair(graph)[2]
    edges = np.unique(np.floor(np.linspace(1, longest + 1, min(bins, longest) + 1)).astype(np.int64))
    if graph.num_states <= ALL_PAIRS_LIMIT:
        sources = np.arange(graph.num_states)
    else:
        sources = np.sort(rng.choice(graph.num_states, 1024, replace=False))
    table = distances_from(graph, sources)  # [K, S]
    starts, goals, binned = [], [], []
    for index in range(len(edges) - 1):
        flat = np.flatnonzero((table >= edges[index]) & (table < edges[index + 1]) & (table < UNREACHABLE))
        if flat.size == 0:
            continue
        chosen = rng.choice(flat, size=pairs_per_bin, replace=flat.size < pairs_per_bin)
        rows, cols = np.divmod(chosen, graph.num_states)
        starts.append(sources[rows])
        goals.append(cols)
        binned.append(np.full(pairs_per_bin, index))
    starts, goals = np.concatenate(starts), np.concatenate(goals)
    distances = table[np.searchsorted(sources, starts), goals]
    scale = spec.steps_per_edge
    return PairSet(starts, goals, (distances * scale).astype(np.int64), np.concatenate(binned), edges * scale)


def pair_distances(spec: HorizonSpec, sources, targets) -> np.ndarray:
    """``d(sources[i], targets[i])`` ``[P]`` in graph edges (breadth-first search from each distinct source)."""
    sources, targets = np.asarray(sources), np.asarray(targets)
    unique, inverse = np.unique(sources, return_inverse=True)
    out = np.empty(sources.shape, np.int64)
    for start in range(0, unique.size, CHUNK):
        rows = distances_from(task_graph(spec), unique[start : start + CHUNK])
        picked = (inverse >= start) & (inverse < start + CHUNK)
        out[picked] = rows[inverse[picked] - start, targets[picked]]
    return out


def implied_steps(values: np.ndarray, kind: str, discount: float, value_floor: float) -> np.ndarray:
    """The distance in steps a level's output implies (see the module docstring); NaN for ranking-only scores.

    Args:
        values: the level's outputs.
        kind: ``value`` (0/1 reward units), ``negative`` (``gc_negative`` units), ``distance`` (steps) or ``score``.
    """
    values = np.asarray(values, np.float64)
    if kind == "distance":
        return values
    if kind == "score":
        return np.full(values.shape, np.nan)
    if kind == "negative":
        values = 1.0 + (1.0 - discount) * values
    return np.log(np.maximum(values, value_floor)) / np.log(discount)


@dataclasses.dataclass(frozen=True)
class Level:
    """One value-like output of an agent.

    Attributes:
        name: ``value``, ``critic``, ``subgoal_q``, ``low_value`` or a name from ``diagnostic_levels``.
        kind: how to read it (:func:`implied_steps`).
        discount: the discount it is trained with.
        subgoals: whether ``read`` also returns the subgoals its values are conditioned on (SHARSA's high critic).
    """

    name: str
    kind: str
    discount: float
    subgoals: bool = False


def agent_levels(agent_cls: type, config) -> list[Level]:
    """The levels :func:`read_levels` reads from agents of class ``agent_cls`` with ``config`` (besides the agent's own
    ``diagnostic_levels``, found when they are read)."""
    from scalerl.agents.dsharsa import DSHARSAAgent
    from scalerl.agents.sharsa import SHARSAAgent

    discount = float(getattr(config, "discount", 0.99))
    reward_kind = "negative" if getattr(config, "gc_negative", False) else "value"
    levels = []
    if hasattr(agent_cls, "distance"):
        levels.append(Level("value", "distance", discount))
    elif hasattr(agent_cls, "value") and getattr(agent_cls, "value_in_reward_units", True):
        levels.append(Level("value", reward_kind, discount))
    elif hasattr(agent_cls, "q_value"):
        levels.append(Level("critic", "score", discount))
    if issubclass(agent_cls, SHARSAAgent):
        levels.append(Level("subgoal_q", "value", discount, subgoals=True))
    if issubclass(agent_cls, DSHARSAAgent):
        levels.append(Level("low_value", "value", float(config.low_discount)))
    return levels


def read_levels(agent, levels: tuple[Level, ...], observations, goals, key) -> dict:
    """Every level's outputs for one agent: ``{name: [B]}`` (``{name}/subgoals: [B, goal_dim]`` for subgoal levels),
    plus the agent's own ``diagnostic_levels``. Pure; :func:`evaluate_levels` jits and vmaps it over seeds."""
    from scalerl.agents.sharsa import SHARSAAgent

    out = {}
    for level in levels:
        if level.kind == "distance":
            out[level.name] = agent.distance(observations, goals)
        elif level.name == "critic":
            actions = agent.sample_actions(observations, goals, key)
            out[level.name] = agent.q_value(observations, actions, goals)
        elif level.subgoals:
            subgoals = SHARSAAgent.sample_subgoals(agent, observations, goals, key)
            out[level.name] = agent.q_value(observations, subgoals, goals)
            out[f"{level.name}/subgoals"] = subgoals
        elif level.name == "low_value":
            logits = agent.networks["low_value"].apply(agent.params["low_value"], observations, goals)
            out[level.name] = jax.nn.sigmoid(logits)
        else:
            out[level.name] = agent.value(observations, goals)
    if hasattr(agent, "diagnostic_levels"):
        out.update(agent.diagnostic_levels(observations, goals, key))
    return out


@partial(jax.jit, static_argnames=("levels",))
def _evaluate_chunk(agents, levels, observations, goals, keys):
    return jax.vmap(read_levels, in_axes=(0, None, None, None, 0))(agents, levels, observations, goals, keys)


def evaluate_levels(agents, levels: tuple[Level, ...], observations, goals, key) -> dict:
    """:func:`read_levels` for every seed of ``agents`` (leading axis), in chunks of pairs.

    Returns:
        ``{name: [seeds, P, ...]}`` numpy arrays.
    """
    seeds = jax.tree.leaves(agents)[0].shape[0]
    parts = []
    for start in range(0, observations.shape[0], CHUNK):
        keys = jax.random.split(jax.random.fold_in(key, start), seeds)
        chunk = _evaluate_chunk(agents, levels, observations[start : start + CHUNK], goals[start : start + CHUNK], keys)
        parts.append(jax.tree.map(np.asarray, chunk))
    return {name: np.concatenate([part[name] for part in parts], axis=1) for name in parts[0]}


def snap_goals(spec: HorizonSpec, goals: np.ndarray, oracle: bool) -> np.ndarray:
    """The state (point mass: cell) nearest to each goal representation ``[..., goal_dim]`` -> ``[...]``."""
    graph = task_graph(spec)
    if spec.family == "pointmaze":
        positions = (np.asarray(goals) + 1.0) * spec.size / 2.0
        return cell_of(positions, spec.size)
    table = graph.oracle_reps if oracle else graph.observations
    flat = np.asarray(goals).reshape(-1, table.shape[1])
    nearest = np.concatenate(
        [np.argmin(((part[:, None, :] - table[None]) ** 2).sum(-1), axis=1) for part in np.array_split(flat, 64)]
    )
    return nearest.reshape(np.asarray(goals).shape[:-1])


def via_distances(spec: HorizonSpec, starts, subgoals, goals) -> np.ndarray:
    """Steps from ``s`` to ``g`` through the subgoal ``w`` with an ideal low level: ``d(s, g)`` when ``g`` lies on a
    shortest path from ``s`` to ``w`` (the episode ends there), else ``d(s, w) + d(w, g)``."""
    to_subgoal = pair_distances(spec, starts, subgoals)
    onward = pair_distances(spec, subgoals, goals)
    direct = pair_distances(spec, starts, goals)
    back = pair_distances(spec, goals, subgoals)
    passes_goal = direct + back == to_subgoal
    edges = np.where(passes_goal, direct, np.minimum(to_subgoal + onward, UNREACHABLE))
    return edges * spec.steps_per_edge


def _observe_states(spec: HorizonSpec, states: np.ndarray, oracle: bool) -> np.ndarray:
    graph = task_graph(spec)
    if spec.family == "pointmaze":
        return scale_positions(maze_positions(spec.size)[states], spec.size)
    return (graph.oracle_reps if oracle else graph.observations)[states]


@partial(jax.jit, static_argnames=("spec", "sample"))
def _rollouts(agents, tables, init, goal_states, goal_reps, limits, key, spec: HorizonSpec, sample: Callable):
    """Roll every seed's policy from ``init`` toward each goal until it is reached or ``limits`` steps have passed.

    Returns:
        ``(success [seeds, R] bool, steps [seeds, R] int32)``.
    """
    seeds = jax.tree.leaves(agents)[0].shape[0]
    state = jnp.broadcast_to(init, (seeds, *init.shape))
    goal_reps = jnp.broadcast_to(goal_reps, (seeds, *goal_reps.shape))
    done = jnp.zeros(state.shape[:2], bool)

    def observe(state):
        if spec.family == "pointmaze":
            return 2.0 * state / spec.size - 1.0
        return tables["observations"][state]

    def cond(carry):
        step, _, done, _ = carry
        return (step < jnp.max(limits)) & ~jnp.all(done)

    def body(carry):
        step, state, done, success = carry
        keys = jax.random.split(jax.random.fold_in(key, step), seeds)
        actions = jax.vmap(sample)(agents, observe(state), goal_reps, keys)
        actions = jnp.clip(actions, -1.0, 1.0)
        if spec.family == "pointmaze":
            moved = point_step(tables["open_sides"], spec.size, state, actions, jnp)
            reached = point_success(moved, goal_states, jnp)
            moved = jnp.where(done[..., None], state, moved)
        else:
            moved = graph_step(tables["next_states"], state, actions, jnp)
            reached = moved == goal_states
            moved = jnp.where(done, state, moved)
        success = success | (reached & ~done)
        done = done | reached | (step + 1 >= limits)
        return step + 1, moved, done, success

    steps, _, _, success = jax.lax.while_loop(cond, body, (jnp.int32(0), state, done, jnp.zeros_like(done)))
    return success, steps


def rollout_success(agents, spec: HorizonSpec, pairs: PairSet, per_bin: int, oracle: bool, rng, key) -> np.ndarray:
    """Success ``[seeds, B]`` of each seed's policy from the first ``per_bin`` pairs of each bin (NaN for empty bins).

    Episodes follow the evaluation's rules: they end at the goal or after ``2 d + 50`` steps; point mass starts and
    goals are cell centres plus the evaluation's uniform noise.
    """
    graph = task_graph(spec)
    chosen = np.concatenate([np.flatnonzero(pairs.bins == b)[:per_bin] for b in range(len(pairs.edges) - 1)])
    limits = jnp.asarray(2 * pairs.distances[chosen] + 50, jnp.int32)
    if spec.family == "pointmaze":
        centres = maze_positions(spec.size)
        noise = rng.uniform(-POINT_RESET_NOISE, POINT_RESET_NOISE, size=(2, chosen.size, 2)).astype(np.float32)
        init = centres[pairs.starts[chosen]] + noise[0]
        goal_states = centres[pairs.goals[chosen]] + noise[1]
        goal_reps = scale_positions(goal_states, spec.size)
        tables = {"open_sides": jnp.asarray(graph.open_sides)}
    else:
        init, goal_states = pairs.starts[chosen].astype(np.int32), pairs.goals[chosen].astype(np.int32)
        goal_reps = _observe_states(spec, goal_states, oracle)
        tables = {"next_states": jnp.asarray(graph.next_states), "observations": jnp.asarray(graph.observations)}
    agent_type = type(agents)
    success, _ = _rollouts(
        agents,
        tables,
        jnp.asarray(init),
        jnp.asarray(goal_states),
        jnp.asarray(goal_reps),
        limits,
        key,
        spec,
        agent_type.sample_actions,
    )
    success = np.asarray(success, np.float64)
    out = np.full((success.shape[0], len(pairs.edges) - 1), np.nan)
    for b in range(out.shape[1]):
        in_bin = pairs.bins[chosen] == b
        if in_bin.any():
            out[:, b] = success[:, in_bin].mean(axis=1)
    return out


def _spearman(scores: np.ndarray, distances: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.unique(distances).size < 2 or np.unique(scores).size < 2:
        return float("nan")
    return float(spearmanr(scores, -distances).statistic)


@dataclasses.dataclass(frozen=True)
class Reading:
    """One level's outputs at a set of pairs.

    Attributes:
        level: the level.
        values: ``[seeds, P']`` its outputs.
        steps: ``[seeds, P']`` the true distances they are compared with (steps).
        pick: ``[P']`` which pairs of the :class:`PairSet` they were read at.
    """

    level: Level
    values: np.ndarray
    steps: np.ndarray
    pick: np.ndarray


def read_agents(agents, agent_config, spec: HorizonSpec, pairs: PairSet, oracle: bool, key) -> list[Reading]:
    """Every level of every seed of ``agents`` at ``pairs`` (subgoal levels at the first
    :data:`SUBGOAL_PAIRS_PER_BIN` pairs of each bin, against the distance through the snapped subgoal)."""
    observations = jnp.asarray(_observe_states(spec, pairs.starts, False))
    goals = jnp.asarray(_observe_states(spec, pairs.goals, oracle))
    seeds = jax.tree.leaves(agents)[0].shape[0]
    everywhere = np.arange(pairs.distances.size)
    true_steps = np.broadcast_to(pairs.distances, (seeds, pairs.distances.size))
    levels = agent_levels(type(agents), agent_config)
    plain = tuple(level for level in levels if not level.subgoals)
    outputs = evaluate_levels(agents, plain, observations, goals, jax.random.fold_in(key, 1))
    readings = [Reading(level, outputs[level.name], true_steps, everywhere) for level in plain]
    discount = float(getattr(agent_config, "discount", 0.99))
    kind = "negative" if getattr(agent_config, "gc_negative", False) else "value"
    for name in outputs.keys() - {level.name for level in plain}:  # the agent's own diagnostic_levels
        readings.append(Reading(Level(name, kind, discount), outputs[name], true_steps, everywhere))
    pick = np.concatenate(
        [np.flatnonzero(pairs.bins == b)[:SUBGOAL_PAIRS_PER_BIN] for b in range(len(pairs.edges) - 1)]
    )
    for level in (level for level in levels if level.subgoals):
        out = evaluate_levels(agents, (level,), observations[pick], goals[pick], jax.random.fold_in(key, 2))
        subgoals = snap_goals(spec, out[f"{level.name}/subgoals"], oracle)  # [seeds, P']
        steps = np.stack([via_distances(spec, pairs.starts[pick], row, pairs.goals[pick]) for row in subgoals])
        readings.append(Reading(level, out[level.name], steps, pick))
    return readings


def _row(seed: int, level: str, index: int, pairs: PairSet, **fields) -> dict:
    """A table row: :data:`COLUMNS`, NaN where ``fields`` says nothing."""
    row = {
        "seed": seed,
        "level": level,
        "bin": index,
        "distance_lo": int(pairs.edges[index]),
        "distance_hi": int(pairs.edges[index + 1]),
        "pairs": int(np.sum(pairs.bins == index)),
        "rollouts": 0,
    }
    return {column: {**row, **fields}.get(column, float("nan")) for column in COLUMNS}


def level_rows(reading: Reading, pairs: PairSet, value_floor: float) -> list[dict]:
    """One row per seed and bin of a level's errors (the bin's mean distance, value, optimal value, errors). A subgoal
    through which the goal cannot be reached (behind a stalling lock's position: ``V* = 0``, no distance) is left out
    of its bin's means."""
    level = reading.level
    estimated = implied_steps(reading.values, level.kind, level.discount, value_floor)
    bins = pairs.bins[reading.pick]
    rows = []
    for seed in range(reading.values.shape[0]):
        for index in np.unique(bins):
            in_bin = (bins == index) & (reading.steps[seed] < UNREACHABLE)
            if not in_bin.any():
                continue
            true = reading.steps[seed][in_bin].astype(np.float64)
            error = estimated[seed][in_bin] - true
            if level.kind == "distance":
                optimal = -true
            else:
                optimal = optimal_values(true, level.discount, level.kind == "negative")
            rows.append(
                _row(
                    seed,
                    level.name,
                    int(index),
                    pairs,
                    distance_mean=float(true.mean()),
                    value_mean=float(np.mean(reading.values[seed][in_bin])),
                    optimal_value_mean=float(optimal.mean()),
                    abs_error_steps=float(np.mean(np.abs(error))),
                    median_abs_error_steps=float(np.median(np.abs(error))),
                    bias_steps=float(np.mean(error)),
                )
            )
    return rows


def diagnose_agents(agents, agent_config, env_name: str, config: DiagnoseConfig) -> dict:
    """Diagnose every seed of ``agents`` (an agent pytree with a leading seed axis) on the task of ``env_name``.

    Args:
        agents: the agents (anything with the methods its levels read, and ``sample_actions`` for rollouts).
        agent_config: their config (``discount``, ``gc_negative``, ``goal_rep``, ``low_discount`` are read).
        env_name: a horizon task name.
        config: what to measure.

    Returns:
        ``{"env", "task", "distance_unit", "levels", "edges", "settings", "rows", "summary"}``: ``rows`` one dict per
        (seed, level, bin) with :data:`COLUMNS` (level ``policy``: the rollouts' success); ``summary`` per level: the
        means and standard deviations over seeds per bin, and the Spearman correlation of the level's output with
        ``-d`` per seed.
    """
    if not is_horizon_name(env_name):
        raise ScalerlError(
            f"diagnose: {env_name} is not a horizon task (maze-nN, pointmaze-nN, lock-LN); "
            "value diagnostics need exact values"
        )
    spec, _, _ = parse_horizon_name(env_name)
    oracle = getattr(agent_config, "goal_rep", "observation") == "oracle"
    rng = np.random.default_rng(config.seed)
    key = jax.random.PRNGKey(config.seed)
    pairs = sample_pairs(spec, config.bins, config.pairs_per_bin, rng)
    readings = read_agents(agents, agent_config, spec, pairs, oracle, key)
    rows, summary = [], {}
    for reading in readings:
        rows_of_level = level_rows(reading, pairs, config.value_floor)
        estimated = implied_steps(reading.values, reading.level.kind, reading.level.discount, config.value_floor)
        scores = reading.values if reading.level.kind == "score" else -estimated
        summary[reading.level.name] = {
            "kind": reading.level.kind,
            "discount": reading.level.discount,
            "spearman": [_spearman(scores[seed], reading.steps[seed]) for seed in range(scores.shape[0])],
            **_over_seeds(rows_of_level, ("abs_error_steps", "median_abs_error_steps", "bias_steps")),
        }
        rows += rows_of_level
    if config.rollouts_per_bin > 0 and hasattr(type(agents), "sample_actions"):
        success = rollout_success(agents, spec, pairs, config.rollouts_per_bin, oracle, rng, jax.random.fold_in(key, 3))
        policy_rows = [
            _row(
                seed,
                "policy",
                index,
                pairs,
                distance_mean=float(pairs.distances[pairs.bins == index][: config.rollouts_per_bin].mean()),
                rollouts=int(min(np.sum(pairs.bins == index), config.rollouts_per_bin)),
                success=float(success[seed, index]),
            )
            for seed in range(success.shape[0])
            for index in range(success.shape[1])
            if not math.isnan(success[seed, index])
        ]
        summary["policy"] = {"kind": "success", **_over_seeds(policy_rows, ("success",))}
        rows += policy_rows
    return {
        "env": env_name,
        "task": spec.name,
        "distance_unit": "reference steps (4 per cell)" if spec.family == "pointmaze" else "steps",
        "levels": [dataclasses.asdict(reading.level) for reading in readings],
        "edges": [int(edge) for edge in pairs.edges],
        "settings": dataclasses.asdict(config),
        "rows": rows,
        "summary": summary,
    }


def _over_seeds(rows: list[dict], keys: tuple[str, ...]) -> dict:
    """Per bin: the mean distance and, for each key, its mean and standard deviation (``ddof=0``) over seeds."""
    by_bin: dict[int, list[dict]] = {}
    for row in rows:
        by_bin.setdefault(row["bin"], []).append(row)
    out: dict = {"bins": sorted(by_bin)}
    out["distance_mean"] = [float(np.mean([r["distance_mean"] for r in by_bin[b]])) for b in out["bins"]]
    for key in keys:
        out[key] = [float(np.mean([r[key] for r in by_bin[b]])) for b in out["bins"]]
        out[f"{key}_std"] = [float(np.std([r[key] for r in by_bin[b]])) for b in out["bins"]]
    return out


def diagnostics_csv(report: dict) -> str:
    """The report's rows as CSV text (:data:`COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow(
            {key: ("" if isinstance(value, float) and math.isnan(value) else value) for key, value in row.items()}
        )
    return buffer.getvalue()


def plot_diagnostics(report: dict, path: str) -> str:
    """Three panels over the true distance: absolute value error and bias in steps per level (mean +- std over
    seeds), and the policy's success; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalerl.atomic import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (
        ("abs_error_steps", "|error| (steps)"),
        ("bias_steps", "bias (steps): + too low, - too high"),
        ("success", "success"),
    )
    for ax, (key, title) in zip(axes, panels):
        for name, level in report["summary"].items():
            if key not in level:
                continue
            x, mean, std = (np.asarray(level[k], np.float64) for k in ("distance_mean", key, f"{key}_std"))
            if np.all(np.isnan(mean)):
                continue
            ax.plot(x, mean, marker="o", ms=3, label=name)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        if key == "bias_steps":
            ax.axhline(0.0, color="grey", lw=0.8)
        if key == "success":
            ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(f"true distance ({report['distance_unit']})")
        ax.set_title(title, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    run = f": {report['agent']}, step {report['step']}" if "agent" in report else ""
    fig.suptitle(f"{report['task']}{run}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def write_diagnostics(run_dir: str, report: dict) -> list[str]:
    """Write :data:`DIAGNOSTICS_FILES` into ``run_dir`` atomically; returns their paths."""
    from scalerl.atomic import atomic_write_json, atomic_write_text

    csv_path, json_path, png_path = (os.path.join(run_dir, name) for name in DIAGNOSTICS_FILES)
    atomic_write_text(csv_path, diagnostics_csv(report))
    atomic_write_json(json_path, report)
    plot_diagnostics(report, png_path)
    return [csv_path, json_path, png_path]


def template_dataset(spec: HorizonSpec, oraclerep: bool):
    """A tiny dataset of the task's observations (one trajectory through its first states), enough to create agents
    with the right shapes to restore a checkpoint into."""
    from scalerl.data import compact

    graph = task_graph(spec)
    count = min(graph.num_states, 8)
    observations = _observe_states(spec, np.arange(count), False)
    terminals = np.zeros(count, np.float32)
    terminals[-1] = 1.0
    arrays = {"observations": observations, "actions": np.zeros((count, 2), np.float32), "terminals": terminals}
    return compact(arrays, _observe_states(spec, np.arange(count), True) if oraclerep else None)


def diagnose_run(run_dir: str, config: DiagnoseConfig) -> tuple[dict, list[str]]:
    """Restore a ``scalerl train`` run's agents (its latest checkpoint, or ``config.checkpoint``), diagnose them and
    write :data:`DIAGNOSTICS_FILES` into the run directory; returns ``(report, paths)``.

    Raises:
        ScalerlError: one line if the run is not a ``scalerl train`` run on a horizon task or has no such checkpoint
            (checked before any work).
    """
    from scalerl.agents import get_agent, sampler_config
    from scalerl.offline.loop import create_agents
    from scalerl.overrides import build_config
    from scalerl.runs import list_checkpoints, read_config, restore_checkpoint, seed_keys

    saved = read_config(str(run_dir))
    if "train" not in saved or "agent" not in saved:
        raise ScalerlError(f"RUN_DIR: {run_dir}/config.json has no 'train' section; expected a `scalerl train` run")
    env = saved["train"]["env"]
    if not is_horizon_name(env):
        raise ScalerlError(
            f"RUN_DIR: {run_dir} was trained on {env}; diagnose needs a horizon task (maze-nN, pointmaze-nN, lock-LN)"
        )
    spec, _, oraclerep = parse_horizon_name(env)
    checkpoints = dict(list_checkpoints(str(run_dir)))
    if not checkpoints:
        raise ScalerlError(f"{run_dir}/checkpoints: no checkpoint to diagnose")
    step = config.checkpoint or max(checkpoints)
    if step not in checkpoints:
        raise ScalerlError(f"--checkpoint: no checkpoint at step {step} in {run_dir}; found {sorted(checkpoints)}")
    agent_cls, config_cls = get_agent(saved["train"]["agent"])
    agent_config = build_config(
        config_cls, {k: tuple(v) if isinstance(v, list) else v for k, v in saved["agent"].items()}
    )
    dataset = template_dataset(spec, oraclerep)
    # Only the structure and shapes matter to the restore: traced, not compiled.
    template = jax.eval_shape(
        lambda: create_agents(
            agent_cls, agent_config, dataset, sampler_config(agent_config), seed_keys(0, saved["train"]["seeds"])
        )
    )
    agents = jax.tree.map(jnp.asarray, restore_checkpoint(checkpoints[step], template))
    report = diagnose_agents(agents, agent_config, env, config)
    report.update(agent=saved["train"]["agent"], step=step, run_dir=os.path.abspath(run_dir))
    return report, write_diagnostics(str(run_dir), report)
