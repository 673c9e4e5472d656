"""The small pure transforms, by family. Every one is an ``(init, update)`` pair whose state
is a NamedTuple of named slots (see ``State.meanings``)."""

from gradchain.base import identity
from gradchain.transforms import curvature, dual_averaging, optax_names, parameter_free, plateau
from gradchain.transforms.adadelta import AdadeltaState, scale_by_adadelta
from gradchain.transforms.additive import (
    AddNoiseState,
    ScaledParamsState,
    add_noise,
    add_scaled_params,
)
from gradchain.transforms.curvature import *  # noqa: F403
from gradchain.transforms.dual_averaging import *  # noqa: F403
from gradchain.transforms.extra_moments import (
    AdditiveRmsState,
    BeliefState,
    GradientDifferenceState,
    SlowMomentumState,
    add_slow_momentum,
    scale_by_additive_rms,
    scale_by_gradient_difference,
    scale_by_surprise_rms,
)
from gradchain.transforms.factored import (
    FactoredMoment,
    FactoredRmsState,
    clip_by_block_rms,
    scale_by_factored_rms,
    scale_by_param_block_rms,
)
from gradchain.transforms.kronecker import ShampooState, SoapState, scale_by_shampoo, scale_by_soap
from gradchain.transforms.layerwise import LayerwiseRmsState, scale_by_layerwise_rms
from gradchain.transforms.line_search import (
    BacktrackingLinesearchState,
    LbfgsState,
    ZoomLinesearchState,
    scale_by_backtracking_linesearch,
    scale_by_lbfgs,
    scale_by_zoom_linesearch,
    value_and_grad_from_state,
)
from gradchain.transforms.low_precision import (
    KahanState,
    StochasticRoundingState,
    kahan_summation,
    stochastic_rounding,
)
from gradchain.transforms.momentum import (
    BiasCorrectState,
    LionMomentumState,
    MomentumState,
    bias_correct,
    scale_by_lion_momentum,
    scale_by_momentum,
)
from gradchain.transforms.optax_names import *  # noqa: F403 -- Optax's names, see the module
from gradchain.transforms.orthogonal import newton_schulz, scale_by_newton_schulz, scale_by_shape
from gradchain.transforms.parameter_free import *  # noqa: F403
from gradchain.transforms.plateau import *  # noqa: F403
from gradchain.transforms.polyak import scale_by_polyak
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
from gradchain.transforms.quantized import (
    Quantized,
    QuantizedArray,
    dequantize,
    quantize,
    quantized_moments,
)
from gradchain.transforms.quantized_4bit import (
    DE4,
    DE4_NEAREST,
    RANK1_LINEAR4,
    Quantized4bitArray,
    quantize_4bit,
)
from gradchain.transforms.rectified import (
    PreviousRmsState,
    RectifiedRmsState,
    scale_by_previous_rms,
    scale_by_rectified_rms,
)
from gradchain.transforms.scaling import (
    LearningRateState,
    add_decayed_weights,
    clip,
    clip_by_global_norm,
    global_norm,
    scale,
    scale_by_learning_rate,
    scale_by_schedule,
    scale_by_sign,
)
from gradchain.transforms.schedule_free import (
    ScheduleFreeState,
    scale_by_schedule_free,
    schedule_free_average,
    schedule_free_eval_params,
)
from gradchain.transforms.sign_adaptive import RpropState, scale_by_rprop
from gradchain.transforms.sm3 import Sm3State, scale_by_sm3
from gradchain.transforms.torch_forms import (
    AmsgradRawState,
    NadamScheduleState,
    RectifiedRmsTorchState,
    SgdMomentumState,
    bias_correct_nadam,
    scale_by_amsgrad_raw,
    scale_by_rectified_rms_torch,
    scale_by_sgd_momentum,
)
from gradchain.transforms.trust_ratio import scale_by_trust_ratio

__all__ = [
    "FactoredMoment",
    "FactoredRmsState",
    "DE4",
    "DE4_NEAREST",
    "Quantized",
    "Quantized4bitArray",
    "QuantizedArray",
    "RANK1_LINEAR4",
    "quantize_4bit",
    "clip_by_block_rms",
    "dequantize",
    "newton_schulz",
    "quantize",
    "quantized_moments",
    "scale_by_factored_rms",
    "scale_by_newton_schulz",
    "scale_by_param_block_rms",
    "scale_by_shape",
    "BiasCorrectState",
    "InfNormState",
    "LearningRateState",
    "LionMomentumState",
    "MomentumState",
    "RmsState",
    "RssState",
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
    "scale_by_schedule",
    "scale_by_lion_momentum",
    "scale_by_momentum",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_sign",
    "scale_by_stddev",
    "AmsgradRawState",
    "NadamScheduleState",
    "RectifiedRmsTorchState",
    "RpropState",
    "SgdMomentumState",
    "bias_correct_nadam",
    "scale_by_amsgrad_raw",
    "scale_by_rectified_rms_torch",
    "scale_by_rprop",
    "scale_by_sgd_momentum",
    "AdadeltaState",
    "AdditiveRmsState",
    "BeliefState",
    "GradientDifferenceState",
    "PreviousRmsState",
    "RectifiedRmsState",
    "ScheduleFreeState",
    "SlowMomentumState",
    "add_slow_momentum",
    "scale_by_adadelta",
    "scale_by_additive_rms",
    "scale_by_surprise_rms",
    "scale_by_gradient_difference",
    "scale_by_previous_rms",
    "scale_by_rectified_rms",
    "scale_by_schedule_free",
    "schedule_free_average",
    "scale_by_trust_ratio",
    "schedule_free_eval_params",
    "KahanState",
    "StochasticRoundingState",
    "kahan_summation",
    "stochastic_rounding",
    "ShampooState",
    "SoapState",
    "scale_by_shampoo",
    "scale_by_soap",
    "LayerwiseRmsState",
    "scale_by_layerwise_rms",
    *optax_names.__all__,
    "BacktrackingLinesearchState",
    "LbfgsState",
    "ZoomLinesearchState",
    "scale_by_backtracking_linesearch",
    "scale_by_lbfgs",
    "scale_by_zoom_linesearch",
    "value_and_grad_from_state",
    "AddNoiseState",
    "ScaledParamsState",
    "add_noise",
    "add_scaled_params",
    "scale_by_polyak",
    "Sm3State",
    "scale_by_sm3",
    *curvature.__all__,
    *dual_averaging.__all__,
    *plateau.__all__,
    *parameter_free.__all__,
]
