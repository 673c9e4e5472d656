"""The small pure transforms, by family. Every one is an ``(init, update)`` pair whose state
is a NamedTuple of named slots (see ``State.meanings``)."""

from gradchain.base import identity
from gradchain.transforms.momentum import (
    BiasCorrectState,
    LionMomentumState,
    MomentumState,
    bias_correct,
    scale_by_lion_momentum,
    scale_by_momentum,
)
from gradchain.transforms.preconditioners import (
    InfNormState,
    RmsState,
    RssState,
    StddevState,
    scale_by_inf_norm,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
)
from gradchain.transforms.scaling import (
    ClipNormState,
    ClipState,
    DecayState,
    LearningRateState,
    ScaleState,
    SignState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    global_norm,
    scale,
    scale_by_learning_rate,
    scale_by_sign,
)

__all__ = [
    "BiasCorrectState",
    "ClipNormState",
    "ClipState",
    "DecayState",
    "InfNormState",
    "LearningRateState",
    "LionMomentumState",
    "MomentumState",
    "RmsState",
    "RssState",
    "ScaleState",
    "SignState",
    "StddevState",
    "add_decayed_weights",
    "bias_correct",
    "clip",
    "clip_by_global_norm",
    "global_norm",
    "identity",
    "scale",
    "scale_by_inf_norm",
    "scale_by_learning_rate",
    "scale_by_lion_momentum",
    "scale_by_momentum",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_sign",
    "scale_by_stddev",
]
