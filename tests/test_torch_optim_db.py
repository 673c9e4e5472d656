"""torch's own optimizer database against gradchain.torch.

``torch.testing._internal.common_optimizers.optim_db`` is the table torch tests its optimizers
with: for each optimizer, the configurations its ``optim_inputs_func`` yields and the inputs its
``optim_error_inputs_func`` says the constructor refuses. It is read here at test time (nothing
of it is copied): for every optimizer gradchain.torch ports, every CPU configuration, and each
implementation flag torch lists for it (``foreach``, ``differentiable``, and ``fused`` where
torch has a CPU kernel), runs 20 float64 steps in torch and in gradchain.torch (jitted) and the
parameters must agree to 1e-12 relative. ``capturable=True`` has no CPU variant: torch refuses
it on CPU at the first step ("params and state_steps must be on supported devices").

The model: three matrices (Muon takes only 2-D parameters), loss_t = 0.5 ||p - y_t||**2 with a
fresh target y_t each step, so the gradient p - y_t is computed from each side's own
parameters, exactly (one IEEE subtraction, the same in numpy, torch and XLA).

What is expected to differ is listed once, in ``EXPECTED``, with the reason; the porting guide
(docs/porting_from_torch.md) gives the same list.

Measured: 253 configurations of 13 optimizers, all 253 equal; before this module's fixes 244,
and 252 before Muon kept a tensor lr's dtype (torch computes lr * sqrt(max(1, rows / cols))
and 1 - lr * weight_decay in the float32 of the database's ``torch.tensor(0.001)``: 3.3e-7
relative after 20 steps when gradchain computed them in float64, 0 now). 39 inputs torch
refuses at construction: gradchain refuses 31 naming the argument, and accepts the 8 torch
refuses for its kernels only (``EXPECTED``); before, 24. Runtime: 35-40 s of CPU; wall 51 s
on a shared 2-core machine at load average 8, 131 s at 12. Most of it is one jit compilation
per distinct configuration, and importing torch's test helpers.
"""

import sys
import types
import unittest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
import gradchain.torch as gt
from gradchain._checks import GradchainError

torch = pytest.importorskip("torch")

STEPS = 20
RTOL = 1e-12  # measured: the largest relative difference of an equal case is 4.4e-16
SHAPES = [(4, 3), (3, 3), (2, 5)]
FLAGS = ("foreach", "differentiable", "fused")


def _common_optimizers():
    """torch's test helper module. It imports ``expecttest`` (a test-only dependency of torch,
    not installed with it) for its TestCase base class only: stand unittest's in when absent."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        sys.modules["expecttest"] = types.SimpleNamespace(TestCase=unittest.TestCase)
    from torch.testing._internal import common_optimizers

    return common_optimizers


# Every expected difference, with its reason: an optimizer name (all its cases), or
# (name, config description) for one configuration, or (name, "refuses", description) for an
# input torch refuses at construction.
EXPECTED = {
    "LBFGS": "not ported: a closure-driven line search; gradchain.lbfgs is Optax's form",
    "SparseAdam": "not ported: it needs sparse gradients, which JAX does not produce",
    ("Adam", "refuses", "lr as Tensor doesn't work with foreach & not capturable"):
        "implementation-only refusal (torch's foreach kernel); gradchain reads the tensor once",
    ("AdamW", "refuses", "lr as Tensor doesn't work with foreach & not capturable"):
        "implementation-only refusal (torch's foreach kernel); gradchain reads the tensor once",
    ("Adam", "refuses", "betas must be either both floats or both Tensors"):
        "implementation-only refusal (torch's capturable kernel); gradchain reads both once",
    ("AdamW", "refuses", "betas must be either both floats or both Tensors"):
        "implementation-only refusal (torch's capturable kernel); gradchain reads both once",
}  # fmt: skip
_TENSOR_BETAS = r"betas\[0\] as a Tensor is not supported for capturable=False and foreach=True"
for _name in ("Adam", "AdamW"):
    EXPECTED[(_name, "refuses", _TENSOR_BETAS)] = (
        "implementation-only refusal (torch's foreach kernel); gradchain reads the tensors once"
    )

co = _common_optimizers()
PORTED = [info for info in co.optim_db if info.optim_cls.__name__ in gt.__all__]


def _configs():
    for info in PORTED:
        flags = [f for f in FLAGS if f in info.supported_impls]
        if "cpu" not in info.supports_fused_on and "fused" in flags:
            flags.remove("fused")
        for given in info.optim_inputs_func("cpu", torch.float64):
            yield info.optim_cls, given.desc, dict(given.kwargs)
            for flag in flags:
                yield info.optim_cls, f"{given.desc} & {flag}", {**given.kwargs, flag: True}


CONFIGS = list(_configs())


def _marks(name, desc):
    reason = EXPECTED.get(name) or EXPECTED.get((name, desc.split(" & ")[0]))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _problem():
    rng = np.random.default_rng(24)
    params = [rng.normal(size=s) for s in SHAPES]
    targets = [[rng.normal(size=s) for s in SHAPES] for _ in range(STEPS)]
    return params, targets


def _torch_run(cls, kwargs, params, targets):
    tensors = [torch.tensor(p) for p in params]  # plain tensors: differentiable=True steps too
    opt = cls(tensors, **kwargs)
    for ys in targets:
        for t, y in zip(tensors, ys):
            t.grad = t - torch.tensor(y)
        opt.step()
    return [t.numpy() for t in tensors]


_GRADCHAIN_RUNS = {}  # the flags choose torch's kernels, not the math: one gradchain run each


def _gradchain_run(name, kwargs, params, targets):
    math_kwargs = {k: v for k, v in kwargs.items() if k not in FLAGS}
    key = (name, repr(sorted(math_kwargs.items())))
    if key not in _GRADCHAIN_RUNS:
        opt = getattr(gt, name)(**math_kwargs)
        ys = [jnp.asarray(np.stack(column)) for column in zip(*targets)]

        def body(p, y):
            updates, s = opt.update([a - b for a, b in zip(p[0], y)], p[1], p[0])
            return (gradchain.apply_updates(p[0], updates), s), None

        @jax.jit
        def run(p):
            (p, _), _ = jax.lax.scan(body, (p, opt.init(p)), ys)
            return p

        _GRADCHAIN_RUNS[key] = [np.asarray(p) for p in run([jnp.asarray(p) for p in params])]
    return _GRADCHAIN_RUNS[key]


def relative_difference(ours, theirs):
    return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(ours, theirs))


@pytest.fixture
def float64(x64):
    before, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)  # torch keeps NAdam's mu_product in the default dtype
    torch.set_num_threads(1)  # 12-element tensors: threads only cost time
    yield
    torch.set_default_dtype(before)
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "cls, desc, kwargs",
    [pytest.param(*c, marks=_marks(c[0].__name__, c[1]), id=f"{c[0].__name__}-{c[1]}")
     for c in CONFIGS],
)  # fmt: skip
def test_torch_database_configuration_takes_torchs_steps(cls, desc, kwargs, float64):
    params, targets = _problem()
    theirs = _torch_run(cls, kwargs, params, targets)
    ours = _gradchain_run(cls.__name__, kwargs, params, targets)
    assert relative_difference(ours, theirs) <= RTOL


def _refusals():
    for info in PORTED:
        for wrong in info.optim_error_inputs_func("cpu", torch.float64):
            given = wrong.optimizer_error_input
            # kwargs-only inputs refused at construction; the others are about torch's params
            # list (duplicates, names, sparse or complex tensors), which gradchain has not got.
            if given.params is None and wrong.error_on == co.OptimizerErrorEnum.CONSTRUCTION_ERROR:
                yield info.optim_cls.__name__, given.desc, given.kwargs, wrong.error_regex


REFUSALS = list(_refusals())


@pytest.mark.parametrize(
    "name, desc, kwargs, torch_reason",
    [pytest.param(*r, id=f"{r[0]}-{r[1]}",
                  marks=[pytest.mark.xfail(strict=True, reason=EXPECTED[(r[0], "refuses", r[1])])]
                  if (r[0], "refuses", r[1]) in EXPECTED else [])
     for r in REFUSALS],
)  # fmt: skip
def test_what_torch_refuses_gradchain_refuses_naming_the_argument(name, desc, kwargs, torch_reason):
    wrong = [k for k in kwargs if k not in FLAGS and k != "lr"] or ["lr"]  # lr is set in most
    with pytest.raises(GradchainError, match=wrong[-1]):
        getattr(gt, name)(**kwargs)


def test_the_database_covers_every_ported_optimizer_it_knows():
    # What the database lists and gradchain.torch ports; a smaller number means torch renamed
    # or dropped an entry and the comparison above silently shrank.
    assert len(PORTED) >= 13 and len(CONFIGS) >= 170 and len(REFUSALS) >= 20
    not_ported = [k for k in EXPECTED if isinstance(k, str)]
    assert not set(not_ported) & set(gt.__all__), "ported now: take it off EXPECTED"
