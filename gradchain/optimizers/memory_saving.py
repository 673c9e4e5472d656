"""Optimizers below Adam on the memory ladder, each a short chain of transforms.

Adam keeps two arrays per parameter. These keep less: Adafactor a row and a column statistic
per matrix (about 0x), Muon and Signum one momentum (1x), signSGD nothing (0x), and the
8-bit optimizers Adam's or Lion's moments in one byte per entry (about a quarter of their
float32 bytes). Keyword names and defaults follow Optax's optimizer of the same name.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from gradchain._checks import GradchainError
from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine import partition
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    bias_correct,
    scale,
    scale_by_learning_rate,
    scale_by_lion_momentum,
    scale_by_momentum,
    scale_by_rms,
    scale_by_sign,
)
from gradchain.transforms.factored import (
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)
from gradchain.transforms.orthogonal import NS_COEFFS, scale_by_newton_schulz, scale_by_shape
from gradchain.transforms.quantized import quantized_moments
from gradchain.transforms.quantized_4bit import DE4, RANK1_LINEAR4

__all__ = [
    "adafactor",
    "adam_4bit",
    "adam_8bit",
    "adamw_4bit",
    "adamw_8bit",
    "lion_8bit",
    "muon",
    "sign_sgd",
    "signum",
]


@live
def sign_sgd(learning_rate: LearningRate) -> GradientTransformation:
    """signSGD: step every coordinate by exactly lr, against the gradient's sign.

    Update:     p <- p - lr * sign(g)
    State:      none per parameter.   Memory: 0x params.
    Reference:  Bernstein et al., "signSGD: Compressed Optimisation for Non-Convex Problems",
                2018.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.sign_sgd(0.1)
    >>> updates, _ = opt.update(jnp.array([3.0, -0.5, 0.0]), opt.init(jnp.zeros(3)))
    >>> updates.tolist()
    [-0.10000000149011612, 0.10000000149011612, -0.0]
    """
    return chain(
        scale_by_sign(),  # only the direction of each coordinate
        scale_by_learning_rate(learning_rate),
    )


@live
def signum(
    learning_rate: LearningRate,
    beta: float = 0.9,
    mu_dtype: Any = None,
    *,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Signum: the sign of a moving average of gradients.

    Update:     mu <- beta * mu + (1 - beta) * g ;  p <- p - lr * sign(mu)
    State:      mu -- like params.   Memory: 1x params.
    Note:       no bias correction: it would not change the sign. Optax: ``signum``;
                its ``accumulator_dtype`` is accepted, and is ``mu_dtype`` (give one).
    Reference:  Bernstein et al., 2018 (Signum).
    """
    if accumulator_dtype is not None and mu_dtype is not None:
        raise GradchainError("signum: give mu_dtype or accumulator_dtype, not both")
    mu_dtype = accumulator_dtype if mu_dtype is None else mu_dtype
    return chain(
        scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype),  # momentum      (+1x params)
        scale_by_sign(),
        scale_by_learning_rate(learning_rate),
    )


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

    >>> import jax.numpy as jnp, gradchain
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


def _muon_labels(params: Any) -> Any:
    return jax.tree.map(lambda p: "muon" if jnp.ndim(p) == 2 else "adam", params)


@live(static=("ns_coeffs", "ns_steps", "weight_decay_mask"))
def muon(
    learning_rate: LearningRate,
    ns_coeffs: Any = NS_COEFFS,
    ns_steps: int = 5,
    beta: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    weight_decay_mask: Any = None,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
    adam_b1: float = 0.9,
    adam_b2: float = 0.999,
    adam_eps_root: float = 0.0,
    adam_weight_decay: float = 0.0,
    adam_learning_rate: LearningRate | None = None,
    consistent_rms: float | None = None,
) -> GradientTransformation:
    """Muon: momentum orthogonalized by Newton–Schulz for matrices, AdamW for the rest.

    Update (2-D leaves):
                mu <- beta * mu + (1 - beta) * g ;  m = Nesterov-corrected, bias-corrected mu
                u = newton_schulz(m) * sqrt(max(1, fan_out / fan_in))   (fan_in, fan_out = shape)
                u = u + weight_decay * p ;  p <- p - lr * u
    Other leaves: AdamW (``nesterov`` as for the matrices) with the ``adam_*`` settings.
    State:      per group (``gradchain.partition``): the matrices' mu (1x) and a count; the
                other leaves' Adam mu and nu (2x of their -- usually small -- size).
                Memory: ~1x params.
    Note:       Optax's ``optax.contrib.muon`` defaults and math (frobenius preconditioning,
                2-D leaves only). Not here: ``adaptive``, other preconditionings,
                ``muon_weight_dimension_numbers`` (reshape >2-D leaves yourself).
                ``weight_decay_mask`` applies to the matrices' decay, as in Optax: it sees the
                params with the other leaves hidden (``gradchain.MaskedNode``).
    Reference:  Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024;
                Liu et al., "Muon is Scalable for LLM Training", 2025 (``consistent_rms``).
    """
    from gradchain.optimizers.textbook import adamw  # the ladder's AdamW, its raw chain

    matrices = chain(
        scale_by_momentum(beta, ema=True, mu_dtype=mu_dtype),  # momentum      (+1x params)
        bias_correct(beta, nesterov=nesterov),  # Nesterov look-ahead, unbiased
        scale_by_newton_schulz(ns_coeffs, ns_steps, eps),  # orthogonalize
        scale_by_shape(consistent_rms),  # width scale
        add_decayed_weights(weight_decay, weight_decay_mask),
        scale_by_learning_rate(learning_rate),
    )
    others = adamw.__wrapped__(
        learning_rate if adam_learning_rate is None else adam_learning_rate,
        adam_b1,
        adam_b2,
        eps,
        adam_eps_root,
        mu_dtype,
        adam_weight_decay,
        nesterov=nesterov,
    )
    return partition({"muon": matrices, "adam": others}, _muon_labels)


# --- 8-bit moments ----------------------------------------------------------------------


@live(static=("block_size", "min_size"))
def adam_8bit(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    """Adam with both moments stored in 8 bits, block-wise (``quantized_moments``).

    Update:     Adam's, on moments decoded from 8 bits and re-encoded after each step.
    State:      mu -- int8 log code; nu -- uint8 log code; each plus a float32 scale per block
                of ``block_size`` along the last axis. Leaves under ``min_size`` entries stay
                float32.   Memory: ~0.5x params (float32 Adam: 2x).
    Reference:  Dettmers et al., "8-bit Optimizers via Block-wise Quantization", 2022.
    """
    return adamw_8bit.__wrapped__(
        learning_rate, b1, b2, eps, eps_root, 0.0, block_size=block_size, min_size=min_size
    )


@live(static=("block_size", "min_size"))
def adamw_8bit(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    *,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    """AdamW with both moments stored in 8 bits, block-wise. Memory: ~0.5x params.

    The chain is AdamW's, with its two moment transforms wrapped in ``quantized_moments``.
    Reference:  Dettmers et al., 2022; Loshchilov & Hutter, 2019.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.adamw_8bit(1e-3)
    >>> state = opt.init({"w": jnp.zeros((1024, 1024))})
    >>> sorted({x.dtype.name for x in jax.tree.leaves(state.inner[0].mu)})
    ['float32', 'int8']
    """
    q = {"block_size": block_size, "min_size": min_size}
    return chain(
        quantized_moments(scale_by_momentum(b1, ema=True), mu="int8", **q),  # mu (+~0.25x params)
        bias_correct(b1),
        quantized_moments(  # nu (+~0.25x params); eps outside the root, as Adam's
            scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True, eps_root=eps_root),
            nu="uint8",
            **q,
        ),
        add_decayed_weights(weight_decay),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )


@live(static=("block_size", "min_size"))
def lion_8bit(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.99,
    weight_decay: float = 1e-3,
    *,
    block_size: int = 256,
    min_size: int = 4096,
) -> GradientTransformation:
    """Lion with its momentum stored in 8 bits, block-wise. Memory: ~0.25x params.

    Reference:  Chen et al., 2023 (Lion); Dettmers et al., 2022.
    """
    return chain(
        quantized_moments(
            scale_by_lion_momentum(b1, b2), mu="int8", block_size=block_size, min_size=min_size
        ),  # fmt: skip
        scale_by_sign(),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


# --- 4-bit moments ----------------------------------------------------------------------


@live(static=("block_size", "min_size"))
def adam_4bit(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    *,
    block_size: int = 128,
    min_size: int = 4096,
) -> GradientTransformation:
    """Adam with both moments stored in 4 bits (``quantized_moments`` with the 4-bit codes).

    Update:     Adam's, on moments decoded from 4 bits and re-encoded after each step.
    State:      mu -- DE4: a signed dynamic-exponent code, one float32 absmax per block of
                ``block_size`` (128) along the last axis; nu -- RANK1_LINEAR4: a linear code
                without zero, each entry scaled by min(its row's max, its column's max) (one
                float32 vector per axis; blocks of ``block_size`` for 1-d leaves). Two codes per
                uint8 byte. Leaves under ``min_size`` entries stay float32.
                Memory: ~0.27x the params' bytes for float32 params (float32 Adam: 2x).
    Note:       mu rounds stochastically (unbiased; the randomness a hash of the values, no
                key kept) where the paper rounds to nearest: nearest measured 6.4% / 10.5% worst
                loss gap to float32 AdamW on our test curves, stochastic 0.72% / 0.42%.
                ``gradchain.transforms.quantized_4bit`` has the codes (DE4_NEAREST is the
                paper's rounding), their error bounds and what a NaN or an overflow does (it
                stays in its entry).
    Reference:  Li, Chen & Zhu, "Memory Efficient Optimizers with 4-bit States", NeurIPS 2023.
    """
    return adamw_4bit.__wrapped__(
        learning_rate, b1, b2, eps, eps_root, 0.0, block_size=block_size, min_size=min_size
    )


@live(static=("block_size", "min_size"))
def adamw_4bit(
    learning_rate: LearningRate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    weight_decay: float = 1e-4,
    *,
    block_size: int = 128,
    min_size: int = 4096,
) -> GradientTransformation:
    """AdamW with both moments stored in 4 bits. Memory: ~0.27x the params' bytes.

    The chain is AdamW's, its first moment in DE4 (blocks of 128) and its second in
    RANK1_LINEAR4 (rank-1 normalised, no zero), as in the paper's 4-bit AdamW.
    Reference:  Li, Chen & Zhu, 2023; Loshchilov & Hutter, 2019.

    >>> import jax.numpy as jnp, gradchain
    >>> opt = gradchain.adamw_4bit(1e-3)
    >>> nu = opt.init({"w": jnp.zeros((1024, 1024))}).inner[2].nu["w"]
    >>> nu.codes.shape, [s.shape for s in nu.scales]   # two codes a byte; a row and a column
    ((1024, 512), [(1024,), (1024,)])
    """
    q = {"block_size": block_size, "min_size": min_size}
    return chain(
        quantized_moments(scale_by_momentum(b1, ema=True), mu=DE4, **q),  # mu (+~0.13x params)
        bias_correct(b1),
        quantized_moments(  # nu (+~0.13x params)
            scale_by_rms(b2, eps, eps_in_sqrt=False, bias_correction=True, eps_root=eps_root),
            nu=RANK1_LINEAR4,
            **q,
        ),
        add_decayed_weights(weight_decay),  # decoupled decay
        scale_by_learning_rate(learning_rate),
    )
