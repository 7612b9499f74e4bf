"""Horizon tasks with exact values: procedurally generated mazes, a point mass on the same mazes, combination locks.

Every task is a deterministic graph over ``S`` states with four moves per state, ``next_states[s, m]``, so that under
the sparse goal reward of :mod:`scalerl.sampling` (``r = 1(s == g)``, mask ``1 - 1(s == g)``, discount ``gamma`` per
step) the optimal values are exact functions of the shortest-path distance ``d(s, g)`` (breadth-first search)::

    V*(s, g)    = gamma ** d(s, g)                                   (0 when g is unreachable; 1 at s == g)
    Q*(s, m, g) = 1 if s == g else gamma ** (1 + d(next(s, m), g))   (the reward is paid at the goal row)

and, with ``gc_negative`` rewards ``1(s == g) - 1``, ``V* = -(1 - gamma ** d) / (1 - gamma)``. Names (validated by
:func:`parse_horizon_name`; ``scalerl.envs.parse_env_name`` delegates to it)::

    maze-n{N}[-layout{K}]            discrete moves on an N x N perfect maze (randomised depth-first search, layout K)
    pointmaze-n{N}[-layout{K}]       a continuous point mass on the same maze, POINT_STEPS_PER_CELL steps per cell
    lock-L{L}[-reset][-layout{K}]    a combination lock of length L: one right move per position; a wrong one stalls
                                     (or, with -reset, sends the lock back to position 0)

followed by an optional dataset type (``-navigate``: noisy expert; ``-explore``: random-walk play), ``-oraclerep`` and
``-v0``. Moves are encoded as 2-D actions in ``[-1, 1]^2`` (:data:`MOVES`: +x, -x, +y, -y) and decoded to the move of
the largest-magnitude coordinate (:func:`scalerl.horizon.env.decode_moves`), so every continuous-action agent of
scalerl trains on them unchanged.

The point mass moves over the maze's cell graph at ``1 / POINT_STEPS_PER_CELL`` cells per step and per axis; its
values are *reference* values ``gamma ** (POINT_STEPS_PER_CELL * d_cells)``, not exact: a path may cut corners, and a
goal counts as reached within ``POINT_GOAL_RADIUS`` cells (as OGBench's point maze, Park et al. 2024).
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from scalerl.errors import ScalerlError

FAMILIES = ("maze", "pointmaze", "lock")
HORIZON_DATASET_TYPES = ("navigate", "explore")
MOVES = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], np.float32)
"""The action vector of each move: 0 = +x (east), 1 = -x (west), 2 = +y (north), 3 = -y (south)."""
NUM_MOVES = 4
POINT_STEPS_PER_CELL = 4
"""Point mass: steps to cross one cell at full speed along an axis (speed ``1 / POINT_STEPS_PER_CELL`` cells/step)."""
POINT_GOAL_RADIUS = 0.25
"""Point mass: success within this many cells of the goal (OGBench's point maze: 1 of a 4-unit cell)."""
POINT_RESET_NOISE = 0.25
"""Point mass: start and goal positions are cell centres plus uniform noise of this many cells per axis (OGBench)."""
UNREACHABLE = np.iinfo(np.int32).max // 4
"""Distance of an unreachable goal (large, and two of them still add up without overflowing int32)."""
MAX_STATES = 1 << 16
"""The largest number of states a horizon task may have (n <= 256, L < 65536)."""
NAME_FORMS = (
    "maze-n{N}[-layout{K}], pointmaze-n{N}[-layout{K}] or lock-L{L}[-reset][-layout{K}], "
    "then optionally -navigate|-explore, -oraclerep, -v0"
)

_NAME = re.compile(r"^(?P<family>maze|pointmaze)-n(?P<size>\d+)(?:-layout(?P<layout>\d+))?$")
_LOCK = re.compile(r"^lock-L(?P<size>\d+)(?P<reset>-reset)?(?:-layout(?P<layout>\d+))?$")
_HEAD = re.compile(r"^(?:(?:maze|pointmaze)-n|lock-L)\d")


@dataclasses.dataclass(frozen=True)
class HorizonSpec:
    """One horizon task, as its name spells it.

    Attributes:
        family: ``maze``, ``pointmaze`` or ``lock``.
        size: cells per side ``N`` (mazes) or lock length ``L``.
        layout: the seed of the maze layout or of the lock's combination.
        reset: lock only: a wrong move sends the lock back to position 0 (else it stalls).
    """

    family: str
    size: int
    layout: int = 0
    reset: bool = False

    @property
    def name(self) -> str:
        """The canonical task name, e.g. ``maze-n32`` or ``lock-L64-reset-layout2``."""
        layout = f"-layout{self.layout}" if self.layout else ""
        if self.family == "lock":
            return f"lock-L{self.size}{'-reset' if self.reset else ''}{layout}"
        return f"{self.family}-n{self.size}{layout}"

    @property
    def num_states(self) -> int:
        """``N * N`` cells, or the ``L + 1`` lock positions."""
        return self.size + 1 if self.family == "lock" else self.size * self.size

    @property
    def steps_per_edge(self) -> int:
        """Environment steps per graph edge: :data:`POINT_STEPS_PER_CELL` for the point mass, else 1."""
        return POINT_STEPS_PER_CELL if self.family == "pointmaze" else 1


def is_horizon_name(name: str) -> bool:
    """Whether ``name`` is meant as a horizon task: it starts ``maze-n<digit>``, ``pointmaze-n<digit>`` or
    ``lock-L<digit>`` (any other name is left to OGBench's task table, whose error lists these forms too)."""
    return bool(_HEAD.match(name.strip()))


def parse_horizon_name(name: str) -> tuple[HorizonSpec, str | None, bool]:
    """Parse ``TASK[-navigate|-explore][-oraclerep][-v0]`` into ``(spec, dataset_type, oraclerep)``.

    Raises:
        ScalerlError: one line listing the valid forms when the name or a size is not valid.
    """
    parts = name.strip().split("-")
    if parts[-1] == "v0":
        parts = parts[:-1]
    oraclerep = bool(parts) and parts[-1] == "oraclerep"
    if oraclerep:
        parts = parts[:-1]
    dataset_type = None
    if parts and parts[-1] in HORIZON_DATASET_TYPES:
        dataset_type, parts = parts[-1], parts[:-1]
    task = "-".join(parts)
    match = _NAME.match(task) or _LOCK.match(task)
    if match is None:
        raise ScalerlError(f"--env: unknown task '{name}'; expected {NAME_FORMS}")
    family = match["family"] if "family" in match.groupdict() else "lock"
    spec = HorizonSpec(
        family=family,
        size=int(match["size"]),
        layout=int(match["layout"] or 0),
        reset=bool(match.groupdict().get("reset")),
    )
    if spec.size < 2 or spec.num_states > MAX_STATES:
        bound = "2 <= L < 65536" if family == "lock" else "2 <= N <= 256"
        raise ScalerlError(f"--env: '{name}': size {spec.size} is out of range ({bound}); expected {NAME_FORMS}")
    return spec, dataset_type, oraclerep


@dataclasses.dataclass(frozen=True, eq=False)
class TaskGraph:
    """The built task: its deterministic move graph and what the agent observes of each graph state.

    Attributes:
        spec: the task.
        next_states: ``[S, 4]`` int32, the state each move leads to (itself when a wall blocks it or a lock stalls).
        observations: ``[S, obs_dim]`` float32, the observation of each state (mazes: the cell centre's ``(x, y)``
            scaled to ``[-1, 1]``; locks: the position scaled to ``[-1, 1]`` and its binary code in ``{-1, 1}``).
        oracle_reps: ``[S, rep_dim]`` float32 goal representations of ``-oraclerep`` names (mazes: the observation;
            locks: the scaled position alone).
        open_sides: mazes: ``[S, 4]`` bool, whether each side of a cell is open (no wall); locks: ``None``.
        combination: locks: ``[L]`` int32, the right move at each position; mazes: ``None``.
    """

    spec: HorizonSpec
    next_states: np.ndarray
    observations: np.ndarray
    oracle_reps: np.ndarray
    open_sides: np.ndarray | None = None
    combination: np.ndarray | None = None

    @property
    def num_states(self) -> int:
        """``S``."""
        return int(self.next_states.shape[0])


def layout_rng(spec: HorizonSpec) -> np.random.Generator:
    """The generator of a task's layout: a function of (family kind, size, layout) only."""
    kind = 1 if spec.family == "lock" else 0  # maze and pointmaze share their mazes
    return np.random.default_rng(np.random.SeedSequence((kind, spec.size, spec.layout)))


def generate_maze(size: int, rng: np.random.Generator) -> np.ndarray:
    """A perfect maze (a spanning tree of the grid: exactly one path between two cells) by randomised depth-first
    search (the "recursive backtracker"): long corridors, so the longest shortest path grows about as ``size ** 2``.

    Args:
        size: cells per side ``N``; cell ``row * N + col`` is at ``x = col``, ``y = row``.
        rng: the layout's generator.

    Returns:
        ``[N * N, 4]`` bool: side ``m`` (:data:`MOVES` order) of each cell is open.
    """
    open_sides = np.zeros((size * size, NUM_MOVES), bool)
    visited = np.zeros(size * size, bool)
    offsets = ((1, 0), (-1, 0), (0, 1), (0, -1))
    opposite = (1, 0, 3, 2)
    start = int(rng.integers(size * size))
    stack, visited[start] = [start], True
    while stack:
        cell = stack[-1]
        row, col = divmod(cell, size)
        choices = []
        for move, (dx, dy) in enumerate(offsets):
            r, c = row + dy, col + dx
            if 0 <= r < size and 0 <= c < size and not visited[r * size + c]:
                choices.append((move, r * size + c))
        if not choices:
            stack.pop()
            continue
        move, neighbour = choices[int(rng.integers(len(choices)))]
        open_sides[cell, move] = open_sides[neighbour, opposite[move]] = True
        visited[neighbour] = True
        stack.append(neighbour)
    return open_sides


def maze_positions(size: int) -> np.ndarray:
    """``[N * N, 2]`` float32 cell centres ``(col + 0.5, row + 0.5)`` in cell units."""
    rows, cols = np.divmod(np.arange(size * size), size)
    return np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float32)


def scale_positions(positions: np.ndarray, size: int) -> np.ndarray:
    """Positions in cell units (``[0, N]``) scaled to the observation range ``[-1, 1]``."""
    return (2.0 * np.asarray(positions, np.float32) / size - 1.0).astype(np.float32)


def lock_observations(length: int) -> np.ndarray:
    """``[L + 1, 1 + B]`` float32: position ``i`` as ``2 i / L - 1`` and its ``B = bit_length(L)`` bits in ``{-1, 1}``
    (so that a network reads both how far along the lock is and exactly which position it is at)."""
    positions = np.arange(length + 1)
    bits = (positions[:, None] >> np.arange(int(length).bit_length())[None, :]) & 1
    scaled = 2.0 * positions[:, None] / length - 1.0
    return np.concatenate([scaled, 2.0 * bits - 1.0], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=16)
def task_graph(spec: HorizonSpec) -> TaskGraph:
    """Build (and cache) the graph of ``spec``; the same spec always gives the same graph."""
    rng = layout_rng(spec)
    if spec.family == "lock":
        length = spec.size
        combination = rng.integers(NUM_MOVES, size=length).astype(np.int32)
        positions = np.arange(length + 1)
        moves = np.arange(NUM_MOVES)
        right = np.zeros((length + 1, NUM_MOVES), bool)
        right[:length] = moves[None, :] == combination[:, None]
        wrong = 0 if spec.reset else positions[:, None]
        next_states = np.where(right, positions[:, None] + 1, wrong)
        next_states[length] = length  # the open lock stays open
        observations = lock_observations(length)
        return TaskGraph(
            spec=spec,
            next_states=next_states.astype(np.int32),
            observations=observations,
            oracle_reps=observations[:, :1].copy(),
            combination=combination,
        )
    size = spec.size
    open_sides = generate_maze(size, rng)
    cells = np.arange(size * size)
    steps = np.array([1, -1, size, -size])
    next_states = np.where(open_sides, cells[:, None] + steps[None, :], cells[:, None]).astype(np.int32)
    observations = scale_positions(maze_positions(size), size)
    return TaskGraph(
        spec=spec, next_states=next_states, observations=observations, oracle_reps=observations, open_sides=open_sides
    )


def _csgraph(graph: TaskGraph, reverse: bool):
    from scipy.sparse import csr_matrix

    sources = np.repeat(np.arange(graph.num_states), NUM_MOVES)
    targets = graph.next_states.reshape(-1)
    moving = sources != targets
    rows, cols = (targets, sources) if reverse else (sources, targets)
    shape = (graph.num_states, graph.num_states)
    return csr_matrix((np.ones(int(moving.sum())), (rows[moving], cols[moving])), shape=shape)


def _bfs(graph: TaskGraph, indices, reverse: bool, chunk: int = 512) -> np.ndarray:
    from scipy.sparse.csgraph import shortest_path

    matrix = _csgraph(graph, reverse)
    indices = np.atleast_1d(np.asarray(indices, np.int64))
    out = np.empty((indices.size, graph.num_states), np.int32)
    for start in range(0, indices.size, chunk):
        part = shortest_path(matrix, directed=True, unweighted=True, indices=indices[start : start + chunk])
        out[start : start + chunk] = np.where(np.isinf(part), UNREACHABLE, part).astype(np.int32)
    return out


def distances_from(graph: TaskGraph, sources) -> np.ndarray:
    """Shortest-path distances (breadth-first search) from each source to every state: ``[K, S]`` int32,
    ``out[k, t] = d(sources[k], t)``, :data:`UNREACHABLE` where no path exists."""
    return _bfs(graph, sources, reverse=False)


def distances_to(graph: TaskGraph, goals) -> np.ndarray:
    """Shortest-path distances from every state to each goal: ``[K, S]`` int32, ``out[k, s] = d(s, goals[k])``."""
    return _bfs(graph, goals, reverse=True)


def optimal_values(distances, discount: float, gc_negative: bool = False) -> np.ndarray:
    """``V*(s, g)`` from distances: ``gamma ** d`` (0 if unreachable), or ``-(1 - gamma ** d) / (1 - gamma)`` with
    ``gc_negative`` rewards. Float64, the shape of ``distances``."""
    distances = np.asarray(distances)
    values = np.where(distances >= UNREACHABLE, 0.0, np.power(float(discount), np.minimum(distances, UNREACHABLE)))
    return -(1.0 - values) / (1.0 - discount) if gc_negative else values


def optimal_q_values(graph: TaskGraph, goal_distances, discount: float, gc_negative: bool = False) -> np.ndarray:
    """``Q*(s, m, g)`` for one goal, from its distance row ``d(., g)`` ``[S]``: ``[S, 4]`` float64.

    ``1`` (``0`` with ``gc_negative``) at ``s == g``, whatever the move (the sampler pays the reward at the goal row and
    cuts the bootstrap there); elsewhere ``0 (or -1) + gamma * V*(next(s, m), g)``.
    """
    goal_distances = np.asarray(goal_distances)
    next_values = optimal_values(goal_distances[graph.next_states], discount, gc_negative)  # [S, 4]
    at_goal = (goal_distances == 0)[:, None]
    step_reward = -1.0 if gc_negative else 0.0
    return np.where(at_goal, 1.0 + step_reward, step_reward + discount * next_values)


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """One of a task's five fixed evaluation tasks (OGBench's protocol: ``reset(options=dict(task_id=i))``).

    Attributes:
        task_name: ``task{i}`` (1-based).
        init_state: the start state.
        goal_state: the goal state.
        distance: ``d(init, goal)`` in graph edges (point mass: cells).
    """

    task_name: str
    init_state: int
    goal_state: int
    distance: int


EVAL_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
"""The evaluation tasks' distances as fractions of the task's longest shortest path (the last one is the longest)."""


def diameter_pair(graph: TaskGraph) -> tuple[int, int, int]:
    """``(a, b, d(a, b))``: two states whose distance is the longest shortest path of the task.

    Locks: position 0 to the open lock, ``d = L``. Mazes: a double sweep of breadth-first search, exact on a perfect
    maze (a tree).
    """
    if graph.spec.family == "lock":
        return 0, graph.spec.size, graph.spec.size
    first = distances_from(graph, [0])[0]
    a = int(np.argmax(first))
    from_a = distances_from(graph, [a])[0]
    b = int(np.argmax(from_a))
    return a, b, int(from_a[b])


@functools.lru_cache(maxsize=16)
def evaluation_tasks(spec: HorizonSpec) -> tuple[EvalTask, ...]:
    """Five fixed evaluation tasks whose distances are :data:`EVAL_FRACTIONS` of the longest shortest path ``D``.

    Task 5 joins the two ends of a longest shortest path. Tasks 1-4 start at states drawn by the layout's generator
    (the first that has a goal at the target distance ``round(f D)``) and aim at a state at exactly that distance.
    """
    graph = task_graph(spec)
    a, b, longest = diameter_pair(graph)
    rng = np.random.default_rng(np.random.SeedSequence((2, spec.size, spec.layout, int(spec.reset))))
    tasks = []
    for i, fraction in enumerate(EVAL_FRACTIONS[:-1]):
        target = max(1, round(fraction * longest))
        start, goal = a, None
        for candidate in rng.permutation(graph.num_states)[:64]:
            row = distances_from(graph, [candidate])[0]
            hits = np.flatnonzero(row == target)
            if hits.size:
                start, goal = int(candidate), int(hits[rng.integers(hits.size)])
                break
        if goal is None:  # every layer of a breadth-first search from a is non-empty up to D
            goal = int(rng.choice(np.flatnonzero(distances_from(graph, [a])[0] == target)))
        tasks.append(EvalTask(f"task{i + 1}", start, goal, target))
    tasks.append(EvalTask(f"task{len(EVAL_FRACTIONS)}", a, b, longest))
    return tuple(tasks)


def max_episode_steps(spec: HorizonSpec) -> int:
    """Evaluation episode length: twice the longest task's steps plus 50, rounded up to a multiple of 10."""
    longest = max(task.distance for task in evaluation_tasks(spec)) * spec.steps_per_edge
    return int(-(-(2 * longest + 50) // 10) * 10)


def default_episode_length(spec: HorizonSpec) -> int:
    """Dataset episode length: twice the longest shortest path in steps, at least 100."""
    return max(100, 2 * diameter_pair(task_graph(spec))[2] * spec.steps_per_edge)


def horizon_env_name(name: str):
    """A horizon name as :func:`scalerl.envs.parse_env_name` returns names: an :class:`scalerl.envs.EnvName` whose
    task is a :class:`scalerl.envs.TaskSpec` of family ``horizon-maze``, ``horizon-pointmaze`` or ``horizon-lock``."""
    from scalerl.envs import EnvName, TaskSpec

    spec, dataset_type, oraclerep = parse_horizon_name(name)
    task = TaskSpec(
        name=spec.name,
        env_id=f"scalerl-horizon/{spec.name}-v0",
        family=f"horizon-{spec.family}",
        types=HORIZON_DATASET_TYPES,
        max_episode_steps=max_episode_steps(spec),
    )
    return EnvName(task=task, dataset_type=dataset_type, oraclerep=oraclerep)
