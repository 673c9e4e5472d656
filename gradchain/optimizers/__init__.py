"""The named optimizers, each a short chain of transforms.

``textbook``: the ladder SGD -> momentum -> Nesterov -> AdaGrad -> RMSProp -> Adam -> AdamW ->
AMSGrad, with NAdam, Adamax and Lion beside it.
``memory_saving``: optimizers that keep less than Adam (Adafactor, Muon, signSGD, Signum, 8-bit
Adam/AdamW/Lion).
``memory_spending``: optimizers that add a slot on purpose (AdEMAMix, Adan, schedule-free AdamW,
...) or change what Adam's slots hold (AdaBelief, Yogi, RAdam, ADOPT, LAMB, ...).
"""

from gradchain.optimizers.adadelta import (
    adadelta,
)
from gradchain.optimizers.adam import (
    acprop,
    adabelief,
    adamaxw,
    adan,
    ademamix,
    adopt,
    nadamw,
    simplified_ademamix,
    yogi,
)
from gradchain.optimizers.additive import (
    noisy_sgd,
)
from gradchain.optimizers.curvature import (
    sophia,
)
from gradchain.optimizers.distance_over_gradients import (
    dog,
    dowg,
)
from gradchain.optimizers.dual_averaging import (
    madgrad,
)
from gradchain.optimizers.factored import (
    adafactor,
)
from gradchain.optimizers.games import (
    optimistic_adam,
    optimistic_adam_v2,
    optimistic_gradient_descent,
)
from gradchain.optimizers.kronecker import (
    shampoo,
    soap,
)
from gradchain.optimizers.layerwise import (
    fromage,
    lamb,
    lars,
    novograd,
)
from gradchain.optimizers.line_search import (
    lbfgs,
    polyak_sgd,
)
from gradchain.optimizers.low_rank import (
    galore,
)
from gradchain.optimizers.orthogonal import (
    muon,
)
from gradchain.optimizers.parameter_free import (
    cocob,
    dadapt_adamw,
    prodigy,
)
from gradchain.optimizers.polyak import (
    momo,
    momo_adam,
)
from gradchain.optimizers.quantized import (
    adam_4bit,
    adam_8bit,
    adamw_4bit,
    adamw_8bit,
    lion_8bit,
)
from gradchain.optimizers.rectified import (
    radam,
)
from gradchain.optimizers.schedule_free import (
    schedule_free_adamw,
    schedule_free_sgd,
)
from gradchain.optimizers.sign import (
    rprop,
    sign_sgd,
    signum,
)
from gradchain.optimizers.sm3 import (
    sm3,
)
from gradchain.optimizers.textbook import (
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

__all__ = [
    "acprop",
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adam_4bit",
    "adam_8bit",
    "adamax",
    "adamaxw",
    "adamw",
    "adamw_4bit",
    "adamw_8bit",
    "adan",
    "ademamix",
    "adopt",
    "amsgrad",
    "cocob",
    "dadapt_adamw",
    "dog",
    "dowg",
    "fromage",
    "galore",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "lion_8bit",
    "madgrad",
    "momentum",
    "momo",
    "momo_adam",
    "muon",
    "nadam",
    "nadamw",
    "nesterov",
    "noisy_sgd",
    "novograd",
    "optimistic_adam",
    "optimistic_adam_v2",
    "optimistic_gradient_descent",
    "polyak_sgd",
    "prodigy",
    "radam",
    "rmsprop",
    "rprop",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "sgd",
    "shampoo",
    "sign_sgd",
    "signum",
    "simplified_ademamix",
    "sm3",
    "soap",
    "sophia",
    "yogi",
]
