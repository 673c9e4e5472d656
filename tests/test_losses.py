"""gradchain.losses against Optax's functions of the same name (the independent reference), in
float32 and float64: values and gradients over a few shapes, axes and ``where`` masks, extreme
logits, the shape and dtype checks, and the dtypes kept."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain

DTYPES = ("float32", "float64")

# Measured (max over every case below, extreme logits included, of |ours - Optax's| /
# (1 + |Optax's|)): values 0 (bit for bit) in both dtypes; gradients 3.7e-8 in float32,
# 1.1e-16 in float64 (a different but equivalent order of the same operations). Set ~4x.
TOL = {"float32": 1.5e-7, "float64": 5e-16}


@pytest.fixture(params=DTYPES)
def dtype(request):
    with jax.enable_x64(request.param == "float64"):
        yield jnp.dtype(request.param)


def _normal(seed, shape, dtype, scale=1.0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, dtype)


def _probs(seed, shape, dtype, axis=-1):
    return jax.nn.softmax(_normal(seed, shape, dtype, 2.0), axis=axis)


def _mask(seed, shape):
    mask = np.random.default_rng(seed).random(shape) < 0.7
    mask.reshape(-1, shape[-1])[:, 0] = True  # at least one entry kept per example
    return jnp.asarray(mask)


# name -> cases: each builds (args, kwargs, the positions of the float args to differentiate)
def _regression(name, **kw):
    return [
        lambda d: ((_normal(0, (5,), d), _normal(1, (5,), d, 2.0)), kw, (0, 1)),
        lambda d: ((_normal(2, (3, 4), d, 3.0), _normal(3, (3, 4), d)), kw, (0, 1)),
        lambda d: ((_normal(4, (2, 3), d, 2.0),), kw, (0,)),  # targets None: zeros
    ]


def _cosine(name):
    return [
        lambda d: ((_normal(0, (3, 4), d), _normal(1, (3, 4), d)), {}, (0, 1)),
        lambda d: ((_normal(2, (3, 4), d), _normal(3, (4,), d)), {"axis": -1}, (0, 1)),
        lambda d: ((_normal(4, (2, 3, 4), d), _normal(5, (2, 3, 4), d)), {"axis": 0}, (0, 1)),
        lambda d: ((_normal(6, (2, 3, 4), d), _normal(7, (2, 3, 4), d)), {"axis": (1, 2)}, (0, 1)),
        lambda d: (
            (_normal(8, (3, 5), d), _normal(9, (3, 5), d)),
            {"where": _mask(0, (3, 5)), "epsilon": 1e-3},
            (0, 1),
        ),
        lambda d: (
            (_normal(10, (2, 4), d, 1e-3), _normal(11, (2, 4), d)),
            {"epsilon": 1e-4},
            (0, 1),
        ),
    ]


def _soft_ce(extra=None):
    extra = extra or {}
    return [
        lambda d: ((_normal(0, (4, 5), d, 2.0), _probs(1, (4, 5), d)), dict(extra), (0, 1)),
        lambda d: (
            (_normal(2, (4, 5), d, 2.0), _probs(3, (4, 5), d, axis=0)),
            {"axis": 0, **extra},
            (0, 1),
        ),
        lambda d: ((_normal(4, (2, 3, 5), d), _probs(5, (5,), d)), dict(extra), (0, 1)),
        lambda d: (
            (_normal(6, (4, 5), d), jax.nn.one_hot(jnp.arange(4) % 5, 5, dtype=d)),
            {"where": _mask(1, (4, 5)), **extra},
            (0,),
        ),
        lambda d: (
            (_normal(7, (4, 5), d), _probs(8, (4, 5), d)),
            {"where": jnp.asarray([True, False, True, True]), **extra},  # per example
            (0, 1),
        ),
    ]


CASES = {
    "squared_error": _regression("squared_error"),
    "l2_loss": _regression("l2_loss"),
    "huber_loss": _regression("huber_loss") + _regression("huber_loss", delta=0.5),
    "log_cosh": _regression("log_cosh"),
    "cosine_similarity": _cosine("cosine_similarity"),
    "cosine_distance": _cosine("cosine_distance"),
    "softmax_cross_entropy": _soft_ce(),
    # Optax's poly loss takes no per-example where (its softmax does not broadcast it)
    "poly_loss_cross_entropy": _soft_ce()[:4] + _soft_ce({"epsilon": -1.0})[:4],
    "softmax_cross_entropy_with_integer_labels": [
        lambda d: ((_normal(0, (4, 5), d, 2.0), jnp.asarray([0, 4, 2, 2])), {}, (0,)),
        lambda d: ((_normal(1, (4, 5), d, 2.0), jnp.asarray([3, 0, 1, 2, 1])), {"axis": 0}, (0,)),
        lambda d: (
            (_normal(2, (2, 3, 4), d), jnp.asarray([5, 11])),
            {"axis": (1, 2)},
            (0,),
        ),
        lambda d: ((_normal(3, (2, 3, 4), d), jnp.asarray([1, 2, 0])), {"axis": (2, 0)}, (0,)),
        lambda d: (
            (_normal(4, (4, 5), d), jnp.asarray([0, 1, 2, 3])),
            {"where": _mask(2, (4, 5)).at[:, :4].set(True)},
            (0,),
        ),
        lambda d: (
            (_normal(5, (4, 5), d), jnp.asarray([0, 1, 2, 3])),
            {"where": jnp.asarray([True, False, True, True])},
            (0,),
        ),
    ],
    "safe_softmax_cross_entropy": [
        lambda d: ((_normal(0, (4, 5), d, 2.0), _probs(1, (4, 5), d)), {}, (0, 1)),
        lambda d: (
            (
                _normal(2, (3, 4), d).at[:, 1].set(-jnp.inf),
                jax.nn.one_hot(jnp.asarray([0, 2, 3]), 4, dtype=d),
            ),
            {},
            (0,),  # the -inf logits under zero labels: the label gradient is inf in Optax
        ),
    ],
    "sigmoid_binary_cross_entropy": [
        lambda d: (
            (_normal(0, (4, 3), d, 3.0), jnp.asarray(np.arange(12).reshape(4, 3) % 2)),
            {},
            (0,),
        ),
        lambda d: ((_normal(1, (4, 3), d, 3.0), _probs(2, (4, 3), d)), {}, (0, 1)),
        lambda d: ((_normal(3, (4, 3), d), _probs(4, (3,), d)), {}, (0, 1)),
    ],
    "sigmoid_focal_loss": [
        lambda d: (
            (_normal(0, (4, 3), d, 3.0), jnp.asarray(np.arange(12).reshape(4, 3) % 2)),
            {},
            (0,),
        ),
        lambda d: ((_normal(1, (4, 3), d, 3.0), _probs(2, (4, 3), d)), {"alpha": 0.25}, (0, 1)),
        lambda d: (
            (_normal(3, (6,), d, 2.0), jnp.asarray([0, 1, 1, 0, 1, 0])),
            {"gamma": 0.5},
            (0,),
        ),
        lambda d: (
            (_normal(4, (6,), d, 2.0), jnp.asarray([0, 1, 1, 0, 1, 0])),
            {"alpha": 0.75, "gamma": 0.0},
            (0,),
        ),
    ],
    "hinge_loss": [
        lambda d: ((_normal(0, (8,), d), jnp.asarray([1, -1, 1, 1, -1, -1, 1, -1], d)), {}, (0,)),
        lambda d: ((_normal(1, (2, 4), d, 2.0), jnp.asarray([1, -1, -1, 1], d)), {}, (0,)),
    ],
    "kl_divergence": [
        lambda d: ((jnp.log(_probs(0, (4, 5), d)), _probs(1, (4, 5), d)), {}, (0, 1)),
        lambda d: (
            (jnp.log(_probs(2, (4, 5), d)), _probs(3, (4, 5), d).at[:, 2].set(0.0)),
            {},
            (0,),  # a zero target: Optax's target gradient is nan there, ours finite
        ),
        lambda d: (
            (jnp.log(_probs(4, (4, 5), d, 0)), _probs(5, (4, 5), d, 0)),
            {"axis": 0},
            (0, 1),
        ),
        lambda d: (
            (jnp.log(_probs(6, (4, 5), d)), _probs(7, (4, 5), d)),
            {"where": _mask(3, (4, 5))},
            (0, 1),
        ),
    ],
    "kl_divergence_with_log_targets": [
        lambda d: ((jnp.log(_probs(0, (4, 5), d)), jnp.log(_probs(1, (4, 5), d))), {}, (0, 1)),
        lambda d: (
            (jnp.log(_probs(2, (2, 3, 4), d, 1)), jnp.log(_probs(3, (2, 3, 4), d, 1))),
            {"axis": 1},
            (0, 1),
        ),
        lambda d: (
            (jnp.log(_probs(4, (4, 5), d)), jnp.log(_probs(5, (4, 5), d))),
            {"where": _mask(4, (4, 5))},
            (0, 1),
        ),
    ],
    "generalized_kl_divergence": [
        lambda d: ((_normal(0, (4, 5), d), jnp.exp(_normal(1, (4, 5), d))), {}, (0, 1)),
        lambda d: ((_normal(2, (4, 5), d), jnp.exp(_normal(3, (4, 5), d))), {"axis": 0}, (0, 1)),
        lambda d: (
            (_normal(4, (4, 5), d), jnp.exp(_normal(5, (4, 5), d))),
            {"where": _mask(5, (4, 5))},
            (0, 1),
        ),
    ],
    "smooth_labels": [
        lambda d: ((jax.nn.one_hot(jnp.asarray([0, 3, 1]), 4, dtype=d), 0.1), {}, (0,)),
        lambda d: ((_probs(0, (3, 4), d, 0), 0.3), {"axis": 0}, (0,)),
        lambda d: ((_probs(1, (2, 3, 4), d), 0.2), {"axis": (1, 2)}, (0,)),
        lambda d: (
            (jax.nn.one_hot(jnp.asarray([0, 3, 1]), 4, dtype=d), 0.2),
            {"where": _mask(6, (3, 4))},
            (0,),
        ),
    ],
    "triplet_margin_loss": [
        lambda d: (
            (_normal(0, (4, 3), d), _normal(1, (4, 3), d), _normal(2, (4, 3), d)),
            {},
            (0, 1, 2),
        ),
        lambda d: (
            (_normal(3, (3, 5), d), _normal(4, (3, 5), d), _normal(5, (3, 5), d)),
            {"axis": 0, "margin": 0.5, "norm_degree": 4},
            (0, 1, 2),
        ),
    ],
}
CASES["perceptron_loss"] = CASES["hinge_loss"][:1]
CASES["sparsemax_loss"] = [
    lambda d: (
        (_normal(0, (4, 3), d, 2.0), jnp.asarray(np.arange(12).reshape(4, 3) % 2)),
        {},
        (0,),
    ),
]
for _name in ("multiclass_hinge_loss", "multiclass_perceptron_loss"):
    CASES[_name] = [
        lambda d: ((_normal(0, (4, 5), d, 2.0), jnp.asarray([0, 4, 2, 2])), {}, (0,)),
        lambda d: ((_normal(1, (2, 3, 4), d), jnp.asarray([[0, 3, 1], [2, 2, 0]])), {}, (0,)),
    ]
CASES["convex_kl_divergence"] = CASES["generalized_kl_divergence"]

PARAMS = [(name, i) for name, cases in CASES.items() for i in range(len(cases))]


def _reference(fn):
    """Optax's function, run under JAX's standard promotion (the tests run strict)."""

    def run(*args, **kwargs):
        with jax.numpy_dtype_promotion("standard"):
            return fn(*args, **kwargs)

    return run


def _both(name, case, dtype):
    args, kwargs, argnums = CASES[name][case](dtype)
    ours, theirs = getattr(gradchain, name), _reference(getattr(optax.losses, name))
    return ours, theirs, args, kwargs, argnums


def _close(ours, theirs, dtype):
    tol = TOL[dtype.name]
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.filterwarnings("ignore:.*convex_kl_divergence.*:DeprecationWarning")
@pytest.mark.parametrize("name, case", PARAMS)
def test_values_match_optax(name, case, dtype):
    ours, theirs, args, kwargs, _ = _both(name, case, dtype)
    got, want = ours(*args, **kwargs), theirs(*args, **kwargs)
    assert np.all(np.isfinite(want))
    _close(got, want, dtype)
    assert got.dtype == dtype


@pytest.mark.filterwarnings("ignore:.*convex_kl_divergence.*:DeprecationWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_loss_runs_under_jit(name):
    ours, theirs, args, kwargs, _ = _both(name, -1, jnp.dtype("float32"))
    _close(
        jax.jit(lambda *a: ours(*a, **kwargs))(*args), theirs(*args, **kwargs), jnp.dtype("float32")
    )


@pytest.mark.filterwarnings("ignore:.*convex_kl_divergence.*:DeprecationWarning")
@pytest.mark.parametrize("name, case", PARAMS)
def test_gradients_match_optax(name, case, dtype):
    ours, theirs, args, kwargs, argnums = _both(name, case, dtype)

    def total(fn):
        return jax.grad(lambda *a: jnp.sum(fn(*a, **kwargs)), argnums=argnums)(*args)

    for got, want in zip(total(ours), total(theirs), strict=True):
        # Optax's label gradient is nan at masked classes (softmax_cross_entropy, poly loss)
        # and at zero KL targets; ours is finite everywhere, and Optax's elsewhere
        assert np.all(np.isfinite(got))
        finite = np.isfinite(want)
        assert finite.mean() > 0.5
        _close(np.where(finite, got, 0), np.where(finite, want, 0), dtype)


# --- extreme logits ------------------------------------------------------------------------

MAGNITUDES = (30.0, 1e3, 1e6, 1e30)
CLASSIFICATION = {
    "softmax_cross_entropy": lambda x, y: (x, jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)),
    "safe_softmax_cross_entropy": lambda x, y: (x, jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)),
    "poly_loss_cross_entropy": lambda x, y: (x, jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)),
    "softmax_cross_entropy_with_integer_labels": lambda x, y: (x, y),
    "sigmoid_binary_cross_entropy": lambda x, y: (x, (jnp.arange(x.shape[-1]) == y[:, None])),
    "sigmoid_focal_loss": lambda x, y: (x, (jnp.arange(x.shape[-1]) == y[:, None])),
    "log_cosh": lambda x, y: (x,),
    "huber_loss": lambda x, y: (x,),
}


@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("name", sorted(CLASSIFICATION))
def test_extreme_logits_stay_finite_as_optaxs(name, magnitude, dtype):
    # signs and labels mixed: right and wrong confident predictions, and ties
    logits = jnp.asarray([[1.0, -1.0, 0.5], [-1.0, 1.0, 1.0], [0.0, 0.0, -1.0]], dtype) * magnitude
    args = CLASSIFICATION[name](logits, jnp.asarray([0, 0, 2]))
    ours, theirs = getattr(gradchain, name), _reference(getattr(optax.losses, name))
    got, want = ours(*args), theirs(*args)
    assert np.all(np.isfinite(want)) and np.all(np.isfinite(got))
    # the losses themselves grow like the magnitude: compare relatively
    np.testing.assert_allclose(got, want, rtol=TOL[dtype.name], atol=TOL[dtype.name])
    grad_got = jax.grad(lambda x: jnp.sum(ours(x, *args[1:])))(logits)
    grad_want = jax.grad(lambda x: jnp.sum(theirs(x, *args[1:])))(logits)
    assert np.all(np.isfinite(grad_want)) and np.all(np.isfinite(grad_got))
    np.testing.assert_allclose(grad_got, grad_want, rtol=TOL[dtype.name], atol=TOL[dtype.name])


# --- behaviour of our own ------------------------------------------------------------------


def test_the_gradient_at_a_zero_kl_target_is_finite():
    log_p, targets = jnp.log(jnp.asarray([0.25, 0.75])), jnp.asarray([0.0, 1.0])
    grad = jax.grad(gradchain.kl_divergence, argnums=1)(log_p, targets)
    np.testing.assert_allclose(grad, [-np.log(0.25), 0.0 - np.log(0.75) + 1.0], rtol=1e-6)


def test_safe_cross_entropy_reads_zero_log_zero_as_zero():
    logits, labels = jnp.asarray([-jnp.inf, 0.0, 0.0]), jnp.asarray([0.0, 1.0, 0.0])
    np.testing.assert_allclose(gradchain.safe_softmax_cross_entropy(logits, labels), np.log(2))
    assert np.isnan(gradchain.softmax_cross_entropy(logits, labels))  # as Optax's
    grads = jax.grad(gradchain.safe_softmax_cross_entropy, argnums=(0, 1))(logits, labels)
    np.testing.assert_allclose(grads[0], [0.0, -0.5, 0.5])
    np.testing.assert_allclose(grads[1], [0.0, np.log(2), np.log(2)])  # Optax's first is inf


@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_low_precision_dtypes_are_kept(dt):
    x, y = jnp.asarray([[0.5, -1.0, 2.0]], dt), jnp.asarray([[0.0, 1.0, 0.0]], dt)
    for name in ("l2_loss", "squared_error", "huber_loss", "log_cosh", "cosine_similarity",
                 "softmax_cross_entropy", "safe_softmax_cross_entropy",
                 "sigmoid_binary_cross_entropy", "sigmoid_focal_loss", "hinge_loss",
                 "poly_loss_cross_entropy"):  # fmt: skip
        assert getattr(gradchain, name)(x, y).dtype == dt, name
    assert gradchain.softmax_cross_entropy_with_integer_labels(x, jnp.asarray([1])).dtype == dt
    assert gradchain.smooth_labels(y, 0.1).dtype == dt
    assert gradchain.smooth_labels(y, 0.1, where=jnp.asarray([True, True, False])).dtype == dt
    assert gradchain.kl_divergence(jnp.log(y + 0.5), y + 0.1).dtype == dt


def test_convex_kl_divergence_warns_as_optaxs():
    x = jnp.asarray([0.1, 0.2])
    with pytest.warns(DeprecationWarning, match="generalized_kl_divergence"):
        gradchain.convex_kl_divergence(x, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gradchain.generalized_kl_divergence(x, x)


def test_the_losses_module_is_optaxs_namespace():
    import gradchain.losses
    from gradchain.losses import l2_loss

    assert l2_loss is gradchain.l2_loss and gradchain.losses.huber_loss is gradchain.huber_loss
    for name in gradchain.losses.__all__:
        assert getattr(gradchain, name) is getattr(gradchain.losses, name)


# --- refused input -------------------------------------------------------------------------

REFUSED = [
    # (call, the argument named, a phrase of the message)
    (lambda: gradchain.l2_loss(jnp.zeros((4, 1)), jnp.zeros(4)), "targets", "same shape"),
    (lambda: gradchain.squared_error(jnp.zeros(3), jnp.zeros(4)), "targets", "same shape"),
    (lambda: gradchain.huber_loss(jnp.zeros((4, 1)), jnp.zeros(4)), "targets", "(4, 4)"),
    (lambda: gradchain.log_cosh(jnp.zeros(3), jnp.zeros(4)), "targets", "do not broadcast"),
    (
        lambda: gradchain.sigmoid_binary_cross_entropy(jnp.zeros((8, 1)), jnp.zeros(8)),
        "labels",
        "(8, 8)",
    ),
    (
        lambda: gradchain.softmax_cross_entropy(jnp.zeros((4, 3)), jnp.zeros((4, 1, 3))),
        "labels",
        "(4, 4, 3)",
    ),
    (
        lambda: gradchain.softmax_cross_entropy_with_integer_labels(
            jnp.zeros((4, 3)), jnp.zeros(1, int)
        ),
        "labels",
        "without the class axis",
    ),
    (
        lambda: gradchain.softmax_cross_entropy_with_integer_labels(
            jnp.zeros((4, 3)), jnp.zeros((4, 3), int)
        ),
        "labels",
        "(4,)",
    ),
    (
        lambda: gradchain.softmax_cross_entropy_with_integer_labels(
            jnp.zeros((4, 3)), jnp.zeros(4, int), axis=2
        ),
        "axis",
        "out of range",
    ),
    (lambda: gradchain.kl_divergence(jnp.zeros((2, 1)), jnp.ones(2)), "targets", "(2, 2)"),
    (
        lambda: gradchain.cosine_similarity(jnp.ones((5, 1)), jnp.ones(5)),
        "targets",
        "(5, 5)",
    ),
    (lambda: gradchain.hinge_loss(jnp.ones((3, 1)), jnp.ones(3)), "targets", "(3, 3)"),
    (lambda: gradchain.perceptron_loss(jnp.ones((3, 1)), jnp.ones(3)), "targets", "same shape"),
    (
        lambda: gradchain.multiclass_hinge_loss(jnp.ones((3, 4)), jnp.ones(4, int)),
        "labels",
        "(3,)",
    ),
]


@pytest.mark.parametrize("call, argument, phrase", REFUSED)
def test_mismatched_shapes_are_refused_naming_the_argument(call, argument, phrase):
    with pytest.raises(gradchain.GradchainError, match=argument) as info:
        call()
    assert info.value.argument == argument and phrase in str(info.value)
    assert isinstance(info.value, ValueError)  # as Optax's shape checks


def test_wrong_dtypes_are_refused_as_optax_refuses_them():
    with pytest.raises(gradchain.ArgumentError, match="predictions") as info:
        gradchain.l2_loss(jnp.zeros(3, int))
    assert isinstance(info.value, TypeError)  # Optax raises TypeError
    with pytest.raises(TypeError, match="labels"):
        gradchain.softmax_cross_entropy_with_integer_labels(jnp.zeros((2, 3)), jnp.zeros(2))
    with pytest.raises(TypeError, match="logits"):
        gradchain.softmax_cross_entropy(jnp.zeros((2, 3), int), jnp.zeros((2, 3)))


def test_one_sided_broadcasting_is_accepted_as_optax_accepts_it():
    # one target distribution for every example; one label row for every example
    logits = _normal(0, (4, 3), jnp.float32)
    labels = jnp.asarray([0.2, 0.3, 0.5])
    for name, target in (("softmax_cross_entropy", labels),
                         ("sigmoid_binary_cross_entropy", labels[None])):  # fmt: skip
        want = _reference(getattr(optax, name))(logits, target)
        np.testing.assert_allclose(getattr(gradchain, name)(logits, target), want, rtol=1e-6)


def test_masked_classes_give_their_labels_zero_gradient():
    logits, labels = _normal(0, (2, 3), jnp.float32), _probs(1, (2, 3), jnp.float32)
    where = jnp.asarray([[True, True, False], [True, False, True]])
    grad = jax.grad(lambda y: gradchain.softmax_cross_entropy(logits, y, where=where).sum())
    got = grad(labels)
    assert np.all(got[~where] == 0) and np.all(got[where] > 0)


def test_integer_labels_and_targets_are_read_in_the_floats_dtype():
    # Optax relies on JAX's standard promotion (int * float -> float); gradchain casts, so the
    # losses run under strict promotion too (these tests run strict) with Optax's numbers
    logits = _normal(0, (3, 4), jnp.float32)
    one_hot, signs = jnp.eye(3, 4, dtype=jnp.int32), jnp.asarray([1, -1, 1], jnp.int32)
    cases = [
        ("softmax_cross_entropy", (logits, one_hot)),
        ("safe_softmax_cross_entropy", (logits, one_hot)),
        ("sigmoid_binary_cross_entropy", (logits, one_hot)),
        ("sigmoid_focal_loss", (logits, one_hot)),
        ("hinge_loss", (logits[:, 0], signs)),
        ("perceptron_loss", (logits[:, 0], signs)),
        ("l2_loss", (logits, one_hot)),
        ("huber_loss", (logits, one_hot)),
        ("log_cosh", (logits, one_hot)),
    ]
    for name, args in cases:
        got = getattr(gradchain, name)(*args)
        want = _reference(getattr(optax.losses, name))(*args)
        assert got.dtype == jnp.float32, name
        np.testing.assert_allclose(got, want, rtol=TOL["float32"], atol=TOL["float32"])


@pytest.mark.parametrize("junk", [None, "abc", object(), {"a": 1}])
def test_junk_is_refused_naming_the_argument(junk):
    x = jnp.ones((2, 3))
    for call, argument in [
        (lambda: gradchain.hinge_loss(x, junk), "targets"),
        (lambda: gradchain.softmax_cross_entropy(x, junk), "labels"),
        (lambda: gradchain.multiclass_hinge_loss(junk, jnp.zeros(2, int)), "scores"),
        (lambda: gradchain.l2_loss(junk), "predictions"),
    ]:
        with pytest.raises(TypeError, match=argument):
            call()
