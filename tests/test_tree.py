"""gradchain.tree against optax.tree: the utilities added for Optax's own tests (issue 24).
Exact equality where the computation is the same leaf by leaf; measured tolerances otherwise."""

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain
import gradchain as gc
from tests.conftest import reference_promotion


def _tree(dtype):
    return {
        "w": jnp.linspace(-1.0, 2.0, 6, dtype=dtype).reshape(2, 3),
        "b": jnp.arange(3, dtype=dtype),
    }


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "rmsprop"])
def test_map_params_replaces_the_params_shaped_slots_like_optax(name, dtype):
    params = _tree(dtype)
    ours, theirs = {
        "adam": (gc.adam(1e-3), optax.adam(1e-3)),
        "sgd_momentum": (gc.sgd(0.1, momentum=0.9), optax.sgd(0.1, momentum=0.9)),
        "rmsprop": (gc.rmsprop(1e-3), optax.rmsprop(1e-3)),
    }[name]
    mapped = gc.tree.map_params(
        ours, lambda p: "P", ours.init(params), transform_non_params=lambda _: "-"
    )
    with reference_promotion():
        expect = optax.tree.map_params(
            theirs, lambda p: "P", theirs.init(params), transform_non_params=lambda _: "-"
        )
    # the same number of params-shaped leaves (a velocity, or two moments) in both states
    count = lambda t: sum(1 for x in jax.tree.leaves(t) if x == "P")  # noqa: E731
    assert count(mapped) == count(expect) and count(mapped) > 0
    assert all(x in ("P", "-") for x in jax.tree.leaves(mapped))


def test_map_params_passes_the_extra_trees_leaf_by_leaf():
    params = _tree(jnp.float32)
    specs = jax.tree.map(lambda x: x.shape, params, is_leaf=lambda x: hasattr(x, "shape"))
    opt = gc.adam(1e-3)
    out = gc.tree.map_params(opt, lambda p, s: s, opt.init(params), specs)
    assert gc.tree.get(out, "mu") == specs and gc.tree.get(out, "nu") == specs


def test_map_params_takes_an_init_function_like_optax():
    opt = gc.sgd(0.1, momentum=0.9)
    state = opt.init(_tree(jnp.float32))
    out = gc.tree.map_params(opt.init, jnp.zeros_like, state)
    assert float(gc.tree.norm(gc.tree.get(out, "mu"))) == 0.0


@pytest.mark.parametrize("handler", [None, "promote", "highest", "lowest"])
def test_dtype_matches_optax(handler):
    trees = [
        {"a": jnp.ones(2, jnp.float32), "b": jnp.ones(1, jnp.float32)},
        {"a": jnp.ones(2, jnp.float16), "b": jnp.ones(1, jnp.float32)},
        {"a": jnp.ones(2, jnp.bfloat16), "b": jnp.ones(1, jnp.float32)},
        {},
    ]
    for tree in trees:
        try:
            expect = optax.tree.dtype(tree, handler)
        except ValueError:
            with pytest.raises(ValueError):
                gc.tree.dtype(tree, handler)
            continue
        assert gc.tree.dtype(tree, handler) == expect


def test_dtype_refuses_an_unknown_handler_naming_it():
    with pytest.raises(ValueError, match="mixed_dtype_handler"):
        gc.tree.dtype({"a": jnp.ones(1)}, "widest")


def test_allclose_matches_optax(dtype):
    a = _tree(dtype)
    for b in (a, jax.tree.map(lambda x: x + 1e-3, a), jax.tree.map(lambda x: x * (1 + 1e-7), a)):
        assert bool(gc.tree.allclose(a, b)) == bool(optax.tree.allclose(a, b))
        assert bool(gc.tree.allclose(a, b, atol=1e-2)) == bool(optax.tree.allclose(a, b, atol=1e-2))
    nan = {"x": jnp.array([jnp.nan, 1.0], dtype)}
    assert bool(gc.tree.allclose(nan, nan)) is False
    assert bool(gc.tree.allclose(nan, nan, equal_nan=True)) is True


def test_random_like_and_split_key_like_equal_optax_bit_for_bit(dtype):
    key = jax.random.PRNGKey(3)
    tree = _tree(dtype)
    for sampler in (jax.random.normal, jax.random.uniform):
        ours = gc.tree.random_like(key, tree, sampler)
        theirs = optax.tree.random_like(key, tree, sampler)
        assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), ours, theirs))
        assert jax.tree.map(lambda x: x.dtype, ours) == jax.tree.map(lambda x: x.dtype, tree)
    keys = gc.tree.split_key_like(key, tree)
    expect = optax.tree.split_key_like(key, tree)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.array_equal(x, y)), keys, expect))


def test_random_like_dtype_argument_and_sampler_without_sharding():
    def sampler(key, shape, dtype):  # no out_sharding parameter
        return jax.random.bernoulli(key, 0.5, shape).astype(dtype)

    out = gc.tree.random_like(jax.random.PRNGKey(0), _tree(jnp.float32), sampler, jnp.int32)
    assert {x.dtype for x in jax.tree.leaves(out)} == {jnp.dtype(jnp.int32)}


def test_unwrap_random_key_data_matches_optax():
    tree = {"k": jax.random.key(0), "x": jnp.ones(2)}
    ours, theirs = gc.tree.unwrap_random_key_data(tree), optax.tree.unwrap_random_key_data(tree)
    assert ours["k"].dtype == theirs["k"].dtype == jnp.uint32
    assert bool(jnp.array_equal(ours["k"], theirs["k"])) and ours["x"] is tree["x"]


def test_sum_associative_reduction_matches_optax(dtype):
    tree = {str(i): jnp.full((i + 1,), 0.1 * (i + 1), dtype) for i in range(9)}
    ours = gc.tree.sum(tree, associative_reduction=True)
    theirs = optax.tree.sum(tree, associative_reduction=True)
    # the same balanced order of additions: measured difference 0.0 (float32 and float64)
    assert float(ours) == float(theirs)
    assert float(jnp.abs(ours - gc.tree.sum(tree))) <= 1e-5  # order of additions only


def test_get_refuses_a_key_found_twice_naming_it():
    state = {"a": {"count": jnp.ones(())}, "b": {"count": jnp.zeros(())}}
    with pytest.raises(KeyError, match="count"):
        gc.tree.get(state, "count")
    with pytest.raises(KeyError):
        optax.tree.get(state, "count")


def test_update_moments_keep_none_subtrees_like_optax(dtype):
    u = {"a": None, "b": jnp.array([1.0, -2.0], dtype)}
    m = {"a": None, "b": jnp.array([0.5, 0.5], dtype)}
    for ours, theirs in [
        (gc.tree.update_moment, functools.partial(optax.tree.update_moment, order=2)),
        (
            gc.tree.update_moment_per_elem_norm,
            functools.partial(optax.tree.update_moment_per_elem_norm, order=2),
        ),
    ]:
        got, want = ours(u, m, 0.9, order=2), theirs(u, m, 0.9)
        assert got["a"] is None and want["a"] is None
        assert bool(jnp.allclose(got["b"], want["b"], rtol=0, atol=0))  # measured: identical
    got = gc.tree.update_infinity_moment(u, m, 0.9, 1e-8)
    want = optax.tree.update_infinity_moment(u, m, 0.9, 1e-8)
    assert got["a"] is None and bool(jnp.array_equal(got["b"], want["b"]))


def test_map_params_sees_through_masked_and_partition_like_optax():
    params = {"a": jnp.ones(3), "b": jnp.zeros(2)}
    mask = {"a": True, "b": False}
    ours = gc.masked(gc.sgd(1.0, momentum=0.5), mask)
    theirs = optax.masked(optax.sgd(1.0, momentum=0.5), mask)
    got = gc.tree.map_params(ours, lambda x: x + 1, ours.init(params))
    want = optax.tree.map_params(theirs, lambda x: x + 1, theirs.init(params))
    assert (
        gc.tree.get(got, "mu")["a"].tolist() == want.inner_state[0].trace["a"].tolist() == [1.0] * 3
    )
    assert isinstance(gc.tree.get(got, "mu")["b"], gc.MaskedNode)
    groups = gc.partition({"x": gc.adam(0.1), "y": gc.sgd(0.1, momentum=0.9)}, {"a": "x", "b": "y"})
    out = gc.tree.map_params(groups, lambda x: x + 2, groups.init(params))
    assert out.groups["y"].inner[0].mu["b"].tolist() == [2.0, 2.0]


def test_tree_utilities_equal_optax_and_find_slots(x64):
    x = {"a": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([[0.5, 4.0]])}
    y = jax.tree.map(lambda v: v * 0.5 - 1, x)
    tu = optax.tree_utils
    for ours, theirs in [
        (gradchain.tree_add(x, y, x), tu.tree_add(x, y, x)),
        (gradchain.tree_sub(x, y), tu.tree_sub(x, y)),
        (gradchain.tree_scale(2.0, x), tu.tree_scale(2.0, x)),
        (gradchain.tree_vdot(x, y), tu.tree_vdot(x, y)),
        (gradchain.tree_sum(x), tu.tree_sum(x)),
        (gradchain.tree_norm(x), tu.tree_norm(x)),
        (gradchain.tree_l2_norm(x, squared=True), tu.tree_norm(x, squared=True)),
        (gradchain.tree_norm(x, ord=1), tu.tree_norm(x, ord=1)),
        (gradchain.tree_norm(x, ord=jnp.inf), tu.tree_norm(x, ord=jnp.inf)),
        (gradchain.tree_max(x), tu.tree_max(x)),
        (gradchain.tree_zeros_like(x), tu.tree_zeros_like(x)),
        (gradchain.tree_ones_like(x), tu.tree_ones_like(x)),
        (gradchain.tree.add_scale(x, 3.0, y), tu.tree_add_scale(x, 3.0, y)),
        (gradchain.tree_utils.tree_bias_correction(x, 0.9, 3), tu.tree_bias_correction(x, 0.9, 3)),
    ]:
        assert jax.tree.all(
            jax.tree.map(lambda a, b: bool(jnp.allclose(a, b, rtol=1e-15)), ours, theirs)
        )
    params = {"w": jnp.zeros(3)}
    # Optax's own state: the same answer as optax.tree_utils.tree_get
    ostate = optax.adam(0.1).init(params)
    assert int(gradchain.tree_get(ostate, "count")) == int(tu.tree_get(ostate, "count"))
    assert type(gradchain.tree_get(ostate, "ScaleByAdamState")).__name__ == "ScaleByAdamState"
    # gradchain's: named slots and hyperparameters, and slot paths where a name repeats
    state = gradchain.adam(0.1).init(params)
    assert float(gradchain.tree_get(state, "learning_rate")) == pytest.approx(0.1)
    assert gradchain.tree_get(state, "mu")["w"].shape == (3,)
    with pytest.raises(KeyError, match="BiasCorrectState.count, RmsState.count"):
        gradchain.tree_get(state, "count")
    assert gradchain.tree_get(state, "nothing", default="absent") == "absent"
    state = gradchain.tree_set(state, learning_rate=0.5, **{"RmsState.count": 7})
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == 0.5
    assert int(gradchain.tree_get(state, "RmsState.count")) == 7
    assert gradchain.tree_get(state, "learning_rate").dtype == jnp.float64  # the stored dtype kept
    with pytest.raises(KeyError, match="no value"):
        gradchain.tree_set(state, missing=1.0)


@pytest.mark.parametrize("shape", [(), (4,), (2, 1)])
def test_batch_shape_matches_optax(shape, dtype):
    tree = {**_tree(dtype), "s": jnp.asarray(3.0, dtype)}
    got = gc.tree.batch_shape(tree, shape)
    want = optax.tree.batch_shape(tree, shape)
    assert gc.tree_batch_shape is gc.tree.batch_shape
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.shape == b.shape and a.dtype == b.dtype and bool(jnp.all(a == b))  # exact
