"""Generation speed per process: scalerl's generator vs a loop written the way OGBench's scripts generate data.

The baseline follows ``data_gen_scripts/generate_manipspace.py`` / ``generate_locomaze.py``: one ``env.step``
through gymnasium's wrappers and one oracle call per step (for pointmaze a fresh BFS ``get_oracle_subgoal`` per step),
per-step values appended to Python lists and converted to arrays at the end. Ours is
:class:`scalerl.generate.oracles.EpisodeSource` writing into preallocated arrays. Both run the same task, episode
length and number of episodes in the same process, alternating, after building their environment (not timed);
file writing is not timed for either.

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
    start = time.perf_counter()
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
    return {"seconds": time.perf_counter() - start, "rows": len(arrays["terminals"])}


def baseline_maze(task: str, episodes: int, episode_length: int, noise: float) -> dict:
    """OGBench-style navigate-data loop for a pointmaze (BFS waypoint every step); returns timing and rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gymnasium.make(TASKS[task].env_id, terminate_at_goal=False, max_episode_steps=episode_length + 1)
    maze = env.unwrapped
    maze_map = maze.maze_map
    cells = [(i, j) for i in range(maze_map.shape[0]) for j in range(maze_map.shape[1]) if maze_map[i, j] == 0]
    env.reset(seed=0)
    start = time.perf_counter()
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
    return {"seconds": time.perf_counter() - start, "rows": len(arrays["terminals"])}


def ours(task: str, dataset_type: str, episodes: int, episode_length: int) -> dict:
    """scalerl's EpisodeSource on the same task; returns timing and rows."""
    preset = default_preset(TASKS[task], dataset_type)
    source = EpisodeSource(task, dataset_type, preset.oracle, episode_length, seed=0)
    start = time.perf_counter()
    arrays = source.allocate(episodes)
    for episode in range(episodes):
        source.rollout(arrays, episode * source.rows_per_episode)
    seconds = time.perf_counter() - start
    source.close()
    return {"seconds": seconds, "rows": len(arrays["terminals"])}


def run_case(task: str, dataset_type: str, episodes: int, episode_length: int, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` transitions/s of the baseline and of ours, alternating runs."""
    preset = default_preset(TASKS[task], dataset_type)
    transitions = episodes * episode_length
    baseline_rates, our_rates = [], []
    for _ in range(repeats):
        if TASKS[task].family == "pointmaze":
            result = baseline_maze(task, episodes, episode_length, preset.oracle.noise)
        else:
            result = baseline_manipulation(
                task, episodes, episode_length, preset.oracle.noise, preset.oracle.noise_smoothing
            )
        baseline_rates.append(transitions / result["seconds"])
        our_rates.append(transitions / ours(task, dataset_type, episodes, episode_length)["seconds"])
    return max(baseline_rates), max(our_rates)


def main() -> None:
    """Print a table of transitions/s per process, baseline vs ours, and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=None, help="episodes per run (default: 3 puzzle, 5 maze)")
    parser.add_argument("--episode-length", type=int, default=1000, help="actions per episode")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side; the best is reported")
    args = parser.parse_args()

    rows = []
    for task, dataset_type, default_episodes in CASES:
        episodes = args.episodes or default_episodes
        baseline, our = run_case(task, dataset_type, episodes, args.episode_length, args.repeats)
        rows.append((f"{task} {dataset_type}", episodes * (args.episode_length + 1), baseline, our))

    print(f"{'task':<28} {'steps/run':>9} {'OGBench-style /s':>17} {'scalerl /s':>11} {'ratio':>6}")
    for name, steps, baseline, our in rows:
        print(f"{name:<28} {steps:>9} {baseline:>17.0f} {our:>11.0f} {our / baseline:>5.2f}x")


if __name__ == "__main__":
    main()
