"""Generation speed per process: scalerl's generator vs a loop written the way OGBench's scripts generate data.

The baseline follows ``data_gen_scripts/generate_manipspace.py`` / ``generate_locomaze.py``: one ``env.step``
through gymnasium's wrappers and one oracle call per step (for pointmaze a fresh BFS ``get_oracle_subgoal`` per step),
per-step values appended to Python lists and converted to arrays at the end. Ours is
:class:`scalerl.generate.oracles.EpisodeSource` writing into preallocated arrays. Both run the same task, episode
length and number of episodes in the same process, alternating, after building their environment (not timed);
file writing is not timed for either. Speed is measured in process CPU time (``time.process_time``), which is what
"per process" means and is not distorted by other jobs sharing the machine; wall-clock rates are printed beside it.

Usage::

    python benchmarks/bench_generate.py                       # puzzle-3x3 play and pointmaze-medium navigate
    python benchmarks/bench_generate.py --episodes 5 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections import defaultdict

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium
import numpy as np
import ogbench  # noqa: F401  (registers the environments)

from scalerl.envs import TASKS
from scalerl.generate.oracles import EpisodeSource, default_preset

CASES = (("puzzle-3x3", "play", 3), ("pointmaze-medium", "navigate", 5))


def baseline_manipulation(task: str, episodes: int, episode_length: int, noise: float, smoothing: float) -> dict:
    """OGBench-style play-data loop for a puzzle task (plan oracle); returns the converted arrays."""
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gymnasium.make(
            TASKS[task].env_id, terminate_at_goal=False, mode="data_collection", max_episode_steps=episode_length + 1
        )
    agents = {"button": ButtonPlanOracle(env=env, noise=noise, noise_smoothing=smoothing, gripper_always_closed=True)}
    env.reset(seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    data = defaultdict(list)
    for _ in range(episodes):
        ob, info = env.reset()
        agent = agents[info["privileged/target_task"]]
        agent.reset(ob, info)
        done = False
        while not done:
            action = np.clip(np.array(agent.select_action(ob, info)), -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if agent.done:
                agent_ob, agent_info = env.unwrapped.set_new_target(p_stack=0.5)
                agent = agents[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            data["observations"].append(ob)
            data["actions"].append(action)
            data["terminals"].append(done)
            data["qpos"].append(info["prev_qpos"])
            data["qvel"].append(info["prev_qvel"])
            data["button_states"].append(info["prev_button_states"])
            ob = next_ob
    arrays = {
        key: np.array(values, dtype=np.int64 if key == "button_states" else np.float32) for key, values in data.items()
    }
    return _timing(start, cpu_start, arrays)


def baseline_maze(task: str, episodes: int, episode_length: int, noise: float) -> dict:
    """OGBench-style navigate-data loop for a pointmaze (BFS waypoint every step); returns timing and rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gymnasium.make(TASKS[task].env_id, terminate_at_goal=False, max_episode_steps=episode_length + 1)
    maze = env.unwrapped
    maze_map = maze.maze_map
    cells = [(i, j) for i in range(maze_map.shape[0]) for j in range(maze_map.shape[1]) if maze_map[i, j] == 0]
    env.reset(seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    data = defaultdict(list)
    for _ in range(episodes):
        init_ij = cells[np.random.randint(len(cells))]
        goal_ij = cells[np.random.randint(len(cells))]
        ob, _ = env.reset(options={"task_info": {"init_ij": init_ij, "goal_ij": goal_ij}})
        done = False
        while not done:
            subgoal_xy, _ = maze.get_oracle_subgoal(maze.get_xy(), maze.cur_goal_xy)
            direction = subgoal_xy - maze.get_xy()
            direction = direction / (np.linalg.norm(direction) + 1e-6)
            agent_ob = np.concatenate([maze.get_ob(ob_type="states")[2:], direction])
            action = np.clip(agent_ob[-2:] + np.random.normal(0, noise, 2), -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if info["success"]:
                maze.set_goal(cells[np.random.randint(len(cells))])
            data["observations"].append(ob)
            data["actions"].append(action)
            data["terminals"].append(done)
            data["qpos"].append(info["prev_qpos"])
            data["qvel"].append(info["prev_qvel"])
            ob = next_ob
    arrays = {key: np.array(values, dtype=np.float32) for key, values in data.items()}
    return _timing(start, cpu_start, arrays)


def ours(task: str, dataset_type: str, episodes: int, episode_length: int) -> dict:
    """scalerl's EpisodeSource on the same task; returns timing and rows."""
    preset = default_preset(TASKS[task], dataset_type)
    source = EpisodeSource(task, dataset_type, preset.oracle, episode_length, seed=0)
    start, cpu_start = time.perf_counter(), time.process_time()
    arrays = source.allocate(episodes)
    for episode in range(episodes):
        source.rollout(arrays, episode * source.rows_per_episode)
    timing = _timing(start, cpu_start, arrays)
    source.close()
    return timing


def _timing(start: float, cpu_start: float, arrays: dict) -> dict:
    return {
        "wall": time.perf_counter() - start,
        "cpu": time.process_time() - cpu_start,
        "rows": len(arrays["terminals"]),
    }


def run_case(task: str, dataset_type: str, episodes: int, episode_length: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` transitions/s (CPU and wall) of the baseline and of ours, alternating runs."""
    preset = default_preset(TASKS[task], dataset_type)
    transitions = episodes * episode_length
    runs: dict[str, list[dict]] = {"baseline": [], "ours": []}
    for _ in range(repeats):
        if TASKS[task].family == "pointmaze":
            runs["baseline"].append(baseline_maze(task, episodes, episode_length, preset.oracle.noise))
        else:
            runs["baseline"].append(
                baseline_manipulation(
                    task, episodes, episode_length, preset.oracle.noise, preset.oracle.noise_smoothing
                )
            )
        runs["ours"].append(ours(task, dataset_type, episodes, episode_length))
    return {
        f"{side}_{clock}": max(transitions / run[clock] for run in side_runs)
        for side, side_runs in runs.items()
        for clock in ("cpu", "wall")
    }


def main() -> None:
    """Print a table of transitions/s per process, baseline vs ours, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=None, help="episodes per run (default: 3 puzzle, 5 maze)")
    parser.add_argument("--episode-length", type=int, default=1000, help="actions per episode")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side; the best is reported")
    args = parser.parse_args()

    print("transitions/s per process (best of repeats); CPU time, wall clock in brackets")
    print(f"{'task':<27} {'steps/run':>9} {'OGBench-style':>20} {'scalerl':>20} {'ratio':>6}")
    for task, dataset_type, default_episodes in CASES:
        episodes = args.episodes or default_episodes
        rates = run_case(task, dataset_type, episodes, args.episode_length, args.repeats)
        baseline = f"{rates['baseline_cpu']:.0f} [{rates['baseline_wall']:.0f}]"
        our = f"{rates['ours_cpu']:.0f} [{rates['ours_wall']:.0f}]"
        ratio = rates["ours_cpu"] / rates["baseline_cpu"]
        steps = episodes * (args.episode_length + 1)
        print(f"{task + ' ' + dataset_type:<27} {steps:>9} {baseline:>20} {our:>20} {ratio:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
