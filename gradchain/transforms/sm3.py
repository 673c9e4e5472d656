"""SM3: a second moment kept over cover sets -- one accumulator per row, per column, ... of
each leaf instead of one per entry -- so its memory is the sum of a leaf's dimensions."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradchain import _checks
from gradchain.base import GradientTransformation, describe
from gradchain.transforms.mesh_axes import zeros_along_axis
from gradchain.transforms.moment_math import (
    abs_sq,
    accumulator_zeros,
    compute_dtype,
    moment_dtype,
)

__all__ = [
    "ScaleBySM3State",
    "Sm3State",
    "scale_by_sm3",
]


@describe(
    mu="per leaf, a list of one accumulator per axis (length = that axis' size): the max of "
    "the second-moment estimate over the other axes (a vector leaf: its full estimate; a "
    "scalar: one number)",
    nu="momentum of the preconditioned update, like params",
)
class Sm3State(NamedTuple):
    mu: Any
    nu: Any


def _accumulators(p: Any) -> list[jax.Array]:
    dtype = moment_dtype(p)
    if jnp.ndim(p) < 2:  # the leaf's own shape: made like it, so it is laid out like it
        return [jnp.zeros_like(p, dtype)]
    # typed as update's max over the other axes will be (on an Explicit mesh: sharded as that
    # axis of p), so the state keeps its type
    return [zeros_along_axis(p, k, dtype) for k in range(jnp.ndim(p))]


def scale_by_sm3(b1: float = 0.9, b2: float = 1.0, eps: float = 1e-8) -> GradientTransformation:
    r"""Divide by the root of a cover-set second moment, then take a momentum.

    Update:     per leaf of rank r >= 2, for each entry:
                  prev = min over axes i of mu_i[index along i]   (rank <= 1: mu_0 itself)
                  v = c * g**2 + b2 * prev,  c = 1 if b2 == 1 else 1 - b2
                  nu_t = b1 nu_{t-1} + (1 - b1) * g / sqrt(v + eps)   (0 where v = 0)
                  mu_i = max of v over every axis but i;  emit nu_t
    State:      mu (per leaf: the sum of its dimensions), nu (+1x params).
    Memory:     +1x params plus sum of dims per leaf (on an Explicit mesh each mu_i is sharded
                as axis i of its parameter is).
    Args:       b1 -- momentum in [0, 1).  b2 -- in [0, 1]; 1 (the default) sums, as
                AdaGrad.  eps -- >= 0, inside the root.
    Note:       Optax's ``scale_by_sm3`` (SM3-II). A scalar leaf gets one accumulator here;
                Optax's fails on one (IndexError), and on a leaf with a zero-size axis
                (ValueError: max of an empty array); here that leaf's accumulators stay 0.
                Complex gradients use |g|**2.
    Reference:  Anil, Gupta, Koren & Singer, "Memory-Efficient Adaptive Optimization", 2019.
    """
    _checks.check_unit_interval("b1", b1)
    _checks.check_closed_unit_interval("b2", b2)
    _checks.check_non_negative("eps", eps)

    def init(params):
        return Sm3State(mu=jax.tree.map(_accumulators, params), nu=accumulator_zeros(params))

    def update(updates, state, params=None, **extra):
        def step(g, mu, nu):
            c = compute_dtype(g.dtype, nu.dtype)
            rank = g.ndim
            b1_, b2_ = jnp.asarray(b1, c), jnp.asarray(b2, c)
            if rank < 2:
                prev = mu[0].astype(c)
            else:
                along = [a.astype(c).reshape([-1 if i == k else 1 for i in range(rank)])
                         for k, a in enumerate(mu)]
                prev = functools.reduce(jnp.minimum, along)
            v = jnp.where(b2_ == 1, 1, 1 - b2_) * abs_sq(g, c) + b2_ * prev
            # only an exact zero is guarded: a NaN statistic stays visible (as in moment_math)
            scaled = g.astype(c) * jnp.where(v == 0, 0, jax.lax.rsqrt(v + jnp.asarray(eps, c)))
            nu_new = (1 - b1_) * scaled + b1_ * nu.astype(c)
            if rank < 2:
                mu_new = [v.astype(mu[0].dtype)]
            else:
                # initial=0: v >= 0, so the max is unchanged; a zero-size leaf keeps its zeros.
                mu_new = [jnp.max(v, axis=tuple(i for i in range(rank) if i != k), initial=0)
                          .astype(a.dtype) for k, a in enumerate(mu)]
            return nu_new.astype(g.dtype), mu_new, nu_new.astype(nu.dtype)

        g_leaves, treedef = jax.tree.flatten(updates)
        mu_leaves = treedef.flatten_up_to(state.mu)  # each leaf's list of accumulators
        nu_leaves = treedef.flatten_up_to(state.nu)
        outs = [step(g, m, n) for g, m, n in zip(g_leaves, mu_leaves, nu_leaves)]
        out, mu, nu = (treedef.unflatten([o[i] for o in outs]) for i in range(3))
        return out, Sm3State(mu=mu, nu=nu)

    return GradientTransformation(init, update, name="scale_by_sm3", preprocessing=False)

ScaleBySM3State = Sm3State  # Optax's name; same fields mu, nu
