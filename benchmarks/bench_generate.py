"""Generation speed per process: scalerl's generator vs a loop written the way OGBench's scripts generate data.

The baseline follows ``data_gen_scripts/generate_manipspace.py`` / ``generate_locomaze.py``: one ``env.step``
through gymnasium's wrappers and one oracle call per step (for pointmaze a fresh BFS ``get_oracle_subgoal`` per step),
per-step values appended to Python lists and converted to arrays at the end. Ours is
:class:`scalerl.generate.oracles.EpisodeSource` writing into preallocated arrays. Both run the same task, episode
length and number of episodes in the same process, alternating, after building their environment (not timed);
file writing is not timed for either. Speed is measured in process CPU time (``time.process_time``), which is what
"per process" means and is not distorted by other jobs sharing the machine; wall-clock rates are printed beside it.

With ``--dataset-ops`` it measures instead what a dataset of many shards costs besides generating them, before
(the code of commit e7ee3a4, re-implemented here step for step) and after issue 12's item 4: the resume check of a
rerun (sha256 of every recorded shard, vs their sizes; ``--verify`` keeps the hashes), recording N finished shards
(rewriting the whole ``manifest.json`` after each, vs appending one journal line) and ``scalerl info`` (decompressing
every array, twice, vs reading the ``.npy`` headers). The dataset is one real generated shard copied N times, all
in the page cache (a cold cache makes the "before" columns slower still: they read every byte from disk).

Usage::

    python benchmarks/bench_generate.py                       # puzzle-3x3 play and pointmaze-medium navigate
    python benchmarks/bench_generate.py --episodes 5 --repeats 3
    python benchmarks/bench_generate.py --dataset-ops --shards 1000
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

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


def many_shard_dataset(directory: str, plan) -> list[dict]:
    """``plan``'s dataset in ``directory`` made of copies of its shard 0 (generated for real, then copied and recorded
    under every other index); returns the records."""
    from scalerl.generate.shards import generate_dataset
    from scalerl.manifest import append_record, journal_name, read_manifest

    generate_dataset(plan, directory, workers=1, progress_bar=False, shard_slice=(0, 1))
    first = read_manifest(directory)["shards"][0]
    records = [first]
    for index in range(1, plan.num_shards):
        record = json.loads(json.dumps(first))
        record.update(index=index, seed=plan.base_seed + index, file=plan.shard_file(index))
        record["val"]["file"] = plan.shard_file(index, val=True)
        for entry, source in ((record, first), (record["val"], first["val"])):
            shutil.copyfile(os.path.join(directory, source["file"]), os.path.join(directory, entry["file"]))
        records.append(record)
    journal = os.path.join(directory, journal_name(0, 1))
    for record in records[1:]:
        append_record(journal, record)
    return records


def resume_check_before(directory: str, records: list[dict]) -> None:
    """e7ee3a4's rerun: every recorded shard's size and sha256, 8 threads."""
    from scalerl.manifest import sha256_file

    def intact(record: dict) -> bool:
        return all(
            os.path.getsize(path) == entry["bytes"] and sha256_file(path) == entry["sha256"]
            for entry in (record, record["val"])
            for path in [os.path.join(directory, entry["file"])]
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        assert all(pool.map(intact, records))


def resume_check_after(directory: str, plan, verify: bool) -> None:
    """This rerun's check, the same scope as :func:`resume_check_before`: header and journals read, every recorded
    shard checked by size (and sha256 with ``verify``), 8 threads."""
    from scalerl.generate.shards import _existing, _reusable_shards

    _, journals = _existing(Path(directory), plan)
    reusable, rewrite = _reusable_shards(Path(directory), plan, journals, (0, plan.num_shards), verify)
    assert len(reusable) == plan.num_shards and not rewrite


def rerun(directory: str, plan) -> None:
    """This rerun end to end: refusal checks, lock, the check above, header written; nothing left to generate."""
    from scalerl.generate.shards import generate_dataset

    assert not generate_dataset(plan, directory, workers=1, progress_bar=False).generated


def record_shards_before(directory: str, header: dict, records: list[dict]) -> None:
    """e7ee3a4: after each finished shard, the whole manifest (all records so far) rewritten atomically."""
    from scalerl.manifest import write_manifest

    manifest = {**header, "complete": False, "shards": []}
    for record in records:
        manifest["shards"] = [*manifest["shards"], record]
        write_manifest(directory, manifest)


def record_shards_after(directory: str, plan, records: list[dict]) -> None:
    """Now: one line appended to the journal per finished shard."""
    from scalerl.manifest import append_record, journal_name, start_journal

    journal = os.path.join(directory, journal_name(0, len(records)))
    start_journal(journal, plan.journal_plan(), [])
    for record in records:
        append_record(journal, record)


def info_before(directory: str) -> None:
    """e7ee3a4's ``scalerl info``: each shard read and validated in full, then every array decompressed again for
    its shape."""
    from scalerl.data import read_shard
    from scalerl.manifest import list_shards

    for path in list_shards(directory, "train") + list_shards(directory, "val"):
        read_shard(path)
        with np.load(path, allow_pickle=False) as file:
            {key: (list(file[key].shape[1:]), file[key].dtype.name) for key in file.files}


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def dataset_ops(shards: int, task: str, dataset_type: str, episodes: int) -> None:
    """Print the before/after table of resume checks, shard recording and info on a dataset of ``shards`` shards."""
    from scalerl.generate.shards import plan_dataset
    from scalerl.info import summarize
    from scalerl.manifest import read_manifest

    plan = plan_dataset(task, dataset_type, shards=shards, episodes_per_shard=episodes)
    with tempfile.TemporaryDirectory() as root:
        data = os.path.join(root, "data")
        records = many_shard_dataset(data, plan)
        header = {key: value for key, value in read_manifest(data).items() if key not in ("shards", "complete")}
        files = [os.path.join(data, name) for name in os.listdir(data) if name.endswith(".npz")]
        size = sum(os.path.getsize(path) for path in files)
        print(f"{plan.dataset_name}: {shards} shards x {episodes} episodes, {size / 1e6:.1f} MB in {len(files)} files")
        for path in files:  # warm the page cache for both sides
            with open(path, "rb") as file:
                while file.read(1 << 22):
                    pass

        def scratch(name: str) -> str:
            path = os.path.join(root, name)
            shutil.rmtree(path, ignore_errors=True)
            os.mkdir(path)
            return path

        rows = [
            ("resume check (rerun)", lambda: resume_check_before(data, records),
             lambda: resume_check_after(data, plan, verify=False)),
            ("resume check --verify", lambda: resume_check_before(data, records),
             lambda: resume_check_after(data, plan, verify=True)),
            ("record every shard", lambda: record_shards_before(scratch("before"), header, records),
             lambda: record_shards_after(scratch("after"), plan, records)),
            ("scalerl info", lambda: info_before(data), lambda: summarize(data)),
            ("rerun, end to end", None, lambda: rerun(data, plan)),
            ("read_manifest", None, lambda: read_manifest(data)),
        ]  # fmt: skip
        print(f"{'operation':<24} {'before (s)':>12} {'after (s)':>12} {'speed-up':>9}")
        for name, before, after in rows:
            before_s = _timed(before) if before is not None else None
            after_s = _timed(after)
            first = f"{before_s:.3f}" if before_s is not None else "-"
            ratio = f"{before_s / after_s:.1f}x" if before_s is not None else "-"
            print(f"{name:<24} {first:>12} {after_s:>12.3f} {ratio:>9}", flush=True)


def main() -> None:
    """Print a table of transitions/s per process, baseline vs ours, and their ratio (or, with ``--dataset-ops``,
    the before/after costs of resume checks, shard recording and info on a dataset of many shards)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=None, help="episodes per run (default: 3 puzzle, 5 maze)")
    parser.add_argument("--episode-length", type=int, default=1000, help="actions per episode")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side; the best is reported")
    parser.add_argument("--dataset-ops", action="store_true", help="measure resume checks, recording and info")
    parser.add_argument("--shards", type=int, default=1000, help="--dataset-ops: shards in the dataset")
    parser.add_argument("--task", default="cube-double", help="--dataset-ops: task of the copied shard")
    parser.add_argument("--type", default="play", help="--dataset-ops: dataset type of the copied shard")
    parser.add_argument("--shard-episodes", type=int, default=2, help="--dataset-ops: episodes per shard")
    args = parser.parse_args()
    if args.dataset_ops:
        dataset_ops(args.shards, args.task, args.type, args.shard_episodes)
        return

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
