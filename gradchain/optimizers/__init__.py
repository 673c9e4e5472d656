"""The named optimizers, each a short chain of transforms.

``textbook``: the ladder SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW ->
AMSGrad, with NAdam, Adamax and Lion beside it.
``memory_saving``: optimizers that keep less than Adam (Adafactor, Muon, signSGD, Signum, 8-bit
Adam/AdamW/Lion).
``memory_spending``: optimizers that add a slot on purpose (AdEMAMix, Adan, schedule-free AdamW,
...) or change what Adam's slots hold (AdaBelief, Yogi, RAdam, ADOPT, LAMB, ...).
"""

from gradchain.optimizers import kronecker, memory_saving, memory_spending, textbook
from gradchain.optimizers.kronecker import *  # noqa: F403
from gradchain.optimizers.memory_saving import *  # noqa: F403
from gradchain.optimizers.memory_spending import *  # noqa: F403
from gradchain.optimizers.textbook import *  # noqa: F403
from gradchain.optimizers import line_search
from gradchain.optimizers.line_search import *  # noqa: F403
from gradchain.optimizers import games, layerwise, optax_catalogue
from gradchain.optimizers.games import *  # noqa: F403
from gradchain.optimizers.layerwise import *  # noqa: F403
from gradchain.optimizers.optax_catalogue import *  # noqa: F403
from gradchain.optimizers import schedule_free
from gradchain.optimizers.schedule_free import *  # noqa: F403
from gradchain.optimizers import optax_contrib
from gradchain.optimizers.optax_contrib import *  # noqa: F403
from gradchain.optimizers import parameter_free
from gradchain.optimizers.parameter_free import *  # noqa: F403

__all__ = [*textbook.__all__, *memory_saving.__all__, *memory_spending.__all__, *kronecker.__all__, *line_search.__all__, *games.__all__, *layerwise.__all__, *optax_catalogue.__all__, *schedule_free.__all__, *parameter_free.__all__, *optax_contrib.__all__]
