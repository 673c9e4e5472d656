"""Hyperparameters live once per optimizer, under its own argument names: changing them
between steps reuses the compiled step and takes effect exactly as in Optax's
inject_hyperparams; they keep their own dtype whatever the params'; setting one runs the
constructor's checks. Also: switching optimizers between phases of a run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 12
# Max |diff| vs Optax after 12 steps with mid-run changes; measured 6e-8 (float32), 0
# (float64). Frozen with the margin the reference tests use.
TOL = {jnp.float32: 2e-6, jnp.float64: 2e-15}


def make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)), dtype),
    }


def grads_sequence(params, dtype, steps=STEPS):
    rng = np.random.default_rng(2)
    return [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=np.shape(p)), dtype), params)
        for _ in range(steps)
    ]


def counting_step(opt):
    """A jitted training step, and a list that grows by one each time it is traced."""
    traces = []

    @jax.jit
    def step(params, state, grads):
        traces.append(1)
        updates, state = opt.update(grads, state, params)
        return gradchain.apply_updates(params, updates), state

    return step, traces


# step: {argument name (ours and Optax's): value}
CHANGES = {
    3: {"learning_rate": 0.003},
    5: {"weight_decay": 0.5},
    7: {"b1": 0.5},  # one value: the momentum and its bias correction both read it
    9: {"b2": 0.9, "learning_rate": 0.02},
}


def test_changing_hyperparameters_reuses_the_step_and_matches_optax(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    opt = gradchain.adamw(0.01, b1=0.9, b2=0.999, weight_decay=0.1)
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    for t, g in enumerate(grads):
        for name, value in CHANGES.get(t, {}).items():
            state = gradchain.set_hyperparam(state, name, value)
        p, state = step(p, state, g)
    assert len(traces) == 1 and step._cache_size() == 1
    hp = gradchain.get_hyperparams(state)
    assert float(hp["learning_rate"]) == pytest.approx(0.02)
    assert float(hp["b2"]) == pytest.approx(0.9) and float(hp["b1"]) == 0.5
    assert all(v.dtype == dtype for v in hp.values())

    with reference_promotion():
        ref = optax.inject_hyperparams(optax.adamw)(
            learning_rate=0.01, b1=0.9, b2=0.999, weight_decay=0.1
        )
        q, ref_state = params, ref.init(params)
        for t, g in enumerate(grads):
            for name, value in CHANGES.get(t, {}).items():
                ref_state.hyperparams[name] = jnp.asarray(value, dtype)
            updates, ref_state = ref.update(g, ref_state, q)
            q = optax.apply_updates(q, updates)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL[dtype])


def test_a_change_takes_effect_on_the_next_step_exactly():
    params = make_params(jnp.float32)
    g = grads_sequence(params, jnp.float32, steps=1)[0]
    opt = gradchain.sgd(0.1)
    step, traces = counting_step(opt)
    state = gradchain.set_hyperparam(opt.init(params), "learning_rate", 0.25)
    new, state = step(params, state, g)
    want = jax.tree.map(lambda p, x: p - jnp.float32(0.25) * x, params, g)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == 0.25 and len(traces) == 1


def test_a_group_learning_rate_changes_without_recompiling():
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=4)
    opt = gradchain.partition(
        {"slow": gradchain.sgd(1e-3), "fast": gradchain.adam(1e-2)}, {"w": "slow", "b": "fast"}
    )
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    paths = [k for k in gradchain.get_hyperparams(state) if k.endswith("learning_rate")]
    assert sorted(paths) == ["fast.learning_rate", "slow.learning_rate"]
    for t, g in enumerate(grads):
        if t == 2:
            state = gradchain.set_hyperparam(state, "slow.learning_rate", 0.5)
        before = p
        p, state = step(p, state, g)
    np.testing.assert_allclose(np.asarray(p["w"]), np.asarray(before["w"] - 0.5 * g["w"]))
    assert len(traces) == 1


def test_a_scheduled_learning_rate_is_visible_in_the_state():
    schedule = gradchain.linear_schedule(1.0, 0.0, transition_steps=4)
    opt = gradchain.sgd(schedule)
    params = make_params(jnp.float32)
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    seen = []
    for g in grads_sequence(params, jnp.float32, steps=5):
        p, state = step(p, state, g)
        seen.append(float(gradchain.get_hyperparams(state)["learning_rate"]))
    assert seen == [1.0, 0.75, 0.5, 0.25, 0.0] and len(traces) == 1


def test_bfloat16_params_keep_b2_in_float32():
    """b2 = 0.999 rounds to 1.0 in bfloat16 (Optax's inject_hyperparams issue); here it is
    stored in float32 and the step is Adam's, not that of b2 = 1."""
    assert float(jnp.bfloat16(0.999)) == 1.0
    params = {"w": jnp.asarray([0.5, -1.0, 2.0], jnp.bfloat16)}
    grads = grads_sequence(params, jnp.float32, steps=5)
    opt = gradchain.adam(0.01, b2=0.999)
    update = jax.jit(opt.update)

    def last_update(state, dtype):
        for g in grads:
            u, state = update(jax.tree.map(lambda x: x.astype(dtype), g), state)
        return u, state

    u, state = last_update(opt.init(params), jnp.bfloat16)
    b2 = gradchain.get_hyperparams(state)["b2"]
    assert b2.dtype == jnp.float32 and float(b2) == float(np.float32(0.999))
    assert gradchain.get_slot(state, "nu")["nu"]["w"].dtype == jnp.bfloat16  # params' dtype
    assert u["w"].dtype == jnp.bfloat16

    # the same five steps on float32 copies: equal up to bfloat16 rounding (2**-8 relative)
    f32 = jax.tree.map(lambda x: x.astype(jnp.float32), params)
    want, _ = last_update(opt.init(f32), jnp.float32)
    np.testing.assert_allclose(
        np.asarray(u["w"], np.float32), np.asarray(want["w"]), rtol=2e-2, atol=0
    )

    # b2 = 1 is refused as the constructor refuses it; b2 = 0.9 takes the same program
    with pytest.raises(gradchain.GradchainError, match=r"b2 must be in \[0, 1\), got 1.0"):
        gradchain.set_hyperparam(opt.init(params), "b2", 1.0)
    other, _ = last_update(gradchain.set_hyperparam(opt.init(params), "b2", 0.9), jnp.bfloat16)
    assert not np.allclose(np.asarray(other["w"], np.float32), np.asarray(u["w"], np.float32))
    assert update._cache_size() == 2  # one program per params dtype, none per b2 value


def test_hyperparameters_are_float64_under_x64(x64):
    state = gradchain.adam(1e-3).init(make_params(jnp.float32))
    assert {v.dtype for v in gradchain.get_hyperparams(state).values()} == {jnp.dtype("float64")}


# --- switching optimizers between phases -------------------------------------------------


def test_switching_from_adam_to_sgd_matches_optax(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    half = len(grads) // 2

    def two_phases(first, second, apply):
        p, s, update = params, first.init(params), jax.jit(first.update)
        for g in grads[:half]:
            u, s = update(g, s, p)
            p = apply(p, u)
        # phase two: a fresh state for the new optimizer, and its own compiled step
        s, update = second.init(p), jax.jit(second.update)
        for g in grads[half:]:
            u, s = update(g, s, p)
            p = apply(p, u)
        return p

    got = two_phases(gradchain.adam(0.05), gradchain.sgd(0.1), gradchain.apply_updates)
    with reference_promotion():
        want = two_phases(optax.adam(0.05), optax.sgd(0.1), optax.apply_updates)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL[dtype])


def test_switching_to_momentum_can_carry_adams_first_moment():
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=4)
    adam = gradchain.adam(0.05)
    p, s = params, adam.init(params)
    for g in grads[:3]:
        u, s = adam.update(g, s, p)
        p = gradchain.apply_updates(p, u)
    mu = gradchain.get_slot(s, "mu")["mu"]

    momentum = gradchain.momentum(0.1, momentum=0.9)
    carried = gradchain.set_slot(momentum.init(p), "mu", mu)
    u, s2 = momentum.update(grads[3], carried, p)
    # by hand: v = 0.9 * mu + g ; u = -0.1 * v
    for key in ("w", "b"):
        v = jnp.float32(0.9) * mu[key] + grads[3][key]
        np.testing.assert_allclose(np.asarray(u[key]), np.asarray(-jnp.float32(0.1) * v), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(s2.inner[0].mu[key]), np.asarray(v), rtol=1e-6)


# --- one place per optimizer, the constructor's checks, the user's names -------------------


def test_adams_state_holds_one_b1_one_b2_one_learning_rate():
    state = gradchain.adam(1e-3).init({"w": jnp.zeros(3)})
    hp = gradchain.get_hyperparams(state)
    assert sorted(hp) == ["b1", "b2", "eps", "eps_root", "learning_rate"]
    # no transform keeps a copy: every other leaf is a moment or a count
    others = [s for s in gradchain.slots(state) if not s.hyperparameter]
    assert sorted(s.name for s in others) == ["count", "count", "mu", "nu"]


def test_setting_b1_changes_the_momentum_and_its_bias_correction_together():
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=3)
    changed, fresh = gradchain.adam(0.01), gradchain.adam(0.01, b1=0.5)
    s1 = gradchain.set_hyperparam(changed.init(params), "b1", 0.5)
    s2 = fresh.init(params)
    for g in grads:
        u1, s1 = changed.update(g, s1, params)
        u2, s2 = fresh.update(g, s2, params)
        for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_learning_rate_given_as_an_array_is_as_live_as_a_number():
    params = make_params(jnp.float32)
    g = grads_sequence(params, jnp.float32, steps=1)[0]
    opt = gradchain.sgd(jnp.asarray(0.1))
    state = gradchain.set_hyperparam(opt.init(params), "learning_rate", 0.0)
    updates, _ = opt.update(g, state, params)
    assert all(not np.any(np.asarray(u)) for u in jax.tree.leaves(updates))


@pytest.mark.parametrize(
    "factory, name, value, message",
    [
        ("sgd", "learning_rate", -0.5, r"learning_rate must be >= 0, got -0.5"),
        ("adam", "b1", 1.0, r"b1 must be in \[0, 1\), got 1.0"),
        ("momentum", "momentum", 1.0, r"momentum must be in \[0, 1\)"),
        ("adamw", "weight_decay", -1.0, r"weight_decay must be >= 0"),
        ("adam", "eps", float("nan"), r"eps must not be NaN"),
    ],
)
def test_set_hyperparam_runs_the_constructors_check_with_its_message(factory, name, value, message):
    make = getattr(gradchain, factory)
    with pytest.raises(gradchain.GradchainError, match=message) as constructor:
        make(**{"learning_rate": 0.1, name: value})
    with pytest.raises(gradchain.GradchainError, match=message) as setting:
        gradchain.set_hyperparam(make(0.1).init(1.0), name, value)
    assert str(setting.value) == str(constructor.value)


def test_paths_are_the_users_names_through_unnamed_wrappers():
    params = {"enc": jnp.ones(3), "head": jnp.ones(2)}
    opt = gradchain.skip_non_finite(
        gradchain.accumulate(
            gradchain.partition(
                {"backbone": gradchain.adamw(1e-3), "head": gradchain.sgd(1e-2)},
                {"enc": "backbone", "head": "head"},
            ),
            2,
        )
    )
    state = opt.init(params)
    hp = gradchain.get_hyperparams(state)
    assert "backbone.learning_rate" in hp and "head.learning_rate" in hp
    assert not any(k.startswith(("inner", "groups")) or k[0].isdigit() for k in hp)
    state = gradchain.set_hyperparam(state, "b1", 0.8)  # unique: works unqualified
    assert float(gradchain.get_hyperparams(state)["backbone.b1"]) == pytest.approx(0.8)
    candidates = "backbone.learning_rate, head.learning_rate"
    with pytest.raises(gradchain.GradchainError, match=candidates):
        gradchain.set_hyperparam(state, "learning_rate", 0.1)
    rows = {r.transform for r in gradchain.memory_report(opt, params).rows}
    assert "backbone/scale_by_rms" in rows and "backbone/adamw" in rows
    assert not any("skip_non_finite/" in r or "accumulate/" in r for r in rows)
    assert set(gradchain.get_slot(state, "nu")) == {"backbone.nu"}


def test_a_scheduled_value_is_readable_but_not_settable():
    opt = gradchain.adam(gradchain.linear_schedule(1.0, 0.0, transition_steps=4))
    state = opt.init(1.0)
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == 1.0
    with pytest.raises(gradchain.GradchainError, match="set by a schedule"):
        gradchain.set_hyperparam(state, "learning_rate", 0.5)


def test_a_users_factory_becomes_live_with_one_decorator():
    @gradchain.live
    def my_rmsprop(learning_rate, decay=0.9):
        return gradchain.chain(
            gradchain.scale_by_rms(decay, eps_in_sqrt=False),
            gradchain.scale_by_learning_rate(learning_rate),
        )

    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=4)
    opt = my_rmsprop(0.01)
    step = jax.jit(chex.assert_max_traces(lambda g, s, p: opt.update(g, s, p), n=1))
    state = opt.init(params)
    for t, g in enumerate(grads):
        if t == 2:
            state = gradchain.set_hyperparam(state, "decay", 0.5)
        _, state = step(g, state, params)
    assert sorted(gradchain.get_hyperparams(state)) == ["decay", "learning_rate"]
    with pytest.raises(gradchain.GradchainError, match=r"decay must be in \[0, 1\)"):
        gradchain.set_hyperparam(state, "decay", 2.0)


def test_inject_hyperparams_takes_optax_signature(x64):
    inject = gradchain.inject_hyperparams
    opt = inject(gradchain.adam, static_args=("eps_root",), hyperparam_dtype=jnp.float32)(0.1)
    state = opt.init(jnp.zeros(2))
    hp = gradchain.get_hyperparams(state)
    assert "eps_root" not in hp and hp["b1"].dtype == jnp.float32
    with reference_promotion():
        ref = optax.inject_hyperparams(optax.adam)(0.1)
        ref_state = ref.init(jnp.zeros(2))
        g = jnp.asarray([1.0, -2.0])
        for _ in range(3):
            u, state = opt.update(g, state)
            v, ref_state = ref.update(g, ref_state)
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=0, atol=1e-7)


NAMED = sorted(gradchain.optimizers.__all__)
# Named optimizers that optax.inject_hyperparams(factory)(learning_rate=...) cannot run, and why.
NOT_INJECTABLE = {
    # Its update needs value, grad and value_fn (the line search calls the objective), and
    # optax.inject_hyperparams hands extra arguments only to an optax
    # GradientTransformationExtraArgs: a gradchain transform gets them dropped (optax's
    # with_extra_args_support), even with memory_size static. See the test below.
    "lbfgs": "update needs value, grad, value_fn, which Optax's wrapper drops for gradchain",
    # Optax's keywords: no learning_rate (max_learning_rate caps the step), and its update
    # needs value=f(params), which Optax's wrapper would drop as for lbfgs.
    "polyak_sgd": "takes no learning_rate, and its update needs value",
    # Its Hessian estimate differentiates obj_fn, which Optax's wrapper drops as for lbfgs.
    "sophia": "update needs obj_fn, which Optax's wrapper drops for gradchain",
    # The Polyak step of the momentum model needs value=f(params), dropped as for lbfgs.
    "momo": "update needs value, which Optax's wrapper drops for gradchain",
    "momo_adam": "update needs value, which Optax's wrapper drops for gradchain",
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.skip(reason=NOT_INJECTABLE[n]))
        if n in NOT_INJECTABLE
        else n
        for n in NAMED
    ],
)
def test_optax_inject_hyperparams_works_for_every_named_optimizer(name):
    static = {
        "adafactor": ("min_dim_size_to_factor",),
        "adopt": ("clip_value_fn",),
        "galore": ("rank", "update_proj_gap"),  # shapes and a schedule: static in Optax too
    }.get(name, ())
    factory = getattr(gradchain, name)
    params = {"w": jnp.ones((4, 3)), "b": jnp.ones(3)}
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    with reference_promotion():
        injected = optax.inject_hyperparams(factory, static_args=static)(learning_rate=0.01)
        plain = factory(learning_rate=0.01)
        s1, s2 = injected.init(params), plain.init(params)
        for _ in range(3):
            u1, s1 = jax.jit(injected.update)(grads, s1, params)
            u2, s2 = plain.update(grads, s2, params)
    for a, b in zip(jax.tree.leaves(u1), jax.tree.leaves(u2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_optax_inject_hyperparams_drops_the_objective_for_lbfgs():
    """Why lbfgs is exempt above: with memory_size static it builds and inits, but Optax's
    wrapper drops value/grad/value_fn on the way to a transform that is not Optax's own."""
    params = {"w": jnp.ones(3)}
    f = lambda p: jnp.sum((p["w"] - 0.5) ** 2)  # noqa: E731
    value, grad = jax.value_and_grad(f)(params)
    injected = optax.inject_hyperparams(gradchain.lbfgs, static_args=("memory_size",))(0.01)
    state = injected.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.01)
    with pytest.raises(gradchain.GradchainError, match="missing: value, grad, value_fn"):
        injected.update(grad, state, params, value=value, grad=grad, value_fn=f)
    # gradchain's own wrapper passes them on: the same step as lbfgs itself, bit for bit.
    live = gradchain.inject_hyperparams(gradchain.lbfgs, static_args=("memory_size",))(0.01)
    plain = gradchain.lbfgs(0.01)
    extra = {"value": value, "grad": grad, "value_fn": f}
    got, _ = live.update(grad, live.init(params), params, **extra)
    want, _ = plain.update(grad, plain.init(params), params, **extra)
    np.testing.assert_array_equal(np.asarray(got["w"]), np.asarray(want["w"]))


def test_optax_inject_hyperparams_leaves_adafactors_inner_state_as_plain_adafactors():
    """Optax's wrapper traces every number, decay_offset=0 and mu_dtype=jnp.float32 (a
    callable: a "schedule") included; recorded, they made the inner state's structure differ
    from plain adafactor's (Optax's alias suite compares the two). They are used, not kept."""
    params = [-jnp.ones((2, 3)), jnp.ones((2, 5, 2))]
    grads = jax.tree.map(jnp.negative, params)
    plain = gradchain.adafactor(5e-3)
    injected = optax.inject_hyperparams(
        gradchain.adafactor, static_args=("min_dim_size_to_factor",)
    )(5e-3)
    u, s = jax.jit(plain.update)(grads, plain.init(params), params)
    v, t = jax.jit(injected.update)(grads, jax.jit(injected.init)(params), params)
    assert jax.tree.structure(t.inner_state) == jax.tree.structure(s)
    kept = ["clipping_threshold", "decay_rate", "eps", "learning_rate"]
    assert sorted(t.inner_state.hyperparams) == kept
    ours, theirs = jax.tree.leaves((u, s)), jax.tree.leaves((v, t.inner_state))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # measured: bit for bit


# --- live inside live (issue 22) -----------------------------------------------------------


def clipped_adamw_factory(calls=None):
    @gradchain.live
    def my_opt(learning_rate, wd=1e-4):
        if calls is not None:
            calls.append(1)
        return gradchain.chain(
            gradchain.clip_by_global_norm(1.0), gradchain.adamw(learning_rate, weight_decay=wd)
        )

    return my_opt


def test_a_named_optimizer_inside_a_live_factory_keeps_its_numbers_once(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    opt = clipped_adamw_factory()(0.01, wd=0.1)
    step, traces = counting_step(opt)
    p, state = params, opt.init(params)
    assert sorted(gradchain.get_hyperparams(state)) == ["learning_rate", "wd"]
    changes = {3: {"learning_rate": 0.003}, 7: {"wd": 0.5}}
    for t, g in enumerate(grads):
        for name, value in changes.get(t, {}).items():
            state = gradchain.set_hyperparam(state, name, value)
        p, state = step(p, state, g)
    assert len(traces) == 1

    with reference_promotion():
        ref = optax.inject_hyperparams(
            lambda learning_rate, wd: optax.chain(
                optax.clip_by_global_norm(1.0), optax.adamw(learning_rate, weight_decay=wd)
            )
        )(learning_rate=0.01, wd=0.1)
        q, ref_state = params, ref.init(params)
        for t, g in enumerate(grads):
            for name, value in changes.get(t, {}).items():
                ref_state.hyperparams[name] = jnp.asarray(value, dtype)
            updates, ref_state = ref.update(g, ref_state, q)
            q = optax.apply_updates(q, updates)
    # measured: 6e-8 (float32), 0 (float64); TOL as above
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL[dtype])


def test_checking_a_new_value_does_not_build_the_optimizer_again():
    calls = []
    opt = clipped_adamw_factory(calls)(0.01)
    state = opt.init(make_params(jnp.float32))
    before = len(calls)
    state = gradchain.set_hyperparam(state, "wd", 0.2)
    assert len(calls) == before  # the recorded checks ran, not the factory
    with pytest.raises(gradchain.GradchainError, match=r"^wd must be >= 0, got -1.0") as setting:
        gradchain.set_hyperparam(state, "wd", -1.0)
    with pytest.raises(gradchain.GradchainError) as constructor:
        clipped_adamw_factory()(0.01, wd=-1.0)
    assert str(setting.value) == str(constructor.value)


def test_inject_hyperparams_of_a_named_optimizer_still_keeps_its_own_names():
    ours = gradchain.inject_hyperparams(gradchain.adamw)(0.01)
    theirs = optax.inject_hyperparams(gradchain.adamw)(0.01)
    assert "b1" in gradchain.get_hyperparams(ours.init(1.0))
    assert "b1" in theirs.init(jnp.ones(2)).hyperparams


# --- values that do not fit their slot (issue 23) -------------------------------------------


def test_a_value_that_overflows_its_dtype_is_refused_naming_the_argument():
    with pytest.raises(gradchain.GradchainError, match=r"learning_rate = 1e\+39 is not finite in float32"):
        gradchain.adam(1e39)
    state = gradchain.adam(1e-3).init(1.0)
    with pytest.raises(gradchain.GradchainError, match=r"b2 = 1e\+39 is not finite in float32"):
        gradchain.set_hyperparam(state, "b2", 1e39)


def test_a_value_that_fits_float64_is_kept_under_x64(x64):
    state = gradchain.sgd(1e39).init(1.0)
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == 1e39


def test_a_non_scalar_value_is_refused_inside_jit_naming_its_shape():
    opt = gradchain.sgd(0.1)
    state = opt.init(jnp.ones(3))

    @jax.jit
    def set_lr(state, lr):
        return gradchain.set_hyperparam(state, "learning_rate", lr)

    with pytest.raises(gradchain.GradchainError, match=r"learning_rate must be a scalar \(0-d\), got shape \(3,\)"):
        set_lr(state, jnp.ones(3))
    with pytest.raises(gradchain.GradchainError, match=r"got shape \(3,\)"):
        gradchain.set_hyperparam(state, "learning_rate", np.ones(3))


def test_an_integer_learning_rate_is_kept_as_a_float():
    state = gradchain.inject_hyperparams(gradchain.sgd)(learning_rate=1).init(1.0)
    state = gradchain.set_hyperparam(state, "learning_rate", 0.5)
    assert float(gradchain.get_hyperparams(state)["learning_rate"]) == 0.5


def test_a_float_is_never_truncated_into_an_integer_hyperparameter():
    def repeat(learning_rate, times=2):
        return gradchain.scale_by_learning_rate(learning_rate * times)

    state = gradchain.inject_hyperparams(repeat)(0.1).init(1.0)
    assert gradchain.get_hyperparams(state)["times"].dtype == jnp.int32
    with pytest.raises(gradchain.GradchainError, match=r"times is kept as int32: 0.5 would be truncated"):
        gradchain.set_hyperparam(state, "times", 0.5)
    state = gradchain.set_hyperparam(state, "times", 3.0)  # a whole number is not truncated
    assert int(gradchain.get_hyperparams(state)["times"]) == 3


# --- Optax's inject_hyperparams semantics (issue 24) ----------------------------------------


@pytest.mark.parametrize("name", ["sgd", "adam"])
@pytest.mark.parametrize("scheduled", ["learning_rate", "b1"])
def test_inject_hyperparams_follows_optax_step_by_step(name, scheduled, dtype):
    if name == "sgd" and scheduled == "b1":
        scheduled = "momentum"
    linear = optax.linear_schedule(0.9, 0.1, transition_steps=6)
    # in dtype: Optax keeps a float32 schedule value as float32 even under x64 (we cast it)
    schedule = lambda count: linear(count).astype(dtype)  # noqa: E731
    others = {"learning_rate": 0.05, "b1": 0.9, "momentum": 0.5}
    kwargs = {k: v for k, v in others.items() if k in ("learning_rate", scheduled)
              or (name == "adam") == (k == "b1")}
    kwargs[scheduled] = schedule
    params = make_params(dtype)
    grads = grads_sequence(params, dtype, steps=8)
    ours = gradchain.inject_hyperparams(getattr(gradchain, name))(**kwargs)
    with reference_promotion():
        theirs = optax.inject_hyperparams(getattr(optax, name))(**kwargs)
        s, t = ours.init(params), theirs.init(params)
        for g in grads:
            u, s = jax.jit(ours.update)(g, s, params)
            v, t = jax.jit(theirs.update)(g, t, params)
            assert float(s.hyperparams[scheduled]) == float(t.hyperparams[scheduled])
            assert s.hyperparams[scheduled].dtype == dtype
            # measured: 0 (float32 and float64); TOL as above
            for a, b in zip(jax.tree.leaves(u), jax.tree.leaves(v)):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=TOL[dtype])
    with pytest.raises(gradchain.GradchainError, match="set by a schedule"):
        gradchain.set_hyperparam(s, scheduled, 0.5)


def test_the_factory_is_called_with_the_scheduled_values():
    def descent(learning_rate):
        return optax.scale(-learning_rate)  # a number, never the schedule

    opt = gradchain.inject_hyperparams(descent)(optax.linear_schedule(1.0, 0.0, 4))
    state = opt.init(jnp.zeros(2))
    assert float(state.hyperparams["learning_rate"]) == 1.0
    u, state = opt.update(jnp.ones(2), state)
    u, state = opt.update(jnp.ones(2), state)
    np.testing.assert_allclose(np.asarray(u), -0.75)
    assert float(state.hyperparams["learning_rate"]) == 0.75


def test_inject_hyperparams_refuses_unknown_static_args():
    with pytest.raises(gradchain.GradchainError, match=r"static_args names \['lr'\]"):
        gradchain.inject_hyperparams(gradchain.sgd, static_args="lr")


def test_optax_state_names_read_our_state():
    opt = gradchain.inject_hyperparams(gradchain.sgd)(optax.linear_schedule(1.0, 0.0, 4))
    state = opt.init(jnp.zeros(2))
    assert isinstance(state, gradchain.InjectHyperparamsState)
    assert state.inner_state is state.inner and set(state.hyperparams_states) == {"learning_rate"}


def test_a_live_state_reads_its_slots_by_optax_field_names():
    """Code written for Optax reads ``state.z`` of schedule_free and ``state.m`` of mechanize:
    a live state answers with the one slot of that name inside, the same array get_slot
    finds, and refuses an unknown or ambiguous name with the slots listed."""
    params = jnp.zeros(3)
    sf = gradchain.contrib.schedule_free(gradchain.sgd(1.0), learning_rate=1.0).init(params)
    (z,) = gradchain.get_slot(sf, "z").values()
    assert sf.z is z
    mech = gradchain.contrib.mechanize(gradchain.sgd(1.0)).init(params)
    (m,) = gradchain.get_slot(mech, "m").values()
    assert mech.m is m
    with pytest.raises(AttributeError, match=r"no field 'nope'; the slots inside are: x0, r, m"):
        _ = mech.nope
    twice = gradchain.live(
        lambda learning_rate: gradchain.chain(
            gradchain.scale_by_momentum(0.9),
            gradchain.scale_by_momentum(0.5),
            gradchain.scale_by_learning_rate(learning_rate),
        )
    )(0.1).init(params)
    with pytest.raises(AttributeError, match=r"2 slots of that name .*get_slot"):
        _ = twice.mu
    assert not hasattr(twice, "_private")  # dunder and private look-ups stay plain
    # an attribute of the inner state itself comes first: muon's partition, by group
    muon = gradchain.contrib.muon(0.1).init({"w": jnp.ones((3, 4)), "b": jnp.ones(3)})
    assert muon.inner_states is muon.inner.groups and sorted(muon.inner_states) == ["adam", "muon"]


@pytest.mark.parametrize("name", ["sgd", "adam", "lion", "muon"])
def test_inject_hyperparams_inner_state_is_the_optimizers_own(name):
    """Optax's layout: ``inject_hyperparams(opt)(...).init(p).inner_state`` has the tree of
    ``opt(...).init(p)``, and after a step the same numbers (the wrapped optimizer records the
    wrapper's values). The wrapper's value is the one used, jitted or not; the record is
    neither listed by get_hyperparams nor settable."""
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    make = getattr(gradchain, name)
    plain, wrapped = make(0.1), gradchain.inject_hyperparams(make)(0.1)
    plain_state, wrapped_state = plain.init(params), wrapped.init(params)
    assert jax.tree.structure(wrapped_state.inner_state) == jax.tree.structure(plain_state)
    u_plain, s_plain = plain.update(grads, plain_state, params)
    u_wrapped, s_wrapped = wrapped.update(grads, wrapped_state, params)
    # measured: equal for sgd, adam, lion; muon 5.2e-7 (its numbers as float32 arrays there,
    # Python floats folded in float64 here)
    chex.assert_trees_all_close(u_wrapped, u_plain, rtol=1e-6)
    chex.assert_trees_all_close(s_wrapped.inner_state, s_plain, rtol=1e-6)
    # the wrapper's names, once each (inject_hyperparams also keeps integers live: muon's ns_steps)
    listed = list(gradchain.get_hyperparams(wrapped_state))
    assert set(gradchain.get_hyperparams(plain_state)) <= set(listed) and "." not in "".join(listed)
    halved = gradchain.set_hyperparam(wrapped_state, "learning_rate", 0.05)
    eager, _ = wrapped.update(grads, halved, params)
    jitted, _ = jax.jit(wrapped.update)(grads, halved, params)
    chex.assert_trees_all_close(eager, jax.tree.map(lambda u: 0.5 * u, u_plain), rtol=1e-6)
    chex.assert_trees_all_close(jitted, eager, rtol=1e-6)
    with pytest.raises(gradchain.GradchainError, match="the inject_hyperparams wrapper's value"):
        gradchain.set_hyperparam(wrapped_state, f"{name}.learning_rate", 0.2)


def test_inject_hyperparams_of_a_wrapper_with_its_optimizer_bound():
    """``inject_hyperparams(functools.partial(mechanize, sgd(1.0)))``, as Optax's contrib
    tests wrap a wrapper: inner_state is the wrapper's own state too."""
    import functools

    params = [jnp.ones((2, 3))]
    for wrapper, kwargs in (
        (gradchain.contrib.mechanize, {}),
        (gradchain.contrib.schedule_free, {"learning_rate": 1.0}),
    ):
        bound = functools.partial(wrapper, gradchain.sgd(1.0))
        plain = bound(**kwargs).init(params)
        injected = gradchain.inject_hyperparams(bound)(**kwargs).init(params)
        assert jax.tree.structure(injected.inner_state) == jax.tree.structure(plain)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optax_inject_hyperparams_reaches_a_gradchain_optimizer_eagerly_too(name):
    """Optax's wrapper rebuilds the optimizer at each step from its state's values: a value
    changed there is the one used, run eagerly as under jit (before: eagerly the gradchain
    optimizer kept its own recorded value, 0.1 where Optax's state said 0.5)."""
    params, grads = jnp.ones(3), jnp.full(3, 0.5)
    results = []
    for lib in (gradchain, optax):
        opt = optax.inject_hyperparams(getattr(lib, name))(learning_rate=0.1)
        with reference_promotion():  # Optax's code inside either way
            state = opt.init(params)
            state.hyperparams["learning_rate"] = jnp.asarray(0.5)
            eager, _ = opt.update(grads, state, params)
            jitted, _ = jax.jit(opt.update)(grads, state, params)
        chex.assert_trees_all_close(eager, jitted, rtol=1e-6)
        results.append(eager)
    chex.assert_trees_all_close(*results, rtol=1e-6)  # measured: equal
