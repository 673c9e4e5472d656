"""Sharding in types: every named optimizer on an Explicit-axis mesh. Run by
``tests/test_sharding_explicit.py`` in its own pytest process with 8 simulated CPU devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \
        python -m pytest tests/sharding_explicit_cases.py

On a mesh whose axes are ``AxisType.Explicit`` the sharding is part of an array's type
(``jax.typeof(x)`` reads ``float64[128@data,256@model]``). For each optimizer, with params
placed on a 4 x 2 ('data', 'model') mesh: ``jax.jit(opt.init)`` then one ``jax.jit(opt.update)``
must give every state leaf back with the type it went in with (shape, dtype, sharding spec),
and the updates must equal a single-device run. ``jit(init)`` alone, with no ``out_shardings``,
must already put each param-shaped moment where its parameter is. The gradient is a fixed
random tree laid out like the params, so the optimizer is all that is tested (no model's
matmuls).

The params are small but past the thresholds where the interesting paths start: ``w`` has
32768 entries (8-bit moments quantize leaves of >= 4096) and both its axes are >= 128
(Adafactor factors those); ``u`` stays under both thresholds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import gradchain
from tests.conftest import with_objective

# float64, one step: sharded and single-device differ by reduction order only. Measured over
# every optimizer that passes: at most 1.1e-16 absolute (schedule_free_adamw), 7.2e-16 relative
# (lamb). Frozen at the sharding suite's tolerances.
RTOL, ATOL = 1e-10, 1e-13

SHAPES = {"w": (128, 256), "b": (256,), "u": (8, 16), "c": (4,)}
SPECS = {"w": P("data", "model"), "b": P("model"), "u": P(None, "model"), "c": P()}

ISSUE = "issue 18, sharding in types"
# What fails today, and how (none now). Each is a strict xfail: the test fails the day one is
# fixed, so the mark must then go. Issue 18 listed adafactor (fixed: init types its factored
# statistics as update's means), adamw_8bit (fixed, with adam_8bit and lion_8bit: the decode's
# gather is told the codes' sharding) and muon; soap and shampoo failed as muon did (fixed: their
# matrix products run on leaves gathered whole, see gradchain/transforms/mesh_axes.py's `whole`);
# sm3 as adafactor did (fixed the same way); lbfgs's inner products contracted sharded
# dimensions (fixed: each leaf contracted in place to a replicated scalar); polyak_sgd and
# sophia only needed the objective, which `with_objective` now gives.
KNOWN_FAILURES: dict[str, tuple[str, type | None]] = {
    # name: (what happens, the exception; None where JAX's type is private)
}


def _half_square(params):
    """The objective given to the optimizers that read one (conftest's ``NEEDS_OBJECTIVE``,
    through ``with_objective``): 0.5 * sum of every entry squared, in the params' dtype.
    Conftest's ``half_square`` sums in float32: reduced in another order on the mesh, its value
    moves L-BFGS's line search to another step (measured: updates off by 2.6e-5, relative 1.0);
    in float64 the sharded step equals the single-device one bit for bit."""
    return sum(0.5 * jnp.sum(jnp.square(x)) for x in jax.tree.leaves(params))


def _cases():
    for name in gradchain.optimizers.__all__:
        marks = ()
        if name in KNOWN_FAILURES:
            what, raises = KNOWN_FAILURES[name]
            marks = pytest.mark.xfail(strict=True, raises=raises, reason=f"{ISSUE}: {what}")
        yield pytest.param(name, marks=marks, id=name)


def _explicit_mesh():
    if len(jax.devices()) < 8:
        pytest.fail(
            "these cases need 8 devices: run them through tests/test_sharding_explicit.py "
            "(XLA_FLAGS=--xla_force_host_platform_device_count=8)"
        )
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)


def _host_trees():
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s) * 0.3 for k, s in SHAPES.items()}
    grads = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    return params, grads


def _place(host, mesh):
    return {k: jax.device_put(v, NamedSharding(mesh, SPECS[k])) for k, v in host.items()}


def _types(tree):
    return [(jax.tree_util.keystr(path), jax.typeof(x)) for path, x in _leaves(tree)]


def _leaves(tree):
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _moments_off_their_params(state, params):
    """State leaves shaped like their parameter whose type has another sharding."""
    p_leaves, p_def = jax.tree.flatten(params)
    off = []
    for slot in gradchain.slots(state):
        try:
            subtrees = p_def.flatten_up_to(slot.value)
        except (ValueError, TypeError):
            continue  # not a per-parameter slot
        for sub, p in zip(subtrees, p_leaves):
            off += [
                f"{slot.path}: {jax.typeof(x)} for a param {jax.typeof(p)}"
                for x in jax.tree.leaves(sub)
                if x.shape == p.shape and jax.typeof(x).sharding.spec != jax.typeof(p).sharding.spec
            ]
    return off


@pytest.mark.parametrize("name", list(_cases()))
def test_update_keeps_every_state_type_and_equals_one_device(name, x64):
    opt = with_objective(name, getattr(gradchain, name)(1e-3), _half_square)
    host_params, host_grads = _host_trees()

    mesh = _explicit_mesh()
    with jax.set_mesh(mesh):
        params, grads = _place(host_params, mesh), _place(host_grads, mesh)
        assert str(jax.typeof(params["w"])) == "float64[128@data,256@model]"
        state = jax.jit(opt.init)(params)  # no out_shardings: the types say where
        assert not _moments_off_their_params(state, params)
        before = _types(state)
        updates, state = jax.jit(opt.update)(grads, state, params)
        after = _types(state)

    changed = [f"{p}: {a} -> {b}" for (p, a), (_, b) in zip(before, after) if a != b]
    assert [p for p, _ in before] == [p for p, _ in after]
    assert not changed, "state types changed in update:\n" + "\n".join(changed)
    assert _types(updates) == _types(params)  # updates are typed like the params

    one = jax.devices()[0]
    ref_params, ref_grads = jax.device_put((host_params, host_grads), one)
    ref_updates, _ = opt.update(ref_grads, opt.init(ref_params), ref_params)
    for (path, u), r in zip(_leaves(updates), jax.tree.leaves(ref_updates)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(r), rtol=RTOL, atol=ATOL, err_msg=path)
    assert all(jnp.isfinite(u).all() for u in jax.tree.leaves(updates))
