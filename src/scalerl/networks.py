"""Networks shared by every agent: MLPs, value/critic ensembles, a (tanh-)Gaussian actor and a flow velocity field.

The building blocks follow OGBench (Park et al. 2024) and "Horizon Reduction Makes RL Scalable" (Park et al. 2025):
GELU MLPs with optional layer norm after each hidden activation, ensembles made with ``nn.vmap`` (one set of
parameters per member, outputs stacked on a leading axis), and flow-matching policies as velocity fields
``v(s, g, x_t, t)`` integrated with Euler steps from Gaussian noise (Lipman et al. 2023; Park et al. 2025, "Flow
Q-Learning"). Inputs carry any leading batch axes; only the last axis is a feature axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct


def default_init(scale: float = 1.0) -> Callable:
    """Variance-scaling (fan-average, uniform) kernel initialiser, as in OGBench."""
    return nn.initializers.variance_scaling(scale, "fan_avg", "uniform")


class MLP(nn.Module):
    """A GELU multi-layer perceptron.

    Attributes:
        hidden_dims: output size of each Dense layer; the last entry is the output size.
        activate_final: also apply the activation (and layer norm) after the last layer.
        layer_norm: layer norm after each activation.
    """

    hidden_dims: Sequence[int]
    activate_final: bool = False
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, size in enumerate(self.hidden_dims):
            x = nn.Dense(size, kernel_init=default_init())(x)
            if i + 1 < len(self.hidden_dims) or self.activate_final:
                x = nn.gelu(x)
                if self.layer_norm:
                    x = nn.LayerNorm()(x)
        return x


def ensemble(module_cls: type[nn.Module], num_members: int) -> type[nn.Module]:
    """``module_cls`` vmapped over parameters: ``num_members`` independent copies on the same inputs.

    The returned class takes the same constructor and call arguments; outputs gain a leading ``[num_members]`` axis.
    """
    return nn.vmap(
        module_cls,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=0,
        axis_size=num_members,
    )


class GCValue(nn.Module):
    """Goal-conditioned value ``V(s, g)`` or critic ``Q(s, a, g)``: an MLP on ``[s, g(, a)]`` to a scalar.

    Attributes:
        hidden_dims: hidden layer sizes.
        layer_norm: layer norm after each hidden activation.
        num_ensembles: number of independent heads; with ``1`` the output has no ensemble axis.
    """

    hidden_dims: Sequence[int]
    layer_norm: bool = True
    num_ensembles: int = 2

    @nn.compact
    def __call__(self, observations: jax.Array, goals: jax.Array, actions: jax.Array | None = None) -> jax.Array:
        """Values ``[E, ...]`` (``[...]`` when ``num_ensembles == 1``) for inputs ``[..., dim]``."""
        inputs = [observations, goals] if actions is None else [observations, goals, actions]
        inputs = jnp.concatenate(inputs, axis=-1)
        mlp_cls = MLP if self.num_ensembles == 1 else ensemble(MLP, self.num_ensembles)
        values = mlp_cls((*self.hidden_dims, 1), activate_final=False, layer_norm=self.layer_norm)(inputs)
        return values[..., 0]


class ActionDistribution(struct.PyTreeNode):
    """A diagonal Gaussian over actions, optionally squashed by ``tanh`` into ``(-1, 1)``.

    Attributes:
        means: ``[..., A]`` pre-squash means.
        log_stds: ``[..., A]`` pre-squash log standard deviations.
        tanh_squash: whether actions are ``tanh`` of the Gaussian sample.
    """

    means: jax.Array
    log_stds: jax.Array
    tanh_squash: bool = struct.field(pytree_node=False, default=False)

    def mode(self) -> jax.Array:
        """The most likely action (the squashed mean): ``[..., A]``."""
        return jnp.tanh(self.means) if self.tanh_squash else self.means

    def sample(self, key: jax.Array, temperature: float = 1.0) -> jax.Array:
        """An action with the standard deviation scaled by ``temperature`` (0 gives the mode): ``[..., A]``."""
        noise = jax.random.normal(key, self.means.shape)
        pre_tanh = self.means + temperature * jnp.exp(self.log_stds) * noise
        return jnp.tanh(pre_tanh) if self.tanh_squash else pre_tanh

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A reparameterised sample ``[..., A]`` and its log-density ``[...]`` (with the tanh change of variables)."""
        noise = jax.random.normal(key, self.means.shape)
        pre_tanh = self.means + jnp.exp(self.log_stds) * noise
        log_prob = _gaussian_log_prob(noise, self.log_stds)
        if not self.tanh_squash:
            return pre_tanh, log_prob
        return jnp.tanh(pre_tanh), log_prob - _tanh_log_det(pre_tanh)

    def log_prob(self, actions: jax.Array) -> jax.Array:
        """Log-density ``[...]`` of ``actions`` ``[..., A]`` (clipped inside ``(-1, 1)`` before ``atanh``)."""
        if not self.tanh_squash:
            return _gaussian_log_prob((actions - self.means) * jnp.exp(-self.log_stds), self.log_stds)
        pre_tanh = jnp.arctanh(jnp.clip(actions, -1.0 + 1e-6, 1.0 - 1e-6))
        standard = (pre_tanh - self.means) * jnp.exp(-self.log_stds)
        return _gaussian_log_prob(standard, self.log_stds) - _tanh_log_det(pre_tanh)


def _gaussian_log_prob(standard: jax.Array, log_stds: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian at standardised deviations ``standard`` ``[..., A]``; returns ``[...]``."""
    return jnp.sum(-0.5 * standard**2 - log_stds - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def _tanh_log_det(pre_tanh: jax.Array) -> jax.Array:
    """``sum log |d tanh(x) / dx|`` over the last axis, computed stably as ``2 (log 2 - x - softplus(-2x))``."""
    return jnp.sum(2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)


class GaussianActor(nn.Module):
    """Goal-conditioned Gaussian policy ``pi(a | s, g)`` (OGBench's ``GCActor``), optionally tanh-squashed.

    Attributes:
        hidden_dims: hidden layer sizes.
        action_dim: action dimension.
        layer_norm: layer norm after each hidden activation.
        tanh_squash: squash actions into ``(-1, 1)`` with ``tanh`` (SAC-style).
        const_std: fix the standard deviation to 1 (the DDPG+BC / AWR setting in OGBench).
        state_dependent_std: predict log-stds from the features (otherwise one learned vector), when not constant.
        log_std_min: lower clip of the log standard deviation.
        log_std_max: upper clip of the log standard deviation.
        final_init_scale: initial scale of the output layers (small, so initial means are near 0).
    """

    hidden_dims: Sequence[int]
    action_dim: int
    layer_norm: bool = False
    tanh_squash: bool = False
    const_std: bool = True
    state_dependent_std: bool = False
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    final_init_scale: float = 1e-2

    @nn.compact
    def __call__(self, observations: jax.Array, goals: jax.Array) -> ActionDistribution:
        """The action distribution for observations ``[..., obs_dim]`` and goals ``[..., goal_dim]``."""
        features = MLP(self.hidden_dims, activate_final=True, layer_norm=self.layer_norm)(
            jnp.concatenate([observations, goals], axis=-1)
        )
        means = nn.Dense(self.action_dim, kernel_init=default_init(self.final_init_scale))(features)
        if self.const_std:
            log_stds = jnp.zeros_like(means)
        elif self.state_dependent_std:
            log_stds = nn.Dense(self.action_dim, kernel_init=default_init(self.final_init_scale))(features)
        else:
            log_stds = jnp.broadcast_to(self.param("log_stds", nn.initializers.zeros, (self.action_dim,)), means.shape)
        log_stds = jnp.clip(log_stds, self.log_std_min, self.log_std_max)
        return ActionDistribution(means=means, log_stds=log_stds, tanh_squash=self.tanh_squash)


class VelocityField(nn.Module):
    """Flow-matching velocity field ``v(s, g, x_t, t)`` for goal-conditioned flow policies.

    ``x_t`` is a point on the path from noise (``t = 0``) to an action or subgoal (``t = 1``).

    Attributes:
        hidden_dims: hidden layer sizes.
        output_dim: dimension of ``x`` (the action dimension, or the goal dimension for subgoal policies).
        layer_norm: layer norm after each hidden activation.
    """

    hidden_dims: Sequence[int]
    output_dim: int
    layer_norm: bool = False

    @nn.compact
    def __call__(self, observations: jax.Array, goals: jax.Array, noisy: jax.Array, times: jax.Array) -> jax.Array:
        """Velocities ``[..., output_dim]``; ``times`` is ``[..., 1]``."""
        inputs = jnp.concatenate([observations, goals, noisy, times], axis=-1)
        return MLP((*self.hidden_dims, self.output_dim), activate_final=False, layer_norm=self.layer_norm)(inputs)


def euler_sample(velocity_fn: Callable[[jax.Array, jax.Array], jax.Array], noise: jax.Array, flow_steps: int):
    """Integrate ``dx/dt = v(x, t)`` from ``t = 0`` to ``1`` with ``flow_steps`` Euler steps.

    ``x_{i+1} = x_i + v(x_i, i / flow_steps) / flow_steps``, starting from ``x_0 = noise``.

    Args:
        velocity_fn: ``(x [..., D], t [..., 1]) -> v [..., D]``.
        noise: ``[..., D]`` starting points (standard normal for flow policies).
        flow_steps: number of Euler steps.

    Returns:
        ``[..., D]`` the points at ``t = 1``.
    """

    def step(i, x):
        times = jnp.full((*x.shape[:-1], 1), i / flow_steps, dtype=x.dtype)
        return x + velocity_fn(x, times) / flow_steps

    return jax.lax.fori_loop(0, flow_steps, step, noise)


class BilinearValue(nn.Module):
    """Contrastive critic ``f(s, a, g) = phi(s, a)^T psi(g) / sqrt(d)`` as two representations (Eysenbach et al. 2022).

    Returns the representations rather than the score, so a batch of ``B`` pairs gives all ``B x B`` scores with one
    ``einsum`` (see :func:`bilinear_logits`). Without actions it is a value ``phi(s)^T psi(g) / sqrt(d)``.

    Attributes:
        hidden_dims: hidden layer sizes of both encoders.
        latent_dim: representation size ``d``.
        layer_norm: layer norm after each hidden activation.
        num_ensembles: independent ``(phi, psi)`` pairs; the outputs always carry this leading axis.
    """

    hidden_dims: Sequence[int]
    latent_dim: int
    layer_norm: bool = True
    num_ensembles: int = 2

    @nn.compact
    def __call__(
        self, observations: jax.Array, goals: jax.Array, actions: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """``(phi, psi)``, each ``[E, ..., latent_dim]``, for inputs ``[..., dim]``."""
        phi_inputs = observations if actions is None else jnp.concatenate([observations, actions], axis=-1)
        mlp_cls = ensemble(MLP, self.num_ensembles)
        dims = (*self.hidden_dims, self.latent_dim)
        phi = mlp_cls(dims, activate_final=False, layer_norm=self.layer_norm, name="phi")(phi_inputs)
        psi = mlp_cls(dims, activate_final=False, layer_norm=self.layer_norm, name="psi")(goals)
        return phi, psi


def bilinear_logits(phi: jax.Array, psi: jax.Array, pairwise: bool = False) -> jax.Array:
    """Scores ``phi^T psi / sqrt(d)`` of :class:`BilinearValue` representations ``[E, B, d]``.

    Returns ``[E, B]`` (row ``i`` with goal ``i``) or, with ``pairwise``, ``[E, B, B]`` (row ``i`` with goal ``j``).
    """
    scale = jnp.sqrt(phi.shape[-1])
    if pairwise:
        return jnp.einsum("eik,ejk->eij", phi, psi) / scale
    return jnp.sum(phi * psi, axis=-1) / scale


def iqe_components(x: jax.Array, y: jax.Array, component_dim: int) -> jax.Array:
    """Per-component distances of the interval quasimetric embedding (IQE; Wang & Isola 2022).

    The latents are split into ``K = latent_dim / component_dim`` components. In component ``k`` coordinate ``j``
    spans the interval ``[x_kj, max(x_kj, y_kj)]`` (empty when ``y_kj <= x_kj``), and the component's distance is the
    length of the union of its intervals. Each component is a quasimetric: ``d(x, x) = 0`` and the triangle
    inequality holds for any latents, because ``[x, z]`` lies inside ``[x, y] u [y, z]`` coordinate by coordinate.

    The union length is a sweep in the order of the interval starts, without sorting (sorts and their scatter
    gradients are slow on XLA:CPU): interval ``j`` adds the part of it beyond ``max(start_j, ends of the intervals
    that start before it)``, ties broken by index. This is ``O(component_dim^2)`` per component.

    Args:
        x: ``[..., latent_dim]`` source latents.
        y: ``[..., latent_dim]`` target latents (broadcast against ``x``).
        component_dim: coordinates per component; must divide ``latent_dim``.

    Returns:
        ``[..., K]`` non-negative distances.
    """
    x = x.reshape(*x.shape[:-1], -1, component_dim)
    y = y.reshape(*y.shape[:-1], -1, component_dim)
    starts, y = jnp.broadcast_arrays(x, y)
    ends = jnp.maximum(starts, y)  # [..., K, m]
    index = jnp.arange(component_dim)
    own, other = starts[..., :, None], starts[..., None, :]  # [..., K, m (interval j), m (interval i)]
    earlier = (other < own) | ((other == own) & (index[None, :] < index[:, None]))
    covered_to = jnp.max(jnp.where(earlier, ends[..., None, :], own), axis=-1)  # max(start_j, earlier ends)
    return jnp.sum(jax.nn.relu(ends - covered_to), axis=-1)


class IQE(nn.Module):
    """IQE distance head: ``d(x, y) = w * mean_k d_k + (1 - w) * max_k d_k`` with ``w = sigmoid(learned)``.

    The max-mean reduction of Wang & Isola (2022), as used by QRL (Wang et al. 2023) and OGBench; ``w`` starts at 0.5.
    A convex mix of the mean and the max of quasimetrics is again a quasimetric.

    Attributes:
        component_dim: coordinates per component (see :func:`iqe_components`).
    """

    component_dim: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Distances ``[...]`` from latents ``x`` to latents ``y`` (each ``[..., latent_dim]``)."""
        mix = jax.nn.sigmoid(self.param("mix_logit", nn.initializers.zeros, ()))
        components = iqe_components(x, y, self.component_dim)
        return mix * jnp.mean(components, axis=-1) + (1.0 - mix) * jnp.max(components, axis=-1)
