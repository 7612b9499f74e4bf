"""The offline training loop: K updates fused in one ``lax.scan`` per jitted call, seeds vmapped.

The host loop only logs, evaluates and checkpoints. Randomness is a pure function of ``(seed, step)``: the batch of
global update ``t`` for seed ``s`` is drawn with ``fold_in(data_key_s, t)``, so K fused updates equal K single
updates, a resumed run equals an uninterrupted one, and adding seeds never changes existing ones.

Run directory (:mod:`scalerl.runs` owns the layout)::

    RUN_DIR/config.json          train + agent config (resume checks it)
    RUN_DIR/metrics.jsonl        one line per (log step, seed): training losses and validation losses
    RUN_DIR/eval.jsonl           one line per (eval step, seed): success per task and overall
    RUN_DIR/checkpoints/step_XXXXXXXX.msgpack   agents of all seeds (the last ``keep`` are kept)
    RUN_DIR/curves.png           learning curves (written at the end)
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import partial

import jax
import jax.numpy as jnp

from scalerl.data import Dataset
from scalerl.errors import ScalerlError
from scalerl.offline.opex import OpexConfig, check_opex_supported, opex_sample_actions
from scalerl.runs import (
    EVAL_FILE,
    METRICS_FILE,
    append_jsonl,
    check_run_dir,
    has_step,
    info_rows,
    list_checkpoints,
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
    tensorboard: bool = False
    """Also log to TensorBoard (RUN_DIR/tensorboard; needs tensorboardX)."""
    wandb_project: str | None = None
    """Also log to this Weights & Biases project (needs wandb)."""

    def __post_init__(self):
        for name in ("steps", "seeds", "log_interval", "save_interval", "keep_checkpoints"):
            if getattr(self, name) <= 0:
                raise ScalerlError(
                    f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(self, name)}"
                )
        if self.eval_interval < 0 or self.eval_episodes < 0:
            raise ScalerlError("--eval-interval and --eval-episodes: expected non-negative integers")
        for name in ("eval_interval", "save_interval"):
            if getattr(self, name) % self.log_interval:
                raise ScalerlError(f"--{name.replace('_', '-')}: expected a multiple of --log-interval")


def create_agents(agent_cls, config, dataset: Dataset, sampler: GoalSamplerConfig, keys: jax.Array):
    """Create one agent per key (vmapped), from an example batch of the dataset."""
    example = sample_batch(jax.random.PRNGKey(0), dataset, sampler, 1)
    agents = jax.vmap(lambda key: agent_cls.create(key, example, config))(keys)
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


def train(
    config: TrainConfig, agent_config, resume: bool = False, progress: bool = True, opex: OpexConfig | None = None
) -> str:
    """Train ``config.seeds`` agents on a dataset; returns the run directory.

    Args:
        config: the loop's settings.
        agent_config: the agent's frozen config dataclass.
        resume: continue from the run directory's latest checkpoint (its config must match).
        progress: show a progress bar.
        opex: improve actions at evaluation with OPEX (test-time gradient steps on the critic; no weight update).
    """
    from tqdm import tqdm

    from scalerl.agents import get_agent, sampler_config
    from scalerl.data import load_dataset
    from scalerl.manifest import list_shards

    agent_cls, config_cls = get_agent(config.agent)
    if type(agent_config) is not config_cls:
        raise ScalerlError(f"--agent: config {type(agent_config).__name__} does not belong to agent '{config.agent}'")
    if opex is not None:
        check_opex_supported(agent_cls, config.agent)
    check_sinks(config.tensorboard, config.wandb_project)
    run_dir = config.out
    saved = {"train": dataclasses.asdict(config), "agent": dataclasses.asdict(agent_config)}
    saved_json = json.loads(json.dumps(saved, default=str))
    check_run_dir(run_dir, saved_json, resume)
    # Everything that can fail on bad input (data, agent config) happens before the run directory is written.
    sampler = sampler_config(agent_config)
    dataset = load_dataset(config.data, env_name=config.env)
    val_dataset = None
    if config.validate:
        try:
            list_shards(config.data, "val")
        except ScalerlError:
            pass  # no -val data: training losses only
        else:
            val_dataset = load_dataset(config.data, env_name=config.env, split="val", check_obs_dim=False)
    keys = seed_keys(config.seed, config.seeds)
    init_keys, data_keys, val_keys = (jax.vmap(lambda k, i=i: jax.random.fold_in(k, i))(keys) for i in range(3))
    agents = create_agents(agent_cls, agent_config, dataset, sampler, init_keys)
    if not resume:
        write_config(run_dir, saved_json)

    metrics_path = os.path.join(run_dir, METRICS_FILE)
    eval_path = os.path.join(run_dir, EVAL_FILE)
    start = 0
    if resume:
        checkpoints = list_checkpoints(run_dir)
        if checkpoints:
            start, path = checkpoints[-1]
            agents = restore_checkpoint(path, agents)
        truncate_jsonl(metrics_path, start)
        truncate_jsonl(eval_path, start)
    elif os.path.exists(metrics_path):
        os.remove(metrics_path)

    sinks = MetricSinks(run_dir, config.tensorboard, config.wandb_project, saved_json)
    batch_size = agent_config.batch_size
    bar = tqdm(
        total=config.steps, initial=start, unit="upd", desc=f"{config.agent} x{config.seeds}", disable=not progress
    )
    step = start
    while step < config.steps:
        count = min(config.log_interval, config.steps - step)
        agents, info = train_chunk(agents, dataset, data_keys, step, sampler, batch_size, count)
        step += count
        rows = info_rows(step, info, config.seeds, "train/")
        if val_dataset is not None:
            step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(val_keys, step)
            val_info = validation_info(agents, val_dataset, step_keys, sampler, batch_size)
            rows = [{**row, **val_row} for row, val_row in zip(rows, info_rows(step, val_info, config.seeds, "val/"))]
        append_jsonl(metrics_path, rows)
        sinks.write(rows)
        bar.update(count)
        if config.eval_interval and step % config.eval_interval == 0 and step < config.steps and config.eval_episodes:
            eval_rows = run_evaluation(agents, config.env, config.eval_episodes, config.seed, step, False, opex=opex)
            append_jsonl(eval_path, eval_rows)
            sinks.write(eval_rows)
        if step % config.save_interval == 0 or step == config.steps:
            save_checkpoint(run_dir, step, agents, config.keep_checkpoints)
    bar.close()
    if config.eval_episodes and not has_step(eval_path, config.steps):
        eval_rows = run_evaluation(
            agents, config.env, config.eval_episodes, config.seed, config.steps, progress, opex=opex
        )
        append_jsonl(eval_path, eval_rows)
        sinks.write(eval_rows)
    sinks.close()
    from scalerl.plots import plot_run

    plot_run(run_dir)
    return run_dir
