"""The offline training loop: K updates fused in one ``lax.scan`` per jitted call, seeds vmapped.

The host loop only logs, evaluates and checkpoints. Randomness is a pure function of ``(seed, step)``: the batch of
global update ``t`` for seed ``s`` is drawn with ``fold_in(data_key_s, t)``, so K fused updates equal K single
updates, a resumed run equals an uninterrupted one, and adding seeds never changes existing ones.

Run directory layout::

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

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from scalerl.atomic import atomic_write_bytes, atomic_write_json
from scalerl.data import Dataset
from scalerl.errors import ScalerlError
from scalerl.offline.opex import OpexConfig, check_opex_supported, opex_sample_actions
from scalerl.sampling import GoalSamplerConfig, sample_batch
from scalerl.sinks import MetricSinks, check_sinks


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How long and how to train (the agent's own hyper-parameters live in its config)."""

    agent: str
    """Registry name of the agent (``fbc``, ``gciql``, ``sharsa``, ...)."""
    env: str
    """Environment / dataset name, e.g. ``puzzle-3x3-play-oraclerep``."""
    data: str
    """Dataset directory or ``.npz`` file."""
    out: str
    """Run directory."""
    steps: int = 100_000
    """Gradient updates per seed."""
    seeds: int = 1
    """Independent seeds trained in one process (vmapped)."""
    seed: int = 0
    """Base seed; seed ``i`` of the run uses ``fold_in(PRNGKey(seed), i)``."""
    log_interval: int = 1000
    """Updates between metric lines; also the number K of updates fused in one jitted call."""
    eval_interval: int = 0
    """Updates between evaluations (0: evaluate only at the end). A multiple of log_interval."""
    eval_episodes: int = 10
    """Evaluation episodes per task (OGBench has 5 tasks per environment)."""
    save_interval: int = 10_000
    """Updates between checkpoints. A multiple of log_interval."""
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


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """One key per seed, ``fold_in(PRNGKey(seed), i)``: seed ``i`` does not depend on how many seeds run."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(num_seeds))


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


def save_checkpoint(run_dir: str, step: int, agents, keep: int) -> str:
    """Atomically write the agents at ``step`` and prune older checkpoints. Returns the file path."""
    directory = os.path.join(run_dir, "checkpoints")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"step_{step:08d}.msgpack")
    atomic_write_bytes(path, flax.serialization.to_bytes(jax.device_get(agents)))
    for old in list_checkpoints(run_dir)[:-keep]:
        os.remove(old[1])
    return path


def list_checkpoints(run_dir: str) -> list[tuple[int, str]]:
    """``[(step, path)]`` of finished checkpoints, oldest first (temporary files are ignored)."""
    directory = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        if name.startswith("step_") and name.endswith(".msgpack"):
            found.append((int(name[len("step_") : -len(".msgpack")]), os.path.join(directory, name)))
    return sorted(found)


def restore_checkpoint(path: str, template):
    """Agents restored from ``path`` into the structure of ``template``."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return flax.serialization.from_bytes(template, data)
    except Exception as error:  # msgpack raises several types on corrupt input
        raise ScalerlError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from None


def _to_floats(info: dict, prefix: str = "") -> list[dict]:
    """``{key: [S]}`` device arrays -> one ``{prefix+key: float}`` dict per seed."""
    host = jax.device_get(info)
    num_seeds = len(next(iter(host.values()))) if host else 0
    return [{f"{prefix}{k}": float(np.asarray(v)[s]) for k, v in host.items()} for s in range(num_seeds)]


def _truncate_jsonl(path: str, max_step: int) -> None:
    """Drop lines logged after ``max_step`` (a killed run's tail) so resumed metrics equal an uninterrupted run's."""
    if not os.path.isfile(path):
        return
    with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= max_step]
    atomic_write_bytes(path, "".join(kept).encode())


def _append_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


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
    from scalerl.data import list_shards, load_dataset

    agent_cls, config_cls = get_agent(config.agent)
    if not isinstance(agent_config, config_cls):
        raise ScalerlError(f"--agent: config {type(agent_config).__name__} does not belong to agent '{config.agent}'")
    if opex is not None:
        check_opex_supported(agent_cls, config.agent)
    check_sinks(config.tensorboard, config.wandb_project)
    run_dir = config.out
    config_path = os.path.join(run_dir, "config.json")
    saved = {"train": dataclasses.asdict(config), "agent": dataclasses.asdict(agent_config)}
    saved_json = json.loads(json.dumps(saved, default=str))
    if resume:
        if not os.path.isfile(config_path):
            raise ScalerlError(f"--resume: {config_path} not found; nothing to resume")
        with open(config_path) as f:
            previous = json.load(f)
        if previous != saved_json:
            changed = sorted(
                f"{part}.{key}"
                for part in ("train", "agent")
                for key in set(previous.get(part, {})) | set(saved_json[part])
                if previous.get(part, {}).get(key) != saved_json[part].get(key)
            )
            raise ScalerlError(f"--resume: {config_path} differs from this command in {', '.join(changed)}")
    elif os.path.isfile(config_path):
        raise ScalerlError(
            f"--out: {run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
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
    os.makedirs(run_dir, exist_ok=True)
    if not resume:
        atomic_write_json(config_path, saved_json)

    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    eval_path = os.path.join(run_dir, "eval.jsonl")
    start = 0
    if resume:
        checkpoints = list_checkpoints(run_dir)
        if checkpoints:
            start, path = checkpoints[-1]
            agents = restore_checkpoint(path, agents)
        _truncate_jsonl(metrics_path, start)
        _truncate_jsonl(eval_path, start)
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
        rows = _to_floats(info, "train/")
        if val_dataset is not None:
            step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(val_keys, step)
            val_rows = _to_floats(validation_info(agents, val_dataset, step_keys, sampler, batch_size), "val/")
            rows = [{**row, **val_row} for row, val_row in zip(rows, val_rows)]
        rows = [{"step": step, "seed": s, **row} for s, row in enumerate(rows)]
        _append_jsonl(metrics_path, rows)
        sinks.write(rows)
        bar.update(count)
        if config.eval_interval and step % config.eval_interval == 0 and step < config.steps and config.eval_episodes:
            eval_rows = run_evaluation(agents, config.env, config.eval_episodes, config.seed, step, False, opex=opex)
            _append_jsonl(eval_path, eval_rows)
            sinks.write(eval_rows)
        if step % config.save_interval == 0 or step == config.steps:
            save_checkpoint(run_dir, step, agents, config.keep_checkpoints)
    bar.close()
    if config.eval_episodes and not _has_eval(eval_path, config.steps):
        eval_rows = run_evaluation(
            agents, config.env, config.eval_episodes, config.seed, config.steps, progress, opex=opex
        )
        _append_jsonl(eval_path, eval_rows)
        sinks.write(eval_rows)
    sinks.close()
    from scalerl.plots import plot_run

    plot_run(run_dir)
    return run_dir


def _has_eval(path: str, step: int) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return any(json.loads(line)["step"] == step for line in f if line.strip())
