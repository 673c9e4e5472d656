"""The construction checks gradchain's own transforms use, for yours.

Each refuses a bad value with ``GradchainError`` naming the argument (and, inside a named or
``gradchain.live`` optimizer, the optimizer's own argument name), and lets a traced value
through: a live hyperparameter reaches the factory as a traced 0-d array at every step, and
``set_hyperparam`` runs the same checks on a new value before it is stored.

>>> from gradchain import checks
>>> checks.check_unit_interval("decay", 1.0)
Traceback (most recent call last):
...
gradchain.GradchainError: decay must be in [0, 1), got 1.0
"""

from gradchain._checks import (
    check_closed_unit_interval,
    check_dtype,
    check_hyperparam,
    check_non_negative,
    check_positive,
    check_unit_interval,
)

__all__ = [
    "check_closed_unit_interval",
    "check_dtype",
    "check_hyperparam",
    "check_non_negative",
    "check_positive",
    "check_unit_interval",
]
