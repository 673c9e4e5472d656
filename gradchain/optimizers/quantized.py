"""Adam, AdamW and Lion with their moments stored in 8 or 4 bits (``transforms/quantized.py``,
``transforms/quantized_4bit.py``): a block-wise absmax code per 256 (8-bit) or 128 (4-bit)
entries, decoded to float32 for the step and encoded back. Memory: about 1/4 (8-bit) or 1/8
(4-bit) of float32 Adam's slots, plus one scale per block."""

from __future__ import annotations

from gradchain.base import GradientTransformation, LearningRate, chain
from gradchain.combine.live import live
from gradchain.transforms import (
    add_decayed_weights,
    bias_correct,
    scale_by_learning_rate,
    scale_by_lion_momentum,
    scale_by_momentum,
    scale_by_rms,
    scale_by_sign,
)
from gradchain.transforms.quantized import quantized_moments
from gradchain.transforms.quantized_4bit import DE4, RANK1_LINEAR4

__all__ = [
    "adam_4bit",
    "adam_8bit",
    "adamw_4bit",
    "adamw_8bit",
    "lion_8bit",
]


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
    return adamw_8bit(
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

    >>> import jax, jax.numpy as jnp, gradchain
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
    return adamw_4bit(
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

    >>> import jax, jax.numpy as jnp, gradchain
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
