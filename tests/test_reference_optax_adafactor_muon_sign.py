"""Adafactor, Muon, signSGD and Signum against Optax's of the same name: 200 steps of a noisy
quadratic on a tree with a 130 x 160 matrix, float32 and float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optax._src import factorized

import gradchain
from tests.conftest import reference_promotion
from tests.problems import matrix_tree, noise_sequence, run_noisy


def optax_adafactor_f64_schedule(
    learning_rate=None,
    min_dim_size_to_factor=128,
    decay_rate=0.8,
    decay_offset=0,
    multiply_by_parameter_scale=True,
    clipping_threshold=1.0,
    momentum=None,
    dtype_momentum=jnp.float32,
    weight_decay_rate=None,
    eps=1e-30,
    factored=True,
):
    """``optax.adafactor``'s chain, built from Optax's own transforms in the same order, with
    the decay schedule 1 - t**-0.8 evaluated in float64. (Optax evaluates it in float32 even
    for float64 params, which alone moves results by ~3e-7 relative after 200 steps; see
    ``test_adafactor_float64_differs_from_optax_only_by_its_float32_schedule``.)"""

    def decay_f64(step, exponent):
        return 1.0 - jnp.asarray(step + 1, jnp.float64) ** (-exponent)

    parts = [
        factorized.scale_by_factored_rms(
            factored, decay_rate, decay_offset, min_dim_size_to_factor, eps, decay_f64
        )
    ]
    if clipping_threshold is not None:
        parts.append(optax.clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        parts.append(optax.scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        parts.append(optax.scale_by_param_block_rms())
    if momentum is not None:
        parts.append(optax.ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        parts.append(optax.add_decayed_weights(weight_decay_rate))
    return optax.chain(*parts, optax.scale(-1.0))


# name: (gradchain factory, optax factory(dtype)). Same math, same hyperparameters.
def _adafactor_pair(**kw):
    """Optax names the momentum's dtype ``dtype_momentum``; gradchain ``mu_dtype``."""
    their_kw = {("dtype_momentum" if k == "mu_dtype" else k): v for k, v in kw.items()}

    def theirs(dtype):
        if dtype == jnp.float64:
            return optax_adafactor_f64_schedule(**their_kw)
        return optax.adafactor(**their_kw)

    return (lambda: gradchain.adafactor(**kw), theirs)


# Every option that differs from the default, including a weight-decay mask that a function
# computes from the (partitioned) params: decay only the large matrix.
MUON_OPTIONS = dict(
    beta=0.9,
    weight_decay=0.1,
    weight_decay_mask=lambda params: jax.tree.map(lambda p: p.shape[0] > 100, params),
    nesterov=False,
    adam_weight_decay=0.1,
    adam_learning_rate=0.003,
    consistent_rms=0.2,
    ns_steps=4,
)


PAIRS = {
    "adafactor": _adafactor_pair(),
    # A float32 momentum under float64 params: Optax computes decay * mu in float32, gradchain
    # in float64 (3e-9 apart after 5 steps), so the momentum keeps the params' dtype here.
    "adafactor_lr_momentum_masked_decay": _adafactor_pair(
        learning_rate=0.01, momentum=0.9, mu_dtype=None, weight_decay_rate=0.01
    ),
    "adafactor_small_matrices_factored_absolute_step": _adafactor_pair(
        learning_rate=0.01,
        min_dim_size_to_factor=2,
        clipping_threshold=None,
        multiply_by_parameter_scale=False,
    ),
    "muon": (lambda: gradchain.muon(0.01), lambda dtype: optax.contrib.muon(0.01)),
    "muon_options": (
        lambda: gradchain.muon(0.01, **MUON_OPTIONS),
        lambda dtype: optax.contrib.muon(0.01, **MUON_OPTIONS),
    ),
    "sign_sgd": (lambda: gradchain.sign_sgd(0.01), lambda dtype: optax.sign_sgd(0.01)),
    "signum": (lambda: gradchain.signum(0.01, 0.8), lambda dtype: optax.signum(0.01, 0.8)),
}


# Max |difference| in params (of magnitude ~1) after 200 steps. Measured worst: float32 8.0e-6
# (Muon: five Newton-Schulz matrix polynomials; Adafactor 4.9e-7), float64 2.2e-15. Frozen with
# a margin.
TOLERANCE = {jnp.float32: 2e-5, jnp.float64: 1e-13}


@pytest.mark.parametrize("name", sorted(PAIRS))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_matches_optax(name, dtype, request):
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    ours, theirs = PAIRS[name]
    params = matrix_tree(dtype)
    noise = noise_sequence(params, dtype)
    got, _ = run_noisy(ours(), params, noise)
    with reference_promotion():
        want, _ = run_noisy(theirs(dtype), params, noise)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert g.dtype == dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=TOLERANCE[dtype])
