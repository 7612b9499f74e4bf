"""Online control environments (Gymnasium MuJoCo and DeepMind Control) behind one Gymnasium-style interface.

Two families, named on the command line as::

    Hopper-v5                # any Gymnasium MuJoCo id (Hopper, Walker2d, HalfCheetah, Ant, Humanoid, ... v5)
    dmc:cartpole-swingup     # a DeepMind Control suite task, dmc:DOMAIN-TASK (e.g. dmc:ball_in_cup-catch)

Every environment returns flattened float32 observations, takes actions in ``[-1, 1]`` (rescaled to the native
bounds), repeats each action once, and truncates episodes at ``max_episode_steps`` (1000 by default). ``reset(seed)``
fully determines the episode: with the same seed and the same actions an episode replays exactly, which is how
:mod:`scalerl.online.loop` restores an environment mid-episode on resume.
"""

from __future__ import annotations

import numpy as np

from scalerl.envs import default_mujoco_gl
from scalerl.errors import ScalerlError

GYM_DOMAINS = (
    "Hopper",
    "Walker2d",
    "HalfCheetah",
    "Ant",
    "Humanoid",
    "HumanoidStandup",
    "Swimmer",
    "Reacher",
    "InvertedPendulum",
    "InvertedDoublePendulum",
    "Pusher",
)


def _drop_unknown_dm_control_fields() -> None:
    """Let ``dm_control`` 1.0.x index structs of newer MuJoCo releases that renamed or removed a few flex fields.

    ``dm_control`` builds named indexers for every field listed in its generated size table and fails on the first
    one the installed ``mujoco`` no longer has; those fields (deformable flex bodies) are unused by the suite.
    """
    default_mujoco_gl()
    import mujoco
    from dm_control.mujoco.wrapper.mjbindings import sizes

    model = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint/><geom size='.1'/></body></worldbody></mujoco>"
    )
    for struct_name, struct in (("mjmodel", model), ("mjdata", mujoco.MjData(model))):
        for field in [f for f in sizes.array_sizes[struct_name] if not hasattr(struct, f)]:
            del sizes.array_sizes[struct_name][field]


class DMCEnv:
    """A ``dm_control`` suite task with the Gymnasium API (flattened observations, actions in ``[-1, 1]``).

    Attributes:
        observation_dim: length of the flattened observation.
        action_dim: action dimension.
    """

    def __init__(self, domain: str, task: str, max_episode_steps: int):
        _drop_unknown_dm_control_fields()
        from dm_control import suite

        try:
            self._env = suite.load(domain, task, task_kwargs={"random": 0})
        except ValueError as error:
            raise ScalerlError(f"--env: unknown DMC task dmc:{domain}-{task} ({error})") from None
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.action_dim = int(spec.shape[0])
        self.observation_dim = int(sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values()))
        self.max_episode_steps = max_episode_steps
        self._steps = 0

    @staticmethod
    def _flatten(observation) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])

    def reset(self, seed: int) -> tuple[np.ndarray, dict]:
        """Start an episode whose initial state is a function of ``seed`` only."""
        # The task draws its initial state from its own RandomState; reseeding it makes the episode reproducible.
        self._env.task._random = np.random.RandomState(seed)
        self._steps = 0
        return self._flatten(self._env.reset().observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """``(observation, reward, terminated, truncated, info)`` after one step with ``action`` in ``[-1, 1]``."""
        scaled = self._low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        timestep = self._env.step(scaled)
        self._steps += 1
        terminated = bool(timestep.last() and timestep.discount == 0.0)
        truncated = not terminated and (timestep.last() or self._steps >= self.max_episode_steps)
        return self._flatten(timestep.observation), float(timestep.reward or 0.0), terminated, truncated, {}


class GymEnv:
    """A Gymnasium MuJoCo environment with actions rescaled to ``[-1, 1]`` and float32 observations."""

    def __init__(self, env_id: str, max_episode_steps: int):
        default_mujoco_gl()
        import gymnasium

        try:
            self._env = gymnasium.make(env_id, max_episode_steps=max_episode_steps)
        except gymnasium.error.Error as error:
            raise ScalerlError(f"--env: unknown Gymnasium environment '{env_id}' ({error})") from None
        space = self._env.action_space
        self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.action_dim = int(space.shape[0])
        self.observation_dim = int(np.prod(self._env.observation_space.shape))
        self.max_episode_steps = max_episode_steps

    def reset(self, seed: int) -> tuple[np.ndarray, dict]:
        """Start an episode whose initial state is a function of ``seed`` only."""
        observation, info = self._env.reset(seed=seed)
        return np.asarray(observation, np.float32).ravel(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """``(observation, reward, terminated, truncated, info)`` after one step with ``action`` in ``[-1, 1]``."""
        scaled = self._low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (self._high - self._low)
        observation, reward, terminated, truncated, info = self._env.step(scaled)
        return np.asarray(observation, np.float32).ravel(), float(reward), bool(terminated), bool(truncated), info


def check_env_name(name: str) -> None:
    """Raise :class:`ScalerlError` unless ``name`` looks like a supported environment (no construction)."""
    if name.startswith("dmc:"):
        if "-" not in name[4:]:
            raise ScalerlError(f"--env: expected dmc:DOMAIN-TASK (e.g. dmc:cartpole-swingup), got '{name}'")
        return
    domain, _, version = name.rpartition("-")
    if domain not in GYM_DOMAINS or not version.startswith("v"):
        raise ScalerlError(
            f"--env: unknown environment '{name}'; expected a Gymnasium MuJoCo id such as Hopper-v5 "
            "or a DMC task such as dmc:cartpole-swingup"
        )


def make_online_env(name: str, max_episode_steps: int = 1000) -> DMCEnv | GymEnv:
    """The environment called ``name`` (see the module docstring); unknown names raise :class:`ScalerlError`."""
    check_env_name(name)
    if name.startswith("dmc:"):
        domain, task = name[4:].split("-", 1)
        return DMCEnv(domain, task, max_episode_steps)
    return GymEnv(name, max_episode_steps)
