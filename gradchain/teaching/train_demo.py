"""The training demo: a small MLP learns two interleaved spirals, once per optimizer.

``python -m gradchain train`` trains the same network from the same initial weights with
each named optimizer, inside one jitted train step (params and optimizer state donated),
prints loss and accuracy with a progress bar, then a summary table, and saves the loss and
accuracy curves of all of them, with the decision regions of the best, as ``train.png``
(matplotlib, an optional extra: ``pip install "gradchain[plot]"``).

Everything is generated (no downloads) and pure JAX (no Flax): the network is a list of
``{"w", "b"}`` dicts, ``mlp`` is five lines, and the train step is the one in the README.

Default learning rates (``DEFAULT_LEARNING_RATES``) are near the best of a coarse grid for
each optimizer on this task with the default sizes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import text_table as table
from gradchain._checks import GradchainError
from gradchain.base import apply_updates
from gradchain.memory import memory_report
from gradchain.teaching.build import (
    Optimizer,
    build_optimizer,
    int_between,
    parse_learning_rates,
    parse_names,
)
from gradchain.teaching.figure import check_output_path, new_figure

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "History",
    "accuracy",
    "configure",
    "init_mlp",
    "loss_fn",
    "main",
    "make_spirals",
    "make_train_step",
    "make_train_steps",
    "mlp",
    "plot_histories",
    "progress_bar",
    "run",
    "train",
]

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "lion")

DEFAULT_LEARNING_RATES: dict[str, float] = {
    "sgd": 0.5,
    "momentum": 0.05,
    "nesterov": 0.05,
    "adagrad": 0.3,
    "rmsprop": 1e-2,
    "adam": 1e-2,
    "adamw": 1e-2,
    "amsgrad": 1e-2,
    "nadam": 1e-2,
    "adamax": 2e-2,
    "lion": 1e-3,
}
FALLBACK_LEARNING_RATE = 1e-2


# --- the data ------------------------------------------------------------------------------


def make_spirals(
    n_per_class: int = 500, *, noise: float = 0.05, turns: float = 1.75, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane, labels 0 and 1, shuffled.

    Returns: x of shape (2 n, 2) float32, in about [-1, 1]**2; y of shape (2 n,) int32.
    """
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class))  # more points far out, where arms are long
    angle = 2 * np.pi * turns * t
    arms = []
    for label in (0, 1):
        a = angle + np.pi * label
        xy = np.stack([t * np.cos(a), t * np.sin(a)], axis=1)
        arms.append(xy + noise * rng.normal(size=xy.shape))
    x = np.concatenate(arms).astype(np.float32)
    y = np.repeat(np.arange(2, dtype=np.int32), n_per_class)
    order = rng.permutation(len(y))
    return x[order], y[order]


# --- the model -----------------------------------------------------------------------------


def init_mlp(key: jax.Array, sizes: Sequence[int] = (2, 64, 64, 2)) -> list[dict[str, jax.Array]]:
    """Layers ``{"w": (fan_in, fan_out), "b": (fan_out,)}``, weights ~ N(0, 1/fan_in)."""
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, n_in, n_out in zip(keys, sizes, sizes[1:]):
        w = jax.random.normal(k, (n_in, n_out), jnp.float32) / math.sqrt(n_in)
        layers.append({"w": w, "b": jnp.zeros(n_out, jnp.float32)})
    return layers


def mlp(params: list[dict[str, jax.Array]], x: jax.Array) -> jax.Array:
    """Logits: tanh hidden layers, a linear last layer."""
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean cross-entropy of the logits against integer labels."""
    logits = mlp(params, x)
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def accuracy(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of points whose largest logit is their label."""
    return jnp.mean((jnp.argmax(mlp(params, x), axis=1) == y).astype(jnp.float32))


def _step(optimizer: Any, batch_size: int):
    def step(params, state, x, y, key):
        idx = jax.random.randint(key, (batch_size,), 0, x.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
        updates, state = optimizer.update(grads, state, params)
        return apply_updates(params, updates), state, loss

    return step


def make_train_step(optimizer: Any, batch_size: int = 128):
    """A jitted ``step(params, state, x, y, key) -> (params, state, loss)`` on a random batch.

    ``params`` and ``state`` are donated: their buffers are reused for the new ones, so a step
    holds one copy of the model and of the optimizer state, not two.
    """
    return jax.jit(_step(optimizer, batch_size), donate_argnums=(0, 1))


def make_train_steps(optimizer: Any, batch_size: int = 128):
    """``steps(params, state, x, y, keys) -> (params, state, losses)``: one jitted call runs
    ``len(keys)`` train steps (a ``lax.scan`` of the step above), params and state donated.

    Several steps per call save the per-call overhead (about 0.1 ms here), which for a model
    this small costs more than the step itself.
    """
    step = _step(optimizer, batch_size)

    def steps(params, state, x, y, keys):
        def body(carry, key):
            params, state, loss = step(*carry, x, y, key)
            return (params, state), loss

        (params, state), losses = jax.lax.scan(body, (params, state), keys)
        return params, state, losses

    return jax.jit(steps, donate_argnums=(0, 1))


# --- training ------------------------------------------------------------------------------


def progress_bar(done: int, total: int, width: int = 24) -> str:
    """``[#########---------------]  300/800``."""
    filled = int(width * done / total) if total else width
    return f"[{'#' * filled}{'-' * (width - filled)}] {done:>{len(str(total))}}/{total}"


class History(NamedTuple):
    """What one training run recorded.

    losses: the training loss of every step's batch.   eval_steps: where the accuracies were
    measured.   train_accuracy, test_accuracy: on the whole train and test sets.
    """

    optimizer: str
    learning_rate: float
    losses: np.ndarray
    eval_steps: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    params: Any
    seconds: float
    state_multiple: float


@jax.jit
def _evaluate(params, x_train, y_train, x_test, y_test):
    return accuracy(params, x_train, y_train), accuracy(params, x_test, y_test)


def train(
    optimizer: Optimizer,
    learning_rate: float | None = None,
    *,
    steps: int = 2000,
    batch_size: int = 128,
    hidden: int = 64,
    seed: int = 0,
    data: tuple[np.ndarray, ...] | None = None,
    report_every: int | None = None,
    out: Any = None,
) -> History:
    """Train the MLP on the spirals with ``optimizer``: a name from ``gradchain.optimizers``,
    or a function of the learning rate returning a transform.

    Args:   learning_rate -- None for ``DEFAULT_LEARNING_RATES`` (1e-2 for an optimizer
            without a tuned rate).  data -- (x_train, y_train,
            x_test, y_test); default: ``make_spirals`` with ``seed`` and ``seed + 1``.
            report_every -- print a progress line this often (None: 10 times; 0: silent).
            out -- where progress goes (default ``sys.stdout``).
    """
    out = sys.stdout if out is None else out
    name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "custom")
    lr = DEFAULT_LEARNING_RATES.get(optimizer, FALLBACK_LEARNING_RATE)
    lr = lr if learning_rate is None else learning_rate
    if data is None:
        data = (*make_spirals(seed=seed), *make_spirals(seed=seed + 1))
    x_train, y_train, x_test, y_test = (jnp.asarray(a) for a in data)
    opt = build_optimizer(optimizer, lr)
    key = jax.random.key(seed)
    params = init_mlp(key, (2, hidden, hidden, 2))
    multiple = memory_report(opt, params).params_multiple
    state = opt.init(params)
    run_steps = make_train_steps(opt, batch_size)
    every = max(1, steps // 10) if report_every is None else report_every
    chunk = max(1, min(steps // 50, every or steps))  # steps per jitted call
    keys = jax.random.split(jax.random.fold_in(key, 1), steps)

    losses, evals = [], []
    began = time.perf_counter()
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        params, state, chunk_losses = run_steps(
            params, state, x_train, y_train, keys[done : done + n]
        )
        done += n
        losses.append(chunk_losses)
        evals.append((done, *_evaluate(params, x_train, y_train, x_test, y_test)))
        if every and (done % every < n or done == steps):
            print(
                f"  {name:<9} {progress_bar(done, steps)}  loss {float(chunk_losses[-1]):.4f}"
                f"  train acc {float(evals[-1][1]):.3f}",
                file=out,
                flush=True,
            )
    losses = np.asarray(jnp.concatenate(losses))
    seconds = time.perf_counter() - began
    ev = np.asarray([(i, float(a), float(b)) for i, a, b in evals])
    return History(
        name,
        float(lr),
        losses,
        ev[:, 0].astype(int),
        ev[:, 1],
        ev[:, 2],
        params,
        seconds,
        multiple,
    )


# --- the picture ---------------------------------------------------------------------------


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_histories(
    histories: Sequence[History], out: str | None = None, data: tuple[np.ndarray, ...] | None = None
) -> Any:
    """Loss curves (smoothed), test accuracy, and the best run's decision regions. Returns
    the matplotlib Figure, saved as a PNG to ``out`` if given.

    Raises ImportError with an install hint when matplotlib is missing.
    """
    fig = new_figure(figsize=(16, 4.8))
    data = data or (*make_spirals(seed=0), *make_spirals(seed=1))
    ax_loss, ax_acc, ax_map = fig.subplots(1, 3)
    window = 25
    for h in histories:
        label = f"{h.optimizer} (lr {h.learning_rate:g})"
        smooth = _smooth(h.losses, window)
        ax_loss.plot(np.arange(len(smooth)) + window // 2 + 1, smooth, lw=1.5, label=label)
        ax_acc.plot(h.eval_steps, h.test_accuracy, lw=1.5, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel(f"training loss (log scale, mean of {window} batches)")
    ax_loss.set_title("Cross-entropy on the training batches")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(alpha=0.3)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("test accuracy")
    ax_acc.set_ylim(0.4, 1.01)
    ax_acc.axhline(0.5, color="k", ls=":", lw=0.8)
    ax_acc.set_title("Accuracy on held-out spirals (dotted: chance)")
    ax_acc.legend(fontsize=8, loc="lower right")
    ax_acc.grid(alpha=0.3)

    best = max(histories, key=lambda h: (h.test_accuracy[-1], -h.losses[-50:].mean()))
    grid = np.linspace(-1.3, 1.3, 200, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    points = jnp.asarray(np.stack([gx.ravel(), gy.ravel()], 1))
    prob = np.asarray(jax.nn.softmax(mlp(best.params, points))[:, 1]).reshape(gx.shape)
    ax_map.contourf(gx, gy, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
    x_test, y_test = data[2], data[3]
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        pick = y_test == label
        ax_map.scatter(*x_test[pick].T, s=6, c=colour, edgecolors="none", label=f"class {label}")
    ax_map.set_xlabel("x₁")
    ax_map.set_ylabel("x₂")
    ax_map.set_aspect("equal")
    ax_map.set_title(
        f"P(class 1) learned by {best.optimizer} (test acc {best.test_accuracy[-1]:.3f})"
    )
    ax_map.legend(fontsize=8, loc="lower right")
    fig.suptitle("gradchain: one MLP on two spirals, trained with each optimizer", fontsize=12)
    fig.tight_layout()
    if out:
        fig.savefig(out, dpi=110)
    return fig


# --- command line --------------------------------------------------------------------------


MAX_STEPS = 1_000_000
MAX_BATCH = 1_000_000  # a batch is an index array and its rows: 1e6 points is ~24 MB
MAX_HIDDEN = 4096  # a hidden x hidden matrix and Adam's two moments: ~200 MB at 4096
MAX_SEED = 2**31 - 2  # numpy takes any seed >= 0; the test data uses seed + 1, JAX's key an int32


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (``python -m gradchain train``)."""
    parser.description = (
        "Train a small MLP on two spirals with each optimizer; print progress and a summary; "
        "save the loss curves."
    )
    parser.add_argument(
        "--optimizers",
        default=",".join(DEFAULT_OPTIMIZERS),
        help="comma-separated names from gradchain.optimizers (default: %(default)s)",
    )
    parser.add_argument(
        "--lr",
        default=None,
        help="one learning rate for all (0.01), or per optimizer (adam=0.01,sgd=0.3); "
        "default: tuned per optimizer, see gradchain.teaching.train_demo",
    )
    parser.add_argument(
        "--steps",
        type=int_between(1, MAX_STEPS),
        default=2000,
        help=f"steps per optimizer, at most {MAX_STEPS:,} (%(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int_between(1, MAX_BATCH),
        default=128,
        help=f"points per step, drawn with replacement, at most {MAX_BATCH:,} (%(default)s)",
    )
    parser.add_argument(
        "--hidden",
        type=int_between(1, MAX_HIDDEN),
        default=64,
        help=f"units per hidden layer, at most {MAX_HIDDEN:,} (%(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int_between(0, MAX_SEED),
        default=0,
        help=f"data and init seed, 0 to {MAX_SEED:,} (%(default)s)",
    )
    parser.add_argument(
        "--out",
        default="train.png",
        help="the figure to write (.png, .pdf, .svg, .jpg; no suffix: .png); '' for none "
        "(default: train.png)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Train with every optimizer in ``args``; print progress and a summary; write the PNG."""
    out = check_output_path(args.out) if args.out else ""  # .png added if it had no suffix
    names = parse_names(args.optimizers)
    lrs = parse_learning_rates(args.lr, names)  # the race's syntax
    data = (*make_spirals(seed=args.seed), *make_spirals(seed=args.seed + 1))
    print(
        f"MLP 2-{args.hidden}-{args.hidden}-2 on two spirals ({len(data[1])} train, "
        f"{len(data[3])} test points), {args.steps} steps of batch {args.batch_size}"
    )
    histories = []
    for name in names:
        lr = lrs if isinstance(lrs, float) else (lrs or {}).get(name)
        histories.append(
            train(
                name,
                lr,
                steps=args.steps,
                batch_size=args.batch_size,
                hidden=args.hidden,
                seed=args.seed,
                data=data,
            )
        )
    header = ["optimizer", "lr", "state", "final loss", "train acc", "test acc", "seconds"]
    rows = [
        [
            h.optimizer,
            f"{h.learning_rate:g}",
            f"{h.state_multiple:g}x params",
            f"{h.losses[-50:].mean():.4f}",
            f"{h.train_accuracy[-1]:.3f}",
            f"{h.test_accuracy[-1]:.3f}",
            f"{h.seconds:.1f}",
        ]
        for h in histories
    ]
    print()
    print(
        table.format_table(
            header,
            rows,
            right=range(1, 7),
            ruled=False,
            note="final loss = mean training loss of the last 50 batches",
        )
    )
    if out:
        try:
            plot_histories(histories, out, data)
        except ImportError as e:
            print(f"train: no PNG written: {e}", file=sys.stderr)
            return 0
        except OSError as e:  # the folder was checked; the disk may have filled up since
            raise GradchainError(
                f"--out {out!r}: writing the figure failed ({e.strerror or e})"
            ) from None
        print(f"wrote {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gradchain.teaching.train_demo [options]``: the demo on its own."""
    parser = configure(argparse.ArgumentParser(prog="python -m gradchain train"))
    try:
        return run(parser.parse_args(argv))
    except GradchainError as e:
        parser.error(str(e))  # one line on stderr, exit code 2, as python -m gradchain does
    return 2


if __name__ == "__main__":
    sys.exit(main())
