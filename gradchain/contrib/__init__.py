"""Optax's ``optax.contrib`` names, as gradchain's implementations.

Nothing is defined here: each name is gradchain's own transform or optimizer, filed by its
family (``gradchain.optimizers.parameter_free``, ``gradchain.combine.sharpness``...) and also
exported as ``gradchain.<name>``. This namespace exists so that code written against
``optax.contrib`` ports by changing the import (``from gradchain import contrib``).
"""

from gradchain.combine import (
    SAMState,
    mechanize,
    normalize,
    sam,
    schedule_free,
    schedule_free_eval_params,
)
from gradchain.optimizers import (
    ademamix,
    adopt,
    cocob,
    dadapt_adamw,
    madgrad,
    muon,
    prodigy,
    schedule_free_adamw,
    schedule_free_sgd,
    sophia,
)
from gradchain.transforms import (
    COCOBState,
    DAdaptAdamWState,
    HutchinsonState,
    MadgradState,
    MechanicState,
    ProdigyState,
    ReduceLROnPlateauState,
    ScheduleFreeState,
    hutchinson_estimator_diag_hessian,
    reduce_on_plateau,
    scale_by_cocob,
    scale_by_madgrad,
)

# --- names added by the parallel work on the missing transforms (issue 24, part B) ----------
# acprop, dog, dowg, galore, momo, momo_adam, simplified_ademamix,
# differentially_private_aggregate, split_real_and_imaginary, MuonDimensionNumbers... go here,
# imported from their family modules, and into __all__ below.

__all__ = [
    "COCOBState",
    "DAdaptAdamWState",
    "HutchinsonState",
    "MadgradState",
    "MechanicState",
    "ProdigyState",
    "ReduceLROnPlateauState",
    "SAMState",
    "ScheduleFreeState",
    "ademamix",
    "adopt",
    "cocob",
    "dadapt_adamw",
    "hutchinson_estimator_diag_hessian",
    "madgrad",
    "mechanize",
    "muon",
    "normalize",
    "prodigy",
    "reduce_on_plateau",
    "sam",
    "scale_by_cocob",
    "scale_by_madgrad",
    "schedule_free",
    "schedule_free_adamw",
    "schedule_free_eval_params",
    "schedule_free_sgd",
    "sophia",
]
