"""Horizon-reduction agents, OPEX and presets.

n-step SAC+BC's target against hand-computed numbers, the subgoals each hierarchical loss reads, how hierarchical
agents compose their levels when acting, double SHARSA's low-level rejection sampling, OPEX on a toy critic and on a
real one (weights untouched), and preset precedence and errors (also through the ``scalerl train`` command).
"""

import dataclasses
import functools
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from scalerl.agents import AGENTS, sampler_config
from scalerl.data import compact
from scalerl.errors import ScalerlError
from scalerl.offline.opex import OpexConfig, check_opex_supported, improve_actions, supports_opex
from scalerl.offline.presets import PRESETS, format_table, preset_names, preset_values
from scalerl.overrides import build_config, parse_overrides
from scalerl.sampling import sample_batch

OBS_DIM, GOAL_DIM, ACTION_DIM, BATCH = 5, 3, 2, 16
TINY = {
    "hidden_dims": (16, 16),
    "batch_size": BATCH,
    "num_samples": 6,
    "flow_steps": 3,
    "subgoal_steps": 3,
    "rep_dim": 6,
}


@functools.lru_cache
def tiny_agent(name, seed=0, **overrides):
    """``(agent, batch)``: the agent's defaults with tiny networks, created on a batch of random trajectories.

    Cached: tests share one compiled ``create`` per configuration (agents and batches are immutable).
    """
    agent_cls, config_cls = AGENTS[name]
    names = {field.name for field in dataclasses.fields(config_cls)}
    values = {**TINY, "goal_rep": "oracle", **overrides}
    config = config_cls(**{key: value for key, value in values.items() if key in names})
    rng = np.random.default_rng(seed)
    rows, length = 120, 20
    terminals = np.zeros(rows, np.float32)
    terminals[length - 1 :: length] = 1.0
    dataset = compact(
        {
            "observations": rng.normal(size=(rows, OBS_DIM)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(rows, ACTION_DIM)).astype(np.float32),
            "terminals": terminals,
        },
        goal_reps=rng.normal(size=(rows, GOAL_DIM)).astype(np.float32),
    )
    batch = sample_batch(jax.random.PRNGKey(seed), dataset, sampler_config(config), BATCH)
    agent = jax.jit(lambda key: agent_cls.create(key, batch, config))(jax.random.PRNGKey(seed + 1))
    return agent, batch


# --- n-step SAC+BC ---------------------------------------------------------------------------------------------------


def test_nstep_transition_gives_the_hand_computed_nstep_target():
    from scalerl.agents.nsacbc import nstep_transition

    discount = 0.9
    batch = {
        "rewards": jnp.zeros(3),
        "masks": jnp.ones(3),
        "next_observations": jnp.zeros((3, 1)),
        "nstep_rewards": jnp.array([0.0, 0.81, 0.0]),  # the goal reached 2 steps ahead in the second chunk
        "nstep_masks": jnp.array([1.0, 0.0, 1.0]),
        "nstep_steps": jnp.array([3, 3, 2]),  # the third chunk is cut by its trajectory's end
        "nstep_next_observations": jnp.array([[1.0], [2.0], [3.0]]),
    }
    next_values = jnp.array([0.5, 0.7, 0.2])
    one_step = nstep_transition(batch, discount)
    targets = one_step["rewards"] + discount * one_step["masks"] * next_values
    np.testing.assert_allclose(targets, [0.9**3 * 0.5, 0.81, 0.9**2 * 0.2], rtol=1e-6)
    np.testing.assert_array_equal(one_step["next_observations"], batch["nstep_next_observations"])
    plain = {key: batch[key] for key in ("rewards", "masks", "next_observations")}
    assert nstep_transition(plain, discount) is plain


def test_nsacbc_critic_bootstraps_nstep_ahead_with_the_target_critic():
    agent, batch = tiny_agent("nsacbc", nstep=3)
    assert {"nstep_rewards", "nstep_masks", "nstep_steps", "nstep_next_observations"} <= set(batch)
    nets, config, key = agent.networks, agent.config, jax.random.PRNGKey(7)
    batch = {
        **batch,
        "nstep_rewards": jnp.full(BATCH, 0.25),
        "nstep_masks": jnp.tile(jnp.array([0.0, 1.0]), BATCH // 2),
        "nstep_steps": jnp.tile(jnp.array([3, 2]), BATCH // 2),
    }
    _, info = jax.jit(agent.critic_loss)(batch, agent.params, key)
    next_obs, goals = batch["nstep_next_observations"], batch["value_goals"]
    next_actions, _ = nets["actor"].apply(agent.params["actor"], next_obs, goals).sample_and_log_prob(key)
    next_q = nets["critic"].apply(agent.target_params["critic"], next_obs, goals, next_actions)
    next_q = jnp.min(jax.nn.sigmoid(next_q), axis=0)
    expected = 0.25 + config.discount ** batch["nstep_steps"] * batch["nstep_masks"] * next_q
    np.testing.assert_allclose(info["critic/target_mean"], np.clip(expected, 0, 1).mean(), rtol=1e-5)


# --- hierarchical agents ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hfbc", "hiql"])
def test_hierarchical_losses_read_their_own_subgoals(name):
    """The high level learns the actor subgoal toward the actor goal, the low level acts toward ``low_goals``."""
    agent, batch = tiny_agent(name)
    loss = jax.jit(lambda batch: agent.total_loss(batch, agent.params, jax.random.PRNGKey(3))[1])
    base = loss(batch)

    def changed(key):
        info = loss({**batch, key: batch[key] + 1.0})
        return {level for level in ("high_actor", "low_actor") if info[f"{level}/loss"] != base[f"{level}/loss"]}

    assert changed("actor_subgoals") == {"high_actor"}
    assert changed("actor_goals") == {"high_actor"}
    assert changed("low_goals") == {"low_actor"}
    if name == "hiql":
        # The high-level advantage V(s_{t+k}, g_a) - V(s, g_a) reads the full state at the actor subgoal.
        assert changed("actor_subgoal_observations") == {"high_actor"}


def test_hfbc_acts_toward_a_sampled_subgoal():
    agent, batch = tiny_agent("hfbc")
    observations, goals, key = batch["observations"], batch["actor_goals"], jax.random.PRNGKey(4)

    @jax.jit
    def act(agent):
        high_key, low_key = jax.random.split(key)
        subgoals = agent.sample_subgoals(observations, goals, high_key)
        return (
            subgoals,
            agent.sample_low_actions(observations, subgoals, low_key),
            agent.sample_actions(observations, goals, key),
        )

    subgoals, composed, actions = act(agent)
    assert subgoals.shape == (BATCH, GOAL_DIM)
    np.testing.assert_allclose(actions, composed, rtol=1e-6)


def test_hiql_subgoals_are_normalised_representations_read_by_the_low_level():
    agent, batch = tiny_agent("hiql")
    observations, goals, key = batch["observations"], batch["actor_goals"], jax.random.PRNGKey(5)
    sample_subgoals = jax.jit(type(agent).sample_subgoals)
    subgoals = sample_subgoals(agent, observations, goals, key)
    assert subgoals.shape == (BATCH, 6)
    np.testing.assert_allclose(jnp.linalg.norm(subgoals, axis=-1), np.sqrt(6.0), rtol=1e-4)
    # Temperature 0 (OGBench's evaluation): the means, whatever the key, and they depend on the goal.
    np.testing.assert_allclose(sample_subgoals(agent, observations, goals, jax.random.PRNGKey(9)), subgoals, atol=1e-5)
    assert not np.allclose(sample_subgoals(agent, observations, goals[::-1], key), subgoals)
    low = agent.networks["low_actor"].apply(agent.params["low_actor"], observations, subgoals).mode()
    actions = jax.jit(agent.sample_actions)(observations, goals, key)  # the low level's mean at the subgoal
    np.testing.assert_allclose(actions, jnp.clip(low, -1, 1), rtol=1e-5, atol=1e-6)


# --- double SHARSA ---------------------------------------------------------------------------------------------------


def test_dsharsa_low_level_goals_use_the_low_discount():
    _, config_cls = AGENTS["dsharsa"]
    assert config_cls().low_discount == pytest.approx(1 - 1 / 25)
    assert config_cls(subgoal_steps=50).low_discount == pytest.approx(0.98)
    assert config_cls(subgoal_steps=50, low_discount=0.9).low_discount == 0.9
    assert sampler_config(config_cls(subgoal_steps=10)).low_discount == pytest.approx(0.9)
    _, batch = tiny_agent("dsharsa")
    assert batch["low_value_goals"].shape == (BATCH, GOAL_DIM)
    np.testing.assert_array_equal(batch["low_value_masks"], 1.0 - batch["low_value_rewards"])


def test_dsharsa_picks_the_argmax_q_low_level_action():
    agent, batch = tiny_agent("dsharsa")
    observations, subgoals, key = batch["observations"], batch["low_goals"], jax.random.PRNGKey(6)

    @jax.jit
    def choose(agent):
        candidates = agent.propose_actions(observations, subgoals, key)  # [N, B, A]
        q = jax.vmap(agent.low_q_value, in_axes=(None, 0, None))(observations, candidates, subgoals)  # [N, B]
        chosen = agent.choose_actions(observations, subgoals, key)
        return candidates, q, chosen

    candidates, q, chosen = choose(agent)
    assert candidates.shape == (6, BATCH, ACTION_DIM) and np.abs(candidates).max() <= 1.0
    best = np.asarray(q).argmax(axis=0)
    np.testing.assert_array_equal(chosen, np.asarray(candidates)[best, np.arange(BATCH)])
    assert len(np.unique(best)) > 1, "each state picks its own best action"


# --- OPEX ---------------------------------------------------------------------------------------------------------


def toy_q(observations, actions, goals):
    """``Q = -||a - g||^2 - 1``: highest at ``a = g``."""
    return -jnp.sum((actions - goals) ** 2, axis=-1) - 1.0


def test_opex_climbs_a_toy_critic_state_by_state():
    observations = jnp.zeros((4, 1))
    goals = jnp.array([[0.5, -0.5], [0.9, 0.9], [-0.2, 0.1], [2.0, 0.0]])  # the last optimum lies outside [-1, 1]
    actions = jnp.zeros((4, 2))
    improved = jax.jit(improve_actions, static_argnums=(0, 4))(
        toy_q, observations, actions, goals, OpexConfig(steps=3, lr=0.05)
    )
    assert np.all(np.asarray(toy_q(observations, improved, goals)) > np.asarray(toy_q(observations, actions, goals)))
    assert np.abs(improved).max() <= 1.0
    alone = improve_actions(toy_q, observations[1:2], actions[1:2], goals[1:2], OpexConfig(steps=3, lr=0.05))
    np.testing.assert_allclose(improved[1:2], alone, rtol=1e-6)
    unchanged = improve_actions(toy_q, observations, actions, goals, OpexConfig(steps=0, lr=0.05))
    np.testing.assert_array_equal(unchanged, actions)


def test_sharsa_q_agg_combines_the_critic_heads():
    """``q_agg = mean`` (the humanoidmaze-giant preset) averages the two heads; ``min`` (default) takes the lower."""
    agent, batch = tiny_agent("sharsa", q_agg="mean")
    heads = jax.nn.sigmoid(
        agent.networks["critic"].apply(
            agent.params["critic"], batch["observations"], batch["value_goals"], batch["low_goals"]
        )
    )
    mean = agent.q_value(batch["observations"], batch["low_goals"], batch["value_goals"])
    np.testing.assert_allclose(mean, heads.mean(axis=0), rtol=1e-5)
    low = agent.replace(config=dataclasses.replace(agent.config, q_agg="min"))
    np.testing.assert_allclose(
        low.q_value(batch["observations"], batch["low_goals"], batch["value_goals"]), heads.min(axis=0)
    )
    with pytest.raises(ValueError, match="q_agg"):
        dataclasses.replace(agent.config, q_agg="max")


def test_opex_step_lengths_normalised_and_raw():
    """Normalised: each step moves the action by exactly lr; raw: by lr * grad_a Q (the paper's plain form)."""
    observations, actions = jnp.zeros((2, 1)), jnp.zeros((2, 2))
    goals = jnp.array([[0.3, 0.4], [0.03, 0.04]])  # grad_a Q at a = 0 is 2 g: lengths 1.0 and 0.1
    unit = improve_actions(toy_q, observations, actions, goals, OpexConfig(steps=1, lr=0.05))
    np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), [0.05, 0.05], rtol=1e-5)
    raw = improve_actions(toy_q, observations, actions, goals, OpexConfig(steps=1, lr=0.05, normalize=False))
    np.testing.assert_allclose(raw, 0.05 * 2 * goals, rtol=1e-5)


def test_opex_raises_the_agents_q_and_leaves_its_weights_untouched():
    from scalerl.offline.loop import make_policy_fn

    agent, batch = tiny_agent("gciql")
    agents = jax.tree_util.tree_map(lambda leaf: jnp.stack([leaf, leaf]), agent)  # two seeds, as in training
    before = jax.tree_util.tree_map(np.array, agents)
    observations = jnp.stack([batch["observations"]] * 2)
    goals = jnp.stack([batch["actor_goals"]] * 2)
    key = jax.random.PRNGKey(8)
    plain = make_policy_fn(agents)(observations, goals, key)
    improved = make_policy_fn(agents, OpexConfig(steps=5, lr=0.02))(observations, goals, key)
    q = jax.jit(agent.q_value)
    assert np.mean(q(observations[0], improved[0], goals[0]) > q(observations[0], plain[0], goals[0])) > 0.9
    jax.tree_util.tree_map(np.testing.assert_array_equal, jax.tree_util.tree_map(np.array, agents), before)


def test_opex_needs_a_critic_over_actions():
    assert supports_opex(AGENTS["gciql"][0]) and supports_opex(AGENTS["nsacbc"][0])
    assert not supports_opex(AGENTS["fbc"][0]) and not supports_opex(AGENTS["sharsa"][0])
    with pytest.raises(ScalerlError, match="--opex-steps: agent 'sharsa'") as error:
        check_opex_supported(AGENTS["sharsa"][0], "sharsa")
    assert "\n" not in str(error.value)
    with pytest.raises(ScalerlError, match="--opex-lr"):
        OpexConfig(steps=1, lr=-1.0)


# --- presets ------------------------------------------------------------------------------------------------------


def test_every_preset_builds_a_valid_config_for_its_registered_agent():
    built = 0
    for (preset, agent), values in PRESETS.items():
        if agent in AGENTS:
            config = build_config(AGENTS[agent][1], preset_values(preset, agent, AGENTS[agent][1]))
            assert all(getattr(config, field) == value for field, value in values.items() if field != "low_discount")
            built += 1
    assert built >= 150
    assert {"cube-octuple", "puzzle-4x5", "puzzle-4x6", "humanoidmaze-giant"} <= set(preset_names())
    assert {"pointmaze-medium-navigate", "cube-single-play", "puzzle-3x3-play"} <= set(preset_names())


def test_paper_settings_in_the_presets():
    assert PRESETS[("puzzle-4x5", "hiql")]["subgoal_steps"] == 25
    assert PRESETS[("cube-octuple", "dsharsa")]["subgoal_steps"] == 50
    assert PRESETS[("humanoidmaze-giant", "nsacbc")] == {
        "q_agg": "mean", "alpha": 0.03, "nstep": 50,
        "actor_p_trajgoal": 1.0, "actor_p_randomgoal": 0.0, "actor_geom_sample": False,
    }  # fmt: skip
    assert PRESETS[("cube-octuple", "gciql")]["alpha"] == 10.0
    assert PRESETS[("humanoidmaze-giant", "sharsa")]["q_agg"] == "mean"
    assert PRESETS[("cube-octuple", "sharsa")]["q_agg"] == "min"
    assert PRESETS[("puzzle-4x4-play", "crl")]["actor_layer_norm"] is False  # OGBench's actor has no layer norm
    ogbench_hiql = PRESETS[("puzzle-4x4-play", "hiql")]
    assert (ogbench_hiql["subgoal_steps"], ogbench_hiql["discount"], ogbench_hiql["rep_dim"]) == (10, 0.99, 10)
    assert PRESETS[("pointmaze-giant-stitch", "gciql")]["discount"] == 0.995
    assert PRESETS[("pointmaze-giant-stitch", "gciql")]["actor_p_randomgoal"] == 0.5


def test_preset_precedence_defaults_then_preset_then_flags():
    _, config_cls = AGENTS["hiql"]
    flags = parse_overrides(config_cls, ["--agent.high-alpha", "7", "--agent.hidden-dims", "8", "8"])
    config = build_config(config_cls, {**preset_values("cube-octuple", "hiql", config_cls), **flags})
    assert config.high_alpha == 7.0  # the flag beats the preset's 10
    assert config.low_alpha == 10.0 and config.expectile == 0.5  # the preset beats the defaults (3, 0.7)
    assert config.tau == config_cls().tau  # untouched fields keep the defaults


def test_preset_errors_are_one_line():
    for call, message in (
        (lambda: preset_values("nope", "hiql"), "unknown preset 'nope'"),
        (lambda: preset_values("puzzle-4x5", "gcbc"), "not defined for agent 'gcbc'"),
        (lambda: format_table(agent="nope"), "no preset is defined for agent 'nope'"),
    ):
        with pytest.raises(ScalerlError, match=message) as error:
            call()
        assert "\n" not in str(error.value)

    @dataclasses.dataclass(frozen=True)
    class Narrow:
        alpha: float = 1.0

    with pytest.raises(ScalerlError, match="does not have"):
        preset_values("puzzle-4x5", "gciql", Narrow)


def test_train_command_applies_the_preset_and_opex(monkeypatch, tmp_path):
    from scalerl.cli import app

    captured = {}

    def fake_train(config, agent_config, resume=False, progress=True, opex=None):
        captured.update(config=config, agent_config=agent_config, opex=opex)
        return str(tmp_path)

    monkeypatch.setattr("scalerl.offline.loop.train", fake_train)
    args = ["train", "--agent", "gciql", "--env", "pointmaze-medium-navigate", "--data", "D", "--out", str(tmp_path)]
    result = CliRunner().invoke(
        app, [*args, "--preset", "puzzle-4x5", "--agent.actor-loss", "awr", "--opex-steps", "2", "--opex-lr", "0.3"]
    )
    assert result.exit_code == 0, result.output
    config = captured["agent_config"]
    assert (config.alpha, config.actor_p_randomgoal, config.actor_loss) == (1.0, 0.5, "awr")
    assert captured["opex"] == OpexConfig(steps=2, lr=0.3)
    failed = CliRunner().invoke(app, [*args, "--preset", "puzzle-4x5x"])
    assert isinstance(failed.exception, ScalerlError) and "unknown preset" in str(failed.exception)
    listing = CliRunner().invoke(app, ["presets", "--preset", "humanoidmaze-giant", "--agent", "nsacbc"])
    assert listing.exit_code == 0 and "--agent.q-agg mean --agent.alpha 0.03 --agent.nstep 50" in listing.output
