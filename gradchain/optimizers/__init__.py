"""The named optimizers, each a short chain of transforms.

``textbook``: the ladder SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW ->
AMSGrad, with NAdam, Adamax and Lion beside it.
``memory_saving``: optimizers that keep less than Adam (Adafactor, Muon, signSGD, Signum, 8-bit
Adam/AdamW/Lion).
"""

from gradchain.optimizers import memory_saving, textbook
from gradchain.optimizers.memory_saving import *  # noqa: F403
from gradchain.optimizers.textbook import *  # noqa: F403

__all__ = [*textbook.__all__, *memory_saving.__all__]
