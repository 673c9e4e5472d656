"""gradchain.torch against torch.optim itself: the same parameters, the same gradients (drawn
from numpy and handed to both), 200 steps in float64 on CPU, max |diff| <= 1e-10; schedulers
against torch's learning rates over 1,000 steps; a state converted from torch continues the
trajectory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import gradchain
import gradchain.torch as gt

STEPS = 200
TOL = 1e-10
SHAPES = {"a": (3, 4), "b": (4,), "c": (2, 1, 3)}  # jax.tree.leaves order: a, b, c


@pytest.fixture
def torch64(x64):
    """float64 JAX and float64 torch scalars (torch keeps NAdam's mu_product in the default
    dtype)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _problem(seed, steps=STEPS):
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(size=s) for k, s in SHAPES.items()}
    grads = []
    for _ in range(steps):
        # Varying magnitudes (AMSGrad's maximum matters), some exact zeros (Rprop's s = 0).
        g = {k: rng.normal(size=s) * np.exp(rng.normal()) for k, s in SHAPES.items()}
        g["b"][rng.integers(0, 4)] = 0.0
        grads.append(g)
    return params, grads


def _torch_run(cls, kwargs, params, grads, scheduler=None, optimizer=None):
    tensors = [torch.tensor(params[k]) for k in SHAPES]
    for t in tensors:
        t.requires_grad_(True)
    opt = optimizer or cls(tensors, **kwargs)
    sched = scheduler(opt) if scheduler else None
    ordered = [t for group in opt.param_groups for t in group["params"]]
    for g in grads:
        for t, k in zip(ordered, SHAPES):
            t.grad = torch.tensor(g[k])
        opt.step()
        if sched is not None:
            sched.step()
    final = {k: t.detach().numpy().copy() for k, t in zip(SHAPES, ordered)}
    return final, opt


def _gradchain_run(opt, params, grads, state=None):
    params = jax.tree.map(jnp.asarray, params)
    stacked = jax.tree.map(lambda *g: jnp.asarray(np.stack(g)), *grads)
    state = opt.init(params) if state is None else state

    def body(carry, g):
        p, s = carry
        updates, s = opt.update(g, s, p)
        return (gradchain.apply_updates(p, updates), s), None

    (params, state), _ = jax.jit(lambda c, gs: jax.lax.scan(body, c, gs))((params, state), stacked)
    return params, state


def _max_diff(a, b):
    return max(float(np.max(np.abs(np.asarray(a[k]) - b[k]))) for k in SHAPES)


CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, dampening=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.1, maximize=True)),
    ("SGD", dict(weight_decay=0.01)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("Adagrad", dict(initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(weight_decay=0.1, maximize=True, lr_decay=1e-3)),
    ("RMSprop", dict()),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(momentum=0.9, lr=1e-3)),
    ("RMSprop", dict(centered=True, momentum=0.5, weight_decay=0.1, lr=1e-3)),
    ("RMSprop", dict(alpha=0.9, eps=1e-4, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, momentum_decay=0.05)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(betas=(0.8, 0.99), eps=1e-4, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(betas=(0.9, 0.99), eps=1e-4, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, weight_decay=0.1)),
    ("Adamax", dict(betas=(0.5, 0.9), eps=1e-3, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.1, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2))),
    ("Rprop", dict(maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-3)),
    ("Adadelta", dict(weight_decay=0.1, maximize=True)),
]


def _case_id(case):
    name, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_200_steps_equal_torch_optim(case, torch64):
    name, kwargs = case
    params, grads = _problem(seed=len(CASES) + CASES.index(case))
    expected, _ = _torch_run(getattr(torch.optim, name), kwargs, params, grads)
    got, _ = _gradchain_run(getattr(gt, name)(**kwargs), params, grads)
    assert _max_diff(got, expected) <= TOL


def test_every_constructor_takes_torchs_defaults():
    import inspect

    for name in {c[0] for c in CASES}:
        ours = inspect.signature(getattr(gt, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name).__init__).parameters
        for arg, p in theirs.items():
            if arg in ("self", "params", "foreach", "fused", "capturable", "differentiable"):
                continue
            assert arg in ours, f"{name} lacks torch's argument {arg}"
            assert ours[arg].default == p.default, f"{name}({arg}=) default differs from torch's"


def test_implementation_only_arguments_are_accepted_and_others_refused():
    gt.Adam(lr=1e-3, foreach=False, fused=None, capturable=False, differentiable=False)
    with pytest.raises(TypeError, match="betaz"):
        gt.Adam(betaz=(0.9, 0.99))


def test_torch_amsgrad_differs_from_optax_amsgrad(torch64):
    """The difference is real: the maximum of raw nu is not the maximum of corrected nu."""
    params, grads = _problem(seed=1)
    expected, _ = _torch_run(torch.optim.Adam, dict(lr=0.01, amsgrad=True), params, grads)
    ours, _ = _gradchain_run(gt.Adam(lr=0.01, amsgrad=True), params, grads)
    optax_form, _ = _gradchain_run(gradchain.amsgrad(0.01), params, grads)
    assert _max_diff(ours, expected) <= TOL
    assert _max_diff(optax_form, expected) > 1e-4


def test_nadam_momentum_decay_keyword_is_torchs_nadam(torch64):
    params, grads = _problem(seed=2)
    expected, _ = _torch_run(torch.optim.NAdam, dict(lr=0.01), params, grads)
    got, _ = _gradchain_run(gradchain.nadam(0.01, momentum_decay=4e-3), params, grads)
    assert _max_diff(got, expected) <= TOL
    optax_form, _ = _gradchain_run(gradchain.nadam(0.01), params, grads)
    assert _max_diff(optax_form, expected) > 1e-4


def test_sgd_nesterov_needs_momentum_and_no_dampening():
    with pytest.raises(gradchain.GradchainError, match="nesterov"):
        gt.SGD(lr=0.1, nesterov=True)
    with pytest.raises(gradchain.GradchainError, match="nesterov"):
        gt.SGD(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


# --- schedulers --------------------------------------------------------------------------

sched = torch.optim.lr_scheduler

SCHEDULERS = [
    ("StepLR", lambda o: sched.StepLR(o, step_size=30, gamma=0.5), lambda: gt.StepLR(0.1, 30, 0.5)),
    (
        "MultiStepLR",
        lambda o: sched.MultiStepLR(o, milestones=[100, 300, 300, 700], gamma=0.3),
        lambda: gt.MultiStepLR(0.1, [100, 300, 300, 700], gamma=0.3),
    ),
    (
        "ExponentialLR",
        lambda o: sched.ExponentialLR(o, gamma=0.995),
        lambda: gt.ExponentialLR(0.1, 0.995),
    ),
    (
        "CosineAnnealingLR",
        lambda o: sched.CosineAnnealingLR(o, T_max=300, eta_min=1e-3),
        lambda: gt.CosineAnnealingLR(0.1, T_max=300, eta_min=1e-3),
    ),
    (
        "LinearLR",
        lambda o: sched.LinearLR(o, start_factor=0.01, end_factor=0.5, total_iters=400),
        lambda: gt.LinearLR(0.1, 0.01, 0.5, total_iters=400),
    ),
    (
        "OneCycleLR",
        lambda o: sched.OneCycleLR(o, max_lr=0.5, total_steps=1000, cycle_momentum=False),
        lambda: gt.OneCycleLR(0.5, total_steps=1000),
    ),
    (
        "OneCycleLR-linear-three-phase",
        lambda o: sched.OneCycleLR(
            o,
            max_lr=0.5,
            epochs=10,
            steps_per_epoch=100,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            cycle_momentum=False,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        lambda: gt.OneCycleLR(
            0.5,
            epochs=10,
            steps_per_epoch=100,
            pct_start=0.25,
            anneal_strategy="linear",
            three_phase=True,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
    ),
    (
        "SequentialLR-warmup-cosine",
        lambda o: sched.SequentialLR(
            o,
            [
                sched.LinearLR(o, start_factor=0.01, total_iters=100),
                sched.CosineAnnealingLR(o, T_max=900, eta_min=1e-4),
            ],
            milestones=[100],
        ),
        lambda: gt.SequentialLR(
            [gt.LinearLR(0.1, 0.01, total_iters=100), gt.CosineAnnealingLR(0.1, 900, 1e-4)],
            milestones=[100],
        ),
    ),
]


def _torch_lrs(make, steps=1000):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    s = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if len(lrs) < steps:
            s.step()
    return np.array(lrs)


@pytest.mark.parametrize("entry", SCHEDULERS, ids=[e[0] for e in SCHEDULERS])
def test_scheduler_equals_torchs_learning_rates_over_1000_steps(entry, torch64):
    _, make_torch, make_ours = entry
    expected = _torch_lrs(make_torch)
    got = np.asarray(jax.jit(jax.vmap(make_ours()))(jnp.arange(1000, dtype=jnp.int32)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_schedule_as_lr_follows_torch_with_its_scheduler(torch64):
    params, grads = _problem(seed=3)
    tensors = [torch.tensor(params[k], requires_grad=True) for k in SHAPES]
    topt = torch.optim.SGD(tensors, lr=0.1, momentum=0.9)
    expected, _ = _torch_run(
        None,
        None,
        params,
        grads,
        scheduler=lambda o: sched.StepLR(o, step_size=50, gamma=0.5),
        optimizer=topt,
    )
    opt = gt.SGD(lr=gt.StepLR(0.1, 50, 0.5), momentum=0.9)
    got, _ = _gradchain_run(opt, params, grads)
    assert _max_diff(got, expected) <= TOL


# --- continuing a torch run in JAX ---------------------------------------------------------

CONTINUE = [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
    ("RMSprop", dict(centered=True, momentum=0.5, lr=1e-3)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01)),
    ("RAdam", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("Rprop", dict()),
    ("Adadelta", dict()),
]


@pytest.mark.parametrize("case", CONTINUE, ids=[_case_id(c) for c in CONTINUE])
def test_state_from_torch_continues_the_trajectory(case, torch64):
    name, kwargs = case
    params, grads = _problem(seed=4)
    expected, _ = _torch_run(getattr(torch.optim, name), kwargs, params, grads)
    half, topt = _torch_run(getattr(torch.optim, name), kwargs, params, grads[:100])
    opt = getattr(gt, name)(**kwargs)
    jax_params = jax.tree.map(jnp.asarray, half)
    state = gt.from_torch_state_dict(opt, topt.state_dict(), jax_params)
    got, _ = _gradchain_run(opt, half, grads[100:], state=state)
    assert _max_diff(got, expected) <= TOL


def test_converted_state_has_the_same_types_as_init(torch64):
    params, grads = _problem(seed=5, steps=3)
    _, topt = _torch_run(torch.optim.Adam, dict(amsgrad=True), params, grads)
    opt = gt.Adam(amsgrad=True)
    state = gt.from_torch_state_dict(opt, topt.state_dict(), params)
    fresh = opt.init(jax.tree.map(jnp.asarray, params))
    assert jax.tree.structure(state) == jax.tree.structure(fresh)
    assert type(state) is type(fresh)
    assert [type(s) for s in state.inner] == [type(s) for s in fresh.inner]
    assert int(state.inner[1].count) == 3


def test_hyperparameters_are_live_under_torchs_names_and_come_from_param_groups(torch64):
    """``param_group["lr"] = x`` in torch is ``set_hyperparam(state, "lr", x)`` here, and a
    converted state carries torch's current param_groups values."""
    params, grads = _problem(seed=7, steps=3)
    _, topt = _torch_run(torch.optim.Adam, dict(lr=0.01), params, grads)
    topt.param_groups[0]["lr"] = 0.002
    opt = gt.Adam(lr=0.01)
    state = gt.from_torch_state_dict(opt, topt.state_dict(), params)
    assert sorted(gradchain.get_hyperparams(state)) == ["eps", "lr"]
    assert float(gradchain.get_hyperparams(state)["lr"]) == 0.002
    state = gradchain.set_hyperparam(state, "lr", 0.5)
    assert float(gradchain.get_hyperparams(state)["lr"]) == 0.5
    with pytest.raises(gradchain.GradchainError, match="lr"):
        gradchain.set_hyperparam(state, "lr", -1.0)
    sgd = gt.SGD(lr=0.1, momentum=0.9, dampening=0.5).init(jax.tree.map(jnp.asarray, params))
    assert sorted(gradchain.get_hyperparams(sgd)) == ["dampening", "lr"]


def test_a_live_lr_takes_torchs_steps_after_a_change(torch64):
    """Change lr half-way in both: the jitted step is reused with the new value."""
    params, grads = _problem(seed=9, steps=20)
    tensors = [torch.tensor(params[k], requires_grad=True) for k in SHAPES]
    topt = torch.optim.AdamW(tensors, lr=0.01)
    _torch_run(None, None, params, grads[:10], optimizer=topt)
    topt.param_groups[0]["lr"] = 0.05
    expected, _ = _torch_run(None, None, params, grads[10:], optimizer=topt)
    opt = gt.AdamW(lr=0.01)
    half, state = _gradchain_run(opt, params, grads[:10])
    state = gradchain.set_hyperparam(state, "lr", 0.05)
    got, _ = _gradchain_run(opt, jax.tree.map(np.asarray, half), grads[10:], state=state)
    assert _max_diff(got, expected) <= TOL


def test_from_torch_state_dict_refuses_mismatches(torch64):
    params, grads = _problem(seed=6, steps=2)
    _, topt = _torch_run(torch.optim.Adam, {}, params, grads)
    with pytest.raises(gradchain.GradchainError, match="gradchain.torch"):
        gt.from_torch_state_dict(gradchain.adam(1e-3), topt.state_dict(), params)
    with pytest.raises(gradchain.GradchainError, match="3 params but params has 2"):
        gt.from_torch_state_dict(gt.Adam(), topt.state_dict(), {"a": params["a"], "b": params["b"]})
    swapped = {"a": params["b"], "b": params["a"], "c": params["c"]}
    with pytest.raises(gradchain.GradchainError, match="shape"):
        gt.from_torch_state_dict(gt.Adam(), topt.state_dict(), swapped)


def test_gradchain_torch_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, gradchain.torch; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_porting_guide_first_example_runs_as_printed(capsys):
    import pathlib
    import re

    guide = pathlib.Path(__file__).parent.parent / "docs" / "porting_from_torch.md"
    code = re.findall(r"```python\n(.*?)```", guide.read_text(), re.S)[0]
    exec(compile(code, str(guide), "exec"), {})
    printed = capsys.readouterr().out.strip()
    assert printed in code  # the comment under print(opt) shows what it prints
    assert printed.startswith("AdamW(chain(scale_by_momentum")  # a live optimizer and its chain


def test_param_groups_with_other_hyperparameters_are_refused(torch64):
    params, grads = _problem(seed=8, steps=2)
    tensors = [torch.tensor(params[k], requires_grad=True) for k in SHAPES]
    groups = [{"params": tensors[:2]}, {"params": tensors[2:], "lr": 0.1}]
    _, topt = _torch_run(None, None, params, grads, optimizer=torch.optim.Adam(groups, lr=1e-3))
    with pytest.raises(gradchain.GradchainError, match="different"):
        gt.from_torch_state_dict(gt.Adam(), topt.state_dict(), params)
