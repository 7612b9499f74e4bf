"""The agents' shared update pieces (:mod:`scalerl.agents.common`) against hand-computed values."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scalerl.agents.common import adam_step, aggregate, optimizer, polyak_update


def test_aggregate_min_and_mean_over_the_ensemble_axis():
    values = jnp.array([[1.0, 5.0], [3.0, 2.0]])  # [E, B]
    np.testing.assert_array_equal(aggregate(values, "min"), [1.0, 2.0])
    np.testing.assert_array_equal(aggregate(values, "mean"), [2.0, 3.5])


def test_polyak_update_moves_only_the_target_networks():
    params = {"critic": {"w": jnp.array([1.0, 2.0])}, "actor": {"w": jnp.array([7.0])}}
    target = {"critic": {"w": jnp.array([0.0, 10.0])}}
    new = polyak_update(params, target, 0.1)
    assert set(new) == {"critic"}
    np.testing.assert_allclose(new["critic"]["w"], [0.1, 0.1 * 2.0 + 0.9 * 10.0], rtol=1e-6)


def test_adam_step_is_one_optax_adam_step_and_logs_the_gradient_norm():
    params = {"w": jnp.array([1.0, -2.0])}
    batch = {"x": jnp.array([3.0, 4.0])}

    def loss_fn(batch, params, key):
        loss = jnp.sum(params["w"] * batch["x"])  # gradient: x
        return loss, {"loss": loss}

    opt_state = optimizer(0.1).init(params)
    new_params, new_state, info = adam_step(loss_fn, batch, params, opt_state, 0.1, jax.random.PRNGKey(0))
    # Adam's first step moves each coordinate by lr * sign(grad) (up to its epsilon).
    np.testing.assert_allclose(new_params["w"], [0.9, -2.1], rtol=1e-5)
    np.testing.assert_allclose(info["grad/norm"], 5.0, rtol=1e-6)
    np.testing.assert_allclose(info["loss"], -5.0, rtol=1e-6)
    updates, reference_state = optax.adam(0.1).update({"w": batch["x"]}, opt_state, params)
    np.testing.assert_array_equal(new_params["w"], optax.apply_updates(params, updates)["w"])
    for leaf, reference in zip(jax.tree_util.tree_leaves(new_state), jax.tree_util.tree_leaves(reference_state)):
        np.testing.assert_array_equal(leaf, reference)
