"""gradchain: composable gradient transformations for JAX.

Small pure transforms, each an ``(init, update)`` pair over pytrees with named state slots;
named optimizers are literally chains of them. Optax-compatible.
"""

from gradchain import transforms
from gradchain._checks import GradchainError
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    identity,
)
from gradchain.optimizers import (
    adagrad,
    adam,
    adamax,
    adamw,
    amsgrad,
    lion,
    momentum,
    nadam,
    nesterov,
    rmsprop,
    sgd,
)
from gradchain.transforms import *  # noqa: F403 - the transforms list their own __all__

__version__ = "0.1.0"

__all__ = [
    "EmptyState",
    "GradchainError",
    "GradientTransformation",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "apply_updates",
    "chain",
    "identity",
    "lion",
    "momentum",
    "nadam",
    "nesterov",
    "rmsprop",
    "sgd",
    "transforms",
    *transforms.__all__,
]
