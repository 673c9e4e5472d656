"""reduce_on_plateau (transforms/plateau.py) against optax.contrib.reduce_on_plateau."""

import jax.numpy as jnp
import optax
import pytest

import gradchain
from tests.problems import compare, tol


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(patience=3, cooldown=2, factor=0.5, rtol=1e-2),
        dict(patience=2, accumulation_size=3, atol=1e-3, rtol=0.0, min_scale=0.05),
    ],
)
def test_reduce_on_plateau_equals_optax(kwargs, dtype):
    """SGD whose rate is too large (it bounces), so the value plateaus and the scale drops."""

    def build(lib, contrib):
        return lib.chain(lib.sgd(0.49), contrib.reduce_on_plateau(**kwargs))

    def with_value(f, value):
        return {"value": value}

    diff, got, want = compare(
        lambda: build(gradchain, gradchain), lambda: build(optax, optax.contrib), dtype, with_value
    )
    assert diff <= tol(dtype, 1e-6, 1e-14)  # measured 0.0 and 0.0
    ours, theirs = got[2][-1], want[2][-1]
    assert float(ours.scale) == float(theirs.scale) < 1.0  # it did reduce
    for field in ("plateau_count", "cooldown_count", "count"):
        assert int(getattr(ours, field)) == int(getattr(theirs, field))


def test_reduce_on_plateau_needs_the_value_and_refuses_bad_arguments():
    opt = gradchain.reduce_on_plateau()
    p = {"w": jnp.ones(2)}
    with pytest.raises(gradchain.GradchainError, match="value=loss"):
        opt.update(p, opt.init(p), p)
    for kwargs, name in [
        (dict(factor=1.0), "factor"),
        (dict(rtol=0.0, atol=0.0), "rtol and atol"),
        (dict(patience=-1), "patience"),
        (dict(accumulation_size=0), "accumulation_size"),
    ]:
        with pytest.raises(ValueError, match=name):
            gradchain.reduce_on_plateau(**kwargs)
