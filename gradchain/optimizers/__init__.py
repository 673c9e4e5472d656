"""The named optimizers, each a short chain of transforms.

``textbook``: the ladder SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW ->
AMSGrad, with NAdam, Adamax and Lion beside it.
"""

from gradchain.optimizers import textbook
from gradchain.optimizers.textbook import *  # noqa: F403

__all__ = [*textbook.__all__]
