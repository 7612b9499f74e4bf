"""Per-family episode generation with OGBench's scripted oracles.

An :class:`EpisodeSource` owns one OGBench environment and writes whole episodes into preallocated arrays, with
the semantics of OGBench's own generators (``data_gen_scripts/generate_manipspace.py`` and
``generate_locomaze.py``):

* **manipulation, play**: the non-Markovian plan oracle (``ogbench.manipspace.oracles.plan``) follows a keyframe plan
  with temporally smoothed noise; whenever the current sub-task is done the environment samples a new target
  (``set_new_target``, with a per-episode cube stacking probability) and the oracle for that target takes over.
* **manipulation, noisy**: the Markov oracle (``ogbench.manipspace.oracles.markov``) with a per-episode Gaussian noise
  level ``xi ~ U(0, noise)`` scaled by ``[1, 1, 1, 3, 10]`` per action dimension, and a uniform random action with
  probability ``p_random_action``.
* **pointmaze, navigate**: start in a random free cell, go to a random "vertex" cell (not a straight hallway); on
  success pick a new vertex goal. The action is the unit direction to the next BFS waypoint
  (``env.unwrapped.get_oracle_subgoal``) plus Gaussian noise.
* **pointmaze, stitch**: as navigate, but the goal is a cell exactly 4 BFS steps from the start and stays fixed.

Every episode has ``episode_length + 1`` rows (``episode_length`` actions, plus the final row whose next state is not
stored); the last row of an episode is terminal. Row ``t`` holds the observation before step ``t``, the action
taken, and ``qpos`` / ``qvel`` / ``button_states`` before the step (OGBench's ``prev_*`` infos).

Randomness: one ``numpy.random.SeedSequence(seed)`` seeds our ``numpy.random.Generator`` (episode starts, goals,
noise), the environment (its first ``reset(seed=...)`` and its action space) and numpy's legacy global state, which
OGBench's oracles and the maze's goal jitter draw from. A source built with the same seed therefore produces the same
bytes in any process.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import numpy as np

from scalerl.envs import TASKS, TaskSpec, default_mujoco_gl, gym_make
from scalerl.errors import ScalerlError

# Manipulation noise scale per action dimension (x, y, z, yaw, gripper) for the Markov oracle, as in OGBench.
MARKOV_NOISE_SCALE = np.array([1.0, 1.0, 1.0, 3.0, 10.0])
# Per-episode cube stacking probability range for ``set_new_target`` (OGBench's generate_manipspace.py).
CUBE_STACK_RANGE = {
    "cube-single": (0.0, 0.0),
    "cube-double": (0.0, 0.25),
    "cube-triple": (0.05, 0.35),
    "cube-quadruple": (0.1, 0.5),
    "cube-octuple": (0.0, 0.35),
}
DEFAULT_STACK_PROBABILITY = 0.5  # scene (puzzle ignores it)
SCENE_MAX_RETRIES = 1000  # unhealthy scene episodes are regenerated; this only guards against an endless loop
STITCH_GOAL_DISTANCE = 4  # BFS cells between start and goal in stitch datasets


@dataclasses.dataclass(frozen=True)
class OracleParams:
    """How the scripted oracle acts; stored verbatim in the manifest under ``oracle``.

    Attributes:
        kind: ``plan`` (manipulation play), ``markov`` (manipulation noisy) or ``maze`` (pointmaze waypoints).
        noise: plan: noise level of the plan; markov: upper bound of the per-episode noise level ``xi``;
            maze: standard deviation of the Gaussian action noise.
        noise_smoothing: plan only: Gaussian smoothing (sigma, in steps) of the plan noise.
        min_norm: markov only: minimum norm of the oracle's relative position command.
        p_random_action: markov only: probability of a uniformly random action.
        goal_distance: maze stitch only: BFS distance of the goal cell from the start cell (0 = navigate).
    """

    kind: str
    noise: float
    noise_smoothing: float = 0.0
    min_norm: float = 0.0
    p_random_action: float = 0.0
    goal_distance: int = 0

    def to_json(self) -> dict:
        """The parameters as a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Preset:
    """OGBench's defaults for one published dataset: oracle, episode length and size.

    Attributes:
        oracle: oracle parameters.
        episode_length: actions per episode (OGBench's ``max_episode_steps - 1``).
        episodes: episodes in OGBench's published training file (its default size).
    """

    oracle: OracleParams
    episode_length: int
    episodes: int


# OGBench's data_gen_scripts/commands.sh, as data. Sizes are the published training files.
_MANIP_EPISODES = {
    "cube-single": 1000,
    "cube-double": 1000,
    "cube-triple": 3000,
    "cube-quadruple": 5000,
    "cube-octuple": 1000,  # the horizon-reduction paper's 1M-transition files
    "puzzle-3x3": 1000,
    "puzzle-4x4": 1000,
    "puzzle-4x5": 3000,
    "puzzle-4x6": 5000,
    "scene": 1000,
}
_NOISY_P_RANDOM = {"cube": 0.1, "scene": 0.1, "puzzle": 0.2}


def default_preset(task: TaskSpec, dataset_type: str) -> Preset:
    """OGBench's generation settings for ``task`` and ``dataset_type``.

    Raises:
        ScalerlError: if the task does not support the dataset type.
    """
    if not task.scripted:
        raise ScalerlError(
            f"--env: {task.name} datasets are collected by OGBench with pretrained locomotion policies, which scalerl "
            f"cannot run; train on OGBench's official files instead (--data .../{task.name}-{dataset_type}-v0.npz)"
        )
    if dataset_type not in task.types:
        raise ScalerlError(f"--type: '{dataset_type}' is not available for {task.name}; expected one of {task.types}")
    if task.family == "pointmaze":
        if dataset_type == "navigate":
            episode_length, episodes = (2000, 500) if task.name == "pointmaze-giant" else (1000, 1000)
            return Preset(OracleParams(kind="maze", noise=0.5), episode_length, episodes)
        return Preset(OracleParams(kind="maze", noise=0.5, goal_distance=STITCH_GOAL_DISTANCE), 200, 5000)
    if dataset_type == "play":
        oracle = OracleParams(kind="plan", noise=0.1, noise_smoothing=0.5)
    else:
        oracle = OracleParams(kind="markov", noise=0.1, min_norm=0.4, p_random_action=_NOISY_P_RANDOM[task.family])
    return Preset(oracle, 1000, _MANIP_EPISODES[task.name])


KeySpecs = dict[str, tuple[tuple[int, ...], str]]
"""Per-row shape and dtype name of every array a source writes, in file order."""


class EpisodeSource:
    """Writes episodes of one task into preallocated arrays (see the module docstring for the semantics).

    OGBench's oracles draw from numpy's global random state, which the constructor seeds: use one source at a time
    per process (the shard workers do), or interleaved sources will share that stream.

    Args:
        task_name: a key of :data:`scalerl.envs.TASKS`.
        dataset_type: ``play``, ``noisy``, ``navigate`` or ``stitch``.
        oracle: oracle parameters (usually ``default_preset(...).oracle``, possibly with a noise override).
        episode_length: actions per episode; each episode fills ``episode_length + 1`` rows.
        seed: seeds every random stream of this source.
        reuse_step_info: manipulation only: let ``env.step`` reuse the state info it computed for the observation
            as its info dict (see :func:`reuse_step_info`); the data are bitwise the same either way.
    """

    def __init__(
        self,
        task_name: str,
        dataset_type: str,
        oracle: OracleParams,
        episode_length: int,
        seed: int,
        reuse_step_info: bool = True,
    ):
        default_mujoco_gl()
        import ogbench  # noqa: F401  (registers the environments)

        self.task = TASKS[task_name]
        self.dataset_type = dataset_type
        self.oracle = oracle
        self.episode_length = episode_length
        self.rows_per_episode = episode_length + 1

        rng_seed, env_seed, global_seed = np.random.SeedSequence(seed).spawn(3)
        self._rng = np.random.Generator(np.random.PCG64(rng_seed))
        # OGBench's oracles and maze goal jitter use numpy's global RandomState: seed it for this source.
        np.random.seed(global_seed.generate_state(1)[0])
        self._env_seed: int | None = int(env_seed.generate_state(1)[0])

        kwargs: dict = {"terminate_at_goal": False}
        if self.task.family != "pointmaze":
            kwargs["mode"] = "data_collection"
        # Stepped unwrapped: the episode length is ours, so gymnasium's TimeLimit/checker wrappers are not needed.
        self.env = gym_make(self.task.env_id, **kwargs).unwrapped
        self.env.action_space.seed(self._env_seed)

        if self.task.family == "pointmaze":
            self._init_maze()
        else:
            if reuse_step_info:
                _reuse_step_info(self.env)
            self._init_manipulation()

    @property
    def key_specs(self) -> KeySpecs:
        """Per-row shape and dtype of each array, in the order they are written to files."""
        return self._key_specs

    def allocate(self, num_episodes: int) -> dict[str, np.ndarray]:
        """Zeroed arrays for ``num_episodes`` episodes, with ``terminals`` already set on each episode's last row."""
        rows = num_episodes * self.rows_per_episode
        arrays = {key: np.zeros((rows, *shape), dtype=dtype) for key, (shape, dtype) in self._key_specs.items()}
        arrays["terminals"][self.rows_per_episode - 1 :: self.rows_per_episode] = 1.0
        return arrays

    def rollout(self, arrays: dict[str, np.ndarray], start: int) -> None:
        """Generate one episode into rows ``[start, start + episode_length + 1)`` of ``arrays``."""
        if self.task.family == "pointmaze":
            self._rollout_maze(arrays, start)
        else:
            self._rollout_manipulation(arrays, start)

    def close(self) -> None:
        """Release the environment."""
        self.env.close()

    def _reset(self, **kwargs):
        # Only the first reset is seeded; later resets continue the environment's random stream.
        seed, self._env_seed = self._env_seed, None
        return self.env.reset(seed=seed, **kwargs)

    def _init_manipulation(self) -> None:
        from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
        from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
        from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
        from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        env, params, family = self.env, self.oracle, self.task.family
        if params.kind == "plan":
            noise = {"env": env, "noise": params.noise, "noise_smoothing": params.noise_smoothing}
            if family == "cube":
                self._agents = {"cube": CubePlanOracle(**noise)}
            elif family == "puzzle":
                self._agents = {"button": ButtonPlanOracle(gripper_always_closed=True, **noise)}
            else:
                self._agents = {
                    "cube": CubePlanOracle(**noise),
                    "button": ButtonPlanOracle(**noise),
                    "drawer": DrawerPlanOracle(**noise),
                    "window": WindowPlanOracle(**noise),
                }
        else:
            norm = {"env": env, "min_norm": params.min_norm}
            if family == "cube":
                self._agents = {"cube": CubeMarkovOracle(**norm)}
            elif family == "puzzle":
                self._agents = {"button": ButtonMarkovOracle(gripper_always_closed=True, **norm)}
            else:
                self._agents = {
                    "cube": CubeMarkovOracle(max_step=100, **norm),
                    "button": ButtonMarkovOracle(**norm),
                    "drawer": DrawerMarkovOracle(**norm),
                    "window": WindowMarkovOracle(**norm),
                }

        ob, _ = self._reset()
        self._has_buttons = hasattr(env, "_cur_button_states")
        self._key_specs: KeySpecs = {
            "observations": (ob.shape, "float32"),
            "actions": ((5,), "float32"),
            "terminals": ((), "float32"),
            "qpos": ((env._model.nq,), "float32"),
            "qvel": ((env._model.nv,), "float32"),
        }
        if self._has_buttons:
            self._key_specs["button_states"] = ((len(env._cur_button_states),), "int64")
        self._pending_reset = (ob, _)  # the construction reset starts the first episode

    def _episode_reset(self):
        if self._pending_reset is not None:
            result, self._pending_reset = self._pending_reset, None
            return result
        return self._reset()

    def _rollout_manipulation(self, arrays: dict[str, np.ndarray], start: int) -> None:
        env, params, rng = self.env, self.oracle, self._rng
        steps = self.rows_per_episode
        observations, actions = arrays["observations"], arrays["actions"]
        qpos, qvel = arrays["qpos"], arrays["qvel"]
        button_states = arrays.get("button_states")
        markov = params.kind == "markov"
        check_health = self.task.family == "scene"
        block_xyz = np.empty((steps, 3)) if check_health else None

        for _ in range(SCENE_MAX_RETRIES):
            ob, info = self._episode_reset()
            low, high = CUBE_STACK_RANGE.get(self.task.name, (DEFAULT_STACK_PROBABILITY, DEFAULT_STACK_PROBABILITY))
            p_stack = rng.uniform(low, high) if high > low else low
            noise_scale = rng.uniform(0.0, params.noise) * MARKOV_NOISE_SCALE if markov else None
            agent = self._agents[info["privileged/target_task"]]
            agent.reset(ob, info)

            for step in range(steps):
                if params.p_random_action > 0 and rng.random() < params.p_random_action:
                    action = rng.uniform(-1.0, 1.0, size=5)
                else:
                    action = np.array(agent.select_action(ob, info), dtype=np.float64)
                    if markov:
                        action += rng.standard_normal(5) * noise_scale
                np.clip(action, -1.0, 1.0, out=action)
                next_ob, _, _, _, info = env.step(action)

                if agent.done:
                    agent_ob, agent_info = env.set_new_target(p_stack=p_stack)
                    agent = self._agents[agent_info["privileged/target_task"]]
                    agent.reset(agent_ob, agent_info)

                row = start + step
                observations[row] = ob
                actions[row] = action
                qpos[row] = info["prev_qpos"]
                qvel[row] = info["prev_qvel"]
                if button_states is not None:
                    button_states[row] = info["prev_button_states"]
                if check_health:
                    block_xyz[step] = info["prev_qpos"][14:17]
                ob = next_ob

            if not check_health or _scene_block_visible(block_xyz):
                return
        raise RuntimeError(f"{self.task.name}: {SCENE_MAX_RETRIES} unhealthy episodes in a row")

    def _init_maze(self) -> None:
        env = self.env
        maze_map = np.asarray(env.maze_map)
        self._free_cells = [(int(i), int(j)) for i, j in zip(*np.nonzero(maze_map == 0))]
        self._vertex_cells = [cell for cell in self._free_cells if not _is_hallway(maze_map, cell)]
        self._maze_map = maze_map
        self._stitch_goals: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._subgoals: dict[tuple[tuple[int, int], tuple[int, int]], np.ndarray] = {}
        nq, nv = env.model.nq, env.model.nv
        ob_dim = env.observation_space.shape[0]
        self._key_specs = {
            "observations": ((ob_dim,), "float32"),
            "actions": ((2,), "float32"),
            "terminals": ((), "float32"),
            "qpos": ((nq,), "float32"),
            "qvel": ((nv,), "float32"),
        }

    def _subgoal(self, xy: np.ndarray, goal_xy) -> np.ndarray:
        """``env.get_oracle_subgoal``, memoised: its answer depends only on the start and goal cells."""
        key = (self.env.xy_to_ij(xy), self.env.xy_to_ij(goal_xy))
        subgoal = self._subgoals.get(key)
        if subgoal is None:
            subgoal = np.asarray(self.env.get_oracle_subgoal(xy, goal_xy)[0], dtype=np.float64)
            self._subgoals[key] = subgoal
        return subgoal

    def _pick_cell(self, cells: list[tuple[int, int]]) -> tuple[int, int]:
        return cells[int(self._rng.integers(len(cells)))]

    def _rollout_maze(self, arrays: dict[str, np.ndarray], start: int) -> None:
        env, rng = self.env, self._rng
        noise = self.oracle.noise
        navigate = self.oracle.goal_distance == 0
        observations, actions = arrays["observations"], arrays["actions"]
        qpos, qvel = arrays["qpos"], arrays["qvel"]

        init_ij = self._pick_cell(self._free_cells)
        if navigate:
            goal_ij = self._pick_cell(self._vertex_cells)
        else:
            if init_ij not in self._stitch_goals:
                self._stitch_goals[init_ij] = cells_at_distance(self._maze_map, init_ij, self.oracle.goal_distance)
            candidates = self._stitch_goals[init_ij]
            goal_ij = self._pick_cell(candidates) if candidates else init_ij
        ob, _ = self._reset(options={"task_info": {"init_ij": init_ij, "goal_ij": goal_ij}})

        for step in range(self.rows_per_episode):
            xy = env.get_xy()
            direction = self._subgoal(xy, env.cur_goal_xy) - xy
            action = direction / (math.hypot(direction[0], direction[1]) + 1e-6)
            action += rng.normal(0.0, noise, size=2)
            np.clip(action, -1.0, 1.0, out=action)
            next_ob, _, _, _, info = env.step(action)
            if navigate and info["success"]:
                env.set_goal(self._pick_cell(self._vertex_cells))

            row = start + step
            observations[row] = ob
            actions[row] = action
            qpos[row] = info["prev_qpos"]
            qvel[row] = info["prev_qvel"]
            ob = next_ob


def _reuse_step_info(env) -> None:
    """Make a ManipSpace env's ``step`` compute its state info once instead of twice.

    ``ManipSpaceEnv.step`` calls ``compute_observation()`` (which builds ``compute_ob_info()``) and then
    ``get_step_info()`` (which builds ``compute_ob_info()`` again) on the same post-step state. Here the info built
    inside ``compute_observation`` is kept and handed to the next ``get_step_info`` if the simulation time has not
    moved; ``get_reset_info`` and every other caller are untouched. Same values, about 5% less time per step.
    """
    compute_ob_info, compute_observation, get_step_info = (
        env.compute_ob_info,
        env.compute_observation,
        env.get_step_info,
    )
    kept: dict = {}

    def observation():
        kept.clear()
        kept["capture"] = True
        try:
            return compute_observation()
        finally:
            kept.pop("capture", None)

    def ob_info():
        info = compute_ob_info()
        if kept.pop("capture", False):  # the call made by compute_observation
            kept["info"], kept["time"] = info, env._data.time
        return info

    def step_info():
        info, time = kept.pop("info", None), kept.pop("time", None)
        return info if info is not None and time == env._data.time else get_step_info()

    env.compute_observation, env.compute_ob_info, env.get_step_info = observation, ob_info, step_info


def _scene_block_visible(block_xyz: np.ndarray) -> bool:
    """OGBench's scene health check: the cube never leaves the camera's view unless it is inside the drawer."""
    if (block_xyz[:, 1] >= 0.29).any():
        return False  # too far right
    in_drawer_height = (block_xyz[:, 2] >= 0.06) & (block_xyz[:, 2] <= 0.08)
    return not ((block_xyz[:, 1] <= -0.3) & ~in_drawer_height).any()  # too far left outside the drawer


def _is_hallway(maze_map: np.ndarray, cell: tuple[int, int]) -> bool:
    """Whether a free cell is a straight corridor piece (walls on both sides, open at both ends)."""
    i, j = cell
    vertical = (
        maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0 and maze_map[i, j - 1] == 1 and maze_map[i, j + 1] == 1
    )
    horizontal = (
        maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0 and maze_map[i - 1, j] == 1 and maze_map[i + 1, j] == 1
    )
    return bool(vertical or horizontal)


def cells_at_distance(maze_map: np.ndarray, start: tuple[int, int], distance: int) -> list[tuple[int, int]]:
    """Free cells exactly ``distance`` 4-connected steps from ``start`` (BFS over ``maze_map == 0``), in BFS order."""
    rows, cols = maze_map.shape
    dist = {start: 0}
    queue = deque([start])
    found: list[tuple[int, int]] = []
    while queue:
        i, j = queue.popleft()
        for di, dj in ((-1, 0), (0, -1), (1, 0), (0, 1)):
            cell = (i + di, j + dj)
            if 0 <= cell[0] < rows and 0 <= cell[1] < cols and maze_map[cell] == 0 and cell not in dist:
                dist[cell] = dist[(i, j)] + 1
                queue.append(cell)
                if dist[cell] == distance:
                    found.append(cell)
    return found
