"""OGBench tasks for data generation and evaluation: the task table, name parsing and environment construction.

Every task scalerl knows is a row of :data:`TASKS`: its OGBench environment id, its family (which decides the
scripted oracle and the oracle goal representation) and the dataset types it supports. ``make_env`` accepts the
names researchers use in papers and on the command line::

    puzzle-3x3                      # the goal-conditioned environment
    puzzle-3x3-play                 # dataset name (the type is ignored for the environment)
    puzzle-3x3-play-oraclerep       # goals in the oracle representation (button states here)
    puzzle-3x3-play-oraclerep-v0    # OGBench's spelling, with the version suffix
"""

from __future__ import annotations

import dataclasses
import os
import warnings

from scalerl.errors import ScalerlError


def default_mujoco_gl() -> None:
    """Headless MuJoCo: render (videos only) through EGL, never a display - where EGL exists.

    ``MUJOCO_GL=egl`` on a machine without ``libEGL`` makes ``import mujoco`` itself fail (PyOpenGL finds no EGL
    platform), so there the variable is left alone and only video rendering is unavailable. A value the user set
    always wins. Called where an environment is built (before MuJoCo is first imported), never at import time.
    """
    import ctypes.util

    if "MUJOCO_GL" not in os.environ and ctypes.util.find_library("EGL"):
        os.environ["MUJOCO_GL"] = "egl"


DATASET_TYPES = ("play", "noisy", "navigate", "stitch", "explore")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One OGBench task.

    Attributes:
        name: scalerl's short task name, e.g. ``puzzle-3x3``.
        env_id: the Gymnasium id registered by ``ogbench``.
        family: ``pointmaze``, ``antmaze``, ``humanoidmaze``, ``cube``, ``puzzle`` or ``scene``.
        types: OGBench's dataset types for this task.
        max_episode_steps: evaluation episode length (OGBench's registration).
        scripted: whether a scripted oracle generates its data (``scalerl generate``). The ant and humanoid mazes'
            datasets come from OGBench's pretrained locomotion policies, which scalerl does not ship: their official
            ``.npz`` files load and train, and their environments evaluate, but they cannot be generated.
    """

    name: str
    env_id: str
    family: str
    types: tuple[str, ...]
    max_episode_steps: int
    scripted: bool = True


def _task_table() -> dict[str, TaskSpec]:
    rows: list[TaskSpec] = []
    for size in ("medium", "large", "giant", "teleport"):
        rows.append(TaskSpec(f"pointmaze-{size}", f"pointmaze-{size}-v0", "pointmaze", ("navigate", "stitch"), 1000))
    for size, steps in {"medium": 1000, "large": 1000, "giant": 1000, "teleport": 1000}.items():
        types = ("navigate", "stitch", "explore") if size != "giant" else ("navigate", "stitch")
        rows.append(TaskSpec(f"antmaze-{size}", f"antmaze-{size}-v0", "antmaze", types, steps, scripted=False))
    for size, steps in {"medium": 2000, "large": 2000, "giant": 4000}.items():
        rows.append(
            TaskSpec(f"humanoidmaze-{size}", f"humanoidmaze-{size}-v0", "humanoidmaze", ("navigate", "stitch"), steps,
                     scripted=False)
        )  # fmt: skip
    cube_steps = {"single": 200, "double": 500, "triple": 1000, "quadruple": 1000, "octuple": 1500}
    for count, steps in cube_steps.items():
        rows.append(TaskSpec(f"cube-{count}", f"cube-{count}-v0", "cube", ("play", "noisy"), steps))
    puzzle_steps = {"3x3": 500, "4x4": 500, "4x5": 1000, "4x6": 1000}
    for size, steps in puzzle_steps.items():
        rows.append(TaskSpec(f"puzzle-{size}", f"puzzle-{size}-v0", "puzzle", ("play", "noisy"), steps))
    rows.append(TaskSpec("scene", "scene-v0", "scene", ("play", "noisy"), 750))
    return {row.name: row for row in rows}


TASKS: dict[str, TaskSpec] = _task_table()


@dataclasses.dataclass(frozen=True)
class EnvName:
    """A parsed environment / dataset name."""

    task: TaskSpec
    dataset_type: str | None
    oraclerep: bool

    @property
    def dataset_name(self) -> str:
        """OGBench's dataset file stem, e.g. ``puzzle-3x3-play-v0``."""
        return f"{self.task.name}-{self.dataset_type or 'play'}-v0"


def parse_env_name(name: str) -> EnvName:
    """Parse ``TASK[-TYPE][-oraclerep][-v0]`` into its parts; unknown tasks raise :class:`ScalerlError`."""
    from scalerl.horizon.tasks import NAME_FORMS, horizon_env_name, is_horizon_name

    if is_horizon_name(name):  # the horizon testbed's mazes and locks (scalerl.horizon.tasks)
        return horizon_env_name(name)
    parts = name.strip().split("-")
    if parts and parts[-1] == "v0":
        parts = parts[:-1]
    oraclerep = bool(parts) and parts[-1] == "oraclerep"
    if oraclerep:
        parts = parts[:-1]
    dataset_type = None
    if parts and parts[-1] in DATASET_TYPES:
        dataset_type = parts[-1]
        parts = parts[:-1]
    task_name = "-".join(parts)
    if task_name not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise ScalerlError(
            f"--env: unknown task '{name}'; expected one of {known} (optionally -TYPE, -oraclerep), or {NAME_FORMS}"
        )
    task = TASKS[task_name]
    if dataset_type is not None and dataset_type not in task.types:
        raise ScalerlError(
            f"--env: dataset type '{dataset_type}' is not available for {task_name}; expected {task.types}"
        )
    return EnvName(task=task, dataset_type=dataset_type, oraclerep=oraclerep)


def gym_make(env_id: str, **kwargs):
    """``gymnasium.make`` of an OGBench environment, quietly and without leaving files behind.

    OGBench's maze environments write their generated MuJoCo XML to a fresh ``mkstemp`` file and never delete it (one
    per environment built: thousands over a test suite or a long evaluation job). The model is parsed while the
    environment is constructed, so the file is written into a private temporary directory removed right after.
    """
    import tempfile

    default_mujoco_gl()
    import gymnasium
    import ogbench  # noqa: F401  (registers the environments)

    previous = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix="scalerl-env-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tempfile.tempdir = scratch
        try:
            return gymnasium.make(env_id, **kwargs)
        finally:
            tempfile.tempdir = previous


def make_env(name: str, **kwargs):
    """Build the OGBench environment for ``name`` and return ``(env, tasks)``.

    Args:
        name: a task or dataset name (see the module docstring).
        **kwargs: forwarded to ``gymnasium.make`` (e.g. ``terminate_at_goal=False``, ``render_mode``).

    Returns:
        ``env``: the Gymnasium environment (with ``use_oracle_rep`` for ``-oraclerep`` names);
        ``tasks``: the evaluation task list, one dict per task with ``task_id`` (1-based, as OGBench's
        ``reset(options=dict(task_id=...))`` expects) and ``task_name``.
    """
    parsed = parse_env_name(name)
    if parsed.task.family.startswith("horizon-"):
        from scalerl.horizon.env import make_horizon_env

        return make_horizon_env(name, **kwargs)
    if parsed.oraclerep:
        kwargs.setdefault("use_oracle_rep", True)
    env = gym_make(parsed.task.env_id, **kwargs)
    task_infos = env.unwrapped.task_infos
    tasks = [dict(task_id=i + 1, task_name=info["task_name"]) for i, info in enumerate(task_infos)]
    return env, tasks


def oracle_reps(name: str, qpos, button_states=None):
    """Oracle goal representations of states, as OGBench's ``-oraclerep`` datasets define them.

    Maze: the agent's xy; cube: cube positions centred and scaled by 10; puzzle: button states; scene: cubes,
    button states, drawer and window positions (scaled). Computed by ``ogbench.relabel_utils.add_oracle_reps``
    so the definition is OGBench's own.

    Args:
        name: a task or dataset name.
        qpos: ``[N, nq]`` MuJoCo positions.
        button_states: ``[N, num_buttons]`` for puzzle and scene tasks.

    Returns:
        ``[N, goal_dim]`` float32 array.
    """
    from ogbench.relabel_utils import add_oracle_reps

    parsed = parse_env_name(name)
    if parsed.task.family.startswith("horizon-"):  # horizon datasets store the oracle representation as qpos
        return qpos
    data = {"qpos": qpos}
    if button_states is not None:
        data["button_states"] = button_states
    if parsed.task.family in ("puzzle", "scene") and button_states is None:
        raise ScalerlError(f"{name}: oracle representations need 'button_states' in the dataset")
    env = _ORACLE_ENV_CACHE.get(parsed.task.env_id)
    if env is None:
        env, _ = make_env(parsed.task.name)
        _ORACLE_ENV_CACHE[parsed.task.env_id] = env
    add_oracle_reps(parsed.task.env_id, env, data)
    return data["oracle_reps"]


_ORACLE_ENV_CACHE: dict = {}
