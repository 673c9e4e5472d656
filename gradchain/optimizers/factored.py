"""Adafactor: a second moment kept as row and column statistics of each matrix
(``transforms/factored.py``), so it costs about n + m numbers for an n x m matrix, not n m.
Keywords and defaults follow ``optax.adafactor``."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    scale,
    scale_by_learning_rate,
    scale_by_momentum,
)
from gradchain.transforms.factored import (
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)

__all__ = [
    "adafactor",
]


@live(static=("min_dim_size_to_factor", "weight_decay_mask"))
def adafactor(
    learning_rate: LearningRate | None = None,
    min_dim_size_to_factor: int = 128,
    decay_rate: float = 0.8,
    decay_offset: int = 0,
    multiply_by_parameter_scale: bool = True,
    clipping_threshold: float | None = 1.0,
    momentum: float | None = None,
    mu_dtype: Any = jnp.float32,
    weight_decay_rate: float | None = None,
    eps: float = 1e-30,
    factored: bool = True,
    weight_decay_mask: Any = None,
    *,
    dtype_momentum: Any = None,
    nu_dtype: Any = None,
    axis_name: Any = None,
) -> GradientTransformation:
    """Adafactor: a factored second moment, update clipping, a step relative to the weights.

    Memory: rows + columns per matrix (about 0x params); 1x for vectors and for matrices with
    an axis shorter than ``min_dim_size_to_factor``; +1x with momentum.

    Update:     u = g / sqrt(nu_hat)            nu_hat factored: (R / mean R) outer C
                u = u / max(1, RMS(u) / clipping_threshold)
                u = lr * u * max(RMS(p), 1e-3)  (each factor only when enabled)
                u = EMA_momentum(u) ;  u = u + weight_decay_rate * p ;  p <- p - u
    State:      ``AdafactorState``: the live hyperparameters, and in ``inner`` nu
                (scale_by_factored_rms: FactoredMoment per factored matrix), count;
                mu (momentum, dtype ``mu_dtype``) only when ``momentum`` is set.
    Note:       Optax's defaults and order, including ``learning_rate=None`` (no learning
                rate: the step is the parameter scale alone) and weight decay added after the
                learning rate (not multiplied by it). The paper's relative step
                min(1e-2, 1/sqrt(t)) is ``learning_rate=lambda t: jnp.minimum(1e-2,
                jax.lax.rsqrt(t + 1.0))``. Optax's ``dtype_momentum`` keyword sets ``mu_dtype``.
    Args:       Optax's, plus: weight_decay_mask -- bools shaped like the params (or a
                function of them): where False, no decay (``gradchain.masked``).
                axis_name -- inside ``shard_map``, the mesh axis the leaves are split over:
                every per-leaf mean is ``psum``-ed over it. Make the state outside
                ``shard_map`` from the whole params and pass it in (laid out by
                ``gradchain.state_shardings``): equal to the unsharded run, tested.
    Reference:  Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory
                Cost", 2018.

    >>> import jax, jax.numpy as jnp, gradchain
    >>> opt = gradchain.adafactor(learning_rate=0.1)
    >>> state = opt.init({"w": jnp.zeros((256, 512))})
    >>> [x.shape for x in jax.tree.leaves(state.inner[0].nu)]   # a row and a column statistic
    [(256,), (512,)]
    """
    if dtype_momentum is not None:
        mu_dtype = dtype_momentum  # Optax's name (its position is mu_dtype's)
    factored_rms = scale_by_factored_rms(
        factored,
        decay_rate,
        decay_offset,
        min_dim_size_to_factor,
        eps,
        nu_dtype=nu_dtype,
        axis_name=axis_name,
    )
    parts = [factored_rms]  # factored second moment (about 0x params)
    if clipping_threshold is not None:
        parts.append(clip_by_block_rms(clipping_threshold, axis_name=axis_name))  # update clipping
    if learning_rate is not None:
        parts.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        parts.append(scale_by_param_block_rms(axis_name=axis_name))  # relative step size
    if momentum is not None:
        parts.append(scale_by_momentum(momentum, ema=True, mu_dtype=mu_dtype))  # +1x params
    if weight_decay_rate is not None:
        parts.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    return chain(*parts, scale(-1.0))  # descend
