"""The layerwise family (transforms/layerwise.py, optimizers/layerwise.py): the trust ratio
(LAMB, LARS) under shard_map."""

import os
import subprocess
import sys
import textwrap

SHARDED_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import gradchain

    jax.config.update("jax_enable_x64", True)
    mesh = jax.make_mesh((4,), ("d",))
    rng = np.random.default_rng(0)
    host = {"w": rng.normal(size=(8, 3)), "b": rng.normal(size=(3,))}
    grads = {"w": rng.normal(size=(8, 3)), "b": rng.normal(size=(3,))}
    specs = {"w": P("d"), "b": P()}  # w sharded by rows, b replicated
    place = lambda t: jax.tree.map(
        lambda x, s: jax.device_put(jnp.asarray(x), NamedSharding(mesh, s)), t, specs
    )

    def one_step(opt):
        def f(p, g):
            return opt.update(g, opt.init(p), p)[0]
        return f

    for make in (
        lambda a: gradchain.scale_by_trust_ratio(0.0, 0.5, 1e-3, axis_name=a),
        lambda a: gradchain.lamb(0.1, weight_decay=0.1, axis_name=a),
    ):
        want = one_step(make(None))(host, grads)
        sharded = jax.shard_map(
            one_step(make("d")), mesh=mesh, in_specs=(specs, specs), out_specs=specs
        )
        got = jax.jit(sharded)(place(host), place(grads))
        for k in want:
            assert np.max(np.abs(np.asarray(got[k]) - np.asarray(want[k]))) <= 1e-14, k

    # Without axis_name each shard would scale by its own rows' ratio: measurably wrong.
    local = jax.jit(jax.shard_map(
        one_step(gradchain.scale_by_trust_ratio(0.0, 0.5, 1e-3)), mesh=mesh,
        in_specs=(specs, specs), out_specs=specs, check_vma=False,
    ))(place(host), place(grads))
    want = one_step(gradchain.scale_by_trust_ratio(0.0, 0.5, 1e-3))(host, grads)
    assert np.max(np.abs(np.asarray(local["w"]) - np.asarray(want["w"]))) > 1e-6

    # Inside a checked shard_map, a sharded leaf without axis_name is refused, not wrong.
    try:
        jax.shard_map(
            one_step(gradchain.lamb(0.1)), mesh=mesh, in_specs=(specs, specs), out_specs=specs
        )(place(host), place(grads))
    except gradchain.GradchainError as e:
        assert "axis_name=('d',)" in str(e), str(e)
    else:
        raise AssertionError("a sharded leaf without axis_name was not refused")

    unchecked = jax.shard_map(
        one_step(gradchain.scale_by_trust_ratio(axis_name="d")), mesh=mesh,
        in_specs=(specs, specs), out_specs=specs, check_vma=False,
    )
    try:
        unchecked(place(host), place(grads))
    except gradchain.GradchainError as e:
        assert "check_vma=True" in str(e)
    else:
        raise AssertionError("check_vma=False was not refused")
    print("ok")
    """
)


def test_trust_ratio_under_shard_map_equals_single_device():
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4")
    result = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
