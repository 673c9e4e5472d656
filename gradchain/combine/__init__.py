"""Wrappers over transforms: masks, parameter groups, accumulation, skipping, freezing.

Each wrapper takes transforms and returns one, so it nests and chains like any other.

Conventions every wrapper here keeps (the memory report and ``gradchain.slots`` rely on them):

- Hidden leaves. A leaf that an inner transform must not see is replaced, in the params,
  updates and gradient it receives, by ``MaskedNode()``: an empty pytree node. Every
  ``jax.tree.map`` inside the inner transform skips it, so its state holds nothing for that
  leaf -- no zeros, no ``None`` -- and a per-parameter slot of the inner state has the
  params tree (with ``MaskedNode`` where a leaf is hidden) as a prefix.
- State. A wrapper's state is a described NamedTuple that keeps the inner state in a field:
  ``inner`` (``masked``, ``accumulate``, ``skip_non_finite``) or ``groups``, a dict from
  label to inner state (``partition``).
- Owners. The returned transform lists what it holds in ``children``: one ``Child(label,
  transform, route)`` per inner transform (label None for an unnamed inner transform, the
  group's label for ``partition``), ``route`` being where its state lives in the wrapper's
  state, so a report can name who owns each piece of state (``gradchain.base.walk``).
- The ``gradient`` keyword is hidden and grouped exactly like the updates, and any other
  keyword argument reaches the inner transforms unchanged.
"""

from gradchain.combine.chains import (
    named_chain,
)
from gradchain.combine.complex import (
    SplitRealAndImaginaryArrays,
    SplitRealAndImaginaryState,
    split_real_and_imaginary,
)
from gradchain.combine.conditions import (
    ApplyEvery,
    ConditionallyMaskState,
    ConditionallyTransformState,
    ConditionFn,
    ShouldSkipUpdateFunction,
    apply_every,
    conditionally_mask,
    conditionally_transform,
    skip_large_updates,
    skip_not_finite,
)
from gradchain.combine.flatten import (
    flatten,
)
from gradchain.combine.graft import (
    GraftState,
    graft,
)
from gradchain.combine.live import (
    InjectHyperparamsState,
    InjectStatefulHyperparamsState,
    LiveState,
    inject_hyperparams,
    live,
)
from gradchain.combine.lookahead import (
    LookaheadParams,
    LookaheadState,
    lookahead,
)
from gradchain.combine.masks import (
    MaskedState,
    MultiTransformState,
    PartitionState,
    freeze,
    masked,
    multi_transform,
    partition,
    selective_transform,
    set_to_zero,
)
from gradchain.combine.mechanic import (
    MechanizeState,
    mechanize,
)
from gradchain.combine.monitoring import (
    MonitorState,
    SnapshotState,
    measure_with_ema,
    monitor,
    snapshot,
)
from gradchain.combine.schedule_free import (
    schedule_free,
    schedule_free_eval_params,
)
from gradchain.combine.sharpness import (
    NormalizeState,
    SAMState,
    normalize,
    sam,
)
from gradchain.combine.steps import (
    AccumulateState,
    ApplyIfFiniteState,
    MultiSteps,
    MultiStepsState,
    SkipState,
    accumulate,
    apply_if_finite,
    skip_non_finite,
)
from gradchain.combine.wrapping import (
    MaskedNode,
)

__all__ = [
    "AccumulateState",
    "ApplyEvery",
    "ApplyIfFiniteState",
    "ConditionFn",
    "ConditionallyMaskState",
    "ConditionallyTransformState",
    "GraftState",
    "InjectHyperparamsState",
    "InjectStatefulHyperparamsState",
    "LiveState",
    "LookaheadParams",
    "LookaheadState",
    "MaskedNode",
    "MaskedState",
    "MechanizeState",
    "MonitorState",
    "MultiSteps",
    "MultiStepsState",
    "MultiTransformState",
    "NormalizeState",
    "PartitionState",
    "SAMState",
    "ShouldSkipUpdateFunction",
    "SkipState",
    "SnapshotState",
    "SplitRealAndImaginaryArrays",
    "SplitRealAndImaginaryState",
    "accumulate",
    "apply_every",
    "apply_if_finite",
    "conditionally_mask",
    "conditionally_transform",
    "flatten",
    "freeze",
    "graft",
    "inject_hyperparams",
    "live",
    "lookahead",
    "masked",
    "measure_with_ema",
    "mechanize",
    "monitor",
    "multi_transform",
    "named_chain",
    "normalize",
    "partition",
    "sam",
    "schedule_free",
    "schedule_free_eval_params",
    "selective_transform",
    "set_to_zero",
    "skip_large_updates",
    "skip_non_finite",
    "skip_not_finite",
    "snapshot",
    "split_real_and_imaginary",
]
