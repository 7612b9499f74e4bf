"""Standard agents (GCBC, GCIVL, CRL, SAC+BC, FQL, QRL): properties the registry-parametrised tests cannot see.

QRL's learned distance is a quasimetric (structurally, and after training) that recovers step counts on a chain and
is asymmetric where the dynamics are; CRL's critic ranks a state's true future above the batch's negatives; the
config choices each agent documents change what it builds.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.agents import AGENTS, sampler_config
from scalerl.data import compact
from scalerl.sampling import sample_batch

CHAIN_LENGTH = 6


def chains_dataset(length=CHAIN_LENGTH):
    """Two one-hot chains ``a_0 -> ... -> a_{L-1}`` (action +1) and ``b_0 -> ... -> b_{L-1}`` (action -1).

    Returns ``(dataset, states)`` with ``states[name]`` the one-hot observation of ``a_i`` / ``b_i``.
    """
    names = [f"{chain}{i}" for chain in "ab" for i in range(length)]
    eye = np.eye(len(names), dtype=np.float32)
    terminals = np.tile(np.eye(length, dtype=np.float32)[-1], 2)
    actions = np.repeat(np.array([[1.0], [-1.0]], np.float32), length, axis=0)
    dataset = compact({"observations": eye, "actions": actions, "terminals": terminals})
    return dataset, {name: eye[i] for i, name in enumerate(names)}


def train(name, dataset, steps, seed=0, **overrides):
    """The agent ``name`` with ``overrides`` (fields it has) after ``steps`` updates on ``dataset``."""
    agent_cls, config_cls = AGENTS[name]
    fields = config_cls.__dataclass_fields__
    config = config_cls(**{key: value for key, value in overrides.items() if key in fields})
    sampler = sampler_config(config)
    example = sample_batch(jax.random.PRNGKey(seed), dataset, sampler, config.batch_size)
    agent = agent_cls.create(jax.random.PRNGKey(seed + 1), example, config)

    @jax.jit
    def run(agent, dataset, key):
        def body(agent, step_key):
            return agent.update(sample_batch(step_key, dataset, sampler, config.batch_size))

        return jax.lax.scan(body, agent, jax.random.split(key, steps))

    agent, infos = run(agent, dataset, jax.random.PRNGKey(seed + 2))
    assert all(np.isfinite(np.asarray(value)).all() for value in infos.values()), name
    return agent, infos


QRL_TINY = {"hidden_dims": (64, 64), "latent_dim": 32, "component_dim": 8, "batch_size": 128, "lr": 1e-3}


@pytest.fixture(scope="module")
def trained_qrl():
    """QRL after 3000 updates on the two chains (value goals: 10% current state, 90% random).

    With goals drawn from valid rows only (a chain's final row is never a goal), 1500 updates left seed 0 short of
    the step counts (d(a_0, a_4) still 0); at 3000 seeds 0-2 all land within 0.8 of them.
    """
    dataset, states = chains_dataset()
    agent, _ = train("qrl", dataset, 3000, **QRL_TINY)
    return agent, states


@jax.jit
def distances(agent, sources, targets):
    """``agent.distance`` (one compile per agent structure)."""
    return agent.distance(sources, targets)


def assert_triangle_inequality(agent, points, tolerance=1e-4):
    """``d(x, x) = 0``, ``d >= 0`` and ``d(x, z) <= d(x, y) + d(y, z)`` on every triple of ``points`` ``[N, dim]``."""
    first, second, third = np.indices((points.shape[0],) * 3).reshape(3, -1)
    x, y, z = points[first], points[second], points[third]
    np.testing.assert_allclose(distances(agent, points, points), 0.0, atol=1e-6)
    assert bool(jnp.all(distances(agent, x, y) >= 0))
    slack = distances(agent, x, y) + distances(agent, y, z) - distances(agent, x, z)
    assert float(slack.min()) >= -tolerance, f"triangle inequality violated by {-float(slack.min()):.2e}"


def test_qrl_distance_is_a_quasimetric_for_random_parameters():
    agent_cls, config_cls = AGENTS["qrl"]
    config = config_cls(hidden_dims=(32, 32), latent_dim=32, component_dim=8, batch_size=8)
    points = jax.random.normal(jax.random.PRNGKey(0), (16, 5))
    batch = {"observations": points[:8], "value_goals": points[:8], "actions": jnp.zeros((8, 2))}
    agents = jax.jit(jax.vmap(lambda key: agent_cls.create(key, batch, config)))(
        jax.random.split(jax.random.PRNGKey(1), 3)
    )
    for seed in range(3):
        agent = jax.tree_util.tree_map(lambda leaf, seed=seed: leaf[seed], agents)
        assert_triangle_inequality(agent, points)
        there, back = distances(agent, points[:8], points[8:]), distances(agent, points[8:], points[:8])
        assert not np.allclose(there, back), "IQE distances are asymmetric"


def test_qrl_trained_distance_is_a_quasimetric_on_dataset_and_random_states(trained_qrl):
    agent, states = trained_qrl
    dataset_states = jnp.stack(list(states.values()))
    mixtures = jax.random.dirichlet(jax.random.PRNGKey(0), jnp.ones(len(states)), (8,))  # off-dataset points
    assert_triangle_inequality(agent, jnp.concatenate([dataset_states, mixtures]))


def test_qrl_recovers_step_counts_on_a_chain_and_learns_asymmetry(trained_qrl):
    agent, states = trained_qrl
    # The chain's last valid row: its final row is a next state only, never a goal (OGBench's compact datasets).
    last = CHAIN_LENGTH - 2
    starts = jnp.stack([states[f"a{i}"] for i in range(last)])
    goals = jnp.repeat(states[f"a{last}"][None], last, axis=0)
    forward = np.asarray(distances(agent, starts, goals))  # true distances last - i
    assert np.all(np.diff(forward) < 0), f"distances to the chain's end must shrink along it: {forward}"
    # The local constraint is soft (mean squared violation eps), so distances may overshoot step counts by a bounded
    # fraction; a distance off by a whole step (a wrong cost or sign) fails.
    np.testing.assert_allclose(forward, last - np.arange(last), rtol=0.3, err_msg="d(a_i, a_last) ~ last - i")
    # No path leads back down a chain or across chains: those distances are pushed far beyond any real one.
    back = np.asarray(distances(agent, jnp.repeat(states[f"a{last - 1}"][None], last - 1, axis=0), starts[:-1]))
    across = np.asarray(distances(agent, starts, jnp.repeat(states[f"b{last}"][None], last, axis=0)))
    assert back.min() > 2 * forward.max() and across.min() > 2 * forward.max(), (forward, back, across)
    np.testing.assert_allclose(agent.value(starts, goals), -forward, rtol=1e-5)


@pytest.mark.parametrize("contrastive_loss", ["binary", "symmetric"])
def test_crl_logits_rank_the_true_future_above_negatives(contrastive_loss):
    dataset, states = chains_dataset()
    agent, _ = train(
        "crl",
        dataset,
        400,
        hidden_dims=(64, 64),
        latent_dim=32,
        batch_size=64,
        lr=1e-3,
        discount=0.8,
        contrastive_loss=contrastive_loss,
    )
    q_value = jax.jit(type(agent).q_value)
    # The chains' last valid rows: a final row is a next state only, never a goal (OGBench's compact datasets).
    last = CHAIN_LENGTH - 2
    for chain, action in (("a", 1.0), ("b", -1.0)):
        other = "b" if chain == "a" else "a"
        for i in range(last):
            # Negatives: every state that is some row's future goal (first states never are) but not this state's.
            negatives = [f"{chain}{j}" for j in range(1, i + 1)] + [f"{other}{j}" for j in range(1, last + 1)]
            goals = jnp.stack([states[name] for name in [f"{chain}{i + 1}", *negatives]])
            observations = jnp.repeat(states[f"{chain}{i}"][None], goals.shape[0], axis=0)
            logits = np.asarray(q_value(agent, observations, jnp.full((goals.shape[0], 1), action), goals))
            assert logits[0] > logits[1:].max(), f"{chain}{i}: next state {logits[0]:.2f} vs negatives {logits[1:]}"


def test_config_choices_change_what_is_built():
    _, qrl_config = AGENTS["qrl"]
    _, sacbc_config = AGENTS["sacbc"]
    _, crl_config = AGENTS["crl"]
    from scalerl.agents.crl import build_networks as crl_networks
    from scalerl.agents.qrl import build_networks as qrl_networks

    assert "dynamics" in qrl_networks(qrl_config(), 2) and "dynamics" not in qrl_networks(
        qrl_config(actor_loss="awr"), 2
    )
    assert "goal_encoder" in qrl_networks(qrl_config(goal_rep="oracle"), 2)
    assert "value" in crl_networks(crl_config(actor_loss="awr"), 2) and "value" not in crl_networks(crl_config(), 2)
    with pytest.raises(ValueError, match="value_p_curgoal"):
        qrl_config(goal_rep="oracle", value_p_curgoal=0.0, value_p_randomgoal=1.0)
    with pytest.raises(ValueError, match="q_agg"):
        sacbc_config(q_agg="max")
    with pytest.raises(ValueError, match="bce"):
        sacbc_config(gc_negative=True)
    with pytest.raises(ValueError, match="contrastive_loss"):
        crl_config(contrastive_loss="triplet")


@pytest.mark.parametrize("name, actors", [("gciql", ["actor"]), ("hiql", ["high_actor", "low_actor"])])
def test_actor_layer_norm_is_the_actors_alone(name, actors):
    """``actor_layer_norm`` (True by default, as Park et al. 2025; False in the OGBench presets, whose actors have
    none) switches layer norm in the actors only; values, critics and HIQL's phi keep ``layer_norm``."""
    from tests.agents.tiny import tiny_agent

    def has_layer_norm(params):
        return any("LayerNorm" in jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(params))

    default, _ = tiny_agent(name)
    without, _ = tiny_agent(name, actor_layer_norm=False)
    assert default.config.actor_layer_norm is True
    for network in default.params:
        assert has_layer_norm(default.params[network]), network
        assert has_layer_norm(without.params[network]) == (network not in actors), network


def test_sacbc_entropy_coefficient_follows_the_entropy_or_stays_fixed():
    dataset, _ = chains_dataset()
    agent, infos = train("sacbc", dataset, 5, hidden_dims=(16,), batch_size=32, entropy_coef=0.5)
    coefficients, entropies = np.asarray(infos["actor/entropy_coef"]), np.asarray(infos["actor/entropy"])
    np.testing.assert_allclose(coefficients[0], 0.5, rtol=1e-5)
    # Dual descent on lambda * (H - H_target): less entropy bonus while the entropy is above its target (-0.5 * dim A).
    assert np.sign(coefficients[1] - coefficients[0]) == -np.sign(entropies[0] - (-0.5 * 1))
    agent_cls, config_cls = AGENTS["sacbc"]
    batch = sample_batch(jax.random.PRNGKey(0), dataset, sampler_config(config_cls()), 4)
    fixed = agent_cls.create(jax.random.PRNGKey(0), batch, config_cls(hidden_dims=(8,), auto_entropy=False))
    assert "log_entropy_coef" in agent.params and "log_entropy_coef" not in fixed.params
