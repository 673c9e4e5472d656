"""gradchain.torch's schedulers against torch.optim.lr_scheduler's own, 300 steps, jitted.

torch's value for step t is the optimizer's lr after t calls of ``scheduler.step()``; ours is
the schedule at count t under ``jax.jit``. float64 on both sides.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as ls
from torch.optim.swa_utils import SWALR

import gradchain
import gradchain.torch as gt
from gradchain._checks import GradchainError
from gradchain.torch.cycled import with_scheduled_value
from gradchain.transforms.momentum import scale_by_sgd_momentum

STEPS = 300
RTOL = 1e-12  # of the largest lr; measured: at most 3.6e-15 (torch's recursions vs closed forms)
LR = 0.1


@pytest.fixture
def float64(x64):
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _torch_lrs(make, lr=LR, steps=STEPS, resume=None):
    """torch's lr at each step; ``resume=(last_epoch, lr_then)`` builds the scheduler as a
    resumed run does: initial_lr in the group, the lr it had reached, last_epoch given."""
    opt = torch.optim.SGD([torch.zeros(1)], lr=lr)
    if resume is not None:
        opt.param_groups[0]["initial_lr"] = lr
        opt.param_groups[0]["lr"] = resume[1]
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return np.array(out)


def _ours(schedule, steps=STEPS):
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(steps, dtype=jnp.int32)))


def _close(ours, theirs):
    return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


CASES = [
    ("PolynomialLR-power0.5", lambda o: ls.PolynomialLR(o, total_iters=250, power=0.5),
     gt.PolynomialLR(LR, total_iters=250, power=0.5)),
    ("PolynomialLR-power1", lambda o: ls.PolynomialLR(o, total_iters=250, power=1.0),
     gt.PolynomialLR(LR, total_iters=250, power=1.0)),
    ("PolynomialLR-power2", lambda o: ls.PolynomialLR(o, total_iters=250, power=2.0),
     gt.PolynomialLR(LR, total_iters=250, power=2.0)),
    *[(f"WarmRestarts-{t0}-{tm}", lambda o, t0=t0, tm=tm: ls.CosineAnnealingWarmRestarts(o, t0, tm),
       gt.CosineAnnealingWarmRestarts(LR, t0, tm))
      for t0, tm in [(20, 3), (10, 3), (1, 3), (3, 5), (10, 10), (7, 2), (15, 1)]],
    ("Chained-exp-cosine", lambda o: ls.ChainedScheduler([ls.ExponentialLR(o, 0.995),
                                                          ls.CosineAnnealingLR(o, T_max=100)]),
     gt.ChainedScheduler([gt.ExponentialLR(LR, 0.995), gt.CosineAnnealingLR(LR, T_max=100)])),
    ("Chained-cosine-exp", lambda o: ls.ChainedScheduler([ls.CosineAnnealingLR(o, T_max=40),
                                                          ls.ExponentialLR(o, 0.99)]),
     gt.ChainedScheduler([gt.CosineAnnealingLR(LR, T_max=40), gt.ExponentialLR(LR, 0.99)])),
    ("Chained-step-cosine-linear",
     lambda o: ls.ChainedScheduler([ls.StepLR(o, 30, 0.5), ls.CosineAnnealingLR(o, T_max=70),
                                    ls.LinearLR(o, 0.2, 1.0, total_iters=50)]),
     gt.ChainedScheduler([gt.StepLR(LR, 30, 0.5), gt.CosineAnnealingLR(LR, T_max=70),
                          gt.LinearLR(LR, 0.2, 1.0, total_iters=50)])),
    ("Chained-exp-step", lambda o: ls.ChainedScheduler([ls.ExponentialLR(o, 0.99),
                                                        ls.StepLR(o, 50, 0.3)]),
     gt.ChainedScheduler([gt.ExponentialLR(LR, 0.99), gt.StepLR(LR, 50, 0.3)])),
    *[(f"SWALR-{s}-{e}",
       lambda o, s=s, e=e: SWALR(o, swa_lr=0.02, anneal_epochs=e, anneal_strategy=s),
       gt.SWALR(LR, swa_lr=0.02, anneal_epochs=e, anneal_strategy=s))
      for s in ("cos", "linear") for e in (0, 1, 10, 100)],
]  # fmt: skip


@pytest.mark.parametrize("name, make, ours", CASES, ids=[c[0] for c in CASES])
def test_scheduler_equals_torchs_over_300_steps_under_jit(name, make, ours, float64):
    assert _close(_ours(ours), _torch_lrs(make)) <= RTOL


RESUMED = [
    ("StepLR", lambda o, k: ls.StepLR(o, 30, 0.5, last_epoch=k),
     lambda k: gt.StepLR(LR, 30, 0.5, last_epoch=k)),
    ("MultiStepLR", lambda o, k: ls.MultiStepLR(o, [20, 90], 0.3, last_epoch=k),
     lambda k: gt.MultiStepLR(LR, [20, 90], 0.3, last_epoch=k)),
    ("ExponentialLR", lambda o, k: ls.ExponentialLR(o, 0.99, last_epoch=k),
     lambda k: gt.ExponentialLR(LR, 0.99, last_epoch=k)),
    ("CosineAnnealingLR", lambda o, k: ls.CosineAnnealingLR(o, 80, last_epoch=k),
     lambda k: gt.CosineAnnealingLR(LR, 80, last_epoch=k)),
    ("CosineAnnealingLR-eta_min", lambda o, k: ls.CosineAnnealingLR(o, 80, 0.01, last_epoch=k),
     lambda k: gt.CosineAnnealingLR(LR, 80, 0.01, last_epoch=k)),
    ("LinearLR", lambda o, k: ls.LinearLR(o, 0.1, 1.0, 60, last_epoch=k),
     lambda k: gt.LinearLR(LR, 0.1, 1.0, 60, last_epoch=k)),
    ("ConstantLR", lambda o, k: ls.ConstantLR(o, 0.5, 40, last_epoch=k),
     lambda k: gt.ConstantLR(LR, 0.5, 40, last_epoch=k)),
    ("PolynomialLR", lambda o, k: ls.PolynomialLR(o, 100, 2.0, last_epoch=k),
     lambda k: gt.PolynomialLR(LR, 100, 2.0, last_epoch=k)),
    ("LambdaLR", lambda o, k: ls.LambdaLR(o, lambda t: 1 / (1 + t), last_epoch=k),
     lambda k: gt.LambdaLR(LR, lambda t: 1 / (1 + t), last_epoch=k)),
    ("MultiplicativeLR", lambda o, k: ls.MultiplicativeLR(o, lambda t: 0.99, last_epoch=k),
     lambda k: gt.MultiplicativeLR(LR, lambda t: jnp.asarray(0.99), last_epoch=k)),
    ("CyclicLR", lambda o, k: ls.CyclicLR(o, 0.01, 0.1, 25, mode="triangular2",
                                          cycle_momentum=False, last_epoch=k),
     lambda k: gt.CyclicLR(0.01, 0.1, 25, mode="triangular2", last_epoch=k)),
    ("OneCycleLR", lambda o, k: ls.OneCycleLR(o, 0.1, total_steps=400, cycle_momentum=False,
                                              last_epoch=k),
     lambda k: gt.OneCycleLR(0.1, total_steps=400, last_epoch=k)),
]  # fmt: skip


# torch's own resumed schedulers disagree with one another (measured, k = 37): ExponentialLR
# and MultiplicativeLR continue the fresh run (epoch k + t at step t); StepLR, MultiStepLR,
# ConstantLR and LambdaLR skip one epoch (k + 1 + t); CosineAnnealingLR, LinearLR, PolynomialLR,
# CyclicLR and CosineAnnealingWarmRestarts follow neither (their recursion restarts from the
# optimizer's lr with a different count). gradchain's last_epoch continues the fresh run.
TORCH_RESUME_CONTINUES = ("ExponentialLR", "MultiplicativeLR")


@pytest.mark.parametrize("name, make, ours", RESUMED, ids=[c[0] for c in RESUMED])
def test_last_epoch_continues_torchs_fresh_run(name, make, ours, float64):
    k = 37
    fresh = _torch_lrs(lambda o: make(o, -1), steps=k + STEPS)
    assert _close(_ours(ours(k)), fresh[k:]) <= RTOL
    if name in TORCH_RESUME_CONTINUES:
        theirs = _torch_lrs(lambda o: make(o, k), resume=(k, fresh[k]))
        assert _close(_ours(ours(k)), theirs) <= RTOL


def test_warm_restarts_resumed_continue_the_fresh_run_where_torch_restarts_its_count(float64):
    # torch's CosineAnnealingWarmRestarts(last_epoch=k) sets T_cur = k in the first cycle and
    # takes at most one restart per step: not the fresh run's value. gradchain continues it.
    k, make = 37, (lambda o, k: ls.CosineAnnealingWarmRestarts(o, 10, 2, last_epoch=k))
    fresh = _torch_lrs(lambda o: make(o, -1), steps=k + STEPS)
    resumed = _torch_lrs(lambda o: make(o, k), resume=(k, fresh[k]))
    ours = _ours(gt.CosineAnnealingWarmRestarts(LR, 10, 2, last_epoch=k))
    assert _close(ours, fresh[k:]) <= RTOL
    assert _close(resumed, fresh[k:]) > 0.1


def test_swalr_anneals_from_the_optimizers_lr_and_ignores_last_epoch_as_torch(float64):
    k = 37
    fresh = _torch_lrs(lambda o: SWALR(o, 0.02, 10), steps=k + 1, lr=0.3)
    theirs = _torch_lrs(lambda o: SWALR(o, 0.02, 10, last_epoch=k), lr=0.3,
                        resume=(k, fresh[k]))  # fmt: skip
    assert _close(_ours(gt.SWALR(fresh[k], 0.02, 10, last_epoch=k)), theirs) <= RTOL


def test_polynomial_is_exactly_zero_from_total_iters_on_under_jit(float64):
    for power in (0.5, 1.0, 2.0):
        values = _ours(gt.PolynomialLR(LR, total_iters=250, power=power))
        assert np.all(values[250:] == 0.0), power  # before: NaN, -5.6e-18, 4.3e-35


def test_warm_restarts_whose_last_cycle_passes_int32_build_and_run(float64):
    schedule = gt.CosineAnnealingWarmRestarts(LR, T_0=20, T_mult=3)  # before: OverflowError
    top = jnp.iinfo(jnp.int32).max
    assert np.isfinite(float(jax.jit(schedule)(top)))


def test_refusals_name_the_argument():
    with pytest.raises(GradchainError, match="power"):
        gt.PolynomialLR(LR, 10, power=-1.0)
    with pytest.raises(GradchainError, match="last_epoch"):
        gt.StepLR(LR, 10, last_epoch=-2)
    with pytest.raises(GradchainError, match="anneal_strategy"):
        gt.SWALR(LR, 0.01, anneal_strategy="exp")
    with pytest.raises(GradchainError, match="CosineAnnealingLR"):
        gt.ChainedScheduler([gt.CosineAnnealingLR(LR, 10), gt.CosineAnnealingLR(LR, 20)])


def test_chained_cosine_leaves_the_plain_product_after_t_max(float64):
    # What the recursive form changes: the product of the closed forms is not torch's value.
    chained = _ours(gt.ChainedScheduler([gt.ExponentialLR(LR, 0.995),
                                         gt.CosineAnnealingLR(LR, T_max=100)]))  # fmt: skip
    product = LR * 0.995 ** np.arange(STEPS) * (1 + np.cos(math.pi * np.arange(STEPS) / 100)) / 2
    assert abs(chained[292] / product[292] - 1) > 0.3


CYCLED = [
    ("OneCycleLR", lambda o: ls.OneCycleLR(o, 0.1, total_steps=STEPS), gt.OneCycleLR(0.1, STEPS)),
    ("OneCycleLR-three-phase-linear",
     lambda o: ls.OneCycleLR(o, 0.1, total_steps=STEPS, three_phase=True, anneal_strategy="linear",
                             base_momentum=0.7, max_momentum=0.9),
     gt.OneCycleLR(0.1, STEPS, three_phase=True, anneal_strategy="linear", base_momentum=0.7,
                   max_momentum=0.9)),
    # the momentum reaches exactly 0 at the lr's peak (step 89; steps 40, 120, ... below), where
    # torch's SGD and RMSprop leave their buffer alone for that step
    ("OneCycleLR-base_momentum0",
     lambda o: ls.OneCycleLR(o, 0.1, total_steps=STEPS, base_momentum=0.0, max_momentum=0.9),
     gt.OneCycleLR(0.1, STEPS, base_momentum=0.0, max_momentum=0.9)),
    ("CyclicLR-triangular2", lambda o: ls.CyclicLR(o, 0.01, 0.1, 40, mode="triangular2"),
     gt.CyclicLR(0.01, 0.1, 40, mode="triangular2")),
    ("CyclicLR-exp_range", lambda o: ls.CyclicLR(o, 0.01, 0.1, 30, 50, mode="exp_range",
                                                 gamma=0.995),
     gt.CyclicLR(0.01, 0.1, 30, 50, mode="exp_range", gamma=0.995)),
    ("CyclicLR-base_momentum0", lambda o: ls.CyclicLR(o, 0.01, 0.1, 40, base_momentum=0.0),
     gt.CyclicLR(0.01, 0.1, 40, base_momentum=0.0)),
]  # fmt: skip

# Every ported optimizer torch lets a scheduler cycle (its defaults hold "momentum" or
# "betas"), with the arguments given to both constructors; torch's scheduler then replaces
# momentum or betas[0], and gradchain's optimizer takes the lr schedule's ``.momentum`` there.
CYCLING = [
    ("SGD", dict(momentum=0.9)),
    ("SGD", dict(momentum=0.0)),  # torch cycles it all the same (its buffer appears)
    ("SGD", dict(momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(momentum=0.9, nesterov=True)),
    ("RMSprop", dict(momentum=0.5)),
    ("RMSprop", dict(momentum=0.0)),
    ("RMSprop", dict(momentum=0.5, centered=True)),
    ("Muon", dict()),
    ("Adam", dict(betas=(0.9, 0.99))),
    ("Adam", dict(amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict()),
    ("NAdam", dict()),
    ("NAdam", dict(decoupled_weight_decay=True, weight_decay=0.01)),
    ("RAdam", dict()),
    ("Adamax", dict()),
]
CYCLED_RTOL = 1e-12  # relative to the largest parameter; measured: see the test


def _cycling_id(case):
    name, kwargs = case
    return "-".join([name, *(f"{k}={v}" for k, v in kwargs.items())])


def _torch_cycled(cls_name, kwargs, make, p0, grads):
    t = torch.tensor(p0)
    opt = getattr(torch.optim, cls_name)([t], lr=0.1, **kwargs)
    sched, momenta = make(opt), []
    for g in grads:
        group = opt.param_groups[0]
        momenta.append(group["betas"][0] if "betas" in group else group.get("momentum"))
        t.grad = torch.tensor(g)
        opt.step()
        sched.step()
    return t.numpy(), np.array(momenta)


def _gradchain_steps(port, p0, grads):
    def body(carry, g):
        p, s = carry
        u, s = port.update(g, s, p)
        return (p + u, s), None

    p = jnp.asarray(p0)
    (p, _), _ = jax.jit(lambda c, gs: jax.lax.scan(body, c, gs))((p, port.init(p)), grads)
    return np.asarray(p)


@pytest.mark.parametrize("name, make, ours", CYCLED, ids=[c[0] for c in CYCLED])
@pytest.mark.parametrize("cls_name, kwargs", CYCLING, ids=[_cycling_id(c) for c in CYCLING])
def test_cycled_momentum_is_torchs_and_takes_torchs_steps(name, make, ours, cls_name, kwargs,
                                                          float64):  # fmt: skip
    # Measured: at most 4.3e-15 relative over the 90 cases (300 steps each; the momenta 1.9e-15).
    rng = np.random.default_rng(3)
    p0, grads = rng.normal(size=(3, 4)), rng.normal(size=(STEPS, 3, 4))
    theirs, momenta = _torch_cycled(cls_name, kwargs, make, p0, grads)
    assert _close(_ours(ours.momentum), momenta) <= RTOL
    port = getattr(gt, cls_name)(lr=ours, **kwargs)  # the schedule's .momentum, as torch's
    assert _close(_gradchain_steps(port, p0, grads), theirs) <= CYCLED_RTOL


@pytest.mark.parametrize("cls_name", ["SGD", "RMSprop"])
def test_a_buffer_updated_at_a_zero_momentum_would_differ_from_torch(cls_name, float64):
    # What the base_momentum=0 cases guard: a buffer taken at the step whose momentum is 0
    # (buf <- 0 buf + g) instead of torch's untouched one. Given a schedule directly, the
    # momentum is the same; built plainly from the values, it differs from torch.
    _, make, ours = CYCLED[2]
    rng = np.random.default_rng(3)
    p0, grads = rng.normal(size=(3, 4)), rng.normal(size=(STEPS, 3, 4))
    kwargs = dict(momentum=0.9, dampening=0.3) if cls_name == "SGD" else dict(momentum=0.5)
    theirs, _ = _torch_cycled(cls_name, kwargs, make, p0, grads)
    given = getattr(gt, cls_name)(lr=ours, **{**kwargs, "momentum": ours.momentum})
    assert _close(_gradchain_steps(given, p0, grads), theirs) <= CYCLED_RTOL
    values = [float(ours.momentum(t)) for t in range(STEPS)]
    assert values.count(0.0) == 1  # the peak

    def plain(m):  # the same chain, its buffer taken at every step (no skip at 0)
        if cls_name == "SGD":
            return scale_by_sgd_momentum(m, 0.3)
        return gradchain.chain(gradchain.scale_by_rms(0.99, 1e-8, eps_in_sqrt=False),
                               gradchain.scale_by_momentum(m))  # fmt: skip

    plain_port = gradchain.chain(with_scheduled_value(plain, ours.momentum),
                                 gradchain.scale_by_learning_rate(ours))  # fmt: skip
    # measured: 1.1e-2 (SGD, dampening 0.3), 4.1e-6 (RMSprop): far outside CYCLED_RTOL
    assert _close(_gradchain_steps(plain_port, p0, grads), theirs) > 1e-6


BY_HAND = [("SGD", "momentum"), ("RMSprop", "momentum"), ("Muon", "momentum"), ("Adam", "betas"),
           ("NAdam", "betas"), ("RAdam", "betas"), ("Adamax", "betas")]  # fmt: skip


@pytest.mark.parametrize("cls_name, where", BY_HAND, ids=[c[0] for c in BY_HAND])
def test_a_cycled_momentum_given_by_hand_is_the_one_the_lr_schedule_gives(cls_name, where, float64):
    _, _, ours = CYCLED[3]
    rng = np.random.default_rng(3)
    p0, grads = rng.normal(size=(3, 4)), rng.normal(size=(STEPS, 3, 4))
    given = {"momentum": ours.momentum} if where == "momentum" else {
        "betas": (ours.momentum, 0.999)}  # fmt: skip
    by_hand = getattr(gt, cls_name)(lr=ours, **given)
    plain_lr = getattr(gt, cls_name)(lr=gt.CyclicLR(0.01, 0.1, 40, mode="triangular2",
                                                    cycle_momentum=False), **given)  # fmt: skip
    from_lr = _gradchain_steps(getattr(gt, cls_name)(lr=ours), p0, grads)  # equal to torch's
    assert np.array_equal(_gradchain_steps(by_hand, p0, grads), from_lr)
    assert np.array_equal(_gradchain_steps(plain_lr, p0, grads), from_lr)


def test_every_optimizer_torch_lets_cycle_is_cycled_and_the_others_refused(float64):
    # torch's rule (OneCycleLR, CyclicLR): cycle "momentum" if the optimizer's defaults hold it,
    # else "betas"[0], else ValueError. Read from torch for every optimizer gradchain ports.
    ported = [n for n in gt.__all__ if isinstance(getattr(torch.optim, n, None), type)]
    cycles = {n for n in ported if {"momentum", "betas"} & set(
        getattr(torch.optim, n)([torch.zeros(2, 2)], lr=0.1).defaults)}  # fmt: skip
    assert cycles == {name for name, _ in CYCLING}
    assert set(ported) - cycles == set(dict(REFUSING))


REFUSING = [("Adagrad", dict()), ("Adadelta", dict()), ("Rprop", dict()), ("ASGD", dict()),
            ("Adafactor", dict())]  # fmt: skip


@pytest.mark.parametrize("name, make, ours", [CYCLED[0], CYCLED[3]], ids=["OneCycleLR", "CyclicLR"])
@pytest.mark.parametrize("cls_name", [n for n, _ in REFUSING])
def test_cycled_momentum_is_refused_where_torch_refuses_it_with_torchs_reason(
    name, make, ours, cls_name
):
    with pytest.raises(ValueError) as theirs:
        make(getattr(torch.optim, cls_name)([torch.zeros(2, 2)], lr=0.1))
    with pytest.raises(GradchainError, match=re.escape(str(theirs.value))) as refused:
        getattr(gt, cls_name)(lr=ours)
    assert "cycle_momentum=False" in str(refused.value)


KEPT = [("Adagrad", dict()), ("Adadelta", dict()), ("SGD", dict(momentum=0.9)),
        ("RMSprop", dict(momentum=0.5)), ("Adam", dict(betas=(0.8, 0.99)))]  # fmt: skip


@pytest.mark.parametrize("cls_name, kwargs", KEPT, ids=[_cycling_id(c) for c in KEPT])
def test_without_cycle_momentum_the_lr_schedule_is_taken_and_the_momentum_kept(
    cls_name, kwargs, float64
):
    rng = np.random.default_rng(3)
    p0, grads = rng.normal(size=(3, 4)), rng.normal(size=(STEPS, 3, 4))
    make = lambda o: ls.OneCycleLR(o, 0.1, STEPS, cycle_momentum=False)  # noqa: E731
    theirs, momenta = _torch_cycled(cls_name, kwargs, make, p0, grads)
    assert len(set(momenta)) == 1
    port = getattr(gt, cls_name)(lr=gt.OneCycleLR(0.1, STEPS, cycle_momentum=False), **kwargs)
    assert _close(_gradchain_steps(port, p0, grads), theirs) <= CYCLED_RTOL


def test_the_checks_of_torchs_constructor_run_on_the_momentum_given_before_it_is_cycled():
    cycled = gt.OneCycleLR(0.1, 100)
    with pytest.raises(ValueError, match="Nesterov"):  # torch refuses before its scheduler runs
        torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.0, nesterov=True)
    with pytest.raises(GradchainError, match="nesterov"):
        gt.SGD(lr=cycled, momentum=0.0, nesterov=True)
    with pytest.raises(GradchainError, match="momentum"):
        gt.RMSprop(lr=cycled, momentum=-0.5)
    with pytest.raises(GradchainError, match=r"betas\[0\]"):
        gt.NAdam(lr=cycled, betas=(1.5, 0.999))


def test_only_betas0_may_be_a_schedule_as_torchs_schedulers_cycle_only_it():
    with pytest.raises(GradchainError, match=r"betas\[1\]"):
        gt.NAdam(betas=(0.9, gt.OneCycleLR(0.1, 100).momentum))
