"""The offline training loop: K updates fused in one ``lax.scan`` per jitted call, seeds vmapped.

The host loop only logs, evaluates and checkpoints. Randomness is a pure function of ``(seed, step)``: the batch of
global update ``t`` for seed ``s`` is drawn with ``fold_in(data_key_s, t)``, so K fused updates equal K single
updates, a resumed run equals an uninterrupted one, and adding seeds never changes existing ones.

Resuming (``--resume``) continues from the latest checkpoint and may raise ``--steps`` (train longer after looking at
the curves) or change what is logged, evaluated and checkpointed (:data:`scalerl.runs.RESUME_MAY_CHANGE`);
``config.json`` then holds the new settings. Chunks end at multiples of ``log_interval``, wherever the run started, so
a run trained to 200 updates and resumed to 400 has the metrics of an uninterrupted 400-update run, bit for bit on
CPU (their ``time/`` keys aside), when ``log_interval`` divides 200 and did not change. Otherwise its agents are still
the same (how updates are cut into chunks never changes them), but the first line after the resume averages only the
updates since it. Its ``eval.jsonl`` keeps every evaluation already made: the rows of the uninterrupted run,
identical, plus the end-of-run evaluation of each earlier session at a step where the uninterrupted run did not
evaluate (a true evaluation of the same agents at that step).

Every metrics line also carries ``time/total_s``, the wall time since the run began (summed over resumed sessions),
and ``time/updates_per_s``, the update steps per second of the line's interval (each step updates every seed); the
run ends by printing its time and the steady rate (without the first interval, which compiles).

Run directory (:mod:`scalerl.runs` owns the layout)::

    RUN_DIR/config.json          train + agent config (resume checks it, then writes the new settings)
    RUN_DIR/metrics.jsonl        one line per (log step, seed): training losses, validation losses, time/ keys
    RUN_DIR/eval.jsonl           one line per (eval step, seed): success per task and overall
    RUN_DIR/checkpoints/step_XXXXXXXX.msgpack   agents of all seeds (the last ``keep`` are kept)
    RUN_DIR/curves.png           learning curves (written at the end)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from scalerl.data import Dataset
from scalerl.errors import ScalerlError
from scalerl.offline.opex import OpexConfig, check_opex_supported, opex_sample_actions
from scalerl.ranges import Range, check_ranges, option_flag
from scalerl.runs import (
    EVAL_FILE,
    METRICS_FILE,
    RunTimer,
    append_jsonl,
    check_run_dir,
    has_step,
    info_rows,
    list_checkpoints,
    logged_total_s,
    restore_checkpoint,
    save_checkpoint,
    seed_keys,
    truncate_jsonl,
    write_config,
)
from scalerl.sampling import GoalSamplerConfig, sample_batch
from scalerl.sinks import MetricSinks, check_sinks


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How long and how to train (the agent's own hyper-parameters live in its config)."""

    agent: str
    """Registry name of the agent (``fbc``, ``gciql``, ``sharsa``, ...; ``scalerl agents`` lists them all)."""
    env: str
    """Environment / dataset name, e.g. ``puzzle-3x3-play-oraclerep``."""
    data: str
    """Dataset directory (from ``scalerl generate``) or an OGBench ``.npz`` file."""
    out: str
    """Run directory (config.json, metrics.jsonl, eval.jsonl, checkpoints/, curves.png)."""
    steps: int = 100_000
    """Gradient updates per seed."""
    seeds: int = 1
    """Independent seeds trained in one process (vmapped)."""
    seed: int = 0
    """Base seed; seed ``i`` of the run uses ``fold_in(PRNGKey(seed), i)``."""
    log_interval: int = 1000
    """Updates between metric lines; also the number K of updates fused in one jitted call."""
    eval_interval: int = 0
    """Updates between evaluations (0: evaluate only at the end); a multiple of ``log_interval``."""
    eval_episodes: int = 10
    """Evaluation episodes per task (0: no evaluation; OGBench has 5 tasks per environment)."""
    save_interval: int = 10_000
    """Updates between checkpoints; a multiple of ``log_interval``."""
    keep_checkpoints: int = 2
    """How many recent checkpoints to keep."""
    validate: bool = True
    """Log the validation loss on the ``-val`` data (when the dataset has it)."""
    val_transitions: int = 1_000_000
    """Validation on a packed store: at most this many ``-val`` transitions, a fixed subset of whole blocks spread
    over the store (all of them when they fit). ``.npz`` datasets validate on all their ``-val`` data."""
    window: str = ""
    """Train through a device window of a packed store (``scalerl pack``) of this many transitions (``10M``) or bytes
    (``8GB``), refreshed by a background reader; ``all``: the whole store, loaded once. Empty: the whole dataset,
    loaded once (a store larger than the device's free memory is then refused with a hint)."""
    window_refresh: int = 0
    """Updates between two window refreshes (each replaces ``--refresh-blocks`` blocks); 0: the largest block's
    transitions over the batch size, so the whole store streams through the window once per epoch-equivalent (as many
    updates as the store has transitions per batch; the reference's rotation streams about as fast)."""
    refresh_blocks: int = 1
    """Blocks replaced at each window refresh; the whole window turns over every ``W / blocks`` refreshes."""
    rotation: int = 0
    """The reference's data path (Park et al. 2025), for exact reproduction: train on one source file of a packed store
    at a time, in sorted order from the first, moving to the next every this many updates (their
    ``dataset_replace_interval``: 1000; 4000 for humanoidmaze-giant), validating on its ``-val`` companion. 0: off."""
    tensorboard: bool = False
    """Also log to TensorBoard (RUN_DIR/tensorboard; needs tensorboardX)."""
    wandb_project: str | None = None
    """Also log to this Weights & Biases project (needs wandb)."""

    # Worded as `scalerl train` always has: --steps: expected a positive integer, got 0.
    RANGES = {
        **dict.fromkeys(
            ("steps", "seeds", "log_interval", "save_interval", "keep_checkpoints"), Range(">= 1", "a positive integer")
        ),
        **dict.fromkeys(
            ("seed", "eval_interval", "eval_episodes", "rotation", "window_refresh"),
            Range(">= 0", "a non-negative integer"),
        ),
        **dict.fromkeys(("val_transitions", "refresh_blocks"), Range(">= 1", "a positive integer")),
    }

    def __post_init__(self):
        check_ranges(self, flag=option_flag)
        for name in ("eval_interval", "save_interval"):
            if getattr(self, name) % self.log_interval:
                raise ScalerlError(f"--{name.replace('_', '-')}: expected a multiple of --log-interval")


@partial(jax.jit, static_argnames=("agent_cls", "config"))
def _create(keys, example, agent_cls, config):
    """``[S]`` agents from ``[S]`` keys and an example batch (the example is an argument, so it is not baked in)."""
    return jax.vmap(lambda key: agent_cls.create(key, example, config))(keys)


def create_agents(agent_cls, config, dataset: Dataset, sampler: GoalSamplerConfig, keys: jax.Array):
    """Create one agent per key (vmapped), from an example batch of the dataset.

    Creation is one jitted program (cached by the persistent compilation cache, and in this process for the same
    agent, config and example shapes) rather than hundreds of small op-by-op compilations; the parameters are bitwise
    the same either way.
    """
    example = sample_batch(jax.random.PRNGKey(0), dataset, sampler, 1)
    agents = _create(keys, example, agent_cls, config)
    # Target parameters start as the online ones; give every leaf its own buffer so the agents can be donated.
    return jax.tree.map(lambda x: x.copy(), agents)


def _updates(agent, dataset: Dataset, data_key, start_step, sampler: GoalSamplerConfig, batch_size: int, count: int):
    """``count`` updates of one agent, batch ``t`` drawn with ``fold_in(data_key, t)``; returns the mean info."""

    def body(agent, step):
        batch = sample_batch(jax.random.fold_in(data_key, step), dataset, sampler, batch_size)
        return agent.update(batch)

    agent, infos = jax.lax.scan(body, agent, start_step + jnp.arange(count))
    return agent, jax.tree.map(lambda x: jnp.mean(x, axis=0), infos)


@partial(jax.jit, static_argnames=("sampler", "batch_size", "count"), donate_argnums=(0,))
def train_chunk(
    agents, dataset: Dataset, data_keys, start_step, sampler: GoalSamplerConfig, batch_size: int, count: int
):
    """``count`` fused updates for every seed: ``vmap`` over seeds of a ``lax.scan`` over updates.

    Args:
        agents: the vmapped agents (leading axis = seed); donated.
        dataset: the training dataset (an argument, never closed over, so it is not baked into the program).
        data_keys: ``[S]`` per-seed data keys.
        start_step: global index of the first update of the chunk.

    Returns:
        ``(agents, info)`` with info averaged over the chunk, ``[S]`` per key.
    """
    step_fn = partial(_updates, sampler=sampler, batch_size=batch_size, count=count)
    if data_keys.shape[0] == 1:
        # One seed: skip vmap, whose size-1 batched matmuls are markedly slower on XLA:CPU.
        squeeze = partial(jax.tree.map, lambda x: x[0])
        agent, info = step_fn(squeeze(agents), dataset, data_keys[0], start_step)
        return jax.tree.map(lambda x: x[None], (agent, info))
    return jax.vmap(step_fn, in_axes=(0, None, 0, None))(agents, dataset, data_keys, start_step)


@partial(jax.jit, static_argnames=("sampler", "batch_size"))
def validation_info(agents, dataset: Dataset, keys, sampler: GoalSamplerConfig, batch_size: int):
    """The agents' ``total_loss`` info on one validation batch per seed (``[S]`` per key)."""

    def one(agent, key):
        batch_key, loss_key = jax.random.split(key)
        batch = sample_batch(batch_key, dataset, sampler, batch_size)
        _, info = agent.total_loss(batch, agent.params, loss_key)
        return info

    return jax.vmap(one)(agents, keys)


@partial(jax.jit, static_argnames=("opex",))
def _policy(agents, observations, goals, key, opex=None):
    keys = jax.random.split(key, observations.shape[0])
    return jax.vmap(partial(opex_sample_actions, config=opex))(agents, observations, goals, keys)


def make_policy_fn(agents, opex: OpexConfig | None = None):
    """``policy_fn(observations [S, E, obs], goals [S, E, goal], key) -> actions [S, E, A]``: one jitted call.

    With ``opex``, each action is improved by a few gradient steps on the agent's critic (:mod:`scalerl.offline.opex`).
    """
    return lambda observations, goals, key: _policy(agents, observations, goals, key, opex)


def run_evaluation(
    agents,
    env_name: str,
    episodes: int,
    seed: int,
    step: int,
    progress: bool,
    video_dir: str | None = None,
    opex: OpexConfig | None = None,
) -> list[dict]:
    """OGBench-protocol evaluation of every seed's agent; one row per seed (videos of seed 0 into ``video_dir``).

    With ``opex``, actions are improved at test time (:mod:`scalerl.offline.opex`) and the rows record its settings.
    """
    from scalerl.offline.evaluation import evaluate

    num_seeds = jax.tree.leaves(agents)[0].shape[0]
    # The same evaluation episodes (start states and goals) at every step, so curves compare like with like.
    result = evaluate(
        make_policy_fn(agents, opex),
        env_name,
        num_episodes=episodes,
        seed=seed,
        num_seeds=num_seeds,
        progress=progress,
        video=video_dir is not None,
        video_dir=video_dir,
    )
    rows = []
    for s, per_seed in enumerate(result.per_seed):
        row = {"step": step, "seed": s, "success": per_seed.success, "episode_length": per_seed.episode_length}
        row.update({f"success/{name}": value for name, value in zip(result.task_names, per_seed.task_success)})
        if opex is not None:
            row.update(opex_steps=opex.steps, opex_lr=opex.lr, opex_normalize=opex.normalize)
        rows.append(row)
    return rows


def check_goal_dim(dataset: Dataset, goal_rep: str, env_name: str) -> None:
    """Refuse, in one line, an agent whose goals differ in dimension from those evaluation hands out.

    OGBench's evaluation gives oracle representations as goals on ``-oraclerep`` environments and full states
    otherwise; the dataset holds both (its oracle representations are OGBench's, its states are checked against the
    environment when loaded).
    """
    from scalerl.envs import parse_env_name

    oraclerep = parse_env_name(env_name).oraclerep
    if goal_rep == "oracle" and not oraclerep:
        raise ScalerlError(f"--agent.goal-rep oracle: needs an '-oraclerep' environment name, got --env {env_name}")
    agent_dim = (dataset.oracle_reps if goal_rep == "oracle" else dataset.observations).shape[-1]
    env_dim = (dataset.oracle_reps if oraclerep else dataset.observations).shape[-1]
    if agent_dim != env_dim:
        kind = "oracle representations" if oraclerep else "full states"
        raise ScalerlError(
            f"--agent.goal-rep {goal_rep}: the agent's goals have {agent_dim} dimensions but {env_name}'s evaluation "
            f"goals are {kind} of {env_dim}; drop --agent.goal-rep (goals follow the environment name)"
        )


def mean_info(chunks: list[tuple[dict, int, float]]) -> dict:
    """The info of a metrics line from its chunks' ``(info, updates, seconds)``: the one chunk's info as it is, or the
    update-weighted mean of several (float64 on the host; a log interval cut by window refreshes)."""
    if len(chunks) == 1:
        return chunks[0][0]
    total = sum(count for _, count, _ in chunks)
    infos = [jax.device_get(info) for info, _, _ in chunks]
    return {
        key: sum(np.asarray(info[key], np.float64) * count for info, (_, count, _) in zip(infos, chunks)) / total
        for key in infos[0]
    }


TRAIN_FIELDS_ADDED = ("val_transitions", "window", "window_refresh", "refresh_blocks", "rotation")
"""``TrainConfig`` fields added after runs were made: a run whose ``config.json`` lacks them resumes at their defaults
(the behaviour it had)."""


def train(
    config: TrainConfig, agent_config, resume: bool = False, progress: bool = True, opex: OpexConfig | None = None
) -> str:
    """Train ``config.seeds`` agents on a dataset; returns the run directory.

    The data are the whole dataset on the device, or a window of a packed store that a background reader refreshes
    between chunks, or the reference's one-file rotation (:func:`scalerl.offline.window.open_training_data`); chunks
    end where the data change, which never changes the agents (the window of update ``t`` depends only on the seed and
    ``t``).

    Args:
        config: the loop's settings.
        agent_config: the agent's frozen config dataclass.
        resume: continue from the run directory's latest checkpoint; its config must match but for the settings
            :func:`scalerl.runs.check_run_dir` lets change, and is then updated.
        progress: show progress (:func:`scalerl.progress.progress_bar`).
        opex: improve actions at evaluation with OPEX (test-time gradient steps on the critic; no weight update).
    """
    from scalerl.agents import get_agent, sampler_config
    from scalerl.offline.window import open_training_data
    from scalerl.progress import progress_bar

    timer = RunTimer()

    agent_cls, config_cls = get_agent(config.agent)
    if type(agent_config) is not config_cls:
        raise ScalerlError(f"--agent: config {type(agent_config).__name__} does not belong to agent '{config.agent}'")
    if opex is not None:
        check_opex_supported(agent_cls, config.agent)
    check_sinks(config.tensorboard, config.wandb_project)
    run_dir = config.out
    saved = {"train": dataclasses.asdict(config), "agent": dataclasses.asdict(agent_config)}
    saved_json = json.loads(json.dumps(saved, default=str))
    added = {field.name: field.default for field in dataclasses.fields(TrainConfig) if field.name in TRAIN_FIELDS_ADDED}
    defaults = json.loads(json.dumps({"agent": dataclasses.asdict(config_cls()), "train": added}, default=str))
    check_run_dir(run_dir, saved_json, resume, defaults=defaults)
    checkpoints = list_checkpoints(run_dir) if resume else []
    start = checkpoints[-1][0] if checkpoints else 0
    # Everything that can fail on bad input (data, agent config) happens before the run directory is written.
    sampler = sampler_config(agent_config)
    data = open_training_data(config, start, agent_config.batch_size)
    try:
        dataset = data.dataset_at(start)
        check_goal_dim(dataset, sampler.goal_rep, config.env)
        keys = seed_keys(config.seed, config.seeds)
        init_keys, data_keys, val_keys = (jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys) for i in range(3))
        agents = create_agents(agent_cls, agent_config, dataset, sampler, init_keys)
        write_config(run_dir, saved_json)  # a resumed run's new --steps and intervals
        if data.description:
            print(data.description, flush=True)

        metrics_path = os.path.join(run_dir, METRICS_FILE)
        eval_path = os.path.join(run_dir, EVAL_FILE)
        if resume:
            if checkpoints:
                agents = restore_checkpoint(checkpoints[-1][1], agents)
            truncate_jsonl(metrics_path, start)
            truncate_jsonl(eval_path, start)
            timer.previous_s = logged_total_s(metrics_path, start)
        elif os.path.exists(metrics_path):
            os.remove(metrics_path)

        sinks = MetricSinks(run_dir, config.tensorboard, config.wandb_project, saved_json)
        batch_size = agent_config.batch_size
        bar = progress_bar(
            config.steps, initial=start, unit="upd", desc=f"{config.agent} x{config.seeds}", enabled=progress
        )
        step = start
        pending = []  # (info, updates, seconds) of the chunks since the last metrics line
        while step < config.steps:
            # Up to the next multiple of log_interval, so a run resumed from any step logs where an uninterrupted one
            # does, and no further than the next change of the data (a window refresh, the next rotation file).
            count = min(config.log_interval - step % config.log_interval, config.steps - step)
            change = data.next_change(step)
            if change is not None:
                count = min(count, change - step)
            chunk_started = time.perf_counter()  # a window refresh written before the chunk counts in its time
            dataset = data.dataset_at(step)
            agents, info = train_chunk(agents, dataset, data_keys, step, sampler, batch_size, count)
            info = jax.block_until_ready(info)
            pending.append((info, count, time.perf_counter() - chunk_started))
            step += count
            bar.update(count)
            if step % config.log_interval and step < config.steps:
                continue  # a chunk cut by a change of the data: its line comes at the log step
            rows = info_rows(step, mean_info(pending), config.seeds, "train/")
            val_dataset = data.validation_at(step)
            if val_dataset is not None:
                step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(val_keys, step)
                val_info = validation_info(agents, val_dataset, step_keys, sampler, batch_size)
                val_rows = info_rows(step, val_info, config.seeds, "val/")
                rows = [{**row, **val_row} for row, val_row in zip(rows, val_rows)]
            times = timer.interval(sum(p[1] for p in pending), sum(p[2] for p in pending))
            pending = []
            rows = [{**row, **times} for row in rows]
            append_jsonl(metrics_path, rows)
            sinks.write(rows)
            evaluate_now = config.eval_interval and step % config.eval_interval == 0 and step < config.steps
            if evaluate_now and config.eval_episodes:
                eval_rows = run_evaluation(
                    agents, config.env, config.eval_episodes, config.seed, step, False, opex=opex
                )
                append_jsonl(eval_path, eval_rows)
                sinks.write(eval_rows)
            if step % config.save_interval == 0 or step == config.steps:
                save_checkpoint(run_dir, step, agents, config.keep_checkpoints)
        bar.close()
    finally:
        data.close()
    if config.eval_episodes and not has_step(eval_path, config.steps):
        eval_rows = run_evaluation(
            agents, config.env, config.eval_episodes, config.seed, config.steps, progress, opex=opex
        )
        append_jsonl(eval_path, eval_rows)
        sinks.write(eval_rows)
    sinks.close()
    print(timer.summary(), flush=True)
    from scalerl.plots import plot_run

    plot_run(run_dir)
    return run_dir
