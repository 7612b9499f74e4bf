"""Networks (MLPs, ensembles, Gaussian and flow policies, bilinear critics, IQE) against hand-computed values."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scalerl.networks import (
    IQE,
    MLP,
    ActionDistribution,
    BilinearValue,
    GaussianActor,
    GCValue,
    VelocityField,
    bilinear_logits,
    euler_sample,
    iqe_components,
)


def test_euler_sample_constant_field_moves_by_the_velocity():
    noise = jnp.array([[0.0, 1.0], [-2.0, 3.0]])
    out = euler_sample(lambda x, t: jnp.broadcast_to(jnp.array([0.5, -1.0]), x.shape), noise, 10)
    np.testing.assert_allclose(out, noise + jnp.array([0.5, -1.0]), atol=1e-6)


def test_euler_sample_uses_left_endpoint_times():
    # v = t: Euler sums (i / n) / n for i < n, i.e. (n - 1) / (2 n), not the exact 1/2.
    out = euler_sample(lambda x, t: jnp.broadcast_to(t, x.shape), jnp.zeros((1, 1)), 4)
    np.testing.assert_allclose(out, [[3.0 / 8.0]], rtol=1e-6)
    # v = x: x_n = (1 + 1/n)^n x_0.
    out = euler_sample(lambda x, t: x, jnp.ones((1, 1)), 5)
    np.testing.assert_allclose(out, [[1.2**5]], rtol=1e-6)


def test_mlp_shapes_and_layer_norm():
    x = jnp.ones((4, 7))
    mlp = MLP((8, 8, 3), layer_norm=True)
    params = mlp.init(jax.random.PRNGKey(0), x)
    assert mlp.apply(params, x).shape == (4, 3)
    assert sum("LayerNorm" in name for name in params["params"]) == 2, "layer norm after each hidden activation only"
    assert not any("LayerNorm" in name for name in MLP((8, 3)).init(jax.random.PRNGKey(0), x)["params"])


def test_value_ensemble_members_are_independent():
    observations, goals, actions = jnp.ones((5, 4)), jnp.zeros((5, 2)), jnp.ones((5, 3))
    critic = GCValue((16, 16), num_ensembles=2)
    params = critic.init(jax.random.PRNGKey(0), observations, goals, actions)
    q = critic.apply(params, observations, goals, actions)
    assert q.shape == (2, 5)
    assert not np.allclose(q[0], q[1]), "ensemble members have separate parameters"
    assert all(leaf.shape[0] == 2 for leaf in jax.tree_util.tree_leaves(params))
    value = GCValue((16, 16), num_ensembles=1)
    assert value.apply(value.init(jax.random.PRNGKey(0), observations, goals), observations, goals).shape == (5,)
    # Extra leading axes (e.g. [num_samples, batch]) pass through.
    many = critic.apply(params, jnp.ones((3, 5, 4)), jnp.zeros((3, 5, 2)), jnp.ones((3, 5, 3)))
    assert many.shape == (2, 3, 5)


def test_gaussian_log_prob_hand_computed():
    dist = ActionDistribution(means=jnp.array([[0.0, 1.0]]), log_stds=jnp.array([[0.0, np.log(2.0)]]))
    actions = jnp.array([[1.0, 1.0]])
    expected = (-0.5 - 0.5 * np.log(2 * np.pi)) + (-np.log(2.0) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(dist.log_prob(actions), [expected], rtol=1e-6)
    np.testing.assert_allclose(dist.sample(jax.random.PRNGKey(0), temperature=0.0), dist.mode())


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    means, log_stds = jnp.array([[0.3, -0.5]]), jnp.array([[-0.2, 0.1]])
    dist = ActionDistribution(means=means, log_stds=log_stds, tanh_squash=True)
    actions, log_prob = dist.sample_and_log_prob(jax.random.PRNGKey(0))
    assert np.abs(actions).max() < 1.0
    pre_tanh = np.arctanh(np.asarray(actions))
    gaussian = -0.5 * ((pre_tanh - means) / np.exp(log_stds)) ** 2 - log_stds - 0.5 * np.log(2 * np.pi)
    expected = np.sum(gaussian - np.log(1 - np.asarray(actions) ** 2), axis=-1)
    np.testing.assert_allclose(log_prob, expected, rtol=1e-4)
    np.testing.assert_allclose(dist.log_prob(actions), expected, rtol=1e-4)
    np.testing.assert_allclose(dist.mode(), np.tanh(means), rtol=1e-6)
    assert np.isfinite(dist.log_prob(jnp.array([[1.0, -1.0]]))).all(), "boundary actions are clipped, not inf"


@pytest.mark.parametrize("const_std", [True, False])
def test_gaussian_actor_shapes(const_std):
    actor = GaussianActor((16, 16), action_dim=3, const_std=const_std, tanh_squash=True)
    observations, goals = jnp.ones((4, 5)), jnp.ones((4, 2))
    dist = actor.apply(actor.init(jax.random.PRNGKey(0), observations, goals), observations, goals)
    assert dist.means.shape == dist.log_stds.shape == (4, 3)
    if const_std:
        np.testing.assert_array_equal(dist.log_stds, 0.0)
    assert dist.sample(jax.random.PRNGKey(1)).shape == (4, 3)


def test_velocity_field_shapes():
    field = VelocityField((16, 16), output_dim=3)
    observations, goals, noisy, times = jnp.ones((4, 5)), jnp.ones((4, 2)), jnp.ones((4, 3)), jnp.ones((4, 1))
    params = field.init(jax.random.PRNGKey(0), observations, goals, noisy, times)
    assert field.apply(params, observations, goals, noisy, times).shape == (4, 3)
    out = euler_sample(lambda x, t: field.apply(params, observations, goals, x, t), noisy, 10)
    assert out.shape == (4, 3) and np.isfinite(out).all()


def test_bilinear_value_shapes_and_pairwise_logits():
    observations, goals, actions = jnp.ones((5, 4)), jax.random.normal(jax.random.PRNGKey(1), (5, 2)), jnp.ones((5, 3))
    critic = BilinearValue((16,), latent_dim=8, num_ensembles=2)
    phi, psi = critic.apply(
        critic.init(jax.random.PRNGKey(0), observations, goals, actions), observations, goals, actions
    )
    assert phi.shape == psi.shape == (2, 5, 8)
    pairwise = bilinear_logits(phi, psi, pairwise=True)
    assert pairwise.shape == (2, 5, 5)
    np.testing.assert_allclose(jnp.diagonal(pairwise, axis1=1, axis2=2), bilinear_logits(phi, psi), rtol=1e-5)
    np.testing.assert_allclose(pairwise[0, 1, 3], phi[0, 1] @ psi[0, 3] / np.sqrt(8), rtol=1e-5)


def test_iqe_components_hand_computed():
    # Component 1: intervals [0, 2] and [1, 3] overlap -> union length 3. Component 2: [0, 1] and [5, 6] -> 2.
    # Component 3: y below x everywhere -> empty -> 0.
    x = jnp.array([0.0, 1.0, 0.0, 5.0, 4.0, 4.0])
    y = jnp.array([2.0, 3.0, 1.0, 6.0, 1.0, 2.0])
    np.testing.assert_allclose(iqe_components(x, y, 2), [3.0, 2.0, 0.0], atol=1e-6)
    # Asymmetric: from y to x only component 3 has intervals, [1, 4] and [2, 4] -> 3.
    np.testing.assert_allclose(iqe_components(y, x, 2), [0.0, 0.0, 3.0], atol=1e-6)
    # Nested intervals count once.
    np.testing.assert_allclose(iqe_components(jnp.array([0.0, 1.0]), jnp.array([4.0, 2.0]), 2), [4.0], atol=1e-6)


def test_iqe_is_a_quasimetric_for_random_latents():
    x, y, z = jax.random.normal(jax.random.PRNGKey(0), (3, 500, 16))
    head = IQE(component_dim=4)
    params = {"params": {"mix_logit": jnp.array(0.7)}}

    def d(a, b):
        return head.apply(params, a, b)

    np.testing.assert_array_equal(d(x, x), 0.0)
    assert bool(jnp.all(d(x, y) >= 0))
    assert bool(jnp.all(d(x, z) <= d(x, y) + d(y, z) + 1e-5)), "triangle inequality"
    assert not np.allclose(d(x, y), d(y, x)), "asymmetric"
    components = iqe_components(x, y, 4)
    mix = jax.nn.sigmoid(0.7)
    np.testing.assert_allclose(d(x, y), mix * components.mean(-1) + (1 - mix) * components.max(-1), rtol=1e-6)


def test_iqe_gradients_are_finite_and_flow_to_both_sides():
    x, y = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 16))
    grad_x, grad_y = jax.grad(lambda a, b: iqe_components(a, b, 4).sum(), argnums=(0, 1))(x, y)
    assert np.isfinite(grad_x).all() and np.isfinite(grad_y).all()
    assert np.abs(grad_x).sum() > 0 and np.abs(grad_y).sum() > 0


def union_length(starts, ends):
    """Reference: the length of a union of intervals by merging them in sorted order (plain Python)."""
    total, reach = 0.0, -np.inf
    for start, end in sorted(zip(starts, ends)):
        total += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    return total


def test_iqe_components_match_a_merge_of_sorted_intervals_with_ties():
    rng = np.random.default_rng(0)
    x, y = np.round(rng.normal(size=(2, 50, 12)) * 2) / 2  # half-integers: many shared endpoints and empty intervals
    expected = [
        [union_length(xs[k : k + 4], np.maximum(xs, ys)[k : k + 4]) for k in range(0, 12, 4)] for xs, ys in zip(x, y)
    ]
    np.testing.assert_allclose(iqe_components(jnp.asarray(x), jnp.asarray(y), 4), expected, atol=1e-5)
