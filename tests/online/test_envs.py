"""Online environments: name checks, action rescaling, episode ends, and exact replay from ``reset(seed)``."""

from __future__ import annotations

import types

import numpy as np
import pytest

from scalerl.errors import ScalerlError
from scalerl.online import envs


@pytest.mark.parametrize(
    "name", ["Hopper-v5", "InvertedPendulum-v4", "HumanoidStandup-v5", "dmc:cartpole-swingup", "dmc:ball_in_cup-catch"]
)
def test_supported_names_pass_the_check(name):
    envs.check_env_name(name)


@pytest.mark.parametrize(
    "name, message",
    [
        ("dmc:cartpole", "--env: expected dmc:DOMAIN-TASK (e.g. dmc:cartpole-swingup), got 'dmc:cartpole'"),
        ("Hopper", "--env: unknown environment 'Hopper'"),
        ("Hopper-5", "--env: unknown environment 'Hopper-5'"),
        ("CartPole-v1", "--env: unknown environment 'CartPole-v1'"),  # Gymnasium, but not a MuJoCo task
        ("pointmaze-medium-navigate", "--env: unknown environment 'pointmaze-medium-navigate'"),  # an offline task
    ],
)
def test_unsupported_names_are_one_line_errors_before_anything_is_built(monkeypatch, name, message):
    monkeypatch.setattr(envs, "GymEnv", None)  # building anything would fail differently
    monkeypatch.setattr(envs, "DMCEnv", None)
    for check in (envs.check_env_name, envs.make_online_env):
        with pytest.raises(ScalerlError) as error:
            check(name)
        assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_names_choose_the_family_and_split_domain_from_task(monkeypatch):
    monkeypatch.setattr(envs, "GymEnv", lambda *args: ("gym", *args))
    monkeypatch.setattr(envs, "DMCEnv", lambda *args: ("dmc", *args))
    assert envs.make_online_env("Hopper-v5") == ("gym", "Hopper-v5", 1000)
    assert envs.make_online_env("dmc:ball_in_cup-catch", 500) == ("dmc", "ball_in_cup", "catch", 500)
    assert envs.make_online_env("dmc:walker-run", 10) == ("dmc", "walker", "run", 10)


class FakeBox:
    def __init__(self, low, high, shape):
        self.low, self.high, self.shape = np.asarray(low, np.float32), np.asarray(high, np.float32), shape


class FakeGymEnv:
    """Records the native actions it is stepped with; observations are float64 [1, 3] arrays."""

    action_space = FakeBox([-2.0, 0.0], [2.0, 10.0], (2,))
    observation_space = FakeBox([-np.inf] * 3, [np.inf] * 3, (1, 3))

    def __init__(self):
        self.actions = []

    def reset(self, seed):
        return np.full((1, 3), seed, np.float64), {"seed": seed}

    def step(self, action):
        self.actions.append(np.array(action))
        return np.ones((1, 3)), np.float64(0.5), np.bool_(False), np.bool_(len(self.actions) == 2), {}


def test_gym_actions_in_unit_box_are_rescaled_to_native_bounds(monkeypatch):
    import gymnasium

    fake = FakeGymEnv()
    made = {}
    monkeypatch.setattr(envs, "default_mujoco_gl", lambda: None)
    monkeypatch.setattr(gymnasium, "make", lambda env_id, **kwargs: made.update(env_id=env_id, **kwargs) or fake)
    env = envs.GymEnv("Fake-v0", max_episode_steps=7)
    assert made == {"env_id": "Fake-v0", "max_episode_steps": 7}
    assert (env.observation_dim, env.action_dim, env.max_episode_steps) == (3, 2, 7)
    observation, info = env.reset(seed=4)
    assert observation.dtype == np.float32 and observation.shape == (3,) and info == {"seed": 4}
    for action in ([-1.0, 1.0], [0.0, 0.0], [0.5, -0.5], [3.0, -7.0]):
        step = env.step(np.array(action))
    # low + (a + 1) / 2 * (high - low), after clipping a to [-1, 1]
    np.testing.assert_allclose(fake.actions, [[-2.0, 10.0], [0.0, 5.0], [1.0, 2.5], [2.0, 0.0]])
    observation, reward, terminated, truncated, _ = step
    assert observation.dtype == np.float32 and observation.shape == (3,)
    assert type(reward) is float and type(terminated) is bool and type(truncated) is bool


class FakeTimestep:
    def __init__(self, value, reward, last=False, discount=1.0):
        self.observation = {"position": np.full(2, value), "velocity": np.float64(-value)}
        self.reward, self.discount, self._last = reward, discount, last

    def last(self):
        return self._last


class FakeSuiteEnv:
    """A dm_control task whose episode ends after ``length`` steps with ``final_discount`` (0: a terminal state)."""

    def __init__(self, length, final_discount):
        self.length, self.final_discount = length, final_discount
        self.task = types.SimpleNamespace(_random=None)
        self.actions = []

    def action_spec(self):
        return types.SimpleNamespace(minimum=np.array([0.0, -4.0]), maximum=np.array([1.0, 4.0]), shape=(2,))

    def observation_spec(self):
        return {"position": types.SimpleNamespace(shape=(2,)), "velocity": types.SimpleNamespace(shape=())}

    def reset(self):
        self.actions = []
        return FakeTimestep(self.task._random.uniform(), None)

    def step(self, action):
        self.actions.append(np.array(action))
        last = len(self.actions) == self.length
        return FakeTimestep(len(self.actions), None if last else 1.0, last, self.final_discount if last else 1.0)


@pytest.fixture
def fake_suite(monkeypatch):
    """``dm_control.suite.load`` returning :class:`FakeSuiteEnv` (episode length and final discount by task name)."""
    envs.default_mujoco_gl()  # as DMCEnv does before dm_control is imported
    from dm_control import suite

    tasks = {"reach": (5, 0.0), "long": (100, 1.0), "timeout": (3, 1.0)}

    def load(domain, task, task_kwargs):
        if task not in tasks:
            raise ValueError(f"unknown task {task}")
        return FakeSuiteEnv(*tasks[task])

    monkeypatch.setattr(envs, "_drop_unknown_dm_control_fields", lambda: None)
    monkeypatch.setattr(suite, "load", load)


def test_dmc_actions_are_rescaled_and_observations_flattened(fake_suite):
    env = envs.DMCEnv("fake", "long", max_episode_steps=1000)
    assert (env.observation_dim, env.action_dim) == (3, 2)
    observation, _ = env.reset(seed=0)
    assert observation.dtype == np.float32 and observation.shape == (3,)
    for action in ([-1.0, 1.0], [0.0, 0.0], [2.0, -0.5]):
        observation, reward, terminated, truncated, _ = env.step(np.array(action))
    np.testing.assert_allclose(env._env.actions, [[0.0, 4.0], [0.5, 0.0], [1.0, -2.0]])
    np.testing.assert_array_equal(observation, [3.0, 3.0, -3.0])
    assert (reward, terminated, truncated) == (1.0, False, False)


@pytest.mark.parametrize(
    "task, max_episode_steps, expected_end",
    [
        ("reach", 1000, (5, True, False)),  # the task ends with discount 0: a terminal state
        ("timeout", 1000, (3, False, True)),  # the suite's own time limit (discount 1): truncated
        ("long", 4, (4, False, True)),  # our step limit comes first: truncated
    ],
)
def test_dmc_episode_ends_are_terminal_or_truncated(fake_suite, task, max_episode_steps, expected_end):
    env = envs.DMCEnv("fake", task, max_episode_steps=max_episode_steps)
    for _ in range(2):  # a second episode counts its steps from zero again
        _, rewards, ends = _rollout(env, 1, np.zeros((100, 2)))
        assert (len(ends), *ends[-1]) == expected_end
        assert rewards[-1] == (0.0 if task != "long" else 1.0)  # dm_control's None reward at the end becomes 0


def test_dmc_reset_seed_alone_decides_the_initial_state(fake_suite):
    env = envs.DMCEnv("fake", "long", max_episode_steps=1000)
    first, _ = env.reset(seed=3)
    env.reset(seed=4)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    assert first[0] == np.random.RandomState(3).uniform()


def test_an_unknown_dmc_task_is_a_one_line_error(fake_suite):
    with pytest.raises(ScalerlError, match=r"^--env: unknown DMC task dmc:fake-nothing \(unknown task nothing\)$"):
        envs.DMCEnv("fake", "nothing", max_episode_steps=10)


def _rollout(env, seed: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    observation, _ = env.reset(seed)
    observations, rewards, ends = [observation], [], []
    for action in actions:
        observation, reward, terminated, truncated, _ = env.step(action)
        observations.append(observation)
        rewards.append(reward)
        ends.append((terminated, truncated))
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), ends


@pytest.mark.integration
@pytest.mark.parametrize(
    "name, observation_dim, action_dim",
    [("InvertedPendulum-v5", 4, 1), ("dmc:cartpole-swingup", 5, 1)],
)
def test_reset_seed_and_the_same_actions_replay_an_episode_exactly(name, observation_dim, action_dim):
    steps = 20
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, action_dim)).astype(np.float32)
    env = envs.make_online_env(name, max_episode_steps=steps)
    assert (env.observation_dim, env.action_dim) == (observation_dim, action_dim)
    observations, rewards, ends = _rollout(env, 11, actions)
    assert observations.shape[1] == observation_dim and observations.dtype == np.float32
    _rollout(env, 12, actions[::-1])  # another episode in between
    replayed = _rollout(env, 11, actions)
    resumed = _rollout(envs.make_online_env(name, max_episode_steps=steps), 11, actions)  # a fresh process's env
    for observations_again, rewards_again, ends_again in (replayed, resumed):
        np.testing.assert_array_equal(observations_again, observations)
        np.testing.assert_array_equal(rewards_again, rewards)
        assert ends_again == ends
    other_seed, _, _ = _rollout(env, 12, actions[:1])
    assert not np.array_equal(other_seed[0], observations[0])


@pytest.mark.integration
@pytest.mark.parametrize("name", ["InvertedPendulum-v5", "dmc:cartpole-swingup"])
def test_episodes_are_truncated_at_max_episode_steps(name):
    env = envs.make_online_env(name, max_episode_steps=5)
    _, _, ends = _rollout(env, 0, np.zeros((10, env.action_dim), np.float32))
    assert ends == [(False, False)] * 4 + [(False, True)]
