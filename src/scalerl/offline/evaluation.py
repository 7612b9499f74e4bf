"""Batched goal-conditioned evaluation on OGBench tasks.

OGBench's protocol (``impls/utils/evaluation.py`` in seohongpark/ogbench): for each of a task's evaluation goals,
``env.reset(options=dict(task_id=i))`` returns the goal in ``info['goal']``; the agent acts (actions clipped to the
action box) until ``terminated or truncated`` (reaching the goal terminates, the registration's time limit
truncates); the episode's success is the final ``info['success']``. Success is averaged over episodes per task and
over tasks for the overall number.

:func:`evaluate` runs all episodes of all tasks, for all agent seeds, in lockstep: one policy call per environment
step for every environment, then a host loop over the environments still running. Finished environments are frozen
(their observation is held and their action ignored) until the last one finishes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import pathlib
from collections.abc import Callable

import jax
import numpy as np

from scalerl.envs import make_env
from scalerl.errors import ScalerlError
from scalerl.progress import progress_bar

PolicyFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class SeedEvaluation:
    """The evaluation of one agent seed.

    Attributes:
        task_success: success rate per task, in task order.
        success: mean of ``task_success`` (OGBench's overall success).
        episode_length: mean episode length over all episodes.
    """

    task_success: tuple[float, ...]
    success: float
    episode_length: float


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The result of :func:`evaluate`.

    Attributes:
        env_name: the evaluated environment name.
        task_names: OGBench's task names, in task order.
        per_seed: one :class:`SeedEvaluation` per agent seed.
        success_mean: mean over agent seeds of the overall success.
        success_std: standard deviation (``ddof=0``) over agent seeds of the overall success.
        successes: ``[S, T, N]`` final ``info['success']`` of every episode (seed, task, episode).
        episode_lengths: ``[S, T, N]`` number of environment steps of every episode.
        video_paths: files written when ``video=True``, one per task.
    """

    env_name: str
    task_names: tuple[str, ...]
    per_seed: tuple[SeedEvaluation, ...]
    success_mean: float
    success_std: float
    successes: np.ndarray = dataclasses.field(repr=False)
    episode_lengths: np.ndarray = dataclasses.field(repr=False)
    video_paths: tuple[str, ...] = ()

    def metrics(self, prefix: str = "evaluation") -> dict[str, float]:
        """Flat, namespaced scalars for logging (task and length entries are means over agent seeds)."""
        task_success = self.successes.mean(axis=(0, 2))  # [T]
        metrics = {f"{prefix}/success": self.success_mean, f"{prefix}/success_std": self.success_std}
        for task_name, value in zip(self.task_names, task_success):
            metrics[f"{prefix}/{task_name}_success"] = float(value)
        metrics[f"{prefix}/episode_length"] = float(self.episode_lengths.mean())
        return metrics


def summarise(env_name: str, task_names, successes: np.ndarray, episode_lengths: np.ndarray, video_paths=()):
    """Build an :class:`Evaluation` from per-episode ``[S, T, N]`` successes and lengths."""
    task_success = successes.mean(axis=2)  # [S, T]
    overall = task_success.mean(axis=1)  # [S]
    per_seed = tuple(
        SeedEvaluation(
            task_success=tuple(float(value) for value in task_success[s]),
            success=float(overall[s]),
            episode_length=float(episode_lengths[s].mean()),
        )
        for s in range(successes.shape[0])
    )
    return Evaluation(
        env_name=env_name,
        task_names=tuple(task_names),
        per_seed=per_seed,
        success_mean=float(overall.mean()),
        success_std=float(overall.std()),
        successes=successes,
        episode_lengths=episode_lengths,
        video_paths=tuple(str(path) for path in video_paths),
    )


def episode_seed(seed: int, task_index: int, episode: int) -> int:
    """The reset seed of episode ``episode`` of task ``task_index`` (0-based); the same for every agent seed."""
    return int(np.random.SeedSequence((seed, task_index, episode)).generate_state(1)[0])


def reset_episode(env, task_id: int, reset_seed: int, render_goal: bool = False):
    """Reset ``env`` to OGBench task ``task_id`` (1-based), fully determined by ``reset_seed``.

    OGBench draws from four generators during a reset: the env's ``np_random`` (``reset(seed=...)``), the unwrapped
    maze's action space (random settling actions; the Gymnasium wrappers hold a separate copy), the global
    ``np.random`` (maze start noise) and, in manipulation tasks, a fresh, OS-seeded action space built by the
    ``action_space`` property for every random settling step of the goal scene. All are seeded from ``reset_seed``
    here; the global generator is left seeded (:func:`evaluate` saves and restores it).

    Returns:
        ``(observation, info)`` as ``env.reset`` returns them; the goal is ``info['goal']``.
    """
    np.random.seed(reset_seed)
    env.unwrapped.action_space.seed(reset_seed)
    with _seeded_fresh_spaces(reset_seed):
        return env.reset(seed=reset_seed, options={"task_id": task_id, "render_goal": render_goal})


@contextlib.contextmanager
def _seeded_fresh_spaces(seed: int):
    """Give every Gymnasium space that seeds itself from the OS inside the block a seed drawn from ``seed``."""
    from gymnasium.utils import seeding

    original = seeding.np_random
    space_seeds = np.random.default_rng(seed)

    def np_random(space_seed=None):
        return original(int(space_seeds.integers(2**32)) if space_seed is None else space_seed)

    seeding.np_random = np_random
    try:
        yield
    finally:
        seeding.np_random = original


_ENV_POOL: dict[str, list] = {}


def _pooled_envs(env_name: str, count: int, env_kwargs: dict) -> list:
    """``count`` ``(env, tasks)`` pairs from ``make_env``, created once and reused by later evaluations (every
    episode is reset with its own seed, so reuse does not change results)."""
    pool = _ENV_POOL.setdefault(repr((env_name, sorted(env_kwargs.items()))), [])
    while len(pool) < count:
        pool.append(make_env(env_name, **env_kwargs))
    return pool[:count]


def evaluate(
    policy_fn: PolicyFn,
    env_name: str,
    *,
    num_episodes: int = 10,
    seed: int = 0,
    num_seeds: int = 1,
    max_episode_steps: int | None = None,
    env_kwargs: dict | None = None,
    video: bool = False,
    video_dir: str | os.PathLike | None = None,
    video_frame_skip: int = 3,
    progress: bool = True,
) -> Evaluation:
    """Evaluate ``num_seeds`` agent seeds on every task of ``env_name``, all episodes stepped in lockstep.

    Environment ``e`` of agent seed ``s`` runs episode ``e % num_episodes`` of task ``e // num_episodes``, reset
    with ``episode_seed(seed, task, episode)``: every agent seed meets the same start states and goals, and one
    seed's result does not depend on how many seeds are evaluated with it. The global ``np.random`` state is
    restored on return.

    Args:
        policy_fn: ``(observations [S, E, obs_dim], goals [S, E, goal_dim], key) -> actions [S, E, A]``, called
            once per environment step for all environments. Pass a jitted function, with the agents as an
            argument rather than a closure (e.g. ``functools.partial(jitted_sample, agents)``) so that repeated
            evaluations reuse one compilation. ``key`` is ``jax.random.fold_in(jax.random.PRNGKey(seed), step)``.
            Actions are clipped to the action box, as OGBench does.
        env_name: a task or dataset name accepted by :func:`scalerl.envs.make_env` (``-oraclerep`` names give
            oracle goals).
        num_episodes: ``N``, episodes per task (``E = num_tasks * N``).
        seed: seeds the environment resets and the policy keys.
        num_seeds: ``S``, the number of agent seeds ``policy_fn`` acts for.
        max_episode_steps: overrides the registration's time limit (short tests); ``None`` keeps OGBench's.
        env_kwargs: forwarded to ``make_env`` (e.g. ``terminate_at_goal=False``).
        video: render the first episode of each task (agent seed 0), goal beside the current frame.
        video_dir: where videos go (required with ``video=True``): ``{env_name}_task{i}.gif`` when imageio is
            installed, else a PNG strip of frames.
        video_frame_skip: record a frame every this many steps (and the last one).
        progress: show progress over environment steps (:func:`scalerl.progress.progress_bar`).

    Returns:
        An :class:`Evaluation`.
    """
    if num_episodes < 1 or num_seeds < 1:
        raise ScalerlError(f"evaluate: num_episodes and num_seeds must be >= 1, got {num_episodes} and {num_seeds}")
    if video and video_dir is None:
        raise ScalerlError("evaluate: video=True needs video_dir")
    env_kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        env_kwargs["max_episode_steps"] = max_episode_steps
    tasks = _pooled_envs(env_name, 1, env_kwargs)[0][1]
    num_tasks = len(tasks)
    envs_per_seed = num_tasks * num_episodes
    envs = [env for env, _ in _pooled_envs(env_name, num_seeds * envs_per_seed, env_kwargs)]
    video_envs = {}  # flat env index -> task index
    if video:
        render_kwargs = {**env_kwargs, "render_mode": "rgb_array"}
        for task_index, (env, _) in enumerate(_pooled_envs(env_name, num_tasks, render_kwargs)):
            video_envs[task_index * num_episodes] = task_index
            envs[task_index * num_episodes] = env

    global_rng_state = np.random.get_state()
    try:
        observations, goals = [], []
        goal_frames, frames = {}, {}  # flat env index -> goal frame, frames
        for index, env in enumerate(envs):
            task_index, episode = divmod(index % envs_per_seed, num_episodes)
            reset_seed = episode_seed(seed, task_index, episode)
            render = index in video_envs
            try:
                observation, info = reset_episode(env, tasks[task_index]["task_id"], reset_seed, render_goal=render)
                if render:
                    goal_frames[index] = info["goal_rendered"]
                    frames[index] = [env.render().copy()]
            except Exception as error:
                if render:
                    raise _render_error(error) from error
                raise
            observations.append(observation)
            goals.append(info["goal"])
        successes, episode_lengths = _run_lockstep(
            policy_fn,
            envs,
            np.asarray(observations, np.float32),
            np.asarray(goals, np.float32),
            num_seeds=num_seeds,
            seed=seed,
            frames=frames,
            frame_skip=video_frame_skip,
            progress=progress,
            desc=f"evaluate {env_name}",
        )
    finally:
        np.random.set_state(global_rng_state)

    video_paths = []
    for index, task_index in video_envs.items():
        clip = [np.concatenate([goal_frames[index], frame], axis=1) for frame in frames[index]]
        stem = f"{env_name}_task{tasks[task_index]['task_id']}"
        video_paths.append(_write_video(clip, pathlib.Path(video_dir), stem))
    shape = (num_seeds, num_tasks, num_episodes)
    return summarise(
        env_name,
        [task["task_name"] for task in tasks],
        successes.reshape(shape),
        episode_lengths.reshape(shape),
        video_paths,
    )


def _run_lockstep(
    policy_fn: PolicyFn,
    envs: list,
    observations: np.ndarray,
    goals: np.ndarray,
    *,
    num_seeds: int,
    seed: int,
    frames: dict[int, list[np.ndarray]],
    frame_skip: int,
    progress: bool,
    desc: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Step ``envs`` (already reset, seed-major) until all are done; returns final successes and lengths ``[S * E]``.

    ``observations`` ``[S * E, obs_dim]`` is updated in place; a finished environment's row is never written again.
    """
    num_envs = len(envs)
    max_steps = max(env.spec.max_episode_steps for env in envs)
    action_low, action_high = envs[0].action_space.low, envs[0].action_space.high
    batch_shape = (num_seeds, num_envs // num_seeds)
    observation_batch = observations.reshape(*batch_shape, -1)  # [S, E, obs_dim], a view of the buffer
    goal_batch = jax.device_put(goals.reshape(*batch_shape, -1))  # [S, E, goal_dim], constant: sent once
    base_key = jax.random.PRNGKey(seed)
    step_keys = np.asarray(jax.vmap(lambda step: jax.random.fold_in(base_key, step))(np.arange(max_steps)))

    successes = np.zeros(num_envs, np.float32)
    episode_lengths = np.zeros(num_envs, np.int32)
    active = list(range(num_envs))
    bar = progress_bar(max_steps, desc=desc, unit="step", enabled=progress, leave=False)
    for step in range(max_steps):
        actions = np.asarray(policy_fn(observation_batch, goal_batch, step_keys[step]))
        if actions.shape[:2] != batch_shape:
            expected = f"{batch_shape}+(action_dim,)"
            raise ScalerlError(f"evaluate: policy_fn returned actions of shape {actions.shape}, expected {expected}")
        actions = np.clip(actions.reshape(num_envs, -1), action_low, action_high)  # [S * E, A]
        still_active = []
        for index in active:
            env = envs[index]
            observation, _, terminated, truncated, info = env.step(actions[index])
            observations[index] = observation
            done = terminated or truncated
            if frames and index in frames and (done or (step + 1) % frame_skip == 0):
                frames[index].append(env.render().copy())
            if done:
                successes[index] = info["success"]
                episode_lengths[index] = step + 1
            else:
                still_active.append(index)
        active = still_active
        bar.update(1)
        if not active:
            break
    bar.close()
    return successes, episode_lengths


def _render_error(error: Exception) -> ScalerlError:
    reason = (str(error).strip().splitlines() or [""])[0]
    backend = os.environ.get("MUJOCO_GL", "")
    return ScalerlError(
        f"evaluate: video=True but MuJoCo cannot render off-screen with MUJOCO_GL={backend!r} "
        f"({type(error).__name__}: {reason}); install EGL or OSMesa (set MUJOCO_GL before importing scalerl) "
        "or pass video=False"
    )


def _write_video(frames: list[np.ndarray], directory: pathlib.Path, stem: str) -> pathlib.Path:
    """Write ``frames`` (``[H, W, 3]`` uint8) as a GIF with imageio when installed, else as a PNG strip."""
    directory.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("imageio") is not None:
        import imageio.v3 as iio

        path = directory / f"{stem}.gif"
        iio.imwrite(path, np.stack(frames), duration=50, loop=0)  # 50 ms per frame
        return path
    import matplotlib.image

    path = directory / f"{stem}.png"
    picks = np.linspace(0, len(frames) - 1, num=min(8, len(frames))).round().astype(int)
    matplotlib.image.imsave(path, np.concatenate([frames[i] for i in picks], axis=1))
    return path
