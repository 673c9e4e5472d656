"""The named optimizers, each a short chain of transforms.

``textbook``: the ladder SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW ->
AMSGrad, with NAdam, Adamax and Lion beside it.
``memory_saving``: optimizers that keep less than Adam (Adafactor, Muon, signSGD, Signum, 8-bit
Adam/AdamW/Lion).
``memory_spending``: optimizers that add a slot on purpose (AdEMAMix, Adan, schedule-free AdamW,
...) or change what Adam's slots hold (AdaBelief, Yogi, RAdam, ADOPT, LAMB, ...).
"""

from gradchain.optimizers import (
    games,
    kronecker,
    layerwise,
    line_search,
    memory_saving,
    memory_spending,
    optax_catalogue,
    optax_contrib,
    parameter_free,
    schedule_free,
    textbook,
)
from gradchain.optimizers.games import *  # noqa: F403
from gradchain.optimizers.kronecker import *  # noqa: F403
from gradchain.optimizers.layerwise import *  # noqa: F403
from gradchain.optimizers.line_search import *  # noqa: F403
from gradchain.optimizers.memory_saving import *  # noqa: F403
from gradchain.optimizers.memory_spending import *  # noqa: F403
from gradchain.optimizers.optax_catalogue import *  # noqa: F403
from gradchain.optimizers.optax_contrib import *  # noqa: F403
from gradchain.optimizers.parameter_free import *  # noqa: F403
from gradchain.optimizers.schedule_free import *  # noqa: F403
from gradchain.optimizers.textbook import *  # noqa: F403

__all__ = [*textbook.__all__, *memory_saving.__all__, *memory_spending.__all__, *kronecker.__all__, *line_search.__all__, *games.__all__, *layerwise.__all__, *optax_catalogue.__all__, *schedule_free.__all__, *parameter_free.__all__, *optax_contrib.__all__]
