"""Properties over random pytrees (hypothesis): nested dicts, lists and tuples, None leaves,
scalars and 0-size arrays, leaves in float32, bfloat16 and float16, random hyperparameters.

What holds, for every named optimizer unless said otherwise:
- jit equals eager (to a few ulps of each leaf's dtype: XLA fuses the jitted step);
- updates have the params' tree, shapes and dtypes; apply_updates keeps the params' dtypes;
- the state's dtypes after any number of steps are init's;
- a zero gradient with zero weight decay leaves the params unchanged;
- ``memory_report(opt, params).total_bytes`` equals the bytes of ``opt.init(params)``;
- ``chain()`` is the identity: no state, updates returned as given;
- chaining is associative *exactly*: ``chain(a, chain(b, c))``, ``chain(chain(a, b), c)`` and
  ``chain(a, b, c)`` have the same members, the same state and bit-identical updates,
  because nested gradchain chains are flattened at construction. (A nested ``optax.chain``
  is one opaque member: it is not flattened, and reads the gradient it is given.)

Examples are derandomized (the same every run) and few, so the file runs in well under a
minute.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradchain
from tests.conftest import half_square, with_objective

NAMED = sorted(gradchain.optimizers.__all__)
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]
SHAPES = [(), (0,), (3,), (2, 3), (2, 0), (1, 4)]


def examples(n):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class Leaf:
    """A leaf to be built: shape and dtype (a plain class, so it is not itself a pytree)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


leaves = st.builds(Leaf, st.sampled_from(SHAPES), st.sampled_from(DTYPES))
specs = st.recursive(
    st.one_of(leaves, leaves, st.none()),
    lambda inner: st.one_of(
        st.dictionaries(st.sampled_from(["w", "b", "emb", "k"]), inner, min_size=1, max_size=3),
        st.lists(inner, min_size=1, max_size=3),
        st.tuples(inner, inner),
    ),
    max_leaves=6,
).filter(lambda s: s is not None)  # a tree that is only None cannot be told from "no params"


def build(spec, rng, scale=1.0):
    """The pytree a spec describes, with normal(0, scale) values."""
    if isinstance(spec, Leaf):
        return jnp.asarray(scale * rng.normal(size=spec.shape), jnp.float32).astype(spec.dtype)
    if isinstance(spec, dict):
        return {k: build(v, rng, scale) for k, v in spec.items()}
    if isinstance(spec, list):
        return [build(v, rng, scale) for v in spec]
    if isinstance(spec, tuple):
        return tuple(build(v, rng, scale) for v in spec)
    return None


def like(tree, rng, dtype=None):
    """A random tree shaped like ``tree`` (gradients), in ``dtype`` or the leaves' own."""
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32).astype(dtype or p.dtype),
        tree,
    )


def hyperparameters(draw_float, fn):
    """Random learning rate, and random betas/decays where the optimizer has them."""
    names = inspect.signature(fn).parameters
    rate = "learning_rate" if "learning_rate" in names else "max_learning_rate"  # polyak_sgd
    kwargs = {rate: draw_float(1e-4, 0.5)}
    for p in names.values():
        if p.name in ("b1", "b2", "decay", "momentum", "beta") and isinstance(p.default, float):
            kwargs[p.name] = draw_float(0.0, 0.99)
    return kwargs


def flat(params):
    """An objective with zero value and zero gradient everywhere (for the zero-gradient law)."""
    return 0.0 * half_square(params)


# Optimizers that move the params at a zero gradient by design, and why; the law below checks
# that they do move, so the exemption cannot outlive the reason.
MOVES_AT_ZERO_GRADIENT = {
    "fromage": "its step shrinks the params by 1 / sqrt(1 + lr**2) whatever the gradient",
    "noisy_sgd": "it adds Gaussian noise to every update, the gradient's or not",
}


@st.composite
def optimizers(draw, names=NAMED):
    name = draw(st.sampled_from(names))
    fn = getattr(gradchain, name)

    def draw_float(lo, hi):
        return draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))

    kwargs = hyperparameters(draw_float, fn)
    return name, with_objective(name, fn(**kwargs))


def dtype_tree(tree):
    return jax.tree.map(lambda x: jnp.dtype(x.dtype), tree)


def shape_dtype_tree(tree):
    return jax.tree.map(lambda x: (tuple(x.shape), jnp.dtype(x.dtype)), tree)


def is_none(x):
    return x is None


def structure(tree):
    return jax.tree.structure(tree, is_leaf=is_none)


# --- the named optimizers ----------------------------------------------------------------


@examples(6)
@given(optimizers(), specs, st.integers(0, 2**31 - 1))
def test_jit_equals_eager(named, spec, seed):
    _, opt = named
    rng = np.random.default_rng(seed)
    params = build(spec, rng)
    grads = [like(params, rng) for _ in range(2)]

    def run(update):
        state, p = opt.init(params), params
        for g in grads:
            u, state = update(g, state, p)
            p = gradchain.apply_updates(p, u)
        return p, state

    got, want = run(jax.jit(opt.update)), run(opt.update)
    assert structure(got) == structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype and a.shape == b.shape
        tol = 4 * float(jnp.finfo(a.dtype).eps) if jnp.issubdtype(a.dtype, jnp.floating) else 0
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol
        )


@examples(40)
@given(optimizers(), specs, st.sampled_from([None, *DTYPES]), st.integers(0, 2**31 - 1))
def test_updates_keep_tree_shapes_dtypes_and_the_state_keeps_its_dtypes(
    named, spec, grad_dtype, seed
):
    # Traced with eval_shape: the same trace jit compiles, without compiling it.
    _, opt = named
    params = build(spec, np.random.default_rng(seed))
    grads = like(params, np.random.default_rng(seed + 1), grad_dtype)
    state = jax.eval_shape(opt.init, params)
    want_state = dtype_tree(state)
    for _ in range(2):  # the state an update returns is the next update's input
        updates, state = jax.eval_shape(opt.update, grads, state, params)
        assert dtype_tree(state) == want_state
    assert structure(updates) == structure(grads)
    assert shape_dtype_tree(updates) == shape_dtype_tree(grads)
    new_params = jax.eval_shape(gradchain.apply_updates, params, updates)
    assert structure(new_params) == structure(params)
    assert shape_dtype_tree(new_params) == shape_dtype_tree(params)


def without_weight_decay(name):
    fn = getattr(gradchain, name)
    zero = {
        p.name: 0.0
        for p in inspect.signature(fn).parameters.values()
        if "weight_decay" in p.name and isinstance(p.default, (int, float))
    }
    return fn(0.1, **zero)


@pytest.mark.parametrize("name", NAMED)
@examples(3)
@given(spec=specs, seed=st.integers(0, 2**31 - 1))
def test_zero_gradient_without_weight_decay_leaves_params_unchanged(name, spec, seed):
    opt = with_objective(name, without_weight_decay(name), objective=flat)
    params = build(spec, np.random.default_rng(seed))
    state = opt.init(params)
    zeros = jax.tree.map(jnp.zeros_like, params)
    p = params
    for _ in range(2):
        updates, state = opt.update(zeros, state, p)
        p = gradchain.apply_updates(p, updates)
    moved = []
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(params)):
        assert a.dtype == b.dtype
        moved.append(not np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32)))
    if name not in MOVES_AT_ZERO_GRADIENT:
        assert not any(moved)
    elif any(np.size(x) and np.any(np.asarray(x, np.float32)) for x in jax.tree.leaves(params)):
        assert any(moved), f"{name} no longer moves at a zero gradient: drop its exemption"


@pytest.mark.parametrize("name", NAMED)
@examples(3)
@given(spec=specs, seed=st.integers(0, 2**31 - 1))
def test_memory_report_bytes_equal_the_real_state_bytes(name, spec, seed):
    opt = getattr(gradchain, name)(0.1)
    params = build(spec, np.random.default_rng(seed))
    real = sum(x.nbytes for x in jax.tree.leaves(opt.init(params)))
    assert gradchain.memory_report(opt, params).total_bytes == real


# --- chain ---------------------------------------------------------------------------------


@examples(10)
@given(specs, st.integers(0, 2**31 - 1))
def test_empty_chain_is_the_identity(spec, seed):
    params = build(spec, np.random.default_rng(seed))
    grads = like(params, np.random.default_rng(seed + 1))
    opt = gradchain.chain()
    state = opt.init(params)
    assert state == ()
    updates, new_state = opt.update(grads, state, params)
    assert new_state == ()
    assert structure(updates) == structure(grads)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
        assert a is b


def pool(draw):
    """A random member: pre-processing, moments, and the learning rate, random settings."""
    f = lambda lo, hi: draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))  # noqa: E731
    makers = [
        lambda: gradchain.clip_by_global_norm(f(0.1, 2.0)),
        lambda: gradchain.clip(f(0.1, 2.0)),
        lambda: gradchain.add_decayed_weights(f(0.0, 0.1)),
        lambda: gradchain.scale(f(-2.0, 2.0)),
        lambda: gradchain.scale_by_momentum(f(0.0, 0.99), ema=draw(st.booleans())),
        lambda: gradchain.bias_correct(f(0.0, 0.99)),
        lambda: gradchain.scale_by_rms(f(0.0, 0.99), f(1e-8, 1e-3), bias_correction=True),
        lambda: gradchain.scale_by_sign(),
        lambda: gradchain.scale_by_learning_rate(f(1e-3, 0.5)),
        lambda: gradchain.adam(f(1e-3, 0.5)),  # itself a chain: flattened when nested
    ]
    return makers[draw(st.integers(0, len(makers) - 1))]()


@st.composite
def three_members(draw):
    return pool(draw), pool(draw), pool(draw)


@examples(12)
@given(three_members(), specs, st.integers(0, 2**31 - 1))
def test_chaining_is_associative_exactly(members, spec, seed):
    a, b, c = members
    rng = np.random.default_rng(seed)
    params = build(spec, rng)
    grads = [like(params, rng) for _ in range(2)]
    left, right, flat = (
        gradchain.chain(gradchain.chain(a, b), c),
        gradchain.chain(a, gradchain.chain(b, c)),
        gradchain.chain(a, b, c),
    )
    assert left.members == right.members == flat.members

    def run(opt):
        state, out = opt.init(params), []
        for g in grads:
            u, state = opt.update(g, state, params)
            out.append(u)
        return out, state

    results = [run(opt) for opt in (left, right, flat)]
    for other in results[1:]:
        assert structure(other) == structure(results[0])
        for x, y in zip(jax.tree.leaves(other), jax.tree.leaves(results[0])):
            assert x.dtype == y.dtype
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes()  # bit for bit
