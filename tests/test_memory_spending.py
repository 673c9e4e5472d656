"""The memory-spending optimizers (AdEMAMix, Adan, schedule-free AdamW, AdaBelief, RAdam, Yogi,
ADOPT, NAdamW, AdamaxW, LAMB, LARS, Rprop, AdaDelta) against Optax's of the same name for 200
steps of random gradients on a tree of matrices, vectors and a scalar, float32 and float64;
their invariants; and their memory. Tolerances were measured once and frozen with a margin."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import gradchain
from tests.conftest import reference_promotion

STEPS = 200

# Optax's schedules receive the same int32 count gradchain's do: one schedule serves both.
WARMUP_ALPHA = gradchain.linear_schedule(0.0, 5.0, 50)
WARMUP_B3 = gradchain.linear_schedule(0.9, 0.999, 100)

# name: (gradchain factory, Optax factory). Same math, same hyperparameters.
PAIRS = {
    "ademamix": (
        lambda: gradchain.ademamix(0.01, weight_decay=0.1),
        lambda: optax.contrib.ademamix(0.01, weight_decay=0.1),
    ),
    "ademamix_scheduled": (
        lambda: gradchain.ademamix(0.01, b3=WARMUP_B3, alpha=WARMUP_ALPHA),
        lambda: optax.contrib.ademamix(0.01, b3=WARMUP_B3, alpha=WARMUP_ALPHA),
    ),
    "adan": (
        lambda: gradchain.adan(0.01, weight_decay=0.1),
        lambda: optax.adan(0.01, weight_decay=0.1),
    ),
    "schedule_free_adamw": (
        lambda: gradchain.schedule_free_adamw(0.01, weight_decay=0.1),
        lambda: optax.contrib.schedule_free_adamw(0.01, weight_decay=0.1),
    ),
    "schedule_free_adamw_schedule": (  # the user's schedule: read at t and t + 1, as Optax
        lambda: gradchain.schedule_free_adamw(gradchain.linear_schedule(0.0, 0.01, 20)),
        lambda: optax.contrib.schedule_free_adamw(optax.linear_schedule(0.0, 0.01, 20)),
    ),
    "schedule_free_adamw_warmup": (
        lambda: gradchain.schedule_free_adamw(0.01, warmup_steps=20),
        lambda: optax.contrib.schedule_free_adamw(0.01, warmup_steps=20),
    ),
    "adabelief": (lambda: gradchain.adabelief(0.01), lambda: optax.adabelief(0.01)),
    "radam": (lambda: gradchain.radam(0.01), lambda: optax.radam(0.01)),
    "radam_nesterov": (
        lambda: gradchain.radam(0.01, nesterov=True),
        lambda: optax.radam(0.01, nesterov=True),
    ),
    "yogi": (lambda: gradchain.yogi(0.01), lambda: optax.yogi(0.01)),
    # The same chain with both of Optax's moments starting at 0: exact agreement.
    "yogi_zero_start": (
        lambda: gradchain.chain(
            gradchain.scale_by_momentum(0.9, ema=True),
            gradchain.bias_correct(0.9),
            gradchain.scale_by_additive_rms(0.999, 1e-3, initial_accumulator_value=0.0),
            gradchain.scale_by_learning_rate(0.01),
        ),
        lambda: optax.chain(
            optax.scale_by_yogi(initial_accumulator_value=0.0), optax.scale_by_learning_rate(0.01)
        ),
    ),
    "adopt": (lambda: gradchain.adopt(0.01), lambda: optax.contrib.adopt(0.01)),
    "adopt_nesterov_unclipped": (
        lambda: gradchain.adopt(0.01, nesterov=True, use_clipping=False),
        lambda: optax.contrib.adopt(0.01, nesterov=True, use_clipping=False),
    ),
    "nadamw": (
        lambda: gradchain.nadamw(0.01, weight_decay=0.1),
        lambda: optax.nadamw(0.01, weight_decay=0.1),
    ),
    "adamaxw": (
        lambda: gradchain.adamaxw(0.01, weight_decay=0.1),
        lambda: optax.adamaxw(0.01, weight_decay=0.1),
    ),
    "lamb": (
        lambda: gradchain.lamb(0.01, weight_decay=0.1),
        lambda: optax.lamb(0.01, weight_decay=0.1),
    ),
    "lars": (
        lambda: gradchain.lars(0.1, weight_decay=0.1),
        lambda: optax.lars(0.1, weight_decay=0.1),
    ),
    "lars_nesterov_eps": (
        lambda: gradchain.lars(0.1, trust_coefficient=0.01, eps=1e-3, nesterov=True),
        lambda: optax.lars(0.1, trust_coefficient=0.01, eps=1e-3, nesterov=True),
    ),
    "adadelta": (
        lambda: gradchain.adadelta(1.0, weight_decay=0.1),
        lambda: optax.adadelta(1.0, weight_decay=0.1),
    ),
}

# Max |difference| in params (of magnitude ~1) after 200 steps, measured: float32 <= 6.4e-6
# (schedule-free AdamW, AdEMAMix 5.2e-6: (1 - b) evaluated in float32 rather than in Python
# floats, and op order), except RAdam 1.7e-5 (its rectification uses b2 as stored in float32:
# rho_inf = 1999.03, Optax's 1999 from the Python float) (scheduled AdEMAMix: 1.8e-5);
# float64 <= 8.1e-16, except schedule-free 1.6e-14. Frozen with a margin of ~3x (float32
# rounding depends on XLA's fusion and the CPU's vector width).
TOLERANCE = {jnp.float32: 2e-5, jnp.float64: 5e-15}
TOLERANCE_OVERRIDES = {
    ("radam", jnp.float32): 5e-5,
    ("schedule_free_adamw", jnp.float64): 5e-14,
    # Optax's warmup_constant_schedule runs in float32 even under x64 (measured 6.3e-9).
    ("schedule_free_adamw_warmup", jnp.float64): 2e-8,
    # The same float32 schedule, given by the user (measured 6.2e-9; reading lr(t) instead of
    # Optax's lr(t + 1) for the averaging weight gave 1.1e-5 in the same check).
    ("schedule_free_adamw_schedule", jnp.float64): 2e-8,
    # Optax starts Yogi's first moment at 1e-6, gradchain at 0 (measured 7.8e-7 in float64:
    # ~1e-4 x lr, set in the first ten steps, 7.4e-7 after 10, and it does not fade);
    # "yogi_zero_start" shows that the math is otherwise exact.
    ("yogi", jnp.float64): 3e-6,
}


def make_params(dtype):
    rng = np.random.default_rng(1)
    return {
        "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=(3,)), dtype),
        "layers": [jnp.asarray(rng.normal(size=(2, 5)), dtype), jnp.asarray(rng.normal(), dtype)],
    }


def grads_sequence(params, dtype, steps=STEPS):
    """``steps`` random gradients, stacked: each leaf has a leading axis of length ``steps``
    (made in numpy and moved once -- 800 small device arrays would cost seconds)."""
    rng = np.random.default_rng(2)
    return jax.tree.map(
        lambda p: jnp.asarray(rng.normal(size=(steps, *np.shape(p))), dtype), params
    )


def run(opt, params, grads):
    """Apply ``opt`` along the stacked ``grads`` in one jitted ``lax.scan`` (one compilation,
    one dispatch -- and a state whose types drift would not even trace)."""

    def step(carry, g):
        params, state = carry
        updates, state = opt.update(g, state, params)
        return (jax.tree.map(lambda p, u: p + u, params, updates), state), None

    loop = jax.jit(lambda carry, gs: jax.lax.scan(step, carry, gs)[0])
    return loop((params, opt.init(params)), grads)


def steps_of(grads):
    """The stacked gradients as a list, one tree per step."""
    leaves, treedef = jax.tree.flatten(grads)
    return [treedef.unflatten([x[t] for x in leaves]) for t in range(leaves[0].shape[0])]


def max_abs_diff(a, b):
    return max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


# Variants (a schedule, Nesterov, an option) run in float64 only, where agreement is exact.
VARIANTS = {
    "ademamix_scheduled",
    "schedule_free_adamw_warmup",
    "radam_nesterov",
    "yogi_zero_start",
    "adopt_nesterov_unclipped",
    "lars_nesterov_eps",
}
CASES = [
    (name, dtype)
    for name in sorted(PAIRS)
    for dtype in ("float32", "float64")
    if name not in VARIANTS or dtype == "float64"
]


@pytest.mark.parametrize("name, dtype_name", CASES)
def test_matches_optax(name, dtype_name, request):
    dtype = {"float32": jnp.float32, "float64": jnp.float64}[dtype_name]
    if dtype == jnp.float64:
        request.getfixturevalue("x64")
    ours, theirs = PAIRS[name]
    params = make_params(dtype)
    grads = grads_sequence(params, dtype)
    got, state = run(ours(), params, grads)
    with reference_promotion():
        want, ref_state = run(theirs(), params, grads)
    for leaf in jax.tree.leaves(got):
        assert leaf.dtype == dtype
    tol = TOLERANCE_OVERRIDES.get((name, dtype), TOLERANCE[dtype])
    assert max_abs_diff(got, want) <= tol
    if name == "schedule_free_adamw":  # and the params to evaluate at, x, agree as well
        with reference_promotion():
            want_eval = optax.contrib.schedule_free_eval_params(ref_state, want)
        got_eval = gradchain.schedule_free_eval_params(state, got)
        assert jax.tree.map(lambda x: x.dtype, got_eval) == jax.tree.map(lambda x: x.dtype, params)
        assert max_abs_diff(got_eval, want_eval) <= tol
        # x is an average of the z iterates: it has moved less than the params y.
        assert max_abs_diff(got_eval, params) < max_abs_diff(got, params)


def test_schedule_free_eval_params_refuses_other_states():
    state = gradchain.adam(0.1).init(jnp.zeros(3))
    with pytest.raises(gradchain.GradchainError, match="scale_by_schedule_free"):
        gradchain.schedule_free_eval_params(state, jnp.zeros(3))


# --- Rprop: Optax 0.2.8 emits each step one step late; torch.optim.Rprop is the reference ---


def torch_rprop_run(params, grads, *, lr, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(np.asarray(p, np.float64), requires_grad=True) for p in params]
    opt = torch.optim.Rprop(tensors, lr=lr, etas=etas, step_sizes=step_sizes)
    for g in grads:
        for t, gi in zip(tensors, g):
            t.grad = torch.tensor(np.asarray(gi, np.float64))
        opt.step()
    return [t.detach().numpy() for t in tensors]


@pytest.mark.parametrize(
    "options",
    [
        dict(lr=0.01),
        # lr above max_step_size: only clip_every_step=True (torch's form) agrees.
        dict(lr=0.5, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2)),
    ],
)
def test_rprop_matches_torch(options, x64):
    params = make_params(jnp.float64)
    grads = grads_sequence(params, jnp.float64)
    (eta_minus, eta_plus), (lo, hi) = (
        options.get("etas", (0.5, 1.2)),
        options.get("step_sizes", (1e-6, 50.0)),
    )
    opt = gradchain.chain(
        gradchain.scale_by_rprop(options["lr"], eta_minus, eta_plus, lo, hi, clip_every_step=True),
        gradchain.scale(-1.0),
    )
    got, _ = run(opt, params, grads)
    leaves, treedef = jax.tree.flatten(params)
    want = torch_rprop_run(leaves, [treedef.flatten_up_to(g) for g in steps_of(grads)], **options)
    assert max_abs_diff(jax.tree.leaves(got), want) <= 1e-12
    if options["lr"] <= hi:  # the named optimizer (Optax's form) is the same there
        named = gradchain.rprop(options["lr"], eta_minus, eta_plus, lo, hi)
        got_named, _ = run(named, params, grads)
        assert max_abs_diff(got_named, got) == 0


def test_rprop_step_sizes_equal_optax_and_updates_lead_by_one_step(dtype):
    params = make_params(dtype)
    grads = grads_sequence(params, dtype, steps=50)
    ours, theirs = gradchain.rprop(0.01), optax.rprop(0.01)
    state, ref_state = ours.init(params), theirs.init(params)
    ours_step = jax.jit(ours.update)
    with reference_promotion():
        theirs_step = jax.jit(theirs.update)
    previous = jax.tree.map(jnp.zeros_like, params)
    for g in steps_of(grads):
        u, state = ours_step(g, state, params)
        with reference_promotion():
            ref_u, ref_state = theirs_step(g, ref_state, params)
        flipped = jax.tree.map(lambda s: s == 0, state.inner[0].previous_sign)
        # Optax emits our previous update, zeroed where the sign just flipped.
        lagged = jax.tree.map(lambda f, p, gi: jnp.where(f & (gi != 0), 0, p), flipped, previous, g)
        assert max_abs_diff(ref_u, lagged) == 0
        assert max_abs_diff(state.inner[0].step_size, ref_state[0].step_sizes) == 0
        previous = u


def test_adadelta_matches_torch(x64):
    torch = pytest.importorskip("torch")
    params = make_params(jnp.float64)
    grads = grads_sequence(params, jnp.float64)
    got, _ = run(gradchain.adadelta(0.5, rho=0.8, eps=1e-5, weight_decay=0.1), params, grads)
    leaves, treedef = jax.tree.flatten(params)
    tensors = [torch.tensor(np.asarray(p), requires_grad=True) for p in leaves]
    opt = torch.optim.Adadelta(tensors, lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1)
    for g in steps_of(grads):
        for t, gi in zip(tensors, treedef.flatten_up_to(g)):
            t.grad = torch.tensor(np.asarray(gi))
        opt.step()
    assert max_abs_diff(jax.tree.leaves(got), [t.detach().numpy() for t in tensors]) <= 1e-13


# --- the hierarchy: each optimizer reduces to its parent when its extra is switched off ---


@pytest.mark.parametrize(
    "child, parent",
    [
        (lambda: gradchain.nadamw(0.01, weight_decay=0.0), lambda: gradchain.nadam(0.01)),
        (lambda: gradchain.adamaxw(0.01, weight_decay=0.0), lambda: gradchain.adamax(0.01)),
        (  # no slow momentum: AdamW
            lambda: gradchain.ademamix(0.01, alpha=0.0, weight_decay=0.1),
            lambda: gradchain.adamw(0.01, weight_decay=0.1),
        ),
        (  # a threshold no step reaches: bias-corrected momentum SGD
            lambda: gradchain.radam(0.01, threshold=1e9),
            lambda: gradchain.chain(
                gradchain.scale_by_momentum(0.9, ema=True),
                gradchain.bias_correct(0.9),
                gradchain.scale_by_learning_rate(0.01),
            ),
        ),
        (  # no momentum, no decay: the trust ratio times the learning rate
            lambda: gradchain.lars(0.1, trust_coefficient=1.0, momentum=0.0),
            lambda: gradchain.chain(
                gradchain.scale_by_trust_ratio(), gradchain.scale_by_learning_rate(0.1)
            ),
        ),
    ],
    ids=["nadamw->nadam", "adamaxw->adamax", "ademamix->adamw", "radam->momentum", "lars->ratio"],
)
def test_reduces_to_parent(child, parent):
    params = make_params(jnp.float32)
    grads = grads_sequence(params, jnp.float32, steps=30)
    a, _ = run(child(), params, grads)
    b, _ = run(parent(), params, grads)
    assert max_abs_diff(a, b) <= 1e-6


# --- invariants -----------------------------------------------------------------------------

NAMED = {
    "ademamix": lambda: gradchain.ademamix(0.01, weight_decay=0.1),
    "adan": lambda: gradchain.adan(0.01, weight_decay=0.1),
    "schedule_free_adamw": lambda: gradchain.schedule_free_adamw(0.01, weight_decay=0.1),
    "adabelief": lambda: gradchain.adabelief(0.01),
    "radam": lambda: gradchain.radam(0.01),
    "yogi": lambda: gradchain.yogi(0.01),
    "adopt": lambda: gradchain.adopt(0.01),
    "nadamw": lambda: gradchain.nadamw(0.01),
    "adamaxw": lambda: gradchain.adamaxw(0.01),
    "lamb": lambda: gradchain.lamb(0.01),
    "lars": lambda: gradchain.lars(0.1),
    "rprop": lambda: gradchain.rprop(0.01),
    "adadelta": lambda: gradchain.adadelta(1.0),
}


def _signature(state):
    return jax.tree.structure(state), [(x.shape, x.dtype) for x in jax.tree.leaves(state)]


@pytest.mark.parametrize("name", sorted(NAMED))
def test_jit_equals_eager_and_state_types_stay_with_mixed_precision_params(name):
    """bfloat16, float32 and float16 leaves: the jitted step keeps every state leaf's shape
    and dtype (one compilation), the updates keep the params' dtypes, and eager agrees."""
    params = {
        "w": jnp.ones((4, 3), jnp.bfloat16) * 0.5,
        "b": jnp.asarray([0.25, -1.0, 2.0], jnp.float32),
        "h": jnp.full((2,), -0.5, jnp.float16),
    }
    opt = NAMED[name]()
    rng = np.random.default_rng(3)
    grads = [
        jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
        for _ in range(3)
    ]
    step = jax.jit(opt.update)
    results = {}
    for mode, update in (("jit", step), ("eager", opt.update)):
        p, state = params, opt.init(params)
        before = _signature(state)
        for g in grads:
            updates, state = update(g, state, p)
            assert jax.tree.map(lambda x: x.dtype, updates) == jax.tree.map(lambda x: x.dtype, p)
            assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))
            p = gradchain.apply_updates(p, updates)
            assert _signature(state) == before
        results[mode] = p
    assert step._cache_size() == 1  # no retrace: the state kept its types
    # float32 to rounding; the 16-bit leaves to one unit in their last place (at |p| <= 1).
    assert max_abs_diff(results["jit"]["b"], results["eager"]["b"]) <= 1e-6
    assert max_abs_diff(results["jit"]["w"], results["eager"]["w"]) <= 2**-8
    assert max_abs_diff(results["jit"]["h"], results["eager"]["h"]) <= 2**-11


@pytest.mark.parametrize("name", sorted(NAMED))
def test_no_two_state_leaves_share_a_buffer(name):
    state = NAMED[name]().init(make_params(jnp.float32))
    ids = [id(x) for x in jax.tree.leaves(state)]
    assert len(ids) == len(set(ids))


# Param-sized slots per optimizer (float32 AdamW = 2) and extra bytes per parameter element.
MEMORY = {
    "ademamix": (3, 0),  # mu, slow_mu, nu
    "adan": (4, 0),  # mu, v, n, previous_gradient
    "schedule_free_adamw": (2, 0),  # nu, z
    "adabelief": (2, 0),  # mu, belief
    "radam": (2, 0),
    "yogi": (2, 0),
    "adopt": (2, 0),
    "nadamw": (2, 0),
    "adamaxw": (2, 0),
    "lamb": (2, 0),
    "lars": (1, 0),  # velocity
    "rprop": (1, 1),  # step_size + the previous sign in int8 (1 byte per element)
    "adadelta": (2, 0),  # mean_sq_grad, mean_sq_update
}


def per_parameter_bytes(state, params):
    """Bytes of the state fields whose subtree is laid out like the params (leaf shapes
    equal), counted from the state itself -- independently of gradchain.memory."""
    treedef, shapes = jax.tree.structure(params), [p.shape for p in jax.tree.leaves(params)]
    total = 0
    for member in state.inner:  # the chain inside the optimizer's live hyperparameters
        for value in member:
            try:
                leaves = treedef.flatten_up_to(value)
            except (ValueError, TypeError):
                continue
            if [np.shape(x) for x in leaves] == shapes:
                total += sum(x.nbytes for x in leaves)
    return total


@pytest.mark.parametrize("name", sorted(NAMED))
def test_state_bytes(name):
    params = make_params(jnp.float32)
    param_elements = sum(p.size for p in jax.tree.leaves(params))
    param_bytes = sum(p.nbytes for p in jax.tree.leaves(params))
    state = NAMED[name]().init(params)
    slots, extra = MEMORY[name]
    expected = slots * param_bytes + extra * param_elements
    assert per_parameter_bytes(state, params) == expected
    # The memory report (from shapes only) agrees with the real state, byte for byte.
    report = gradchain.memory_report(NAMED[name](), params)
    assert report.per_parameter_bytes == expected
    assert report.total_bytes == sum(x.nbytes for x in jax.tree.leaves(state))


# --- the trust ratio under shard_map: right with axis_name, refused when it cannot be ----

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


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: gradchain.ademamix(0.1, b3=1.0), "b3 must be in"),
        (lambda: gradchain.adan(0.1, b2=-0.1), "b2 must be in"),
        (lambda: gradchain.radam(0.1, b2=1.0), "b2 must be in"),
        (lambda: gradchain.scale_by_rprop(0.1, eta_minus=1.5), "eta_minus must be in"),
        (lambda: gradchain.scale_by_trust_ratio(trust_coefficient=0.0), "trust_coefficient"),
        (lambda: gradchain.scale_by_schedule_free(0.1, b1=0.0), "b1 must be > 0"),
        (lambda: gradchain.adadelta(1.0, eps=0.0), "eps must be > 0"),
    ],
)
def test_bad_hyperparameters_are_refused(build, message):
    with pytest.raises(gradchain.GradchainError, match=message):
        build()


@pytest.mark.parametrize(
    "opt",
    [gradchain.scale_by_trust_ratio(), gradchain.scale_by_schedule_free(0.1)],
    ids=["trust_ratio", "schedule_free"],
)
def test_transforms_that_need_params_say_so(opt):
    with pytest.raises(gradchain.GradchainError, match="needs the params"):
        opt.update(jnp.ones(3), opt.init(jnp.ones(3)))


def test_live_alpha_changes_without_recompiling():
    params = make_params(jnp.float32)
    grads = jax.tree.map(lambda g: g[0], grads_sequence(params, jnp.float32, steps=1))
    opt = gradchain.ademamix(0.01)
    step = jax.jit(opt.update)
    state = opt.init(params)
    u5, _ = step(grads, state, params)
    state = gradchain.set_hyperparam(state, "alpha", 0.0)  # the live alpha
    u0, _ = step(grads, state, params)
    reference = gradchain.ademamix(0.01, alpha=0.0)
    want0, _ = reference.update(grads, reference.init(params), params)
    assert max_abs_diff(u0, want0) <= 1e-7 and max_abs_diff(u0, u5) > 1e-6  # 5e-6 at step 1
    assert step._cache_size() == 1


# --- live hyperparameters: set_hyperparam acts as a fresh optimizer built with the value ------

# A valid new value for every live argument of these optimizers (different from its default).
NEW_VALUES = {
    "learning_rate": 0.05, "b1": 0.8, "b2": 0.95, "b3": 0.95, "alpha": 2.0, "eps": 0.5,
    "eps_root": 1e-4, "weight_decay": 0.05, "threshold": 3.0, "trust_coefficient": 0.02,
    "momentum": 0.5, "rho": 0.7, "eta_minus": 0.4, "eta_plus": 1.3, "min_step_size": 6e-3,
    "max_step_size": 0.02, "weight_lr_power": 1.0,
}
LEARNING_RATE = {"lars": 0.1, "adadelta": 1.0}  # the others: 0.01


@pytest.mark.parametrize("name", sorted(NAMED))
def test_set_hyperparam_equals_a_fresh_optimizer_without_recompiling(name):
    factory = getattr(gradchain, name)
    lr = LEARNING_RATE.get(name, 0.01)
    params = make_params(jnp.float32)
    # 8 steps: RAdam's rectification starts at step 6, ADOPT's first update is 0.
    grads = steps_of(grads_sequence(params, jnp.float32, steps=8))
    opt = factory(lr)
    live_names = sorted(gradchain.get_hyperparams(opt.init(params)))
    assert live_names and set(live_names) <= set(NEW_VALUES)
    if name == "rprop":  # its learning rate is the initial step size: read once, at init
        assert "learning_rate" not in live_names

    def steps(step, state):
        p, out = params, []
        for g in grads:
            updates, state = step(g, state, p)
            p = gradchain.apply_updates(p, updates)
            out.append(updates)
        return out

    step = jax.jit(opt.update)
    unchanged = steps(step, opt.init(params))
    for arg in live_names:
        value = NEW_VALUES[arg]
        got = steps(step, gradchain.set_hyperparam(opt.init(params), arg, value))
        fresh = factory(**{"learning_rate": lr, arg: value})
        want = steps(jax.jit(fresh.update), fresh.init(params))
        assert max_abs_diff(got, want) == 0, arg
        assert max_abs_diff(got, unchanged) > 0, f"{arg} changed nothing in 8 steps"
    assert step._cache_size() == 1  # every value ran through the one compiled step
