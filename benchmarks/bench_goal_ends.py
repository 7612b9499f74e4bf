"""How often sampled goals land on a trajectory's final row (a state that is never a current state).

For each agent's default sampler, draws ``--batches`` batches of ``--batch-size`` rows from a dataset and reports the
fraction of value goals and actor goals that are a final row (so ``state == goal`` can never fire for them), the
fraction of value goals that are the current state (reward 1, mask 0), and, for hierarchical agents, the fraction of
subgoals ``low_goals`` drawn from rows within ``subgoal_steps`` of the final row. Run it with the code before and after
a change to compare (``PYTHONPATH=OTHER_TREE/src``)::

    JAX_PLATFORMS=cpu python benchmarks/bench_goal_ends.py --data DATASET_DIR
    JAX_PLATFORMS=cpu python benchmarks/bench_goal_ends.py --data DIR --agents gciql --preset pointmaze-medium-navigate
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np

from scalerl.agents import get_agent, sampler_config
from scalerl.data import load_dataset
from scalerl.offline.presets import preset_values
from scalerl.sampling import draw_indices


def goal_end_fractions(dataset, sampler, batch_size: int, batches: int, seed: int = 0) -> dict[str, float]:
    """Fractions over ``batches`` draws: value/actor goals on a final row, value goals that succeed (``i == g``)."""
    draw = jax.jit(lambda key: draw_indices(key, dataset, sampler, batch_size))
    finals = np.asarray(dataset.traj_ends) == np.arange(dataset.size)  # [N] the final row of its trajectory
    counts = np.zeros(4)
    for key in jax.random.split(jax.random.PRNGKey(seed), batches):
        idxs, value_goals, actor_goals = map(np.asarray, draw(key))
        near_end = np.asarray(dataset.traj_ends)[idxs] - idxs <= max(sampler.subgoal_steps, 1)
        counts += [finals[value_goals].sum(), finals[actor_goals].sum(), (value_goals == idxs).sum(), near_end.sum()]
    fractions = counts / (batch_size * batches)
    return dict(value_final=fractions[0], actor_final=fractions[1], value_success=fractions[2], near_end=fractions[3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="dataset directory or OGBench .npz file")
    parser.add_argument("--agents", nargs="+", default=["gciql", "hiql", "sharsa"])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--preset", help="apply this preset's fields first (e.g. pointmaze-medium-navigate)")
    args = parser.parse_args()
    dataset = load_dataset(args.data)
    lengths = np.diff(np.concatenate([[-1], np.unique(np.asarray(dataset.traj_ends))]))
    print(f"{args.data}: {dataset.size} rows, {lengths.size} trajectories of {lengths.mean():.0f} rows on average")
    print("agent    value goal on final row   actor goal on final row   value goal == state   rows within k of end")
    for name in args.agents:
        config_cls = get_agent(name)[1]
        values = preset_values(args.preset, name, config_cls) if args.preset else {}
        sampler = sampler_config(config_cls(**values))
        fractions = goal_end_fractions(dataset, sampler, args.batch_size, args.batches)
        print(
            f"{name:8s} {fractions['value_final']:23.2%} {fractions['actor_final']:25.2%} "
            f"{fractions['value_success']:21.2%} {fractions['near_end']:22.2%}  (k = {sampler.subgoal_steps})"
        )


if __name__ == "__main__":
    main()
