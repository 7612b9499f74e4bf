"""Small pure loss and target functions shared by the agents, each tested against hand-computed values.

Shapes are elementwise unless stated: every function maps arrays of one shape to the same shape, and the agents
take the mean.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """Asymmetric squared loss ``|expectile - 1(diff < 0)| * diff^2`` (IQL; Kostrikov et al. 2022).

    Args:
        diff: ``target - prediction``; positive errors are weighted by ``expectile``, negative by ``1 - expectile``.
        expectile: in ``(0, 1)``; 0.5 is half the squared error, values near 1 approach an in-sample maximum.
    """
    weight = jnp.where(diff >= 0, expectile, 1.0 - expectile)
    return weight * diff**2


def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Binary cross-entropy ``-(y log sigmoid(l) + (1 - y) log sigmoid(-l))`` for soft targets ``y`` in ``[0, 1]``.

    Used for values that are probabilities of success (SHARSA; Park et al. 2025): the network predicts a logit and
    ``sigmoid(logit)`` is the value.
    """
    return -(targets * jax.nn.log_sigmoid(logits) + (1.0 - targets) * jax.nn.log_sigmoid(-logits))


def ema_update(params, target_params, tau: float):
    """Polyak averaging ``target <- tau * params + (1 - tau) * target`` over matching pytrees."""
    return jax.tree_util.tree_map(lambda p, t: tau * p + (1.0 - tau) * t, params, target_params)


def global_norm(tree) -> jax.Array:
    """The L2 norm of all leaves of a pytree together (e.g. the gradient norm logged by ``update``)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree)))


def flow_matching_loss(
    velocity_fn: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array, targets: jax.Array
) -> jax.Array:
    """Conditional flow-matching loss with straight paths (Lipman et al. 2023; Liu et al. 2023).

    With ``x_0 ~ N(0, I)``, ``t ~ U[0, 1)`` and ``x_t = (1 - t) x_0 + t x_1`` the loss is
    ``mean ||v(x_t, t) - (x_1 - x_0)||^2`` averaged over the batch and the feature axis.

    Args:
        velocity_fn: ``(x_t [B, D], t [B, 1]) -> v [B, D]`` (the network, closed over its inputs and parameters).
        key: draws ``x_0`` and ``t``.
        targets: ``[B, D]`` samples ``x_1`` of the distribution to learn (actions or subgoals).

    Returns:
        The scalar loss.
    """
    noise_key, time_key = jax.random.split(key)
    noise = jax.random.normal(noise_key, targets.shape)
    times = jax.random.uniform(time_key, (*targets.shape[:-1], 1))
    noisy = (1.0 - times) * noise + times * targets
    return jnp.mean((velocity_fn(noisy, times) - (targets - noise)) ** 2)


def expectile_weight(diff: jax.Array, expectile: float) -> jax.Array:
    """The asymmetric weight ``|expectile - 1(diff < 0)|`` of :func:`expectile_loss`, on its own.

    GCIVL (Park et al. 2024) takes the sign from one difference (the target network's advantage) and squares another
    (the online value's TD error), so it needs the weight apart from the square.
    """
    return jnp.where(diff >= 0, expectile, 1.0 - expectile)


def binary_nce_loss(logits: jax.Array) -> jax.Array:
    """Binary NCE over a batch (contrastive RL; Eysenbach et al. 2022): ``mean BCE(logits, I)``.

    Args:
        logits: ``[..., B, B]`` scores ``f(x_i, y_j)``; the diagonal holds the positive pairs and every off-diagonal
            entry a negative (the other rows' positives).

    Returns:
        The mean over all ``B * B`` pairs (and leading axes) of the sigmoid cross-entropy with label ``i == j``.
    """
    labels = jnp.eye(logits.shape[-1], dtype=logits.dtype)
    return jnp.mean(bce_with_logits(logits, labels))


def symmetric_infonce_loss(logits: jax.Array) -> jax.Array:
    """Symmetric InfoNCE over a batch (Oord et al. 2018; used for contrastive RL by Zheng et al. 2023).

    Half the softmax cross-entropy of each row toward its diagonal entry plus half that of each column.

    Args:
        logits: ``[..., B, B]`` scores with the positive pairs on the diagonal.

    Returns:
        The scalar loss, averaged over rows, columns and leading axes.
    """
    diagonal = jnp.diagonal(logits, axis1=-2, axis2=-1)  # [..., B]
    rows = jax.nn.logsumexp(logits, axis=-1) - diagonal
    columns = jax.nn.logsumexp(logits, axis=-2) - diagonal
    return 0.5 * (jnp.mean(rows) + jnp.mean(columns))
