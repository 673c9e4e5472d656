"""Porting from torch.optim: constructors with torch's argument names, defaults and math.

``gradchain.torch.Adam(lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2, amsgrad=True)`` takes
what ``torch.optim.Adam(params, ...)`` takes (without ``params``) and returns a live gradchain
chain whose steps are torch's steps: its numbers are kept under torch's names, so torch's
``param_group["lr"] = 1e-4`` is ``gradchain.set_hyperparam(state, "lr", 1e-4)``
(``gradchain.get_hyperparams(state)`` lists them). Tested side by side with torch.optim, 200 float64
steps on several tensors, to 1e-10 (``tests/test_torch_port.py``). The schedulers
(``StepLR``, ``CosineAnnealingLR``, ...) are gradchain schedules -- functions of the step
count -- with torch's step semantics: the learning rate of the step numbered ``t`` (0 first)
is torch's ``lr`` after ``t`` calls of ``scheduler.step()``, one per optimizer step. Pass one
as ``lr``; ``ReduceLROnPlateau``, which needs the metric, returns the lr to set with
``set_hyperparam``. ``from_torch_state_dict`` turns a torch optimizer's ``state_dict()`` into
the gradchain state, so a run continues in JAX; ``to_torch_state_dict`` goes back.

How torch's arguments become transforms (see docs/porting_from_torch.md for the table):

- ``maximize=True``: ``scale(-1.0)`` first -- the gradient is negated before anything else.
- ``weight_decay`` (coupled, torch's default): ``add_decayed_weights(wd)`` first in the
  chain (L2: it enters the moments). ``decoupled_weight_decay=True`` and ``AdamW``: the same
  transform just before the learning rate (torch's ``p *= 1 - lr * wd``).
- The learning rate is always the last member, ``scale_by_learning_rate(lr)``; ``lr`` may
  be a schedule.

This module never imports torch: it reads torch tensors through ``numpy.asarray``.
"""

from gradchain.torch.adafactor import Adafactor
from gradchain.torch.asgd import ASGD
from gradchain.torch.muon import Muon
from gradchain.torch.optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    NAdam,
    RAdam,
    RMSprop,
    Rprop,
)
from gradchain.torch.schedulers import (
    SWALR,
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from gradchain.torch.state_dict import from_torch_state_dict, to_torch_state_dict

__all__ = [
    "ASGD",
    "SGD",
    "Adafactor",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "Muon",
    "NAdam",
    "OneCycleLR",
    "PolynomialLR",
    "RAdam",
    "RMSprop",
    "ReduceLROnPlateau",
    "Rprop",
    "SWALR",
    "SequentialLR",
    "StepLR",
    "from_torch_state_dict",
    "to_torch_state_dict",
]
