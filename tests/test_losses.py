"""Loss and target primitives of :mod:`scalerl.losses` against hand-computed values."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np

from scalerl import losses


def test_expectile_loss_hand_computed():
    diff = jnp.array([2.0, -2.0, 0.5, 0.0])
    np.testing.assert_allclose(losses.expectile_loss(diff, 0.9), [3.6, 0.4, 0.225, 0.0], rtol=1e-6)
    np.testing.assert_allclose(losses.expectile_loss(diff, 0.5), 0.5 * diff**2, rtol=1e-6)


def test_bce_with_logits_hand_computed():
    logits = jnp.array([0.0, 0.0, 2.0, -3.0])
    targets = jnp.array([0.5, 1.0, 1.0, 0.25])
    expected = [
        np.log(2.0),
        np.log(2.0),
        np.log1p(np.exp(-2.0)),
        -(0.25 * np.log(1 / (1 + np.exp(3.0))) + 0.75 * np.log(1 / (1 + np.exp(-3.0)))),
    ]
    np.testing.assert_allclose(losses.bce_with_logits(logits, targets), expected, rtol=1e-6)
    big = losses.bce_with_logits(jnp.array([100.0, -100.0]), jnp.array([1.0, 0.0]))
    assert np.isfinite(big).all() and float(big.max()) < 1e-6


def test_bce_gradient_is_sigmoid_minus_target():
    logits, targets = jnp.array([0.3, -1.2]), jnp.array([0.9, 0.1])
    grad = jax.grad(lambda x: losses.bce_with_logits(x, targets).sum())(logits)
    np.testing.assert_allclose(grad, jax.nn.sigmoid(logits) - targets, rtol=1e-6)


def test_ema_update_hand_computed():
    params = {"a": jnp.array([1.0, 2.0]), "b": {"c": jnp.array(10.0)}}
    target = {"a": jnp.array([0.0, 0.0]), "b": {"c": jnp.array(0.0)}}
    new = losses.ema_update(params, target, 0.1)
    np.testing.assert_allclose(new["a"], [0.1, 0.2], rtol=1e-6)
    np.testing.assert_allclose(new["b"]["c"], 1.0, rtol=1e-6)


def test_global_norm_hand_computed():
    np.testing.assert_allclose(losses.global_norm({"a": jnp.array([3.0]), "b": jnp.array([[4.0, 12.0]])}), 13.0)


def test_flow_matching_loss_zero_for_the_exact_field():
    # For a point mass x_1 = c, the conditional velocity (c - x_t) / (1 - t) equals x_1 - x_0 exactly.
    targets = jnp.full((512, 3), 0.7)
    loss = losses.flow_matching_loss(lambda x, t: (targets - x) / (1.0 - t), jax.random.PRNGKey(0), targets)
    assert float(loss) < 1e-8


def test_flow_matching_loss_of_zero_field_is_second_moment():
    # With v = 0 the loss is E (c - x_0)^2 = c^2 + 1 per coordinate.
    targets = jnp.full((20000, 2), 0.5)
    loss = losses.flow_matching_loss(lambda x, t: jnp.zeros_like(x), jax.random.PRNGKey(1), targets)
    np.testing.assert_allclose(loss, 1.25, atol=0.03)


def test_expectile_weight_hand_computed():
    np.testing.assert_allclose(losses.expectile_weight(jnp.array([1.0, -1.0, 0.0]), 0.9), [0.9, 0.1, 0.9], rtol=1e-6)
    diff = jnp.array([2.0, -0.5])
    np.testing.assert_allclose(losses.expectile_weight(diff, 0.7) * diff**2, losses.expectile_loss(diff, 0.7))


def test_binary_nce_loss_hand_computed():
    logits = jnp.array([[2.0, -1.0], [0.0, 3.0]])
    # BCE(l, 1) = softplus(-l) on the diagonal, BCE(l, 0) = softplus(l) off it.
    expected = (np.logaddexp(0, -2.0) + np.logaddexp(0, -1.0) + np.logaddexp(0, 0.0) + np.logaddexp(0, -3.0)) / 4
    np.testing.assert_allclose(losses.binary_nce_loss(logits), expected, rtol=1e-6)
    # Leading (ensemble) axes are averaged.
    np.testing.assert_allclose(losses.binary_nce_loss(jnp.stack([logits, logits])), expected, rtol=1e-6)


def test_symmetric_infonce_loss_hand_computed():
    logits = np.array([[2.0, -1.0], [0.0, 3.0]])
    rows = [np.log(np.exp(2) + np.exp(-1)) - 2, np.log(np.exp(0) + np.exp(3)) - 3]
    columns = [np.log(np.exp(2) + np.exp(0)) - 2, np.log(np.exp(-1) + np.exp(3)) - 3]
    expected = 0.5 * (np.mean(rows) + np.mean(columns))
    np.testing.assert_allclose(losses.symmetric_infonce_loss(jnp.asarray(logits)), expected, rtol=1e-6)
