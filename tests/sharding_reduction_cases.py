"""Every transform that reduces over a leaf's elements, inside ``shard_map`` on a leaf that is
one device's shard (issue 15, item 5): it must be right (equal to the unsharded update) or
refuse at trace time, naming the reduction -- never quietly reduce over the shard alone.

Run by ``tests/test_sharding_reductions.py`` in a pytest process of its own with 8 simulated
CPU devices (the device count is fixed when JAX's backend starts):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
        python -m pytest tests/sharding_reduction_cases.py

The params: ``w`` (64, 8) split by rows over the 8-device mesh axis ``data`` (each device holds
8 rows), ``b`` (8,) replicated. The gradient is the same on every device (what a shard_map'd
step sees after ``pmean``), so the sharded result must equal the unsharded one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import gradchain
import gradchain.transforms as T
from gradchain import sharding as gs

STEPS = 2
# A refusal names the reduction; inside a chain, the chain's own trace-time check may see first
# that a state made from the whole params does not fit a shard's updates.
REFUSED = "sharded over mesh axes|built for another params tree|does not fit these updates"
MATRIX_ONLY = {"scale_by_newton_schulz", "scale_by_shampoo", "scale_by_soap"}  # "w" alone
SPECS = {"w": P("data", None), "b": P()}

# name -> (factory, expected): "refuse" at trace time, or "right" (equal to unsharded).
CASES = {
    # whole-tree and per-leaf norms
    "clip_by_global_norm": (lambda: T.clip_by_global_norm(0.1), "refuse"),
    "clip_by_global_norm(axis_name)": (
        lambda: T.clip_by_global_norm(0.1, axis_name="data"),
        "right",
    ),
    "scale_by_trust_ratio": (lambda: T.scale_by_trust_ratio(), "refuse"),
    "scale_by_trust_ratio(axis_name)": (lambda: T.scale_by_trust_ratio(axis_name="data"), "right"),
    "graft": (lambda: gradchain.graft(T.scale_by_rss(), T.scale_by_sign()), "refuse"),
    "scale_by_novograd": (lambda: T.scale_by_novograd(), "refuse"),
    "scale_by_param_block_norm": (lambda: T.scale_by_param_block_norm(), "refuse"),
    "scale_by_layerwise_rms": (lambda: T.scale_by_layerwise_rms(), "refuse"),
    # block RMS and factored statistics (Adafactor)
    "clip_by_block_rms": (lambda: T.clip_by_block_rms(1e-3), "refuse"),
    "clip_by_block_rms(axis_name)": (lambda: T.clip_by_block_rms(1e-3, axis_name="data"), "right"),
    "scale_by_param_block_rms": (lambda: T.scale_by_param_block_rms(), "refuse"),
    "scale_by_param_block_rms(axis_name)": (
        lambda: T.scale_by_param_block_rms(axis_name="data"),
        "right",
    ),
    "scale_by_factored_rms": (lambda: T.scale_by_factored_rms(min_dim_size_to_factor=4), "refuse"),
    "scale_by_factored_rms(axis_name)": (
        lambda: T.scale_by_factored_rms(min_dim_size_to_factor=4, axis_name="data"),
        "right",
    ),
    # matrix products over the whole leaf
    "scale_by_newton_schulz": (lambda: T.scale_by_newton_schulz(), "refuse"),
    "scale_by_shampoo": (lambda: T.scale_by_shampoo(), "refuse"),
    "scale_by_soap": (lambda: T.scale_by_soap(precondition_frequency=1), "refuse"),
    # dot products over the whole tree
    "scale_by_lbfgs": (lambda: T.scale_by_lbfgs(memory_size=3), "refuse"),
    # named optimizers built on them
    "lamb": (lambda: gradchain.lamb(1e-2), "refuse"),
    "lars": (lambda: gradchain.lars(1e-2), "refuse"),
    "adafactor": (lambda: gradchain.adafactor(1e-2, min_dim_size_to_factor=4), "refuse"),
    # the whole chain with axis_name: its state, made outside from the whole params, is checked
    # by type only on shards (gradchain/base.py, _check_inputs); its statistics are psum-ed
    "adafactor(axis_name)": (
        lambda: gradchain.adafactor(1e-2, min_dim_size_to_factor=4, axis_name="data"),
        "right",
    ),
    "muon": (lambda: gradchain.muon(1e-2), "refuse"),
    "shampoo": (lambda: gradchain.shampoo(1e-2), "refuse"),
    "soap": (lambda: gradchain.soap(1e-2), "refuse"),
    # elementwise: right with no axis_name at all (the control group)
    "adam": (lambda: gradchain.adam(1e-2), "right"),
    "lion": (lambda: gradchain.lion(1e-2), "right"),
    "scale_by_sign": (lambda: T.scale_by_sign(), "right"),
}


def _mesh():
    if len(jax.devices()) < 8:
        pytest.fail(
            "these cases need 8 devices: run them through tests/test_sharding_reductions.py"
        )
    return jax.make_mesh((8,), ("data",))


def _host():
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(64, 8)), "b": rng.normal(size=(8,))}
    grads = {"w": rng.normal(size=(STEPS, 64, 8)), "b": rng.normal(size=(STEPS, 8))}
    f32 = lambda t: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), t)  # noqa: E731
    return f32(params), f32(grads)


def _steps(opt, state, params, grads):
    out = []
    for t in range(STEPS):
        updates, state = opt.update(jax.tree.map(lambda g, t=t: g[t], grads), state, params)
        out.append(updates)
    return jax.tree.map(lambda *u: jnp.stack(u), *out)


def _sharded_steps(factory, mesh, params, grads):
    """The state is made outside shard_map from the whole params (as a training script does),
    laid out like them (``gradchain.sharding.state_shardings``), and passed in."""
    specs = {k: SPECS[k] for k in params}
    grad_specs = {k: P(None, *SPECS[k]) for k in params}
    opt = factory()
    shardings = gs.state_shardings(
        opt, jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), params, specs)
    )
    state = jax.jit(opt.init, out_shardings=shardings)(params)
    state_specs = jax.tree.map(lambda s: s.spec, shardings)
    step = jax.shard_map(
        lambda st, p, g: _steps(opt, st, p, g),
        mesh=mesh,
        in_specs=(state_specs, specs, grad_specs),
        out_specs=grad_specs,
    )
    place = lambda t, sp: jax.tree.map(
        lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), t, sp
    )  # noqa: E731
    return jax.jit(step)(state, place(params, specs), place(grads, grad_specs))


@pytest.mark.parametrize("name", list(CASES))
def test_a_reduction_over_a_shard_is_right_or_refused(name):
    factory, expected = CASES[name]
    params, grads = _host()
    if name.split("(")[0] in MATRIX_ONLY:
        params, grads = {"w": params["w"]}, {"w": grads["w"]}
    mesh = _mesh()
    if expected == "refuse":
        with pytest.raises(gradchain.GradchainError, match=REFUSED):
            _sharded_steps(factory, mesh, params, grads)
        return
    result = _sharded_steps(factory, mesh, params, grads)
    unsharded = CASES[name.split("(")[0]][0]()  # the same transform without axis_name
    reference = jax.jit(lambda p, g: _steps(unsharded, unsharded.init(p), p, g))(params, grads)
    for key in params:  # float32, reduction order only: measured <= 6e-8
        np.testing.assert_allclose(result[key], reference[key], rtol=2e-5, atol=1e-7, err_msg=key)


def test_factored_state_made_inside_shard_map_is_refused():
    """init on a shard cannot know the parameter's shape (which axes to factor, and by what
    the row and column means divide): it is refused, naming the remedy."""
    mesh = _mesh()
    opt = T.scale_by_factored_rms(min_dim_size_to_factor=4, axis_name="data")
    params = {
        "w": jax.device_put(jnp.ones((64, 8), jnp.float32), NamedSharding(mesh, P("data", None)))
    }
    init = jax.shard_map(opt.init, mesh=mesh, in_specs=({"w": P("data", None)},), out_specs=P())
    with pytest.raises(gradchain.GradchainError, match="outside shard_map"):
        jax.jit(init)(params)
