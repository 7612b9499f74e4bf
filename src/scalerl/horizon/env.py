"""The dynamics of the horizon tasks, written once for numpy and JAX, and a Gymnasium environment for evaluation.

:func:`graph_step` (mazes and locks) and :func:`point_step` (the point mass) are pure array functions of an ``xp``
module: with ``jax.numpy`` they are jittable and vmappable (dataset generation, diagnostic rollouts), with ``numpy``
they step :class:`HorizonEnv`, the Gymnasium environment that :mod:`scalerl.offline.evaluation` runs with OGBench's
protocol (Park et al. 2024): ``reset(options=dict(task_id=i))`` puts the goal in ``info['goal']``, reaching it
terminates the episode with ``info['success'] = 1`` (checked after the step, OGBench's ``success_timing='post'``) and
the registration's time limit truncates it.
"""

from __future__ import annotations

import gymnasium
import numpy as np

from scalerl.horizon.tasks import (
    POINT_GOAL_RADIUS,
    POINT_RESET_NOISE,
    POINT_STEPS_PER_CELL,
    HorizonSpec,
    evaluation_tasks,
    horizon_env_name,
    maze_positions,
    parse_horizon_name,
    scale_positions,
    task_graph,
)

WALL_MARGIN = 1e-3
"""How close (in cells) the point mass stops in front of a wall."""


def decode_moves(actions, xp=np):
    """The move of each 2-D action ``[..., 2]`` -> ``[...]`` int32: the axis of the larger magnitude (``x`` on a tie),
    in the direction of its sign (``+`` at zero). ``MOVES[m]`` decodes to ``m``."""
    x, y = actions[..., 0], actions[..., 1]
    along_x = xp.abs(x) >= xp.abs(y)
    return xp.where(along_x, xp.where(x >= 0, 0, 1), xp.where(y >= 0, 2, 3)).astype(xp.int32)


def graph_step(next_states, states, actions, xp=np):
    """Mazes and locks: the state after each action. ``next_states`` ``[S, 4]``, ``states`` ``[...]``, ``actions``
    ``[..., 2]`` -> ``[...]``."""
    return next_states[states, decode_moves(actions, xp)]


def cell_of(positions, size: int, xp=np):
    """Point mass: the cell ``row * N + col`` holding each position ``[..., 2]`` (cell units) -> ``[...]`` int32."""
    cols = xp.clip(xp.floor(positions[..., 0]), 0, size - 1).astype(xp.int32)
    rows = xp.clip(xp.floor(positions[..., 1]), 0, size - 1).astype(xp.int32)
    return rows * size + cols


def point_step(open_sides, size: int, positions, actions, xp=np):
    """Point mass: move each position by ``clip(action, -1, 1) / POINT_STEPS_PER_CELL`` cells, stopping in front of
    walls.

    The move is made along ``x`` first (checking the walls of the current cell), then along ``y`` (checking the walls
    of the cell it is then in); a step crosses at most one cell side per axis.

    Args:
        open_sides: ``[N * N, 4]`` bool (:attr:`scalerl.horizon.tasks.TaskGraph.open_sides`).
        size: ``N``.
        positions: ``[..., 2]`` in cell units, inside ``[0, N]^2``.
        actions: ``[..., 2]``.

    Returns:
        ``[..., 2]`` the new positions.
    """
    delta = xp.clip(actions, -1.0, 1.0) / POINT_STEPS_PER_CELL
    x, y = positions[..., 0], positions[..., 1]
    new = []
    for axis, (forward, backward) in enumerate(((0, 1), (2, 3))):
        cell = cell_of(xp.stack([x, y], axis=-1), size, xp)
        coordinate = x if axis == 0 else y
        low = xp.clip(xp.floor(coordinate), 0, size - 1)
        moved = coordinate + delta[..., axis]
        moved = xp.where((moved >= low + 1) & ~open_sides[cell, forward], low + 1 - WALL_MARGIN, moved)
        moved = xp.where((moved < low) & ~open_sides[cell, backward], low + WALL_MARGIN, moved)
        moved = xp.clip(moved, WALL_MARGIN, size - WALL_MARGIN)
        if axis == 0:
            x = moved
        else:
            y = moved
        new.append(moved)
    return xp.stack(new, axis=-1)


def point_success(positions, goals, xp=np):
    """Point mass: whether each position ``[..., 2]`` is within :data:`POINT_GOAL_RADIUS` cells of its goal."""
    return xp.sqrt(xp.sum((positions - goals) ** 2, axis=-1)) <= POINT_GOAL_RADIUS


class HorizonEnv(gymnasium.Env):
    """A horizon task as a Gymnasium environment with OGBench's goal-conditioned evaluation interface.

    Args:
        task: a horizon task name (:func:`scalerl.horizon.tasks.parse_horizon_name`).
        use_oracle_rep: goals in ``info['goal']`` are oracle representations (``-oraclerep`` names).
        terminate_at_goal: end the episode when the goal is reached (OGBench's default).
        render_mode: ``rgb_array`` (a top view: walls, agent and goal) or ``None``.

    ``task_infos`` lists the five evaluation tasks (``task_name``, ``init_state``, ``goal_state``, ``distance``);
    ``reset(options=dict(task_id=i))`` starts task ``i`` (1-based), else one is drawn from ``np_random``. Point mass
    starts and goals get uniform noise of :data:`scalerl.horizon.tasks.POINT_RESET_NOISE` cells per axis, drawn from
    ``np_random``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self, task: str, use_oracle_rep: bool = False, terminate_at_goal: bool = True, render_mode: str | None = None
    ):
        self.task_spec: HorizonSpec = parse_horizon_name(task)[0]
        self.graph = task_graph(self.task_spec)
        self.use_oracle_rep = use_oracle_rep
        self.terminate_at_goal = terminate_at_goal
        self.render_mode = render_mode
        self.task_infos = [
            dict(task_name=t.task_name, init_state=t.init_state, goal_state=t.goal_state, distance=t.distance)
            for t in evaluation_tasks(self.task_spec)
        ]
        self.num_tasks = len(self.task_infos)
        obs_dim = self.graph.observations.shape[1]
        self.observation_space = gymnasium.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._state = self._goal = None

    @property
    def is_point(self) -> bool:
        """Whether the task is the continuous point mass."""
        return self.task_spec.family == "pointmaze"

    def _observe(self, state, oracle: bool = False) -> np.ndarray:
        if self.is_point:
            return scale_positions(state, self.task_spec.size)  # the point mass's oracle representation is its xy
        table = self.graph.oracle_reps if oracle else self.graph.observations
        return table[state].copy()

    def _noisy_centre(self, cell: int) -> np.ndarray:
        noise = self.np_random.uniform(-POINT_RESET_NOISE, POINT_RESET_NOISE, size=2)
        return (maze_positions(self.task_spec.size)[cell] + noise).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an evaluation task; returns ``(observation, info)`` with the goal in ``info['goal']``."""
        super().reset(seed=seed)
        options = options or {}
        task_id = options.get("task_id") or int(self.np_random.integers(1, self.num_tasks + 1))
        if not 1 <= task_id <= self.num_tasks:
            raise ValueError(f"task_id must be in [1, {self.num_tasks}], got {task_id}")
        info = self.task_infos[task_id - 1]
        if self.is_point:
            self._state = self._noisy_centre(info["init_state"])
            self._goal = self._noisy_centre(info["goal_state"])
        else:
            self._state, self._goal = int(info["init_state"]), int(info["goal_state"])
        out = {"goal": self._observe(self._goal, oracle=self.use_oracle_rep), "task_name": info["task_name"]}
        if options.get("render_goal"):
            out["goal_rendered"] = self._draw(self._goal)
        return self._observe(self._state), out

    def _success(self) -> bool:
        if self.is_point:
            return bool(point_success(self._state, self._goal))
        return self._state == self._goal

    def step(self, action):
        """One move; reward and ``info['success']`` are 1 once the goal is reached (then ``terminated``)."""
        action = np.asarray(action, np.float32)
        if self.is_point:
            self._state = point_step(self.graph.open_sides, self.task_spec.size, self._state, action)
        else:
            self._state = int(graph_step(self.graph.next_states, np.int32(self._state), action))
        success = self._success()
        terminated = success and self.terminate_at_goal
        return self._observe(self._state), float(success), terminated, False, {"success": float(success)}

    def render(self):
        """A top view ``[H, W, 3]`` uint8 of the task with the agent (red) and the goal (green)."""
        return self._draw(self._state)

    def _draw(self, agent) -> np.ndarray:
        spec = self.task_spec
        if spec.family == "lock":
            scale = max(2, 512 // (spec.size + 1))
            image = np.full((3 * scale, (spec.size + 1) * scale, 3), 235, np.uint8)
            for state, colour in ((self._goal, (40, 170, 60)), (agent, (210, 40, 40))):
                image[scale : 2 * scale, int(state) * scale : (int(state) + 1) * scale] = colour
            return image
        size, scale = spec.size, max(4, 512 // spec.size)
        image = np.full((size * scale + 1, size * scale + 1, 3), 245, np.uint8)
        for cell, sides in enumerate(self.graph.open_sides):
            row, col = divmod(cell, size)
            top, left = (size - 1 - row) * scale, col * scale  # +y is up in the picture
            if not sides[0]:
                image[top : top + scale + 1, left + scale] = 30
            if not sides[1]:
                image[top : top + scale + 1, left] = 30
            if not sides[2]:
                image[top, left : left + scale + 1] = 30
            if not sides[3]:
                image[top + scale, left : left + scale + 1] = 30
        for where, colour in ((self._goal, (40, 170, 60)), (agent, (210, 40, 40))):
            xy = np.asarray(where, np.float32) if self.is_point else maze_positions(size)[int(where)]
            x, y = int(xy[0] * scale), int((size - xy[1]) * scale)
            radius = max(1, scale // 4)
            image[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = colour
        return image


def make_horizon_env(name: str, **kwargs):
    """``(env, tasks)`` for a horizon task name, as :func:`scalerl.envs.make_env` returns them for OGBench.

    The task is registered with Gymnasium on first use (time limit: :func:`scalerl.horizon.tasks.max_episode_steps`),
    so ``env.spec.max_episode_steps`` and ``gymnasium.make``'s ``max_episode_steps`` override work as for OGBench.

    Args:
        name: a horizon task or dataset name; ``-oraclerep`` sets ``use_oracle_rep``.
        **kwargs: forwarded to ``gymnasium.make`` (``max_episode_steps``, ``render_mode``, ``terminate_at_goal``).
    """
    parsed = horizon_env_name(name)
    if parsed.oraclerep:
        kwargs.setdefault("use_oracle_rep", True)
    spec, registered = parse_horizon_name(name)[0], parsed.task.env_id
    if registered not in gymnasium.registry:
        gymnasium.register(
            registered,
            entry_point=HorizonEnv,
            kwargs={"task": spec.name},
            max_episode_steps=parsed.task.max_episode_steps,
        )
    env = gymnasium.make(registered, disable_env_checker=True, **kwargs)
    tasks = [dict(task_id=i + 1, task_name=info["task_name"]) for i, info in enumerate(env.unwrapped.task_infos)]
    return env, tasks
