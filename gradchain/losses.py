"""Loss functions under Optax's names (``optax.losses`` and the ``optax.<loss>`` aliases), so
that training code written against Optax ports by its import: the same signatures, keywords
and defaults, the same numbers (tested against Optax's own functions, float32 and float64).

Each loss is element-wise or reduces one axis (``axis=``, classes or features) and returns
the rest: the caller averages over the batch (``loss.mean()``). Where Optax masks
(``where=``), the masked entries take no part in the sums or the normalisers.

Shapes: where Optax documents ``targets`` or ``labels`` as *broadcastable* to the
predictions, gradchain accepts one argument broadcasting to the other's shape, and refuses
(``gradchain.GradchainError``, naming both arguments) a pair that both grow -- ``(n, 1)``
against ``(n,)`` gives an ``(n, n)`` loss, the classic silent mistake -- or that do not
broadcast at all. Integer labels must have the logits' shape without the class axis. A dtype
Optax refuses (integer logits, float integer-labels) raises ``gradchain.ArgumentError`` (a
``TypeError``, as Optax's). Integer or bool one-hot labels and +-1 targets are read in the
logits' (predictions') floating dtype, as JAX's standard promotion gives -- and under strict
promotion too. Gradients are Optax's, except where Optax's are nan or inf and the loss is
finite (a masked class's label, a zero KL target, a 0-label at a -inf logit): 0 or finite
here, as each docstring says.

Left to Optax (``import optax`` beside ``import gradchain``): ``ctc_loss``,
``ctc_loss_with_forward_probs``, ``ntxent``, ``dice_loss`` and the segmentation losses,
``multiclass_sparsemax_loss``, ``ranking_softmax_loss`` and ``make_fenchel_young_loss``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special

from gradchain.errors import ArgumentError, GradchainError

__all__ = [
    "convex_kl_divergence",
    "cosine_distance",
    "cosine_similarity",
    "generalized_kl_divergence",
    "hinge_loss",
    "huber_loss",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "l2_loss",
    "log_cosh",
    "multiclass_hinge_loss",
    "multiclass_perceptron_loss",
    "perceptron_loss",
    "poly_loss_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "sparsemax_loss",
    "squared_error",
    "triplet_margin_loss",
]

Axis = int | tuple[int, ...] | None


# --- checks --------------------------------------------------------------------------------


def _refused(loss: str, argument: str, value: Any, message: str) -> GradchainError:
    error = GradchainError(f"{loss}: {message}")
    error.argument, error.value = argument, value
    return error


def _array(loss: str, name: str, x: Any) -> jax.Array:
    """``x`` as an array, or an ``ArgumentError`` naming it (a ``TypeError``)."""
    try:
        return jnp.asarray(x)
    except (TypeError, ValueError) as cause:
        error = ArgumentError(f"{loss}: {name} must be an array of numbers, got {type(x).__name__}")
        error.argument, error.value = name, x
        raise error from cause


def _floating(loss: str, name: str, x: Any) -> jax.Array:
    """``x`` as an array; a dtype that is not floating is refused, as Optax refuses it."""
    x = _array(loss, name, x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        error = ArgumentError(f"{loss}: {name} must have a floating dtype, got {x.dtype}")
        error.argument, error.value = name, x
        raise error
    return x


def _like(x: jax.Array, reference: jax.Array) -> jax.Array:
    """Integer or bool ``x`` (one-hot labels, +-1 targets) in ``reference``'s floating dtype,
    as JAX's standard promotion would give; a floating ``x`` stays as it is."""
    if jnp.issubdtype(reference.dtype, jnp.inexact) and not jnp.issubdtype(x.dtype, jnp.inexact):
        return x.astype(reference.dtype)
    return x


def _one_sided(loss: str, name_a: str, a: Any, name_b: str, b: Any) -> jax.Array:
    """``b`` as an array, after checking that ``a`` and ``b`` broadcast together and that one
    of them already has the result's shape."""
    b = _array(loss, name_b, b)
    sa, sb = _array(loss, name_a, a).shape, b.shape
    try:
        both = jax.lax.broadcast_shapes(sa, sb)
    except ValueError:
        raise _refused(
            loss, name_b, b, f"{name_a} of shape {sa} and {name_b} of shape {sb} do not broadcast"
        ) from None
    if both != sa and both != sb:
        raise _refused(
            loss,
            name_b,
            b,
            f"{name_a} of shape {sa} and {name_b} of shape {sb} would broadcast to {both}, "
            "larger than either: reshape one to the other's shape",
        )
    return b


def _equal(loss: str, name_a: str, a: Any, name_b: str, b: Any) -> jax.Array:
    """``b`` as an array, after checking that it has ``a``'s shape."""
    b = _array(loss, name_b, b)
    sa, sb = _array(loss, name_a, a).shape, b.shape
    if sa != sb:
        raise _refused(
            loss, name_b, b, f"{name_a} and {name_b} must have the same shape, got {sa} and {sb}"
        )
    return b


def _mask(where: Any, ndim: int, axis: Axis) -> jax.Array | None:
    """A ``where`` given per example (without the class axis) gets that axis back."""
    if where is None:
        return None
    where = jnp.asarray(where)
    if where.ndim != ndim:
        where = jnp.expand_dims(where, axis)
    return where


# --- regression ----------------------------------------------------------------------------


def squared_error(predictions: Any, targets: Any = None) -> jax.Array:
    """The element-wise squared error:  (predictions - targets)^2.

    ``targets`` None means zeros. ``predictions`` and ``targets`` must have the same shape
    (as Optax checks); the result has it too. Mean squared error is
    ``squared_error(p, t).mean()``.

    >>> import jax.numpy as jnp, gradchain
    >>> gradchain.squared_error(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]))
    Array([1., 4.], dtype=float32)
    """
    return _squared_error("squared_error", predictions, targets)


def _squared_error(loss: str, predictions: Any, targets: Any) -> jax.Array:
    predictions = _floating(loss, "predictions", predictions)
    if targets is None:
        return predictions**2
    targets = _like(_equal(loss, "predictions", predictions, "targets", targets), predictions)
    return (predictions - targets) ** 2


def l2_loss(predictions: Any, targets: Any = None) -> jax.Array:
    """Half the squared error, element-wise:  0.5 (predictions - targets)^2.

    The 1/2 makes the gradient the plain residual (predictions - targets) (Bishop, "Pattern
    Recognition and Machine Learning", 2006). Shapes as ``squared_error``: equal, or
    ``targets`` None for zeros.

    >>> import jax.numpy as jnp, gradchain
    >>> gradchain.l2_loss(jnp.array([1.0, 2.0]), jnp.array([0.0, 4.0]))
    Array([0.5, 2. ], dtype=float32)
    """
    return 0.5 * _squared_error("l2_loss", predictions, targets)


def huber_loss(predictions: Any, targets: Any = None, *, delta: Any = 1.0) -> jax.Array:
    """The Huber loss, element-wise: quadratic near zero, linear beyond ``delta``.

        e = predictions - targets,  a = |e|,  q = min(a, delta)
        loss = 0.5 q^2 + delta (a - q)
             = 0.5 e^2                    where |e| <= delta
             = delta (|e| - delta / 2)    elsewhere

    Its gradient is the residual clipped to [-delta, delta]. ``targets`` (None for zeros)
    broadcasts to ``predictions``' shape, which the result has. Reference: P. J. Huber,
    "Robust estimation of a location parameter", Annals of Math. Statistics, 1964.
    """
    predictions = _floating("huber_loss", "predictions", predictions)
    if targets is not None:
        targets = _like(
            _one_sided("huber_loss", "predictions", predictions, "targets", targets), predictions
        )
        predictions = predictions - targets
    magnitude = jnp.abs(predictions)
    inside = jnp.minimum(magnitude, delta)
    # written as a - q rather than max(a - delta, 0): one kink, so the gradient is not doubled
    return 0.5 * inside**2 + delta * (magnitude - inside)


def log_cosh(predictions: Any, targets: Any = None) -> jax.Array:
    """log(cosh(predictions - targets)), element-wise: about e^2 / 2 near zero and
    |e| - log 2 far from it; a smooth (twice differentiable) alternative to Huber.

        log cosh(e) = |e| + log(1 + exp(-2 |e|)) - log 2     (no overflow for large |e|)

    ``targets`` (None for zeros) broadcasts to ``predictions``' shape, which the result has.
    Reference: Chen et al., "Log hyperbolic cosine loss improves variational auto-encoder",
    2019.
    """
    predictions = _floating("log_cosh", "predictions", predictions)
    if targets is not None:
        targets = _like(
            _one_sided("log_cosh", "predictions", predictions, "targets", targets), predictions
        )
        predictions = predictions - targets
    return jnp.logaddexp(predictions, -predictions) - math.log(2.0)


def cosine_similarity(
    predictions: Any,
    targets: Any,
    *,
    epsilon: Any = 0.0,
    axis: Axis = -1,
    where: Any = None,
) -> jax.Array:
    """The cosine of the angle between predictions and targets, along ``axis``:

        cos(p, t) = sum_i p_i t_i / ( sqrt(max(|p|^2, epsilon)) sqrt(max(|t|^2, epsilon)) )

    (``epsilon`` bounds each *squared* norm from below, as in Optax.) Shapes ``[..., dim]``
    in, ``[...]`` out; ``where`` (broadcastable to the inputs) keeps the entries that count.
    Reference: https://en.wikipedia.org/wiki/Cosine_similarity.
    """
    predictions = _floating("cosine_similarity", "predictions", predictions)
    targets = _floating("cosine_similarity", "targets", targets)
    targets = _one_sided("cosine_similarity", "predictions", predictions, "targets", targets)

    def unit(x):
        squared = jnp.sum(jnp.square(x), axis=axis, where=where, keepdims=True)
        return x / jnp.sqrt(jnp.clip(squared, epsilon))

    return jnp.sum(unit(predictions) * unit(targets), axis=axis, where=where)


def cosine_distance(
    predictions: Any,
    targets: Any,
    *,
    epsilon: Any = 0.0,
    axis: Axis = -1,
    where: Any = None,
) -> jax.Array:
    """One minus the cosine similarity, along ``axis``:  1 - cos(p, t), in [0, 2].

    Arguments and shapes as ``cosine_similarity``: ``[..., dim]`` in, ``[...]`` out.
    Reference: https://en.wikipedia.org/wiki/Cosine_similarity#Cosine_distance.
    """
    similarity = cosine_similarity(
        predictions, targets, epsilon=epsilon, axis=axis, where=where
    )  # fmt: skip
    return 1.0 - similarity


# --- classification ------------------------------------------------------------------------


def softmax_cross_entropy(
    logits: Any, labels: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    """The cross-entropy of the softmax of ``logits`` against target distributions ``labels``
    (one-hot or soft), over the class ``axis``:

        loss = - sum_j labels_j log_softmax(logits)_j
             = - sum_j labels_j (logits_j - log sum_k exp(logits_k))

    Shapes ``[..., classes]`` in (``labels`` broadcastable to ``logits``), ``[...]`` out.
    ``where`` (``logits``' shape, or the shape without the class axis) masks classes out of
    both the sum and the normaliser (their labels get gradient 0; Optax's get nan). Reference:
    https://en.wikipedia.org/wiki/Cross-entropy.

    >>> import jax.numpy as jnp, gradchain
    >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> gradchain.softmax_cross_entropy(logits, labels)
    Array([0.16984604, 1.0986123 ], dtype=float32)
    """
    logits = _floating("softmax_cross_entropy", "logits", logits)
    labels = _like(_one_sided("softmax_cross_entropy", "logits", logits, "labels", labels), logits)
    where = _mask(where, logits.ndim, axis)
    log_probs = jax.nn.log_softmax(logits, axis, where)
    if where is not None:  # masked classes are -inf: zeroed, d loss / d label is 0 there
        log_probs = jnp.where(where, log_probs, 0.0)
    return -jnp.sum(labels * log_probs, axis, where=where)


def safe_softmax_cross_entropy(logits: Any, labels: Any) -> jax.Array:
    """``softmax_cross_entropy`` over the last axis that reads 0 log 0 as 0: a class with
    logit -inf and label 0 adds nothing (``softmax_cross_entropy`` gives nan there).

        loss = - sum_{j: labels_j != 0} labels_j log_softmax(logits)_j

    Shapes ``[..., classes]`` in (``labels`` broadcastable), ``[...]`` out. The gradient
    with respect to ``logits`` is Optax's (finite at the -inf logits); the gradient with
    respect to a 0 label at a -inf logit is 0 here (Optax's is inf).
    """
    logits = _floating("safe_softmax_cross_entropy", "logits", logits)
    labels = _like(
        _one_sided("safe_softmax_cross_entropy", "logits", logits, "labels", labels), logits
    )
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    # only the -inf terms under a zero label are dropped: elsewhere d loss / d label is
    # -log_probs, for zero labels too
    dropped = jnp.logical_and(labels == 0, jnp.isneginf(log_probs))
    return -jnp.sum(labels * jnp.where(dropped, 0.0, log_probs), axis=-1)


def _flatten_axes(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """``x`` with ``axes`` moved to the end, in their order, and merged into one."""
    rest = tuple(i for i in range(x.ndim) if i not in axes)
    x = jnp.transpose(x, rest + axes)
    return x.reshape(x.shape[: len(rest)] + (-1,))


def softmax_cross_entropy_with_integer_labels(
    logits: Any, labels: Any, axis: int | tuple[int, ...] = -1, where: Any = None
) -> jax.Array:
    """``softmax_cross_entropy`` with the class of each example given by its index:

        loss = log sum_k exp(logits_k) - logits_{labels}

    (the normaliser is subtracted from the labelled logit only: one log-sum-exp, no full
    log-softmax). ``logits`` ``[..., classes]``, integer ``labels`` ``[...]`` (``logits``'
    shape without ``axis``), out ``[...]``. A tuple ``axis`` reads a label as the flat
    (row-major) index into the slice over those axes. ``where`` masks classes out of the
    normaliser; an example with no class left has loss 0. Reference:
    https://en.wikipedia.org/wiki/Multinomial_logistic_regression.

    >>> import jax.numpy as jnp, gradchain
    >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    >>> gradchain.softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 2]))
    Array([0.16984606, 1.0986123 ], dtype=float32)
    """
    name = "softmax_cross_entropy_with_integer_labels"
    logits = _floating(name, "logits", logits)
    labels = _array(name, "labels", labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        error = ArgumentError(
            f"{name}: labels must be integer class indices, got dtype {labels.dtype} (for "
            "one-hot or soft labels, softmax_cross_entropy)"
        )
        error.argument, error.value = "labels", labels
        raise error
    where = _mask(where, logits.ndim, axis)
    if isinstance(axis, int):
        axis = _axis(name, axis, logits.ndim)
    elif isinstance(axis, tuple):
        axes = tuple(_axis(name, a, logits.ndim) for a in axis)
        if where is not None:
            where = _flatten_axes(jnp.broadcast_to(where, logits.shape), axes)
        logits = _flatten_axes(logits, axes)
        axis = logits.ndim - 1
    else:
        raise ArgumentError(f"{name}: axis must be an int or a tuple of ints, got {axis!r}")
    per_example = logits.shape[:axis] + logits.shape[axis + 1 :]
    if labels.shape != per_example:
        raise _refused(
            name,
            "labels",
            labels,
            f"labels must have the logits' shape without the class axis, {per_example}, got "
            f"{labels.shape}",
        )
    picked = jnp.take_along_axis(logits, jnp.expand_dims(labels, axis), axis=axis)
    loss = jax.nn.logsumexp(logits, axis=axis, where=where) - jnp.squeeze(picked, axis)
    if where is None:
        return loss
    return jnp.where(jnp.any(where, axis=axis), loss, 0.0)


def _axis(loss: str, axis: Any, ndim: int, of: str = "logits") -> int:
    if isinstance(axis, int) and not isinstance(axis, bool) and -ndim <= axis < ndim:
        return axis % ndim
    raise _refused(loss, "axis", axis, f"axis {axis!r} is out of range for {of} of rank {ndim}")


def sigmoid_binary_cross_entropy(logits: Any, labels: Any) -> jax.Array:
    """The cross-entropy of independent binary predictions, element-wise:

        loss = - labels log sigmoid(logits) - (1 - labels) log sigmoid(-logits)

    (``log sigmoid(-x)`` for log(1 - sigmoid(x)): no cancellation for large logits).
    ``labels`` are 0/1 or probabilities, broadcastable to ``logits``, whose shape the
    result has. For several classes, ``logits`` and ``labels`` both ``[..., classes]``.
    Reference: Goodfellow et al., "Deep Learning", 2016, section 6.2.2.2.
    """
    logits = _floating("sigmoid_binary_cross_entropy", "logits", logits)
    labels = _one_sided("sigmoid_binary_cross_entropy", "logits", logits, "labels", labels)
    labels = jnp.asarray(labels).astype(logits.dtype)
    return -labels * jax.nn.log_sigmoid(logits) - (1.0 - labels) * jax.nn.log_sigmoid(-logits)


def sigmoid_focal_loss(
    logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0
) -> jax.Array:
    """The focal loss (Lin et al., "Focal loss for dense object detection", ICCV 2017),
    element-wise: the binary cross-entropy scaled down where the prediction is already good.

        p = sigmoid(logits),   1 - p_t = (1 - labels) p + labels (1 - p)
        loss = alpha_t (1 - p_t)^gamma * sigmoid_binary_cross_entropy(logits, labels)
        alpha_t = alpha labels + (1 - alpha)(1 - labels)   (1 when ``alpha`` is None)

    log(1 - p_t) is computed as a weighted log-sum-exp of log p and log(1 - p), so the
    weight stays accurate for extreme logits and any ``gamma``. ``labels`` are 0/1 or soft
    in [0, 1], broadcastable to ``logits``, whose shape the result has.
    """
    logits = _floating("sigmoid_focal_loss", "logits", logits)
    labels = _one_sided("sigmoid_focal_loss", "logits", logits, "labels", labels)
    labels = jnp.asarray(labels).astype(logits.dtype)
    cross_entropy = sigmoid_binary_cross_entropy(logits, labels)
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    log_miss = jax.scipy.special.logsumexp(
        jnp.stack([log_p, log_not_p], axis=-1),
        axis=-1,
        b=jnp.stack([1.0 - labels, labels], axis=-1),
    )
    loss = jnp.exp(gamma * log_miss) * cross_entropy
    if alpha is None:
        return loss
    return (alpha * labels + (1.0 - alpha) * (1.0 - labels)) * loss


def hinge_loss(predictor_outputs: Any, targets: Any) -> jax.Array:
    """The hinge loss of a binary classifier, element-wise:  max(0, 1 - outputs * targets),
    with ``targets`` in {-1, 1}; the result has the broadcast shape (one side broadcasts).
    Reference: https://en.wikipedia.org/wiki/Hinge_loss.
    """
    predictor_outputs = _array("hinge_loss", "predictor_outputs", predictor_outputs)
    targets = _array("hinge_loss", "targets", targets)
    targets = _one_sided("hinge_loss", "predictor_outputs", predictor_outputs, "targets", targets)
    targets = _like(targets, predictor_outputs)
    return jnp.maximum(0, 1 - predictor_outputs * targets)


def perceptron_loss(predictor_outputs: Any, targets: Any) -> jax.Array:
    """The perceptron loss of a binary classifier, element-wise:
    max(0, -outputs * targets), with ``targets`` in {-1, 1} of the outputs' shape (as Optax
    checks). Reference: https://en.wikipedia.org/wiki/Perceptron.
    """
    predictor_outputs = _array("perceptron_loss", "predictor_outputs", predictor_outputs)
    targets = _array("perceptron_loss", "targets", targets)
    targets = _equal("perceptron_loss", "predictor_outputs", predictor_outputs, "targets", targets)
    targets = _like(targets, predictor_outputs)
    return jnp.maximum(0, -predictor_outputs * targets)


def sparsemax_loss(logits: Any, labels: Any) -> jax.Array:
    """The binary sparsemax loss (Blondel, Martins and Niculae, "Learning with Fenchel-Young
    losses", JMLR 2020, section 4.4), element-wise, zero exactly where
    ``jax.nn.sparse_sigmoid(logits)`` equals the 0/1 ``labels``:

        loss = sparse_plus(-logits) where labels is 1,  sparse_plus(logits) where 0
        sparse_plus(x) = 0 (x <= -1),  (x + 1)^2 / 4 (|x| < 1),  x (x >= 1)
    """
    logits, labels = (
        _array("sparsemax_loss", "logits", logits),
        _array("sparsemax_loss", "labels", labels),
    )
    labels = _one_sided("sparsemax_loss", "logits", logits, "labels", labels)
    return jax.nn.sparse_plus(jnp.where(labels, -logits, logits))


def _labelled(loss: str, scores: Any, labels: Any) -> tuple[jax.Array, jax.Array]:
    """``scores`` ``[..., classes]`` and the one-hot of integer ``labels`` ``[...]``."""
    scores, labels = _array(loss, "scores", scores), _array(loss, "labels", labels)
    if scores.ndim == 0:
        raise _refused(loss, "scores", scores, "scores must have a class axis, got a scalar")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        error = ArgumentError(f"{loss}: labels must be integer class indices, got {labels.dtype}")
        error.argument, error.value = "labels", labels
        raise error
    if labels.shape != scores.shape[:-1]:
        raise _refused(
            loss,
            "labels",
            labels,
            f"labels must have the scores' shape without the class axis, {scores.shape[:-1]}, "
            f"got {labels.shape}",
        )
    return scores, jax.nn.one_hot(labels, scores.shape[-1], dtype=scores.dtype)


def multiclass_hinge_loss(scores: Any, labels: Any) -> jax.Array:
    """The multiclass hinge loss (Crammer and Singer, JMLR 2001), over the last axis:

        loss = max_j (scores_j + 1[j != label]) - scores_label

    ``scores`` ``[..., classes]``, integer ``labels`` ``[...]``, out ``[...]``.
    """
    scores, one_hot = _labelled("multiclass_hinge_loss", scores, labels)
    return jnp.max(scores + 1 - one_hot, axis=-1) - jnp.sum(scores * one_hot, axis=-1)


def multiclass_perceptron_loss(scores: Any, labels: Any) -> jax.Array:
    """The multiclass perceptron loss (M. Collins, EMNLP 2002), over the last axis:

        loss = max_j scores_j - scores_label

    ``scores`` ``[..., classes]``, integer ``labels`` ``[...]``, out ``[...]``.
    """
    scores, one_hot = _labelled("multiclass_perceptron_loss", scores, labels)
    return jnp.max(scores, axis=-1) - jnp.sum(scores * one_hot, axis=-1)


def kl_divergence(
    log_predictions: Any, targets: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    """The Kullback-Leibler divergence KL(targets || predictions), predictions given as
    logs, along ``axis``:

        KL = sum_i t_i (log t_i - log_predictions_i),   with 0 log 0 = 0

    Shapes ``[..., dim]`` in (one side broadcasts), ``[...]`` out; ``where`` keeps the
    entries that count. The gradient with respect to a target of exactly 0 is
    -log_predictions there (finite; Optax's is nan). Reference: Kullback and Leibler, "On
    information and sufficiency", Annals of Math. Statistics, 1951.
    """
    log_predictions = _floating("kl_divergence", "log_predictions", log_predictions)
    targets = _floating("kl_divergence", "targets", targets)
    targets = _one_sided("kl_divergence", "log_predictions", log_predictions, "targets", targets)
    zero = targets == 0
    log_targets = jnp.where(zero, 0.0, jnp.log(jnp.where(zero, 1.0, targets)))
    return jnp.sum(targets * (log_targets - log_predictions), axis=axis, where=where)


def kl_divergence_with_log_targets(
    log_predictions: Any, log_targets: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    """``kl_divergence`` with the targets given as logs too, along ``axis``:

        KL = sum_i exp(log_targets_i) (log_targets_i - log_predictions_i)

    Shapes ``[..., dim]`` in (one side broadcasts), ``[...]`` out; ``where`` as
    ``kl_divergence``.
    """
    name = "kl_divergence_with_log_targets"
    log_predictions = _floating(name, "log_predictions", log_predictions)
    log_targets = _floating(name, "log_targets", log_targets)
    log_targets = _one_sided(name, "log_predictions", log_predictions, "log_targets", log_targets)
    terms = jnp.exp(log_targets) * (log_targets - log_predictions)
    return jnp.sum(terms, axis=axis, where=where)


def generalized_kl_divergence(
    log_predictions: Any, targets: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    """The KL divergence extended to unnormalised positive measures (the Bregman divergence
    of x log x - x), along ``axis``:

        D = sum_i [ t_i (log t_i - log_predictions_i) - t_i + exp(log_predictions_i) ]

    It equals ``kl_divergence`` when both sum to 1. Shapes as ``kl_divergence``. Reference:
    Boyd and Vandenberghe, "Convex Optimization", 2004, p. 90.
    """
    divergence = kl_divergence(log_predictions, targets, axis=axis, where=where)
    mass = jnp.sum(jnp.exp(log_predictions) - targets, axis=axis, where=where)
    return divergence + mass


def convex_kl_divergence(
    log_predictions: Any, targets: Any, axis: Axis = -1, where: Any = None
) -> jax.Array:
    """Optax's deprecated name of ``generalized_kl_divergence`` (warns, as Optax's does)."""
    warnings.warn(
        "convex_kl_divergence is deprecated: use generalized_kl_divergence",
        DeprecationWarning,
        stacklevel=2,
    )
    return generalized_kl_divergence(log_predictions, targets, axis=axis, where=where)


def poly_loss_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    epsilon: Any = 2.0,
    axis: Axis = -1,
    where: Any = None,
) -> jax.Array:
    """Poly-1 loss: the softmax cross-entropy plus ``epsilon`` times its first polynomial
    term (Leng et al., "PolyLoss: a polynomial expansion perspective of classification loss
    functions", ICLR 2022), along the class ``axis``:

        1 - P_t = sum_j labels_j (1 - softmax(logits)_j)
        loss = softmax_cross_entropy(logits, labels) + epsilon (1 - P_t)

    The paper suggests ``epsilon`` = 2 for ImageNet classification, -1 for detection.
    Shapes ``[..., classes]`` in, ``[...]`` out; ``where`` as ``softmax_cross_entropy``.
    """
    logits = _floating("poly_loss_cross_entropy", "logits", logits)
    labels = _floating("poly_loss_cross_entropy", "labels", labels)
    labels = _one_sided("poly_loss_cross_entropy", "logits", logits, "labels", labels)
    mask = _mask(where, logits.ndim, axis)
    probs = jax.nn.softmax(logits, axis=axis, where=mask)
    missed = jnp.sum(labels * (1 - probs), axis=axis, where=mask)
    return softmax_cross_entropy(logits, labels, axis=axis, where=where) + epsilon * missed


def smooth_labels(labels: Any, alpha: Any, *, axis: Axis = -1, where: Any = None) -> jax.Array:
    """Label smoothing (Szegedy et al., "Rethinking the Inception architecture", 2016;
    Mueller et al., "When does label smoothing help?", 2019):

        smoothed = (1 - alpha) labels + alpha / K

    K is the number of classes along ``axis`` (or, with ``where``, the number kept). The
    result has ``labels``' shape and dtype.

    >>> import jax.numpy as jnp, gradchain
    >>> gradchain.smooth_labels(jnp.array([0.0, 1.0, 0.0, 0.0]), 0.2)
    Array([0.05, 0.85, 0.05, 0.05], dtype=float32)
    """
    labels = _floating("smooth_labels", "labels", labels)
    if where is None:
        axes = range(labels.ndim) if axis is None else axis if isinstance(axis, tuple) else (axis,)
        classes = math.prod(
            labels.shape[_axis("smooth_labels", a, labels.ndim, "labels")] for a in axes
        )
    else:
        classes = jnp.sum(where, axis=axis, keepdims=True).astype(labels.dtype)
    return ((1.0 - alpha) * labels + alpha / classes).astype(labels.dtype)


# --- metric learning -----------------------------------------------------------------------


def triplet_margin_loss(
    anchors: Any,
    positives: Any,
    negatives: Any,
    axis: int = -1,
    norm_degree: Any = 2,
    margin: Any = 1.0,
    eps: Any = 1e-6,
) -> jax.Array:
    """The triplet margin loss (Balntas et al., "Learning local feature descriptors with
    triplets and shallow convolutional neural networks", BMVC 2016), per triplet:

        d(x, y) = ( sum_i (x_i - y_i)^p + eps )^(1/p),   p = norm_degree, along ``axis``
        loss = max(d(anchor, positive) - d(anchor, negative) + margin, 0)

    (the p-th powers are of the signed differences, as in Optax: use an even ``p``.) Shapes
    ``[batch, dim]`` in (all three alike), ``[batch]`` out.
    """
    name = "triplet_margin_loss"
    anchors = _floating(name, "anchors", anchors)
    positives = _floating(name, "positives", positives)
    negatives = _floating(name, "negatives", negatives)
    positives = _one_sided(name, "anchors", anchors, "positives", positives)
    negatives = _one_sided(name, "anchors", anchors, "negatives", negatives)

    def distance(other):
        return jnp.power(
            jnp.sum(jnp.power(anchors - other, norm_degree), axis) + eps, 1 / norm_degree
        )

    return jnp.maximum(distance(positives) - distance(negatives) + margin, 0)
