"""The online loop: environment steps on the host, sigma updates per step fused in one jitted ``lax.scan``.

Per environment step the host steps one environment per seed and makes ONE jitted call that, for every seed
(``jax.vmap``), writes the transition into the device replay buffer, runs the step's updates as a ``lax.scan`` over
their keys, and samples the next action. The number of updates per step is static in that call; with an
updates-to-data ratio ``sigma`` it is ``floor(n sigma) - floor((n - 1) sigma)`` at the ``n``-th step after
``start_steps``, i.e. ``sigma`` per step for integer ``sigma`` and one update every ``1 / sigma`` steps below 1, so at
most two programs are compiled and compile time does not grow with ``sigma``.

Periodic resets (``--agent.reset-every R``, :meth:`scalerl.online.sac.SACAgent.reset`) happen inside that scan,
right after every ``R``-th update of the run (counted from the first update, summed over resumes: the host passes
the number of updates before the step, :func:`updates_before`), so ``R`` need not divide the updates per step and
a resumed run resets at the same updates as an uninterrupted one. The re-initialisation key of a reset is derived
from the key of the update it follows (:func:`reset_key`), itself drawn from the seed's loop key.

Randomness: the loop's JAX key lives in the state and is split explicitly; every episode's start is
``reset(seed=f(seed, seed index, episode index))``. A checkpoint holds the state (agents, replay buffers, keys) and
the actions of each seed's current episode, and resuming replays those actions after the seeded reset, so a
resumed run equals an uninterrupted one on CPU. A resumed run may raise ``--steps`` and change what is logged and
evaluated (``--log-every``, ``--eval-every``, ``--eval-episodes``, ``--validation-steps``: none of them touches the
training state); ``config.json`` then holds the new settings. Its logs keep what was written up to the checkpoint,
so a run trained to 200 steps and resumed to 400 has the ``metrics.jsonl`` and ``eval.jsonl`` of an uninterrupted
400-step run (``time/`` keys aside) when ``eval_every`` divides 200; otherwise they also keep the earlier session's
end-of-run evaluation at step 200 (its evaluation, TD diagnostic and checkpoint).

Every ``eval_every`` steps the loop logs, per seed, the mean return of ``eval_episodes`` deterministic episodes
(``eval.jsonl``) and the TD-overfitting diagnostic of Fu, Rybkin et al. 2025 ("Compute-Optimal Scaling for
Value-Based Deep RL"): the critic's TD loss on ``validation_steps`` fresh transitions collected by the current policy
in a separate validation environment, next to the TD loss on as many replay transitions (``metrics.jsonl``).

Run directory (:mod:`scalerl.runs` owns the layout)::

    OUT/config.json          loop + agent config (resume checks it)
    OUT/metrics.jsonl        one line per (log step, seed): the losses of the interval's last update step (none if
                             the interval had no update), time/total_s (wall time since the run began, summed over
                             resumed sessions), time/updates_per_s and time/env_steps_per_s (the interval's rates,
                             evaluation left out); at eval steps also td/train_loss and td/validation_loss
    OUT/eval.jsonl           one line per (eval step, seed): mean evaluation return
    OUT/checkpoints/step_XXXXXXXX.msgpack   state of all seeds and the environments' replay record
    OUT/curves.png           evaluation return and TD losses (written at the end)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from fractions import Fraction
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from scalerl.errors import ScalerlError
from scalerl.online import buffer as replay
from scalerl.online.envs import check_env_name, make_online_env
from scalerl.online.sac import SACAgent, SACConfig
from scalerl.ranges import check_ranges, option_flag
from scalerl.runs import (
    EVAL_FILE,
    METRICS_FILE,
    RunTimer,
    append_jsonl,
    check_run_dir,
    info_rows,
    list_checkpoints,
    logged_total_s,
    restore_checkpoint,
    save_checkpoint,
    seed_keys,
    truncate_jsonl,
    write_config,
)


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Settings of the online loop (the agent's are in :class:`scalerl.online.sac.SACConfig`)."""

    env: str = "dmc:cartpole-swingup"
    """Environment: a Gymnasium MuJoCo id (``Hopper-v5``) or a DMC task (``dmc:cartpole-swingup``)."""
    steps: int = 100_000
    """Environment steps per seed."""
    utd: float = 1.0
    """Updates-to-data ratio sigma: gradient updates per environment step (below 1: one every 1/sigma steps)."""
    seeds: int = 1
    """Seeds trained together (vmapped agents, one environment per seed)."""
    seed: int = 0
    """Base seed of agents, replay sampling and environments."""
    start_steps: int = 5000
    """Uniformly random actions (and no updates) for this many first steps."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions per seed, oldest overwritten first (fixed, so a resumed run keeps its buffer)."""
    eval_every: int = 10_000
    """Evaluate, log the TD-overfitting diagnostic and checkpoint every this many environment steps."""
    eval_episodes: int = 5
    """Deterministic evaluation episodes per seed and evaluation."""
    validation_steps: int = 1000
    """Fresh policy transitions collected in the validation environment per evaluation (0: no diagnostic)."""
    log_every: int = 1000
    """Write training losses to metrics.jsonl every this many environment steps."""
    max_episode_steps: int = 1000
    """Episode length limit (truncation, not termination)."""
    out: str = "runs/online"
    """Run directory (config.json, metrics.jsonl, eval.jsonl, checkpoints/, curves.png)."""

    RANGES = {
        "steps": ">= 1",
        "utd": "> 0",
        "seeds": ">= 1",
        "seed": ">= 0",  # numpy's SeedSequence (episode reset seeds) takes non-negative integers
        "start_steps": ">= 0",
        "buffer_size": ">= 1",
        "eval_every": ">= 1",
        "eval_episodes": ">= 0",
        "validation_steps": ">= 0",
        "log_every": ">= 1",
        "max_episode_steps": ">= 1",
    }

    def __post_init__(self):
        check_env_name(self.env)
        check_ranges(self, flag=option_flag, nouns=False)  # worded as always: --utd: expected > 0, got 0


class OnlineState(struct.PyTreeNode):
    """What one seed carries from step to step on the device (a leading seed axis when vmapped).

    Attributes:
        agent: the :class:`SACAgent`.
        buffer: the seed's :class:`scalerl.online.buffer.ReplayBuffer`.
        key: the loop key, split once per environment step.
    """

    agent: SACAgent
    buffer: replay.ReplayBuffer
    key: jax.Array


def updates_at(step: int, utd: float, start_steps: int) -> int:
    """Gradient updates after environment step ``step`` (0-based): ``floor(n sigma) - floor((n - 1) sigma)``.

    ``n = step - start_steps + 1`` counts the steps since updates began; ``sigma`` is taken as the exact decimal it
    is written as, so ``N`` steps give ``floor(N sigma)`` updates in total.
    """
    n = step - start_steps + 1
    if n < 1:
        return 0
    sigma = Fraction(str(utd))
    return int((n * sigma) // 1 - ((n - 1) * sigma) // 1)


def updates_before(step: int, utd: float, start_steps: int) -> int:
    """Gradient updates of the environment steps before ``step``: the sum of :func:`updates_at` over them,
    ``floor((step - start_steps) sigma)`` once updates have begun."""
    return int(max(step - start_steps, 0) * Fraction(str(utd)) // 1)


RESET_KEY_FOLD = 0x5E5E7
"""Folded into an update's key to give the re-initialisation key of a reset after that update."""


def reset_key(update_key: jax.Array) -> jax.Array:
    """The key that re-initialises the networks when a reset follows the update given ``update_key`` (the key
    :func:`update_once` takes)."""
    return jax.random.fold_in(update_key, RESET_KEY_FOLD)


def update_once(agent: SACAgent, buffer: replay.ReplayBuffer, key: jax.Array, batch_size: int):
    """One update on a batch drawn with ``key``: ``sample_key, update_key = split(key)``. Returns ``(agent, info)``."""
    sample_key, update_key = jax.random.split(key)
    return agent.update(replay.sample(buffer, sample_key, batch_size), update_key)


def update_many(agent: SACAgent, buffer: replay.ReplayBuffer, keys: jax.Array, batch_size: int, first_update=0):
    """``len(keys)`` updates fused in one ``lax.scan``; equals :func:`update_once` per key. Infos are stacked.

    With ``agent.config.reset_every = R > 0`` the agent is also reset (:meth:`SACAgent.reset` with
    :func:`reset_key` of the update's key) right after every update whose 1-based index in the run,
    ``first_update + i + 1``, is a multiple of ``R``; ``first_update`` (an ``int32`` scalar, the updates already
    done) is then needed.
    """
    reset_every = agent.config.reset_every
    if not reset_every:
        return jax.lax.scan(lambda a, key: update_once(a, buffer, key, batch_size), agent, keys)

    def body(agent, inputs):
        key, index = inputs
        agent, info = update_once(agent, buffer, key, batch_size)
        due = (first_update + index + 1) % reset_every == 0
        agent = jax.lax.cond(due, lambda a: a.reset(reset_key(key)), lambda a: a, agent)
        return agent, info

    # The update index is the same for every seed (not vmapped), so the cond stays a branch under jax.vmap.
    return jax.lax.scan(body, agent, (keys, jnp.arange(len(keys), dtype=jnp.int32)))


def _seed_step(
    state: OnlineState, transition: dict, observations, explore, num_updates: int, batch_size: int, first_update=0
):
    """Add ``transition``, run ``num_updates`` updates (the run's ``first_update + 1``-th onward), and pick the
    action for ``observations`` (one seed)."""
    key, act_key, update_key = jax.random.split(state.key, 3)
    buffer = replay.add(state.buffer, transition)
    agent, info = state.agent, {}
    if num_updates:
        keys = jax.random.split(update_key, num_updates)
        agent, infos = update_many(agent, buffer, keys, batch_size, first_update)
        info = jax.tree.map(lambda x: x.mean(axis=0), infos)
    actions = _act(agent, observations, act_key, explore)
    return OnlineState(agent=agent, buffer=buffer, key=key), actions, info


def _act(agent: SACAgent, observations, key, explore):
    """A policy sample, or a uniform action in ``[-1, 1]`` while ``explore``."""
    policy_key, uniform_key = jax.random.split(key)
    uniform = jax.random.uniform(uniform_key, (agent.action_dim,), minval=-1.0, maxval=1.0)
    return jnp.where(explore, uniform, agent.sample_actions(observations, policy_key))


@partial(jax.jit, static_argnames=("num_updates", "batch_size"), donate_argnames=("state",))
def train_step(
    state: OnlineState, transition: dict, observations, explore, num_updates: int, batch_size: int, first_update=0
):
    """:func:`_seed_step` for every seed (leading axis) in one compiled call; ``state`` is donated.

    ``first_update`` (the run's updates before this step, :func:`updates_before`; only resets use it) is shared by
    the seeds.
    """
    step = partial(
        _seed_step, explore=explore, first_update=first_update, num_updates=num_updates, batch_size=batch_size
    )
    return jax.vmap(step)(state, transition, observations)


@jax.jit
def first_actions(state: OnlineState, observations, explore):
    """The actions for the first observations ``[S, obs_dim]`` (the state's keys advance by one split)."""

    def one(seed_state, seed_observations):
        key, act_key = jax.random.split(seed_state.key)
        return seed_state.replace(key=key), _act(seed_state.agent, seed_observations, act_key, explore)

    return jax.vmap(one)(state, observations)


@partial(jax.jit, static_argnames=("deterministic",))
def policy_actions(agents: SACAgent, observations, keys, deterministic: bool):
    """Actions ``[S, A]`` of every seed's policy for observations ``[S, obs_dim]``."""
    return jax.vmap(lambda a, o, k: a.sample_actions(o, k, deterministic))(agents, observations, keys)


@jax.jit
def td_losses(state: OnlineState, validation: dict, key):
    """Per seed: the critic's TD loss on the validation transitions ``[S, V, ...]`` and on ``V`` replay ones."""

    def one(seed_state, seed_validation, seed_key):
        sample_key, train_key, val_key = jax.random.split(seed_key, 3)
        size = seed_validation["rewards"].shape[0]
        train_batch = replay.sample(seed_state.buffer, sample_key, size)
        agent = seed_state.agent
        train_loss, _ = agent.critic_loss(train_batch, agent.params, train_key)
        val_loss, _ = agent.critic_loss(seed_validation, agent.params, val_key)
        return {"td/train_loss": train_loss, "td/validation_loss": val_loss}

    keys = jax.random.split(key, state.key.shape[0])
    return jax.vmap(one)(state, validation, keys)


def episode_seed(seed: int, seed_index: int, episode: int, stream: int) -> int:
    """The reset seed of an episode: a hash of (base seed, seed index, episode index, stream)."""
    return int(np.random.SeedSequence([seed, seed_index, episode, stream]).generate_state(1)[0])


TRAIN_STREAM, EVAL_STREAM, VALIDATION_STREAM = 0, 1, 2


class _Envs:
    """One training environment per seed plus the record that lets a checkpoint restore them mid-episode.

    Attributes:
        episode: index of each seed's current episode ``[S]``.
        actions: actions of each seed's current episode so far ``[S, max_episode_steps, A]``.
        length: steps of each seed's current episode ``[S]``.
        returns: return of each seed's current episode ``[S]``; ``last_returns`` of its last finished one.
        observations: the current observations ``[S, obs_dim]``.
    """

    def __init__(self, config: OnlineConfig):
        self.config = config
        self.envs = [make_online_env(config.env, config.max_episode_steps) for _ in range(config.seeds)]
        self.observation_dim, self.action_dim = self.envs[0].observation_dim, self.envs[0].action_dim
        seeds = config.seeds
        self.episode = np.zeros(seeds, np.int64)
        self.actions = np.zeros((seeds, config.max_episode_steps, self.action_dim), np.float32)
        self.length = np.zeros(seeds, np.int64)
        self.returns = np.zeros(seeds, np.float64)
        self.last_returns = np.full(seeds, np.nan)
        self.observations = np.stack([self._reset(s) for s in range(seeds)])

    def _reset(self, s: int) -> np.ndarray:
        self.length[s], self.returns[s] = 0, 0.0
        observation, _ = self.envs[s].reset(episode_seed(self.config.seed, s, int(self.episode[s]), TRAIN_STREAM))
        return observation

    def step(self, actions: np.ndarray) -> tuple[dict, np.ndarray]:
        """Step every seed; returns the transitions ``[S, ...]`` and the next observations (after any reset)."""
        transition = {"observations": self.observations.copy(), "actions": actions}
        next_observations, rewards, terminals, following = [], [], [], []
        for s, env in enumerate(self.envs):
            observation, reward, terminated, truncated, _ = env.step(actions[s])
            self.actions[s, self.length[s]] = actions[s]
            self.length[s] += 1
            self.returns[s] += reward
            next_observations.append(observation)
            rewards.append(reward)
            terminals.append(float(terminated))
            if terminated or truncated:
                self.last_returns[s] = self.returns[s]
                self.episode[s] += 1
                observation = self._reset(s)
            following.append(observation)
        transition.update(
            rewards=np.asarray(rewards, np.float32),
            next_observations=np.stack(next_observations),
            terminals=np.asarray(terminals, np.float32),
        )
        self.observations = np.stack(following)
        return transition, self.observations

    def record(self) -> dict:
        """The host state a checkpoint needs to rebuild the environments."""
        return {
            "episode": self.episode.copy(),
            "actions": self.actions.copy(),
            "length": self.length.copy(),
            "returns": self.returns.copy(),
            "last_returns": self.last_returns.copy(),
            "observations": self.observations.copy(),
        }

    def restore(self, record: dict) -> None:
        """Re-seed each seed's current episode and replay its actions; checks the observations match."""
        self.episode = np.asarray(record["episode"], np.int64).copy()
        self.last_returns = np.asarray(record["last_returns"], np.float64).copy()
        self.actions = np.asarray(record["actions"], np.float32).copy()
        for s, env in enumerate(self.envs):
            observation = self._reset(s)
            for t in range(int(record["length"][s])):
                observation, reward, _, _, _ = env.step(self.actions[s, t])
                self.returns[s] += reward
                self.length[s] += 1
            self.observations[s] = observation
        if not np.array_equal(self.observations, np.asarray(record["observations"])):
            raise ScalerlError("--resume: replaying the checkpoint's episodes did not reproduce its observations")


def evaluate_returns(agents: SACAgent, config: OnlineConfig, envs: list) -> np.ndarray:
    """Mean return ``[S]`` of ``eval_episodes`` deterministic episodes per seed (the same starts every time)."""
    seeds = len(envs)
    totals = np.zeros(seeds)
    for episode in range(config.eval_episodes):
        observations = np.stack(
            [env.reset(episode_seed(config.seed, s, episode, EVAL_STREAM))[0] for s, env in enumerate(envs)]
        )
        running = np.ones(seeds, bool)
        keys = jnp.zeros((seeds, 2), jnp.uint32)
        while running.any():
            actions = np.asarray(policy_actions(agents, observations, keys, True))
            for s, env in enumerate(envs):
                if running[s]:
                    observations[s], reward, terminated, truncated, _ = env.step(actions[s])
                    totals[s] += reward
                    running[s] = not (terminated or truncated)
    return totals / config.eval_episodes


def collect_validation(agents: SACAgent, config: OnlineConfig, envs: list, evaluation: int, key) -> dict:
    """``validation_steps`` fresh transitions ``[S, V, ...]`` of the current (stochastic) policy, one env per seed."""
    seeds = len(envs)
    episode = np.zeros(seeds, np.int64)

    def reset(s):
        return envs[s].reset(episode_seed(config.seed, s, evaluation * 1000 + int(episode[s]), VALIDATION_STREAM))[0]

    observations = np.stack([reset(s) for s in range(seeds)])
    columns = {name: [] for name in ("observations", "actions", "rewards", "next_observations", "terminals")}
    for t in range(config.validation_steps):
        keys = jax.random.split(jax.random.fold_in(key, t), seeds)
        actions = np.asarray(policy_actions(agents, observations, keys, False))
        columns["observations"].append(observations.copy())
        columns["actions"].append(actions)
        rewards, next_observations, terminals = [], [], []
        for s, env in enumerate(envs):
            observation, reward, terminated, truncated, _ = env.step(actions[s])
            rewards.append(reward)
            next_observations.append(observation)
            terminals.append(float(terminated))
            if terminated or truncated:
                episode[s] += 1
                observation = reset(s)
            observations[s] = observation
        columns["rewards"].append(np.asarray(rewards, np.float32))
        columns["next_observations"].append(np.stack(next_observations))
        columns["terminals"].append(np.asarray(terminals, np.float32))
    return {name: np.stack(values, axis=1) for name, values in columns.items()}  # [S, V, ...]


def create_state(config: OnlineConfig, agent_config: SACConfig, observation_dim: int, action_dim: int) -> OnlineState:
    """Agents, empty replay buffers and loop keys for ``config.seeds`` seeds (leading axis)."""
    keys = seed_keys(config.seed, config.seeds)

    def one(key):
        init_key, loop_key = jax.random.split(key)
        agent = SACAgent.create(init_key, observation_dim, action_dim, agent_config)
        return OnlineState(agent, replay.ReplayBuffer.create(config.buffer_size, observation_dim, action_dim), loop_key)

    # Target parameters start as the online ones; give every leaf its own buffer so the state can be donated.
    return jax.tree.map(lambda x: x.copy(), jax.vmap(one)(keys))


def parameter_counts(agent_config: SACConfig, observation_dim: int, action_dim: int) -> dict:
    """Parameter counts of one seed's networks: ``critic_params`` (the whole critic ensemble, N of the model-size
    scaling laws) and ``actor_params``; computed from shapes only (nothing is initialised)."""
    shapes = jax.eval_shape(
        lambda key: SACAgent.create(key, observation_dim, action_dim, agent_config).params, jax.random.PRNGKey(0)
    )

    def count(tree) -> int:
        return int(sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree)))

    return {"critic_params": count(shapes["critic"]), "actor_params": count(shapes["actor"])}


def run_online(config: OnlineConfig, agent_config: SACConfig, resume: bool = False, progress: bool = True) -> str:
    """Train ``config.seeds`` SAC agents online for ``config.steps`` environment steps; returns the run directory.

    Args:
        config: the loop's settings.
        agent_config: the agent's settings.
        resume: continue from the latest checkpoint; the config must match but for the settings
            :func:`scalerl.runs.check_run_dir` lets change, and is then updated.
        progress: show progress (:func:`scalerl.progress.progress_bar`).
    """
    from scalerl.progress import progress_bar

    timer = RunTimer()
    envs = _Envs(config)  # unknown environments fail here, before the run directory is touched
    run_dir = config.out
    saved = json.loads(json.dumps({"online": dataclasses.asdict(config), "agent": dataclasses.asdict(agent_config)}))
    saved["model"] = parameter_counts(agent_config, envs.observation_dim, envs.action_dim)
    defaults = json.loads(
        json.dumps({"online": dataclasses.asdict(OnlineConfig()), "agent": dataclasses.asdict(SACConfig())})
    )
    check_run_dir(run_dir, saved, resume, defaults=defaults)
    write_config(run_dir, saved)  # a resumed run's new --steps and intervals

    eval_envs = [make_online_env(config.env, config.max_episode_steps) for _ in range(config.seeds)]
    validation_envs = [make_online_env(config.env, config.max_episode_steps) for _ in range(config.seeds)]
    state = create_state(config, agent_config, envs.observation_dim, envs.action_dim)
    diagnostic_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1_000_003)
    metrics_path, eval_path = os.path.join(run_dir, METRICS_FILE), os.path.join(run_dir, EVAL_FILE)
    step = 0
    checkpoints = list_checkpoints(run_dir) if resume else []
    if checkpoints:
        step, path = checkpoints[-1]
        template = {"state": state, "envs": envs.record(), "actions": np.zeros((config.seeds, envs.action_dim))}
        restored = restore_checkpoint(path, jax.device_get(template))
        state = jax.tree.map(jnp.asarray, restored["state"])
        envs.restore(restored["envs"])
        actions = np.asarray(restored["actions"], np.float32)
    else:
        for path in (metrics_path, eval_path):
            if os.path.exists(path):
                os.remove(path)
        state, actions = first_actions(state, envs.observations, config.start_steps > 0)
        actions = np.asarray(actions)
    truncate_jsonl(metrics_path, step)
    truncate_jsonl(eval_path, step)
    timer.previous_s = logged_total_s(metrics_path, step)

    bar = progress_bar(config.steps, initial=step, unit="step", desc=f"{config.env} x{config.seeds}", enabled=progress)
    # The losses of the interval's last update step: reset at every line, so a resumed run logs what an uninterrupted
    # one does even when an interval has no update (sigma < 1).
    info = {}
    interval_started, interval_steps, interval_updates = time.perf_counter(), 0, 0
    while step < config.steps:
        transition, observations = envs.step(actions)
        num_updates = updates_at(step, config.utd, config.start_steps)
        explore = step + 1 < config.start_steps
        first_update = np.int32(updates_before(step, config.utd, config.start_steps))
        state, actions, step_info = train_step(
            state,
            transition,
            observations,
            explore,
            num_updates=num_updates,
            batch_size=agent_config.batch_size,
            first_update=first_update,
        )
        actions = np.asarray(actions)
        info = step_info or info
        step += 1
        interval_steps += 1
        interval_updates += num_updates
        bar.update(1)
        evaluate_now = step % config.eval_every == 0 or step == config.steps
        log_now = step % config.log_every == 0 or evaluate_now
        if log_now:
            interval_s = time.perf_counter() - interval_started
            times = timer.interval(interval_updates, interval_s)
            times["time/env_steps_per_s"] = round(interval_steps / interval_s, 3) if interval_s > 0 else 0.0
            rows = [{**row, **times} for row in info_rows(step, info, config.seeds)]
            info = {}
            for s, row in enumerate(rows):
                if not np.isnan(envs.last_returns[s]):
                    row["train/episode_return"] = float(envs.last_returns[s])
            if evaluate_now and config.validation_steps:
                key = jax.random.fold_in(diagnostic_key, step)
                validation = collect_validation(state.agent, config, validation_envs, step // config.eval_every, key)
                td_info = td_losses(state, validation, jax.random.fold_in(key, 1))
                td_rows = info_rows(step, td_info, config.seeds)
                rows = [{**row, **td_row} for row, td_row in zip(rows, td_rows)]
            append_jsonl(metrics_path, rows)
        if evaluate_now:
            if config.eval_episodes:
                returns = evaluate_returns(state.agent, config, eval_envs)
                rows = [{"step": step, "seed": s, "return": float(r)} for s, r in enumerate(returns)]
                append_jsonl(eval_path, rows)
                bar.set_postfix(eval_return=f"{returns.mean():.1f}")
            checkpoint = {"state": jax.device_get(state), "envs": envs.record(), "actions": actions}
            save_checkpoint(run_dir, step, checkpoint, keep=2)
        if log_now:  # the next interval starts after the evaluation and the checkpoint
            interval_started, interval_steps, interval_updates = time.perf_counter(), 0, 0
    bar.close()
    print(timer.summary(), flush=True)
    from scalerl.online.plots import plot_online_run

    plot_online_run(run_dir)
    return run_dir
