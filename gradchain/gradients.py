"""Helpers for the gradients themselves, before any optimizer sees them: scale a gradient on
its way back through part of a model (``scale_gradient``), and a diagonal Gaussian given by
its mean and log-scale (``multi_normal``), the search distribution of perturbation and
score-function gradient estimates. Optax's names, with Optax's behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.stats

from gradchain.errors import GradchainError

__all__ = ["MultiNormalDiagFromLogScale", "multi_normal", "scale_gradient"]


@jax.custom_vjp
def _identity_scaling_back(inputs: Any, scale: Any) -> Any:
    return inputs


def _forward(inputs: Any, scale: Any) -> tuple[Any, Any]:
    return inputs, scale


def _backward(scale: Any, cotangent: Any) -> tuple[Any, None]:
    def scaled(g):
        return (g * jnp.asarray(scale, jnp.result_type(g))).astype(jnp.result_type(g))

    return jax.tree.map(scaled, cotangent), None


_identity_scaling_back.defvjp(_forward, _backward)


def scale_gradient(inputs: Any, scale: Any) -> Any:
    """``inputs`` unchanged on the way forward; on the way back, their gradient times ``scale``.

    Forward:    y = x.          Backward:   dL/dx = scale * dL/dy.
    ``scale`` may be a Python number or a 0-d array (traced too). A Python ``1.0`` returns
    ``inputs`` as they are; a Python ``0.0`` stops the gradient (``jax.lax.stop_gradient``), so
    nothing is computed for that part of the model. The gradient keeps each leaf's dtype.
    Use: a smaller learning rate for one part of a model without a second optimizer, or a
    gradient-reversal layer (``scale=-1``, Ganin & Lempitsky, "Unsupervised domain
    adaptation by backpropagation", ICML 2015).

    >>> import jax, gradchain
    >>> jax.grad(lambda x: gradchain.scale_gradient(x, 0.5) ** 2)(3.0)
    Array(3., dtype=float32)
    """
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if scale == 1.0:
            return inputs
        if scale == 0.0:
            return jax.lax.stop_gradient(inputs)
    return _identity_scaling_back(inputs, scale)


class MultiNormalDiagFromLogScale:
    """A Gaussian with independent coordinates, given by its mean and the log of its scale
    (standard deviation), broadcast together.

    Density:    log p(x) = sum_i [ -(x_i - m_i)^2 / (2 s_i^2) - log s_i - log(2 pi) / 2 ],
                s = exp(log_scale), summed over the parameter axes (the broadcast shape).
    ``params`` is ``[loc, log_scale]`` as given (so the two can be differentiated), and
    ``sample(shape, key)`` draws ``shape + param_shape`` values m + s * N(0, 1).
    """

    def __init__(self, loc: Any, log_scale: Any):
        self._mean = jnp.asarray(loc)
        self._log_scale = jnp.asarray(log_scale)
        try:
            shape = jax.lax.broadcast_shapes(self._mean.shape, self._log_scale.shape)
        except ValueError as error:
            raise GradchainError(
                f"multi_normal: loc of shape {self._mean.shape} and log_scale of shape "
                f"{self._log_scale.shape} do not broadcast together ({error})"
            ) from None
        self._param_shape = tuple(shape)
        self._scale = jnp.exp(self._log_scale)

    @property
    def log_scale(self) -> jax.Array:
        return self._log_scale

    @property
    def params(self) -> Sequence[jax.Array]:
        return [self._mean, self._log_scale]

    def sample(self, shape: Sequence[int], key: jax.Array) -> jax.Array:
        """``tuple(shape) + param_shape`` draws, in the mean's floating dtype."""
        out_shape = (*tuple(shape), *self._param_shape)
        dtype = jnp.result_type(self._mean, self._scale, float)
        noise = jax.random.normal(key, out_shape, dtype)
        return noise * self._scale.astype(dtype) + self._mean.astype(dtype)

    def log_prob(self, x: Any) -> jax.Array:
        """The log density of ``x``, summed over the parameter axes (leading sample axes
        stay)."""
        per_coordinate = jax.scipy.stats.norm.logpdf(x, self._mean, self._scale)
        axes = tuple(range(-len(self._param_shape), 0))
        return jnp.sum(per_coordinate, axis=axes)


def multi_normal(loc: Any, log_scale: Any) -> MultiNormalDiagFromLogScale:
    """A diagonal Gaussian with mean ``loc`` and scale ``exp(log_scale)`` (see
    ``MultiNormalDiagFromLogScale``). Shapes that do not broadcast are refused (a
    ``GradchainError``, a ``ValueError``, naming both shapes)."""
    return MultiNormalDiagFromLogScale(loc, log_scale)
