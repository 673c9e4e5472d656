"""gradchain optimizer states through orbax-checkpoint: save, restore into an abstract target
from ``jax.eval_shape(opt.init, params)``, and get the same NamedTuple types back, bit for bit
-- switched-off slots (``None``), masked leaves, bfloat16 moments included; a mismatched target
fails with Orbax's error naming the path; a sharded state restores onto the same layout."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import gradchain
import gradchain.torch

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.zeros(4)}

OPTIMIZERS = {
    "adam": lambda: gradchain.adam(1e-3),
    "amsgrad": lambda: gradchain.amsgrad(1e-3),
    "adamw-masked": lambda: gradchain.adamw(1e-3, mask={"w": True, "b": False}),
    "adam-bfloat16-moments": lambda: gradchain.adam(1e-3, mu_dtype=jnp.bfloat16),
    "partition": lambda: gradchain.partition(
        {"a": gradchain.adam(1e-3), "s": gradchain.sgd(0.1, momentum=0.9)}, {"w": "a", "b": "s"}
    ),
    "torch-SGD": lambda: gradchain.torch.SGD(lr=0.1, momentum=0.9, dampening=0.1),
    "torch-NAdam": lambda: gradchain.torch.NAdam(),
}


def _stepped_state(opt, steps=3):
    state = opt.init(PARAMS)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), PARAMS)
        _, state = opt.update(grads, state, PARAMS)
    return state


def _save(directory, state):
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(directory, state)
        checkpointer.wait_until_finished()


def _restore(directory, target):
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(directory, target)


def _state_types(tree):
    """Every container's type, depth first: ``AdamLiveState``, ``tuple``, ``MomentumState``..."""
    if isinstance(tree, (tuple, list)):
        return [type(tree)] + [t for x in tree for t in _state_types(x)]
    if isinstance(tree, dict):
        return [type(tree)] + [t for k in sorted(tree) for t in _state_types(tree[k])]
    return []


def _same_bits(a, b):
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and np.array_equal(
            np.asarray(a).reshape(-1).view(np.uint8), np.asarray(b).reshape(-1).view(np.uint8)
        )
    )


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_orbax_round_trip_is_bit_exact_and_keeps_the_state_types(name, tmp_path):
    opt = OPTIMIZERS[name]()
    state = _stepped_state(opt)
    _save(tmp_path / "state", state)
    restored = _restore(tmp_path / "state", jax.eval_shape(opt.init, PARAMS))

    is_none = lambda x: x is None  # noqa: E731
    assert jax.tree.structure(restored, is_leaf=is_none) == jax.tree.structure(
        state, is_leaf=is_none
    )
    assert _state_types(restored) == _state_types(state)
    assert all(_same_bits(a, b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)))
    # The restored state keeps training exactly like the saved one.
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    after_saved, _ = opt.update(grads, state, PARAMS)
    after_restored, _ = opt.update(grads, restored, PARAMS)
    assert all(
        _same_bits(a, b)
        for a, b in zip(jax.tree.leaves(after_saved), jax.tree.leaves(after_restored))
    )


def test_switched_off_slots_come_back_as_none(tmp_path):
    opt = gradchain.adam(1e-3)
    state = _stepped_state(opt)
    # A constant learning rate keeps no count: AdamLiveState.count is None, like nu_max.
    assert state.inner[2].nu_max is None and state.count is None
    _save(tmp_path / "state", state)
    restored = _restore(tmp_path / "state", jax.eval_shape(opt.init, PARAMS))
    assert type(restored).__name__ == "AdamLiveState" and restored.count is None
    assert restored.inner[2].nu_max is None and restored.inner[2].count is not None
    assert gradchain.get_hyperparams(restored) == gradchain.get_hyperparams(state)


def test_restore_into_another_optimizers_target_names_the_missing_slot(tmp_path):
    _save(tmp_path / "state", _stepped_state(gradchain.adam(1e-3)))
    target = jax.eval_shape(gradchain.amsgrad(1e-3).init, PARAMS)
    # The path docs/orbax.md quotes: the chain's state, member 2, slot nu_max, leaf b.
    with pytest.raises(ValueError, match=r"Structure mismatch.*\('inner', '2', 'nu_max', 'b'\)"):
        _restore(tmp_path / "state", target)


_SHARDED = textwrap.dedent(
    """
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    import jax, jax.numpy as jnp, numpy as np
    import orbax.checkpoint as ocp
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import gradchain

    mesh = Mesh(np.array(jax.devices()), ("model",))
    params = {
        "w": jax.device_put(jnp.arange(32.0).reshape(8, 4), NamedSharding(mesh, P("model"))),
        "b": jax.device_put(jnp.ones(4), NamedSharding(mesh, P())),
    }
    opt = gradchain.adam(1e-3)
    state = opt.init(params)
    _, state = opt.update(jax.tree.map(jnp.ones_like, params), state, params)
    with ocp.StandardCheckpointer() as ck:
        ck.save(sys.argv[1], state)
        ck.wait_until_finished()
    # The target: shapes from eval_shape, the layout from the params' (nothing allocated).
    layout = gradchain.state_shardings(opt, params)
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        jax.eval_shape(opt.init, params), layout,
    )
    with ocp.StandardCheckpointer() as ck:
        restored = ck.restore(sys.argv[1], target)
    for a, b, s in zip(jax.tree.leaves(restored), jax.tree.leaves(state), jax.tree.leaves(layout)):
        assert a.sharding.is_equivalent_to(s, a.ndim), (a.sharding, s)
        assert np.array_equal(np.asarray(a), np.asarray(b))
    mu_w = gradchain.get_slot(restored, "mu")["mu"]["w"]
    assert mu_w.sharding.is_equivalent_to(params["w"].sharding, 2)
    assert len(mu_w.addressable_shards) == 4 and mu_w.addressable_shards[0].data.shape == (2, 4)
    print("layout ok")

    # Other params shapes. Orbax abandons its pending shard reads when one fails, and they
    # report "exception ignored" whenever the garbage collector reaches them -- in a test
    # session, in the middle of another test: so this check runs here, in its own process.
    wider = dict(params, w=jnp.zeros((8, 5)))
    try:
        with ocp.StandardCheckpointer() as ck:
            ck.restore(sys.argv[1], jax.eval_shape(opt.init, wider))
    except ValueError as e:
        print("shape mismatch refused:", str(e).splitlines()[0])
    """
)


@pytest.fixture(scope="module")
def fresh_process_report(tmp_path_factory):
    # Four CPU devices must be requested before JAX starts: a fresh process.
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED, str(tmp_path_factory.mktemp("orbax") / "sharded")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_sharded_state_restores_onto_the_same_layout(fresh_process_report):
    assert "layout ok" in fresh_process_report


def test_restore_into_other_shapes_names_the_shapes(fresh_process_report):
    line = fresh_process_report.split("shape mismatch refused:")[1]
    assert "(8, 5)" in line and "(8, 4)" in line, line
