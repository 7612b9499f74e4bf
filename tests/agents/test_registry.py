"""Every agent in the registry: config shape, create, update, acting and the validation loss.

Parametrised over :data:`scalerl.agents.AGENTS`, so registering an agent adds its tests. Goals use a 3-dimensional
oracle representation while observations have 5 dimensions, so goal/observation shape mix-ups fail.
"""

import dataclasses
import inspect
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.agents import AGENTS, get_agent, sampler_config
from scalerl.errors import ScalerlError
from scalerl.overrides import field_docs
from scalerl.sampling import GoalSamplerConfig, sample_batch
from tests.agents.tiny import ACTION_DIM, BATCH, GOAL_DIM, random_dataset, tiny_config

TINY = {"hidden_dims": (16, 16), "batch_size": BATCH, "num_samples": 4, "flow_steps": 3, "subgoal_steps": 3, "nstep": 3}


@pytest.fixture(scope="module", params=sorted(AGENTS))
def stepped(request):
    """Two seeds created (vmapped, as the training loop does); the first updated once, asked for actions, values and
    the loss on a validation batch. One compile per agent and function."""
    agent_cls, config_cls = AGENTS[request.param]
    config = tiny_config(config_cls, TINY)
    sampler = sampler_config(config)
    batch = sample_batch(jax.random.PRNGKey(0), random_dataset(0), sampler, BATCH)
    val_batch = sample_batch(jax.random.PRNGKey(1), random_dataset(1), sampler, BATCH)
    create = jax.jit(jax.vmap(lambda key: agent_cls.create(key, batch, config)))
    agents = create(jax.random.split(jax.random.PRNGKey(2), 2))
    agent = jax.tree_util.tree_map(lambda leaf: leaf[0], agents)

    @jax.jit
    def step(agent, batch, val_batch, key):
        new_agent, info = agent.update(batch)
        observations, goals = val_batch["observations"], val_batch["value_goals"]
        actions = new_agent.sample_actions(observations, val_batch["actor_goals"], key)
        val_loss, val_info = new_agent.total_loss(val_batch, new_agent.params, key)
        values = new_agent.value(observations, goals) if hasattr(new_agent, "value") else None
        q_values = None
        if hasattr(new_agent, "q_value"):
            # The second argument is an action, or a subgoal for hierarchical agents
            # (``q_value(obs, subgoals, goals)``).
            second = list(inspect.signature(new_agent.q_value).parameters)[1]
            q_inputs = val_batch["actor_subgoals"] if second == "subgoals" else val_batch["actions"]
            q_values = new_agent.q_value(observations, q_inputs, goals)
        return new_agent, info, actions, val_loss, val_info, values, q_values

    outputs = step(agent, batch, val_batch, jax.random.PRNGKey(3))
    return {
        "name": request.param,
        "config": config,
        "agents": agents,
        "agent": agent,
        "batch": batch,
        "val_batch": val_batch,
        "step": step,
        "out": outputs,
    }


def test_get_agent_unknown_name_lists_known_ones():
    with pytest.raises(ScalerlError) as error:
        get_agent("nope")
    message = str(error.value)
    assert "\n" not in message and all(name in message for name in AGENTS)
    assert get_agent("sharsa") == AGENTS["sharsa"]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_config_is_flat_frozen_and_documented(name):
    """Every field, written in the config or inherited from a shared base, has a docstring for ``--help``."""
    _, config_cls = AGENTS[name]
    config = config_cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 1
    docs = field_docs(config_cls)
    undocumented = {field.name for field in dataclasses.fields(config_cls)} - {k for k, v in docs.items() if v}
    assert not undocumented, f"{config_cls.__name__} fields without a docstring: {sorted(undocumented)}"
    assert all(isinstance(getattr(config, f.name), (bool, int, float, str, tuple)) for f in dataclasses.fields(config))


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_sampler_config_carries_the_agents_values(name):
    """The sampler config built from an agent's config has the agent's value of every sampling field it has (also
    when set away from the default), and the sampler's defaults for the field groups it does not use."""
    _, config_cls = AGENTS[name]
    config = config_cls()
    own = {field.name for field in dataclasses.fields(config_cls)}
    assert {"goal_rep", "discount", "actor_p_curgoal", "actor_p_trajgoal", "actor_p_randomgoal"} <= own
    sampler_defaults = GoalSamplerConfig()
    for changed in (config, dataclasses.replace(config, discount=0.95, goal_rep="oracle", actor_geom_sample=False)):
        sampler = sampler_config(changed)
        assert isinstance(sampler, GoalSamplerConfig)
        for field in dataclasses.fields(GoalSamplerConfig):
            expected = getattr(changed, field.name) if field.name in own else getattr(sampler_defaults, field.name)
            assert getattr(sampler, field.name) == expected, f"{name}: {field.name}"
    assert sampler_config(dataclasses.replace(config, discount=0.95)).discount == 0.95
    assert config.batch_size == 1024


def test_paper_defaults():
    from scalerl.agents.sharsa import SHARSAConfig

    config = SHARSAConfig()
    assert (config.lr, config.batch_size, config.hidden_dims, config.layer_norm) == (3e-4, 1024, (1024,) * 4, True)
    assert (config.discount, config.tau, config.flow_steps, config.num_samples, config.subgoal_steps) == (
        0.999,
        0.005,
        10,
        32,
        25,
    )
    assert (config.value_p_curgoal, config.value_p_trajgoal, config.value_p_randomgoal) == (0.2, 0.5, 0.3)
    assert (config.actor_p_curgoal, config.actor_p_trajgoal, config.actor_p_randomgoal) == (0.0, 0.5, 0.5)
    assert config.actor_geom_sample


def test_invalid_configs_raise():
    from scalerl.agents.gciql import GCIQLConfig
    from scalerl.agents.sharsa import SHARSAConfig

    with pytest.raises(ValueError, match="actor_loss"):
        GCIQLConfig(actor_loss="sac")
    with pytest.raises(ValueError, match="--agent.subgoal-steps"):
        SHARSAConfig(subgoal_steps=0)


def test_update_info_is_namespaced_and_finite(stepped):
    info = stepped["out"][1]
    assert info, "update returns an info dict"
    for key, value in info.items():
        assert "/" in key, f"{stepped['name']}: info key '{key}' is not namespaced"
        assert np.shape(value) == () and np.isfinite(value), f"{stepped['name']}: {key} = {value}"


def test_update_changes_params_and_keeps_structure(stepped):
    agent = stepped["agent"]
    new_agent = stepped["out"][0]
    assert jax.tree_util.tree_structure(new_agent) == jax.tree_util.tree_structure(agent)
    changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), agent.params, new_agent.params)
    assert all(jax.tree_util.tree_leaves(changed)), f"{stepped['name']}: some parameters did not move"
    assert not bool(jnp.all(agent.rng == new_agent.rng)), "update consumes the agent's key"


def test_update_is_pure(stepped):
    again = stepped["step"](stepped["agent"], stepped["batch"], stepped["val_batch"], jax.random.PRNGKey(3))
    for first, second in zip(jax.tree_util.tree_leaves(stepped["out"]), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(first, second)


def test_sample_actions_shape_and_range(stepped):
    actions = np.asarray(stepped["out"][2])
    assert actions.shape == (BATCH, ACTION_DIM)
    assert np.isfinite(actions).all() and np.abs(actions).max() <= 1.0


def test_total_loss_on_validation_batch(stepped):
    _, info, _, val_loss, val_info = stepped["out"][:5]
    assert np.shape(val_loss) == () and np.isfinite(val_loss)
    assert set(val_info) <= set(info) and all(np.isfinite(v) for v in val_info.values())


def test_value_and_q_value_shapes(stepped):
    agent, values, q_values = stepped["agent"], stepped["out"][5], stepped["out"][6]
    if not hasattr(agent, "value"):
        pytest.skip(f"{stepped['name']} has no value function")
    assert values.shape == (BATCH,) and np.isfinite(values).all()
    if hasattr(agent, "q_value"):
        assert q_values.shape == (BATCH,) and np.isfinite(q_values).all()


def test_target_params_are_a_polyak_average_outside_the_optimiser(stepped):
    agent, new_agent = stepped["agent"], stepped["out"][0]
    if not hasattr(agent, "target_params"):
        pytest.skip(f"{stepped['name']} has no target network")
    tau = stepped["config"].tau
    for name, target in new_agent.target_params.items():
        expected = jax.tree_util.tree_map(
            lambda p, t: tau * p + (1 - tau) * t, new_agent.params[name], agent.target_params[name]
        )
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), target, expected)
    params_leaves = len(jax.tree_util.tree_leaves(agent.params))
    # Adam's moments are float leaves (its step count is an integer); scalar parameters have scalar moments.
    adam_moments = [s for s in jax.tree_util.tree_leaves(agent.opt_state) if np.issubdtype(s.dtype, np.floating)]
    assert len(adam_moments) == 2 * params_leaves, "the optimiser holds state for the optimised params only"


def test_create_vmaps_over_seeds(stepped):
    leaves = jax.tree_util.tree_leaves(stepped["agents"].params)
    assert all(leaf.shape[0] == 2 for leaf in leaves)
    assert any(not np.allclose(leaf[0], leaf[1]) for leaf in leaves), "seeds get different initialisations"


def test_sharsa_value_subgoal_is_the_goal_once_reached():
    from scalerl.agents.sharsa import SHARSAAgent

    batch = {
        "subgoal_masks": jnp.array([0.0, 1.0]),
        "value_goals": jnp.array([[1.0, 1.0], [2.0, 2.0]]),
        "low_goals": jnp.array([[5.0, 5.0], [6.0, 6.0]]),
    }
    np.testing.assert_array_equal(SHARSAAgent.value_subgoals(batch), [[1.0, 1.0], [6.0, 6.0]])


def test_sharsa_rejection_sampling_keeps_the_best_proposal():
    agent_cls, config_cls = AGENTS["sharsa"]
    config = tiny_config(config_cls, TINY, num_samples=6)
    batch = sample_batch(jax.random.PRNGKey(0), random_dataset(0), sampler_config(config), BATCH)
    agent = jax.jit(lambda key: agent_cls.create(key, batch, config))(jax.random.PRNGKey(1))
    observations, goals, key = batch["observations"], batch["actor_goals"], jax.random.PRNGKey(2)

    @jax.jit
    def choose(agent):
        candidates = agent.propose_subgoals(observations, goals, key)  # [N, B, G]
        q = jax.vmap(agent.q_value, in_axes=(None, 0, None))(observations, candidates, goals)  # [N, B]
        chosen = agent.sample_subgoals(observations, goals, key)
        return candidates, q, chosen, agent.q_value(observations, chosen, goals)

    candidates, q, chosen, chosen_q = choose(agent)
    assert candidates.shape == (6, BATCH, GOAL_DIM) and chosen.shape == (BATCH, GOAL_DIM)
    np.testing.assert_allclose(chosen_q, q.max(axis=0), rtol=1e-5)
    assert len(np.unique(np.asarray(q).argmax(axis=0))) > 1, "each state picks its own best proposal"
