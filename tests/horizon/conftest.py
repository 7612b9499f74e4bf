"""Small horizon datasets, generated once per test session (one compiled generator each)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest

from scalerl.horizon.datasets import generate_horizon_dataset, plan_horizon_dataset


@pytest.fixture(scope="session")
def maze_data(tmp_path_factory):
    """``(directory, plan)``: maze-n4 random-walk play, 2 shards of 20 episodes x 60 steps."""
    plan = plan_horizon_dataset("maze-n4-explore", transitions=2400, episode_length=60)
    directory = tmp_path_factory.mktemp("horizon") / "maze"
    generate_horizon_dataset(plan, directory, progress_bar=False)
    return directory, plan
