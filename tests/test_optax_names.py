"""Optax's names and keywords in gradchain (issue 16): every alias, building block and keyword
against Optax's function of the same name, 100 steps, float32 and float64. The tolerances
are the measured differences (in the comments), rounded up by about 3x."""

import jax
import jax.numpy as jnp
import optax
import pytest

import gradchain as gc
from tests.conftest import reference_promotion

STEPS = 100


def _problem(dtype):
    params = {"w": jnp.linspace(-1.0, 1.0, 6, dtype=dtype).reshape(2, 3), "b": jnp.ones(2, dtype)}
    noise = jax.random.normal(jax.random.PRNGKey(1), (STEPS, 8), dtype)
    scale = jnp.arange(1, 7, dtype=dtype).reshape(2, 3) / 3

    def grad(p, n):
        return {"w": p["w"] * scale + 0.1 * n[:6].reshape(2, 3), "b": p["b"] - 0.5 + 0.1 * n[6:]}

    return params, noise, grad


def _final_params(opt, dtype, nan_steps=()):
    params, noise, grad = _problem(dtype)
    bad = jnp.zeros(STEPS, bool).at[jnp.asarray(nan_steps, int)].set(True)

    @jax.jit
    def run(params, noise, bad):
        def step(carry, x):
            p, s = carry
            g = jax.tree.map(lambda a: jnp.where(x[1], jnp.nan, a), grad(p, x[0]))
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), (noise, bad))[0]

    with reference_promotion():
        return run(params, noise, bad)


def _gap(ours, theirs, dtype, **kw):
    a, _ = _final_params(ours, dtype, **kw)
    b, _ = _final_params(theirs, dtype, **kw)
    return max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def _lr(transform, optax_module=gc):
    return optax_module.chain(transform, optax_module.scale(-0.01))


# name: (ours, Optax's, float32 tolerance, float64 tolerance)
BLOCKS = {
    # measured 3.2e-06, 6.9e-17
    "scale_by_adam": (lambda: gc.scale_by_adam(), lambda: optax.scale_by_adam(), 1e-05, 3e-16),
    "scale_by_adam_nesterov": (
        lambda: gc.scale_by_adam(0.8, 0.99, 1e-6, 1e-9, nesterov=True),  # positional order
        lambda: optax.scale_by_adam(0.8, 0.99, 1e-6, 1e-9, nesterov=True),
        6e-07,
        2e-16,  # measured 1.8e-07, 5.6e-17
    ),
    # measured 2.5e-06, 1.1e-16
    "scale_by_amsgrad": (
        lambda: gc.scale_by_amsgrad(),
        lambda: optax.scale_by_amsgrad(),
        8e-06,
        4e-16,
    ),
    "scale_by_amsgrad_uncorrected": (
        lambda: gc.scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False),
        lambda: optax.scale_by_amsgrad(bias_correction_mu=False, bias_correction_nu=False),
        3e-06,
        1e-15,  # measured 9.1e-07, 0
    ),
    # measured 1.5e-07, 2.8e-17
    "scale_by_adamax": (
        lambda: gc.scale_by_adamax(),
        lambda: optax.scale_by_adamax(),
        5e-07,
        9e-17,
    ),
    # Optax starts yogi's first moment at 1e-6 too (ours at 0): 3.4e-7 in float64, on purpose.
    # measured 3.5e-06, 4.5e-07
    "scale_by_yogi": (lambda: gc.scale_by_yogi(), lambda: optax.scale_by_yogi(), 2e-05, 2e-06),
    # measured 4.8e-05, 1.1e-16
    "scale_by_radam": (lambda: gc.scale_by_radam(), lambda: optax.scale_by_radam(), 0.0002, 4e-16),
    "scale_by_radam_nesterov": (
        lambda: gc.scale_by_radam(nesterov=True),
        lambda: optax.scale_by_radam(nesterov=True),
        0.0002,
        4e-16,  # measured 4.8e-05, 1.1e-16
    ),
    # measured 1.0e-06, 6.9e-17
    "scale_by_belief": (
        lambda: gc.scale_by_belief(),
        lambda: optax.scale_by_belief(),
        3e-06,
        3e-16,
    ),
    # issue 16: Optax-style positional arguments (b1 first) mean the same thing here.
    "scale_by_belief_positional": (
        lambda: gc.scale_by_belief(0.8, 0.99, 1e-8, 1e-10),
        lambda: optax.scale_by_belief(0.8, 0.99, 1e-8, 1e-10),
        1e-7,
        5e-17,  # measured 3.0e-08, 1.4e-17
    ),
    "scale_by_belief_nesterov": (
        lambda: gc.scale_by_belief(nesterov=True),
        lambda: optax.scale_by_belief(nesterov=True),
        4e-06,
        2e-17,  # measured 1.1e-06, 3.5e-18
    ),
    # measured 3.9e-07, 5.6e-17
    "scale_by_adan": (lambda: gc.scale_by_adan(), lambda: optax.scale_by_adan(), 2e-06, 2e-16),
    "scale_by_novograd": (
        lambda: gc.scale_by_novograd(weight_decay=0.1),
        lambda: optax.scale_by_novograd(weight_decay=0.1),
        3e-08,
        2e-16,  # measured 7.5e-09, 5.6e-17
    ),
    "scale_by_lion": (lambda: gc.scale_by_lion(), lambda: optax.scale_by_lion(), 0.0, 0.0),
    "scale_by_lion_smooth": (
        lambda: gc.scale_by_lion(mode="smooth", smooth_beta=3.0),
        lambda: optax.scale_by_lion(mode="smooth", smooth_beta=3.0),
        6e-07,
        1e-15,  # measured 2.0e-07, 0
    ),
    "scale_by_lion_refined": (
        lambda: gc.scale_by_lion(mode="refined"),
        lambda: optax.scale_by_lion(mode="refined"),
        2e-06,
        1e-15,  # measured 3.9e-07, 0
    ),
    "trace": (lambda: gc.trace(0.9), lambda: optax.trace(0.9), 0.0, 0.0),
    "trace_nesterov": (lambda: gc.trace(0.9, True), lambda: optax.trace(0.9, True), 0.0, 0.0),
    "ema": (lambda: gc.ema(0.9), lambda: optax.ema(0.9), 4e-07, 4e-16),  # measured 1.2e-07, 1.1e-16
    # measured 6.0e-08, 0
    "ema_biased": (lambda: gc.ema(0.9, False), lambda: optax.ema(0.9, False), 2e-07, 1e-15),
    "scale_by_param_block_norm": (
        lambda: gc.scale_by_param_block_norm(),
        lambda: optax.scale_by_param_block_norm(),
        1e-07,
        1e-15,  # measured 0, 0
    ),
    "scale_by_optimistic_gradient": (
        lambda: gc.scale_by_optimistic_gradient(0.5, 0.7),
        lambda: optax.scale_by_optimistic_gradient(0.5, 0.7),
        0.0,
        0.0,
    ),
    "scale_by_schedule": (
        lambda: gc.scale_by_schedule(lambda c: 1 / (1 + c)),
        lambda: optax.scale_by_schedule(lambda c: 1 / (1 + c)),
        0.0,
        0.0,
    ),
    # issue 16, same name other math: eps inside the root by default, as Optax (was 1e-2 apart)
    "scale_by_rms_eps_1e-3": (
        lambda: gc.scale_by_rms(0.9, 1e-3),
        lambda: optax.scale_by_rms(0.9, 1e-3),
        9e-08,
        3e-17,  # measured 3.0e-08, 6.9e-18
    ),
    "scale_by_stddev_eps_1e-3": (
        lambda: gc.scale_by_stddev(0.9, 1e-3),
        lambda: optax.scale_by_stddev(0.9, 1e-3),
        2e-07,
        3e-16,  # measured 3.7e-08, 8.3e-17
    ),
}


@pytest.mark.parametrize("name", BLOCKS)
def test_building_block_equals_optax(name, dtype):
    ours, theirs, tol32, tol64 = BLOCKS[name]
    gap = _gap(_lr(ours()), _lr(theirs(), optax), dtype)
    assert gap <= (tol32 if dtype == jnp.float32 else tol64), gap


def _tree_mask(params):
    return {"w": True, "b": False}


# issue 16, item 2: Optax's keywords on the named optimizers. (ours, Optax's, tol32, tol64)
KEYWORDS = {
    "sgd_accumulator_dtype": (
        lambda: gc.sgd(0.05, 0.9, accumulator_dtype=jnp.float32),
        lambda: optax.sgd(0.05, 0.9, accumulator_dtype=jnp.float32),
        1e-07,
        1e-07,  # measured 0, 3.1e-08
    ),
    "adan_mask": (
        lambda: gc.adan(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.adan(0.01, weight_decay=0.1, mask=_tree_mask),
        2e-06,
        4e-16,  # measured 3.9e-07, 1.1e-16
    ),
    "nadamw_mask": (
        lambda: gc.nadamw(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.nadamw(0.01, weight_decay=0.1, mask=_tree_mask),
        9e-06,
        2e-16,  # measured 2.8e-06, 6.2e-17
    ),
    "nadamw_nesterov_false": (
        lambda: gc.nadamw(0.01, nesterov=False),
        lambda: optax.nadamw(0.01, nesterov=False),
        2e-05,
        4e-16,  # measured 3.4e-06, 1.1e-16
    ),
    "adamaxw_mask": (
        lambda: gc.adamaxw(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.adamaxw(0.01, weight_decay=0.1, mask=_tree_mask),
        3e-07,
        4e-16,  # measured 8.9e-08, 1.1e-16
    ),
    "lamb_mask": (
        lambda: gc.lamb(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.lamb(0.01, weight_decay=0.1, mask=_tree_mask),
        4e-07,
        4e-16,  # measured 1.2e-07, 1.1e-16
    ),
    "ademamix_mask": (
        lambda: gc.ademamix(0.01, weight_decay=0.1, mask=_tree_mask),
        lambda: optax.contrib.ademamix(0.01, weight_decay=0.1, mask=_tree_mask),
        2e-05,
        9e-17,  # measured 5.9e-06, 2.8e-17
    ),
    "nadam_nesterov_false": (
        lambda: gc.nadam(0.01, nesterov=False),
        lambda: optax.nadam(0.01, nesterov=False),
        1e-05,
        3e-16,  # measured 3.2e-06, 6.9e-17
    ),
    "adabelief_nesterov": (
        lambda: gc.adabelief(0.01, nesterov=True),
        lambda: optax.adabelief(0.01, nesterov=True),
        4e-06,
        2e-17,  # measured 1.1e-06, 3.5e-18
    ),
    "amsgrad_bias_correction": (
        lambda: gc.amsgrad(0.01, bias_correction_mu=False, bias_correction_nu=False),
        lambda: optax.amsgrad(0.01, bias_correction_mu=False, bias_correction_nu=False),
        3e-06,
        1e-15,  # measured 9.1e-07, 0
    ),
    "schedule_free_adamw_state_dtype": (
        lambda: gc.schedule_free_adamw(0.01, state_dtype=jnp.float32),
        lambda: optax.contrib.schedule_free_adamw(0.01, state_dtype=jnp.float32),
        9e-06,
        7e-08,  # measured 2.9e-06, 2.2e-08
    ),
    "adafactor_dtype_momentum": (
        lambda: gc.adafactor(0.01, momentum=0.9, dtype_momentum=jnp.float32),
        lambda: optax.adafactor(0.01, momentum=0.9, dtype_momentum=jnp.float32),
        4e-07,
        3e-07,  # measured 1.2e-07, 7.9e-08
    ),
    "masked_inner_keyword": (
        lambda: gc.chain(gc.masked(inner=gc.scale_by_adam(), mask=_tree_mask), gc.scale(-0.01)),
        lambda: optax.chain(
            optax.masked(inner=optax.scale_by_adam(), mask=_tree_mask), optax.scale(-0.01)
        ),
        1e-05,
        1e-15,  # measured 3.2e-06, 0
    ),
    "add_decayed_weights_mask": (
        lambda: gc.chain(gc.add_decayed_weights(0.1, mask=_tree_mask), gc.sgd(0.01)),
        lambda: optax.chain(optax.add_decayed_weights(0.1, mask=_tree_mask), optax.sgd(0.01)),
        1e-07,
        1e-15,  # measured 0, 0
    ),
    "multi_transform": (
        lambda: gc.multi_transform(
            {"x": gc.adam(0.05), "y": gc.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        lambda: optax.multi_transform(
            {"x": optax.adam(0.05), "y": optax.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        3e-06,
        1e-15,  # measured 9.5e-07, 0
    ),
    "partition_param_labels": (
        lambda: gc.partition(
            {"x": gc.adam(0.05), "y": gc.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        lambda: optax.partition(
            {"x": optax.adam(0.05), "y": optax.sgd(0.1)}, param_labels={"w": "x", "b": "y"}
        ),
        3e-06,
        1e-15,  # measured 9.5e-07, 0
    ),
}


@pytest.mark.parametrize("name", KEYWORDS)
def test_optax_keyword_equals_optax(name, dtype):
    ours, theirs, tol32, tol64 = KEYWORDS[name]
    gap = _gap(ours(), theirs(), dtype)
    assert gap <= (tol32 if dtype == jnp.float32 else tol64), gap


@pytest.mark.parametrize(
    "optax_keyword, ours_keyword",
    [
        (
            lambda: gc.signum(0.01, accumulator_dtype=jnp.bfloat16),
            lambda: gc.signum(0.01, mu_dtype=jnp.bfloat16),
        ),
        (
            lambda: gc.adafactor(0.01, momentum=0.9, dtype_momentum=jnp.bfloat16),
            lambda: gc.adafactor(0.01, momentum=0.9, mu_dtype=jnp.bfloat16),
        ),
        (
            lambda: gc.schedule_free_adamw(0.01, state_dtype=jnp.bfloat16),
            lambda: gc.schedule_free_adamw(0.01, z_dtype=jnp.bfloat16),
        ),
        (
            lambda: gc.sgd(0.01, 0.9, accumulator_dtype=jnp.bfloat16),
            lambda: gc.chain(gc.trace(0.9, accumulator_dtype=jnp.bfloat16), gc.scale(-0.01)),
        ),
    ],
    ids=["signum", "adafactor", "schedule_free_adamw", "sgd"],
)
def test_optax_dtype_keyword_is_ours_bit_for_bit(optax_keyword, ours_keyword):
    """A bfloat16 slot: Optax multiplies decay * slot in bfloat16 (sgd: 1.4e-3 apart after 100
    steps, adafactor 4.7e-3), gradchain in float32; the keyword itself is ours exactly."""
    a, _ = _final_params(optax_keyword(), jnp.float32)
    b, _ = _final_params(ours_keyword(), jnp.float32)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool(jnp.all(x == y)), a, b))


def test_signum_refuses_two_dtypes():
    with pytest.raises(gc.GradchainError, match="not both"):
        gc.signum(0.01, mu_dtype=jnp.bfloat16, accumulator_dtype=jnp.float32)


def test_zero_nans_and_apply_if_finite_on_nan_steps(dtype):
    nan_steps = (5, 6, 40)
    gap = _gap(_lr(gc.zero_nans()), _lr(optax.zero_nans(), optax), dtype, nan_steps=nan_steps)
    assert gap == 0.0
    ours = gc.apply_if_finite(gc.adam(0.05), 3)
    theirs = optax.apply_if_finite(optax.adam(0.05), 3)
    a, sa = _final_params(ours, dtype, nan_steps=nan_steps)
    b, sb = _final_params(theirs, dtype, nan_steps=nan_steps)
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert gap <= (3e-6 if dtype == jnp.float32 else 1e-15), gap  # measured 9.9e-7, 2.4e-17
    for field in ("notfinite_count", "last_finite", "total_notfinite"):
        assert int(getattr(sa, field)) == int(getattr(sb, field)), field


@pytest.mark.parametrize(
    "every_k, mean",
    [(3, True), (lambda step: 2 + step % 3, True), (4, False)],
    ids=["3", "schedule", "sum"],
)
def test_multi_steps_equals_optax(every_k, mean, dtype):
    acc_dtype = jnp.float32 if dtype == jnp.float32 else None
    ours = gc.MultiSteps(gc.adam(0.05), every_k, use_grad_mean=mean, accumulator_dtype=acc_dtype)
    theirs = optax.MultiSteps(
        optax.adam(0.05), every_k, use_grad_mean=mean, accumulator_dtype=acc_dtype
    )
    a, sa = _final_params(ours.gradient_transformation(), dtype)
    b, sb = _final_params(theirs.gradient_transformation(), dtype)
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert gap <= (1.5e-5 if dtype == jnp.float32 else 1e-15), gap  # measured <= 4.3e-6, 1.1e-16
    assert int(sa.gradient_step) == int(sb.gradient_step)
    assert bool(ours.has_updated(sa)) == bool(theirs.has_updated(sb))


def test_multi_steps_should_skip_update_fn(x64):
    kw = dict(should_skip_update_fn=optax.skip_not_finite, accumulator_dtype=None)
    ours = gc.MultiSteps(gc.adam(0.05), 3, **kw).gradient_transformation()
    theirs = optax.MultiSteps(optax.adam(0.05), 3, **kw).gradient_transformation()
    a, sa = _final_params(ours, jnp.float64, nan_steps=(5, 6, 40))
    b, sb = _final_params(theirs, jnp.float64, nan_steps=(5, 6, 40))
    gap = max(
        float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )
    assert gap <= 1e-15, gap  # 1.4e-17
    assert int(sa.mini_step) == int(sb.mini_step)


def test_gradient_transformation_extra_args_isinstance():
    assert isinstance(gc.adam(1e-3), gc.GradientTransformationExtraArgs)
    assert isinstance(gc.scale_by_adam(), gc.GradientTransformationExtraArgs)
    built = gc.GradientTransformationExtraArgs(
        lambda p: gc.EmptyState(), lambda u, s, p=None, **e: (u, s)
    )
    assert isinstance(built, gc.GradientTransformation)


def test_tree_utilities_equal_optax_and_find_slots(x64):
    x = {"a": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array([[0.5, 4.0]])}
    y = jax.tree.map(lambda v: v * 0.5 - 1, x)
    tu = optax.tree_utils
    for ours, theirs in [
        (gc.tree_add(x, y, x), tu.tree_add(x, y, x)),
        (gc.tree_sub(x, y), tu.tree_sub(x, y)),
        (gc.tree_scale(2.0, x), tu.tree_scale(2.0, x)),
        (gc.tree_vdot(x, y), tu.tree_vdot(x, y)),
        (gc.tree_sum(x), tu.tree_sum(x)),
        (gc.tree_norm(x), tu.tree_norm(x)),
        (gc.tree_l2_norm(x, squared=True), tu.tree_norm(x, squared=True)),
        (gc.tree_norm(x, ord=1), tu.tree_norm(x, ord=1)),
        (gc.tree_norm(x, ord=jnp.inf), tu.tree_norm(x, ord=jnp.inf)),
        (gc.tree_max(x), tu.tree_max(x)),
        (gc.tree_zeros_like(x), tu.tree_zeros_like(x)),
        (gc.tree_ones_like(x), tu.tree_ones_like(x)),
        (gc.tree.add_scale(x, 3.0, y), tu.tree_add_scale(x, 3.0, y)),
        (gc.tree_utils.tree_bias_correction(x, 0.9, 3), tu.tree_bias_correction(x, 0.9, 3)),
    ]:
        assert jax.tree.all(
            jax.tree.map(lambda a, b: bool(jnp.allclose(a, b, rtol=1e-15)), ours, theirs)
        )
    params = {"w": jnp.zeros(3)}
    # Optax's own state: the same answer as optax.tree_utils.tree_get
    ostate = optax.adam(0.1).init(params)
    assert int(gc.tree_get(ostate, "count")) == int(tu.tree_get(ostate, "count"))
    assert type(gc.tree_get(ostate, "ScaleByAdamState")).__name__ == "ScaleByAdamState"
    # gradchain's: named slots and hyperparameters, and slot paths where a name repeats
    state = gc.adam(0.1).init(params)
    assert float(gc.tree_get(state, "learning_rate")) == pytest.approx(0.1)
    assert gc.tree_get(state, "mu")["w"].shape == (3,)
    with pytest.raises(KeyError, match="BiasCorrectState.count, RmsState.count"):
        gc.tree_get(state, "count")
    assert gc.tree_get(state, "nothing", default="absent") == "absent"
    state = gc.tree_set(state, learning_rate=0.5, **{"RmsState.count": 7})
    assert float(gc.get_hyperparams(state)["learning_rate"]) == 0.5
    assert int(gc.tree_get(state, "RmsState.count")) == 7
    assert gc.tree_get(state, "learning_rate").dtype == jnp.float64  # the stored dtype kept
    with pytest.raises(KeyError, match="no value"):
        gc.tree_set(state, missing=1.0)


def test_foreign_lbfgs_in_our_chain_equals_optax_chain(x64):
    """A foreign transform gets exactly what optax.chain gives it (value, grad, value_fn)."""
    matrix = jnp.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])

    def loss(p):
        return 0.5 * p @ matrix @ p - jnp.sum(p)

    def solve(opt):
        value_and_grad = optax.value_and_grad_from_state(loss)

        def step(carry, _):
            p, s = carry
            value, grad = value_and_grad(p, state=s)
            u, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=loss)
            return (optax.apply_updates(p, u), s), None

        p0 = jnp.array([1.0, -1.0, 2.0])
        with reference_promotion():  # Optax's line search mixes int32 and int64 under x64
            return jax.jit(lambda p: jax.lax.scan(step, (p, opt.init(p)), None, length=15)[0][0])(
                p0
            )

    ours = solve(gc.chain(optax.clip_by_global_norm(10.0), optax.lbfgs()))
    theirs = solve(optax.chain(optax.clip_by_global_norm(10.0), optax.lbfgs()))
    assert float(jnp.max(jnp.abs(ours - theirs))) == 0.0  # measured: 0 (bit for bit)
    assert float(jnp.max(jnp.abs(ours - jnp.linalg.solve(matrix, jnp.ones(3))))) < 1e-10


def test_refusals_name_the_argument():
    with pytest.raises(gc.GradchainError, match="masked takes the transform once"):
        gc.masked(gc.scale(1.0), {"w": True}, inner=gc.scale(1.0))
    with pytest.raises(gc.GradchainError, match="partition takes the labels once"):
        gc.partition({"a": gc.sgd(0.1)}, {"w": "a"}, param_labels={"w": "a"})
    with pytest.raises(gc.GradchainError, match="mode"):
        gc.scale_by_lion(mode="soft")
    with pytest.raises(gc.GradchainError, match="every_k_schedule"):
        gc.MultiSteps(gc.sgd(0.1), 0)
    with pytest.raises(gc.GradchainError, match="state_dtype or z_dtype"):
        gc.schedule_free_adamw(state_dtype=jnp.float32, z_dtype=jnp.float32)
