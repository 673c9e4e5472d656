"""gradchain: composable gradient transformations for JAX.

Small pure transforms, each an ``(init, update)`` pair over pytrees with named state slots;
named optimizers are literally chains of them. Optax-compatible.

Every public name has one import path: ``gradchain.<name>``. Each module lists its public
names in its own ``__all__``; this file gathers them.
"""

from gradchain import (
    averaging,
    base,  # noqa: F401 -- the toolkit for writing your own transforms
    checkpoint,
    checks,
    combine,
    fused,
    memory,
    optimizers,
    schedules,
    sharding,
    state,
    teaching,
    torch,  # noqa: F401 -- not in __all__: a star import must not shadow the real torch
    transforms,
    tree,
)
from gradchain._checks import GradchainError
from gradchain.averaging import *  # noqa: F403
from gradchain.base import (
    EmptyState,
    GradientTransformation,
    apply_updates,
    chain,
    describe,
)
from gradchain.combine import *  # noqa: F403
from gradchain.fused import *  # noqa: F403
from gradchain.memory import *  # noqa: F403
from gradchain.optimizers import *  # noqa: F403
from gradchain.schedules import *  # noqa: F403
from gradchain.sharding import *  # noqa: F403
from gradchain.state import *  # noqa: F403
from gradchain.teaching.ladder import *  # noqa: F403 -- the ladder's names are public API
from gradchain.transforms import *  # noqa: F403
from gradchain.tree import *  # noqa: F403

tree_utils = tree  # Optax's module name: gradchain.tree_utils.tree_get, as optax.tree_utils

__version__ = "0.1.0"

__all__ = [
    "EmptyState",
    "GradchainError",
    "GradientTransformation",
    "apply_updates",
    "checkpoint",
    "checks",
    "chain",
    "describe",
    *averaging.__all__,
    *combine.__all__,
    *fused.__all__,
    *memory.__all__,
    *optimizers.__all__,
    *schedules.__all__,
    *sharding.__all__,
    *state.__all__,
    *teaching.ladder.__all__,
    *transforms.__all__,
    *tree.__all__,
]
