"""The schedule-free family (transforms/schedule_free.py, optimizers/schedule_free.py,
combine/schedule_free.py) against Optax and against the authors' package."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradchain
from tests.conftest import reference_promotion
from tests.problems import STEPS, compare, descend, max_diff, quadratic, quadratic_and_quartic, tol

SCHEDULE_FREE_CASES = [  # (keywords, float32 bound, float64 bound): measured in the comments
    (dict(learning_rate=0.3), 5e-7, 1e-14),  # 1.2e-7, 0.0
    (dict(learning_rate=0.3, warmup_steps=10, weight_decay=0.01, b1=0.8), 5e-7, 5e-9),
    # ^ 1.8e-7, 1.2e-9: Optax's warmup schedule runs in float32 even under x64 (int32
    #   count); with that same schedule function given to both, float64 agrees exactly:
    (
        dict(learning_rate=optax.linear_schedule(0.0, 0.3, 10), weight_decay=0.01),
        5e-7,
        1e-14,
    ),  # 1.8e-7, 0.0
]


@pytest.mark.parametrize("case", range(len(SCHEDULE_FREE_CASES)))
def test_schedule_free_sgd_equals_optax(case, dtype):
    kwargs, tol32, tol64 = SCHEDULE_FREE_CASES[case]
    f, p0 = quadratic(dtype)
    got = jax.jit(lambda p: descend(gradchain, gradchain.schedule_free_sgd(**kwargs), f, p))(p0)
    with reference_promotion():
        want = jax.jit(lambda p: descend(optax, optax.contrib.schedule_free_sgd(**kwargs), f, p))(
            p0
        )
    assert max_diff(got[0], want[0]) <= (tol32 if dtype == jnp.float32 else tol64)


def schedule_free_pair(lib, schedule):
    # one schedule function for both: Optax's schedules compute in float32 even under x64
    lr = optax.warmup_constant_schedule(0.0, 0.05, 10) if schedule else 0.05
    wrap = gradchain.schedule_free if lib is gradchain else optax.contrib.schedule_free
    return wrap(lib.adam(lr, b1=0.0), lr, b1=0.9)


@pytest.mark.parametrize("schedule", [False, True])
def test_schedule_free_equals_optax(schedule, dtype):
    diff, got, want = compare(
        lambda: schedule_free_pair(gradchain, schedule),
        lambda: schedule_free_pair(optax, schedule),
        dtype,
    )
    # measured: float32 2.0e-6 (constant), 1.5e-6 (warmup); float64 0.0 and 0.0
    assert diff <= tol(dtype, 1e-5, 1e-14)
    # evaluation params: ours read the wrapper's b1 (not adam's b1=0) from the state
    x = gradchain.schedule_free_eval_params(got[2], got[0])
    x_ref = optax.contrib.schedule_free_eval_params(want[2], want[0])
    assert max_diff(x, x_ref) <= tol(dtype, 1e-5, 1e-14)  # measured 1.7e-6 / 1.2e-6, 0.0


def test_schedule_free_equals_the_authors_wrapper(x64):
    """``schedulefree.ScheduleFreeWrapper`` around torch's SGD and Adagrad, float64. (Its swap
    of params and z breaks torch's Adam, whose state would then look initialized.)"""
    torch = pytest.importorskip("torch")
    schedulefree = pytest.importorskip("schedulefree")
    f, p0 = quadratic_and_quartic(jnp.float64)
    for name, ours, base in [
        ("sgd", gradchain.sgd(0.05), lambda ps: torch.optim.SGD(ps, lr=0.05)),
        (
            "adagrad",
            gradchain.adagrad(0.05, initial_accumulator_value=0.0, eps=0.0),
            lambda ps: torch.optim.Adagrad(ps, lr=0.05, eps=0.0),
        ),
    ]:
        got = descend(gradchain, gradchain.schedule_free(ours, 0.05, b1=0.9), f, p0)
        params = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in p0.items()}
        opt = schedulefree.ScheduleFreeWrapper(base(list(params.values())), momentum=0.9)
        opt.train()
        for _ in range(STEPS):
            opt.zero_grad()
            g = jax.grad(f)({k: jnp.asarray(v.detach().numpy()) for k, v in params.items()})
            for k, v in params.items():
                v.grad = torch.tensor(np.asarray(g[k]))
            opt.step()
        want = {k: jnp.asarray(v.detach().numpy()) for k, v in params.items()}
        # measured: sgd 6.7e-16, adagrad 3.3e-16
        assert max_diff(got[0], want) <= 1e-13, name


def test_schedule_free_eval_params_refuses_other_states():
    state = gradchain.adam(0.1).init(jnp.zeros(3))
    with pytest.raises(gradchain.GradchainError, match="scale_by_schedule_free"):
        gradchain.schedule_free_eval_params(state, jnp.zeros(3))
