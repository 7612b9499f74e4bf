"""What the agents share besides networks and losses: ensemble aggregation, the clipped critic TD loss of SAC+BC and
FQL, and the Adam step and Polyak update that every ``update`` calls."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from scalerl import losses


def aggregate(values: jax.Array, how: str) -> jax.Array:
    """``min`` or ``mean`` over the leading ensemble axis."""
    return jnp.min(values, axis=0) if how == "min" else jnp.mean(values, axis=0)


def clipped_td_loss(
    q: jax.Array,
    rewards: jax.Array,
    masks: jax.Array,
    next_values: jax.Array,
    discount: float,
    gc_negative: bool,
    value_loss: str,
) -> tuple[jax.Array, jax.Array]:
    """TD loss of every critic head toward ``y = clip(r + discount * m * V')`` (SAC+BC and FQL; Park et al. 2025).

    The target is clipped to the range of possible returns, ``[0, 1]`` with 0/1 rewards or ``[-1 / (1 - discount), 0]``
    with ``gc_negative``, and carries no gradient.

    Args:
        q: ``[E, B]`` critic outputs at the dataset action: logits of the success probability under
            ``value_loss='bce'``, values under ``'squared'``.
        rewards, masks: ``[B]`` from the sampler.
        next_values: ``[B]`` bootstrap values ``V'`` in reward units.
        value_loss: ``bce`` (binary cross-entropy on logits) or ``squared``.

    Returns:
        ``(loss, target)``: the sum over heads of each head's batch-mean loss, and the clipped target ``[B]``.
    """
    target = rewards + discount * masks * next_values
    low, high = (-1.0 / (1.0 - discount), 0.0) if gc_negative else (0.0, 1.0)
    target = jax.lax.stop_gradient(jnp.clip(target, low, high))
    if value_loss == "bce":
        per_head = jnp.mean(losses.bce_with_logits(q, target), axis=1)
    else:
        per_head = jnp.mean((q - target) ** 2, axis=1)
    return jnp.sum(per_head), target


def optimizer(lr: float) -> optax.GradientTransformation:
    """The optimiser of every agent: Adam with learning rate ``lr`` (its state is ``optimizer(lr).init(params)``)."""
    return optax.adam(lr)


def adam_step(
    loss_fn: Callable[[dict, dict, jax.Array], tuple[jax.Array, dict]],
    batch: dict,
    params: dict,
    opt_state: optax.OptState,
    lr: float,
    key: jax.Array,
    tx: optax.GradientTransformation | None = None,
) -> tuple[dict, optax.OptState, dict]:
    """One Adam step on ``loss_fn(batch, params, key) -> (loss, info)`` with respect to ``params``.

    ``tx`` replaces the optimiser (default :func:`optimizer` ``(lr)``); ``opt_state`` must be its state.

    Returns:
        ``(params, opt_state, info)``: the updated parameters and optimiser state, and the loss's info with the
        gradient's global norm added as ``grad/norm``.
    """
    grads, info = jax.grad(loss_fn, argnums=1, has_aux=True)(batch, params, key)
    updates, opt_state = (optimizer(lr) if tx is None else tx).update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    info["grad/norm"] = losses.global_norm(grads)
    return params, opt_state, info


def polyak_update(params: dict, target_params: dict, tau: float) -> dict:
    """Each target network moved toward the online one of the same name: ``tau * params[name] + (1 - tau) * target``.

    Args:
        params: the online parameters, a dict with (at least) every name of ``target_params``.
        target_params: ``{name: parameters}`` of the target networks.
    """
    return losses.ema_update({name: params[name] for name in target_params}, target_params, tau)
