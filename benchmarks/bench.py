"""gradchain against Optax, side by side in one run: step time, compile time, bandwidth, memory.

    python benchmarks/bench.py            # the full table (several minutes)
    python benchmarks/bench.py --quick    # a smaller table, under 90 s
    python benchmarks/bench.py --json out.json

Every timed step is ``jit(update + apply_updates)`` with params and state donated, the way a
training loop should run it. The two libraries (and an A/A copy of Optax, to show the noise)
are timed in alternating blocks within each row, so a load spike on a shared machine hits
both; each row reports medians and the ratio gradchain / Optax (< 1: gradchain is faster).
Rows are summarised by the geometric mean of their ratios. Never used in a timed assertion.

Bandwidth: a donated triad ``a + s * b`` (3 arrays moved) over the row's size, timed in the
same alternating blocks as the steps; each step's ``bandwidth`` fraction is (the fewest bytes
the step must move) / (the triad's bytes per second) / (the step's time). Adam must read p, g,
mu, nu and write p, mu, nu: 7 arrays. Small sizes sit in cache, so their limit is the cache's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gradchain  # noqa: E402

LR = 1e-3
# Arrays of n elements the step must move at least (reads + writes), per optimizer.
ARRAYS_MOVED = {"sgd": 3, "momentum": 5, "rmsprop": 5, "adam": 7, "adamw": 7, "lion": 5}


def optimizers(name: str) -> tuple[Any, Any]:
    """(gradchain, optax) for the same optimizer and hyperparameters."""
    return {
        "sgd": (gradchain.sgd(LR), optax.sgd(LR)),
        "momentum": (gradchain.momentum(LR, 0.9), optax.sgd(LR, momentum=0.9)),
        "rmsprop": (gradchain.rmsprop(LR), optax.rmsprop(LR)),
        "adam": (gradchain.adam(LR), optax.adam(LR)),
        "adamw": (gradchain.adamw(LR, weight_decay=1e-4), optax.adamw(LR, weight_decay=1e-4)),
        "lion": (gradchain.lion(LR, weight_decay=1e-3), optax.lion(LR, weight_decay=1e-3)),
    }[name]


def make_tree(total: int, leaves: int, seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    size = total // leaves
    return {
        f"p{i:04d}": jnp.asarray(rng.standard_normal(size, dtype=np.float32)) for i in range(leaves)
    }


def step_fn(opt: Any, apply: Callable) -> Callable:
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return apply(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


class Contender:
    """One jitted, donated step and its running (params, state)."""

    def __init__(self, opt: Any, apply: Callable, total: int, leaves: int, step=None, make=None):
        self.step = step or step_fn(opt, apply)
        if make is None:  # a tree of `leaves` equal leaves, `total` parameters
            self.params = make_tree(total, leaves, seed=1)
            self.grads = jax.tree.map(lambda p: p * 1e-3, make_tree(total, leaves, seed=2))
        else:  # a named tree
            self.params = make()
            self.grads = jax.tree.map(lambda p: p * 1e-3, make())
        self.state = opt.init(self.params)
        self.times: list[float] = []
        self.run(2)  # compile and warm up

    def run(self, k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        return (time.perf_counter() - start) / k


class Triad:
    """The physical limit, timed in the same blocks as the steps: a donated ``a + s * b`` over
    the row's parameter count (3 arrays moved)."""

    def __init__(self, n: int):
        self.step = jax.jit(lambda a, b: a + jnp.float32(1e-3) * b, donate_argnums=(0,))
        self.a, self.b = jnp.ones(n, jnp.float32), jnp.ones(n, jnp.float32)
        self.times: list[float] = []
        self.run(2)

    def run(self, k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            self.a = self.step(self.a, self.b)
        jax.block_until_ready(self.a)
        return (time.perf_counter() - start) / k


def interleave(contenders: list[Contender], budget_s: float, min_blocks: int = 7) -> None:
    """Time the contenders in alternating blocks (the order flips each round) until each has
    at least ``min_blocks`` blocks and the row's time budget is spent."""
    per_step = max(c.run(1) for c in contenders)
    k = max(1, min(200, int(0.02 / max(per_step, 1e-6))))  # blocks of ~20 ms
    start = time.perf_counter()
    r = 0
    while r < min_blocks or time.perf_counter() - start < budget_s:
        order = contenders if r % 2 == 0 else contenders[::-1]
        for c in order:
            c.times.append(c.run(k))
        r += 1
        if r >= 200:
            break


def triad_bandwidth(n: int, budget_s: float) -> float:
    """Bytes per second of a donated ``a + s * b`` over n float32 (3 arrays moved)."""

    def triad(a, b):
        return a + jnp.float32(1e-3) * b

    triad = jax.jit(triad, donate_argnums=(0,))
    a = jnp.ones(n, jnp.float32)
    b = jnp.ones(n, jnp.float32)
    a = jax.block_until_ready(triad(a, b))
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        a = jax.block_until_ready(triad(a, b))
        times.append(time.perf_counter() - t0)
    return 3 * n * 4 / statistics.median(times)


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def spread(times: list[float]) -> float:
    """(p90 - p10) / median of the block times: the within-row noise."""
    q = np.percentile(times, [10, 50, 90])
    return float((q[2] - q[0]) / q[1])


# --- the step table ---------------------------------------------------------------------


def step_table(cfg: dict, bandwidth: float) -> list[dict]:
    rows = []
    for total in cfg["sizes"]:
        for leaves in cfg["leaves"]:
            if total // leaves < 1:
                continue
            for name in cfg["opts"]:
                gc_opt, ox_opt = optimizers(name)
                cs = [
                    Contender(gc_opt, gradchain.apply_updates, total, leaves),
                    Contender(ox_opt, optax.apply_updates, total, leaves),
                ]
                aa = name == "adam"  # the A/A control: Optax against a second copy of itself
                if aa:  # the same compiled Optax program on its own buffers, timed as a rival
                    cs.append(Contender(ox_opt, optax.apply_updates, total, leaves, cs[1].step))
                grouped = name in cfg["grouped_opts"] and leaves >= 100 and total // leaves <= 4096
                if grouped:  # the opt-in many-leaf wrapper
                    opt = gradchain.group_leaves(optimizers(name)[0])
                    cs.append(Contender(opt, gradchain.apply_updates, total, leaves))
                triad = Triad(total)
                interleave([*cs, triad], cfg["row_budget_s"])
                gc, ox = (statistics.median(c.times) for c in cs[:2])
                # The least time the step can take: its arrays at the triad's bytes per second.
                limit = ARRAYS_MOVED[name] / 3 * statistics.median(triad.times)
                row = {
                    "opt": name,
                    "total": total,
                    "leaves": leaves,
                    "gradchain_ms": gc * 1e3,
                    "optax_ms": ox * 1e3,
                    "ratio": gc / ox,
                    "gradchain_fraction": limit / gc,
                    "optax_fraction": limit / ox,
                    "triad_gbs": 3 * total * 4 / statistics.median(triad.times) / 1e9,
                    "spread": max(spread(c.times) for c in cs),
                    "blocks": len(cs[0].times),
                }
                if aa:
                    row["aa_ratio"] = statistics.median(cs[2].times) / ox
                if grouped:
                    row["grouped_ms"] = statistics.median(cs[-1].times) * 1e3
                    row["grouped_ratio"] = row["grouped_ms"] / row["optax_ms"]
                rows.append(row)
                print(format_step_row(row), flush=True)
                del cs, triad
    return rows


def format_step_row(r: dict) -> str:
    aa = f"  A/A {r['aa_ratio']:.2f}" if "aa_ratio" in r else ""
    if "grouped_ms" in r:
        aa += f"  grouped {r['grouped_ms']:.3f} ms ({r['grouped_ratio']:.2f})"
    return (
        f"{r['opt']:>8} {r['total']:>9.0e} x{r['leaves']:<5} gradchain {r['gradchain_ms']:8.3f} ms"
        f"  optax {r['optax_ms']:8.3f} ms  ratio {r['ratio']:.2f}  bw {r['gradchain_fraction']:.0%}"
        f"/{r['optax_fraction']:.0%} (triad {r['triad_gbs']:.0f} GB/s)"
        f"  spread {r['spread']:.0%}{aa}"
    )


# --- first call: trace + lower + compile -----------------------------------------------------


def first_call_s(opt: Any, apply: Callable, leaves: int) -> float:
    params = {f"p{i:04d}": jnp.ones((64, 64), jnp.float32) for i in range(leaves)}
    grads = jax.tree.map(lambda p: p * 1e-3, params)
    state = opt.init(params)
    step = step_fn(opt, apply)
    start = time.perf_counter()
    jax.block_until_ready(step(params, state, grads))
    return time.perf_counter() - start


def compile_table(cfg: dict) -> list[dict]:
    rows = []
    for leaves in cfg["compile_leaves"]:
        for name in cfg["compile_opts"]:
            gc_opt, ox_opt = optimizers(name)
            # Small trees: three alternating measurements each, medians; large: one each.
            gcs, oxs = [], []
            for r in range(3 if leaves <= 100 else 1):
                pair = [(gcs, gc_opt, gradchain.apply_updates), (oxs, ox_opt, optax.apply_updates)]
                for out, opt, apply in pair if r % 2 else pair[::-1]:
                    out.append(first_call_s(opt, apply, leaves))
            gc, ox = statistics.median(gcs), statistics.median(oxs)
            row = {"opt": name, "leaves": leaves, "gradchain_s": gc, "optax_s": ox}
            row["ratio"] = gc / ox
            if leaves in cfg["grouped_compile_leaves"]:
                grouped = gradchain.group_leaves(gc_opt)
                row["grouped_s"] = first_call_s(grouped, gradchain.apply_updates, leaves)
            rows.append(row)
            print(
                f"first call {name:>5} x{leaves:<5} gradchain {gc:7.2f} s  optax {ox:7.2f} s  "
                f"ratio {gc / ox:.2f}"
                + (f"  grouped {row['grouped_s']:.2f} s" if "grouped_s" in row else ""),
                flush=True,
            )
    return rows


# --- the issue's two trees: first call and step, both libraries ----------------------------


def transformer_like() -> dict[str, Any]:
    """24 blocks x (4 matrices 256x256 + 4 vectors 256) + a 2048x256 embedding: 194 leaves,
    6.4e6 params -- a transformer repeats a handful of shapes."""
    tree: dict[str, Any] = {"embed": jnp.ones((2048, 256), jnp.float32)}
    for b in range(24):
        tree[f"block{b:02d}"] = {
            **{f"w{i}": jnp.ones((256, 256), jnp.float32) for i in range(4)},
            **{f"v{i}": jnp.ones((256,), jnp.float32) for i in range(4)},
        }
    return tree


def many_small() -> dict[str, Any]:
    """1000 leaves of 32x32 (1e6 params)."""
    return {f"p{i:04d}": jnp.ones((32, 32), jnp.float32) for i in range(1000)}


NAMED_TREES = {"transformer-like (194 leaves, 6.4e6)": transformer_like, "1000 x 32x32": many_small}


def _first_call_s(opt: Any, apply: Callable, make: Callable) -> float:
    params = make()
    grads = jax.tree.map(lambda p: p * 1e-3, params)
    state = opt.init(params)
    step = step_fn(opt, apply)
    start = time.perf_counter()
    jax.block_until_ready(step(params, state, grads))
    return time.perf_counter() - start


def tree_table(cfg: dict) -> list[dict]:
    """For each named tree: the first call (trace + lower + compile + one step), the two
    libraries alternating over rounds (medians); then the step, timed like the step table (in
    alternating ~20 ms blocks, with Optax's A/A control)."""
    rows = []
    for label, make in NAMED_TREES.items():
        for name in cfg["tree_opts"]:
            firsts: dict[str, list] = {"gradchain": [], "optax": []}
            for r in range(cfg["tree_rounds"]):
                gc_opt, ox_opt = optimizers(name)
                pair = [
                    ("gradchain", gc_opt, gradchain.apply_updates),
                    ("optax", ox_opt, optax.apply_updates),
                ]
                for lib, opt, apply in pair if r % 2 else pair[::-1]:
                    firsts[lib].append(_first_call_s(opt, apply, make))
            gc_opt, ox_opt = optimizers(name)
            cs = [
                Contender(gc_opt, gradchain.apply_updates, 0, 0, make=make),
                Contender(ox_opt, optax.apply_updates, 0, 0, make=make),
            ]
            cs.append(Contender(ox_opt, optax.apply_updates, 0, 0, cs[1].step, make=make))
            interleave(cs, cfg["row_budget_s"])
            gc_s, ox_s, aa_s = (statistics.median(c.times) for c in cs)
            row = {"tree": label, "opt": name}
            for lib in ("gradchain", "optax"):
                row[f"{lib}_first_s"] = statistics.median(firsts[lib])
            row["gradchain_step_ms"], row["optax_step_ms"] = gc_s * 1e3, ox_s * 1e3
            row["first_ratio"] = row["gradchain_first_s"] / row["optax_first_s"]
            row["step_ratio"] = gc_s / ox_s
            row["aa_ratio"] = aa_s / ox_s
            rows.append(row)
            print(
                f"{label} {name}: first call {row['gradchain_first_s']:.2f} / "
                f"{row['optax_first_s']:.2f} s ({row['first_ratio']:.2f}x), step "
                f"{row['gradchain_step_ms']:.2f} / {row['optax_step_ms']:.2f} ms "
                f"({row['step_ratio']:.2f}x, A/A {row['aa_ratio']:.2f})",
                flush=True,
            )
            del cs
    return rows


# --- what the torch port costs: gradchain.torch.AdamW against torch.optim.AdamW -------------


class TorchContender:
    """torch.optim.AdamW on the same tree (float32 CPU tensors, gradients set once), timed by
    ``interleave`` like a Contender: ``run(k)`` takes k ``opt.step()``."""

    def __init__(self, make: Callable, **flags: Any):
        import torch

        self.params = [torch.from_numpy(np.array(p)) for p in jax.tree.leaves(make())]
        for p in self.params:
            p.grad = p * 1e-3
        self.opt = torch.optim.AdamW(self.params, lr=LR, weight_decay=1e-2, **flags)
        self.times: list[float] = []
        self.run(2)

    def run(self, k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            self.opt.step()
        return (time.perf_counter() - start) / k


def torch_table(cfg: dict) -> list[dict]:
    """gradchain.torch.AdamW (a jitted, donated step) beside torch.optim.AdamW with
    foreach=True and fused=True on the transformer-like tree, in alternating ~20 ms blocks,
    with a second foreach copy as torch's A/A control. Ratios: gradchain.torch / torch. One row
    per torch intra-op thread count: 1, and every CPU (on a loaded machine the second spins)."""
    import torch

    rows = []
    before = torch.get_num_threads()
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        rows.append(_torch_row(transformer_like, cfg))
    torch.set_num_threads(before)
    return rows


def _torch_row(make: Callable, cfg: dict) -> dict:
    import torch

    import gradchain.torch as gt

    cs = [
        Contender(gt.AdamW(lr=LR, weight_decay=1e-2), gradchain.apply_updates, 0, 0, make=make),
        TorchContender(make, foreach=True),
        TorchContender(make, fused=True),
        TorchContender(make, foreach=True),
    ]
    interleave(cs, cfg["row_budget_s"] * 2)
    ours, foreach, fused, aa = (statistics.median(c.times) * 1e3 for c in cs)
    row = {"tree": "transformer-like (194 leaves, 6.4e6)", "gradchain_torch_ms": ours,
           "torch_foreach_ms": foreach, "torch_fused_ms": fused, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "ratio_foreach": ours / foreach,
           "ratio_fused": ours / fused, "aa_ratio": aa / foreach}  # fmt: skip
    print(
        f"torch port ({row['torch_threads']} threads), AdamW on {row['tree']}: gradchain.torch "
        f"{ours:.2f} ms, torch foreach "
        f"{foreach:.2f} ms ({row['ratio_foreach']:.2f}x), fused {fused:.2f} ms "
        f"({row['ratio_fused']:.2f}x), A/A {row['aa_ratio']:.2f}",
        flush=True,
    )
    return row


# --- structure: equations and fusions per leaf ---------------------------------------------


def structure(leaves: int = 10) -> list[dict]:
    """Jaxpr equations and compiled fusions per leaf, for Adam on ``leaves`` leaves."""
    out = []
    params = {f"p{i}": jnp.ones((64, 64), jnp.float32) for i in range(leaves)}
    for lib, (opt, apply) in {
        "gradchain": (gradchain.adam(LR), gradchain.apply_updates),
        "optax": (optax.adam(LR), optax.apply_updates),
    }.items():
        state = opt.init(params)

        def step(p, s, g, opt=opt, apply=apply):
            u, s = opt.update(g, s, p)
            return apply(p, u), s

        jaxpr = jax.make_jaxpr(step)(params, state, params)
        hlo = jax.jit(step).lower(params, state, params).compile().as_text()
        fusions = sum(1 for line in hlo.splitlines() if " fusion(" in line and "calls=" in line)
        out.append(
            {
                "lib": lib,
                "equations_per_leaf": len(jaxpr.eqns) / leaves,
                "fusions_per_leaf": fusions / leaves,
            }
        )
    return out


# --- memory: peak RSS of a large Adam step, in a fresh process ------------------------------

_MEMORY_CHILD = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, {root!r})
    import gradchain, optax
    lib, n = sys.argv[1], int(sys.argv[2])

    def rss():  # current resident set, from /proc
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    def high_water():  # this process image's peak RSS (ru_maxrss would include the parent's)
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))

    opt, apply = ((gradchain.adam(1e-3), gradchain.apply_updates) if lib == "gradchain"
                  else (optax.adam(1e-3), optax.apply_updates))
    def step(p, s, g):
        u, s = opt.update(g, s, p)
        return apply(p, u), s
    # Compile from shapes before the baseline, so the compiler's own memory is not counted.
    like = {{"w": jax.ShapeDtypeStruct((n,), jnp.float32)}}
    step = jax.jit(step, donate_argnums=(0, 1)).lower(
        like, jax.eval_shape(opt.init, like), like).compile()
    base = rss()
    try:  # reset the high-water mark to now (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    params = {{"w": jnp.ones(n, jnp.float32)}}
    grads = {{"w": jnp.full((n,), 1e-3, jnp.float32)}}
    state = opt.init(params)
    state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
    peak = 0
    for _ in range(3):
        params, state = step(params, state, grads)
        jax.block_until_ready(params)
        peak = max(peak, rss())
    peak = max(peak, high_water())
    report = (gradchain.memory_report(opt, params).total_bytes
              if hasattr(gradchain, "memory_report") else None)
    print(json.dumps(dict(lib=lib, n=n, base=base, peak=peak, state_bytes=state_bytes,
                          report_bytes=report)))
    """
)


def memory_rows(n: int) -> list[dict]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = _MEMORY_CHILD.format(root=root)
    rows = []
    for lib in ("gradchain", "optax"):
        out = subprocess.run(
            [sys.executable, "-c", code, lib, str(n)], capture_output=True, text=True
        )
        if out.returncode:
            raise RuntimeError(f"memory child failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["peak_over_params"] = (r["peak"] - r["base"]) / (4 * n)
        rows.append(r)
        print(
            f"memory {lib:>9} n={n:.0e}: peak above baseline {r['peak_over_params']:.2f} x params"
            f", state {r['state_bytes']:,} B, memory_report {r['report_bytes']}",
            flush=True,
        )
    return rows


# --- main -----------------------------------------------------------------------------------

FULL = dict(
    sizes=[100_000, 1_000_000, 10_000_000],
    leaves=[1, 10, 100, 1000],
    opts=["sgd", "momentum", "rmsprop", "adam", "adamw", "lion"],
    row_budget_s=1.5,
    compile_leaves=[10, 100, 1000, 3000],
    compile_opts=["adam"],
    grouped_opts=["adam", "sgd"],
    grouped_compile_leaves=[10, 100, 1000],
    tree_opts=["adamw"],
    tree_rounds=3,
    triad_n=50_000_000,
    memory_n=50_000_000,
)
QUICK = dict(
    sizes=[100_000, 1_000_000],
    leaves=[1, 100],
    opts=["sgd", "adam", "lion"],
    row_budget_s=0.5,
    compile_leaves=[10, 100],
    compile_opts=["adam"],
    grouped_opts=["adam"],
    grouped_compile_leaves=[100],
    tree_opts=["adamw"],
    tree_rounds=1,
    triad_n=10_000_000,
    memory_n=10_000_000,
)


def markdown(result: dict) -> str:
    lines = [
        f"Machine: {result['machine']}; jax {result['jax']}, optax {result['optax']}.",
        f"Memory bandwidth (donated triad, {result['triad_n']:.0e} float32, at start): "
        f"{result['bandwidth_gbs']:.1f} GB/s. `bandwidth` = the step's fewest bytes moved / the "
        "triad's bytes per second at the same size, timed in the same blocks (small sizes sit "
        "in cache).",
        "",
        "| optimizer | params | leaves | gradchain ms | optax ms | ratio | A/A | "
        "bandwidth gradchain / optax | spread | group_leaves ms (ratio) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["steps"]:
        aa = f"{r['aa_ratio']:.2f}" if "aa_ratio" in r else ""
        grouped = f"{r['grouped_ms']:.3f} ({r['grouped_ratio']:.2f})" if "grouped_ms" in r else ""
        lines.append(
            f"| {r['opt']} | {r['total']:.0e} | {r['leaves']} | {r['gradchain_ms']:.3f} | "
            f"{r['optax_ms']:.3f} | {r['ratio']:.2f} | {aa} | "
            f"{r['gradchain_fraction']:.0%} / {r['optax_fraction']:.0%} | {r['spread']:.0%} | "
            f"{grouped} |"
        )
    s = result["summary"]
    lines += [
        "",
        f"Geometric mean of ratios: {s['geomean_ratio']:.3f} over {s['rows']} rows "
        f"(A/A: {s['geomean_aa']:.3f}, range {s['aa_min']:.2f}-{s['aa_max']:.2f}).",
        "",
        "| first call (trace + compile), 64x64 leaves | gradchain s | optax s | ratio | "
        "group_leaves s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["compile"]:
        grouped = f"{r['grouped_s']:.2f}" if "grouped_s" in r else ""
        lines.append(
            f"| {r['opt']}, {r['leaves']} leaves | {r['gradchain_s']:.2f} | {r['optax_s']:.2f} | "
            f"{r['ratio']:.2f} | {grouped} |"
        )
    lines += [
        "",
        "| tree, optimizer | first call gradchain / optax s | ratio | step gradchain / optax ms "
        "| ratio | A/A |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result.get("trees", []):
        lines.append(
            f"| {r['tree']}, {r['opt']} | {r['gradchain_first_s']:.2f} / {r['optax_first_s']:.2f} "
            f"| {r['first_ratio']:.2f} | {r['gradchain_step_ms']:.2f} / {r['optax_step_ms']:.2f} "
            f"| {r['step_ratio']:.2f} | {r['aa_ratio']:.2f} |"
        )
    if result.get("torch"):
        lines += [
            "",
            "| AdamW, transformer-like tree | gradchain.torch ms | torch foreach ms | torch fused "
            "ms | ratio foreach | ratio fused | torch A/A |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["torch"]:
            lines.append(
                f"| torch {r['torch']}, {r['torch_threads']} threads | "
                f"{r['gradchain_torch_ms']:.2f} | {r['torch_foreach_ms']:.2f} | "
                f"{r['torch_fused_ms']:.2f} | {r['ratio_foreach']:.2f} | {r['ratio_fused']:.2f} | "
                f"{r['aa_ratio']:.2f} |"
            )
    lines += [
        "",
        "| structure (Adam) | jaxpr equations per leaf | fusions per leaf |",
        "|---|---:|---:|",
    ]
    for r in result["structure"]:
        lines.append(
            f"| {r['lib']} | {r['equations_per_leaf']:.1f} | {r['fusions_per_leaf']:.1f} |"
        )
    lines += [
        "",
        "| memory, Adam step | peak RSS above baseline | state bytes | memory_report |",
        "|---|---:|---:|---:|",
    ]
    for r in result["memory"]:
        lines.append(
            f"| {r['lib']}, n = {r['n']:.0e} | {r['peak_over_params']:.2f} x params | "
            f"{r['state_bytes']:,} | {r['report_bytes'] if r['report_bytes'] else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller table, under 90 s")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--markdown", help="also write the markdown tables to this file")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        help="parts to skip: steps compile trees torch structure memory",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    started = time.perf_counter()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, " + (
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    bandwidth = triad_bandwidth(cfg["triad_n"], 1.0)
    print(f"bandwidth (triad {cfg['triad_n']:.0e}): {bandwidth / 1e9:.1f} GB/s", flush=True)
    steps = [] if "steps" in args.skip else step_table(cfg, bandwidth)
    compiled = [] if "compile" in args.skip else compile_table(cfg)
    trees = [] if "trees" in args.skip else tree_table(cfg)
    ported = [] if "torch" in args.skip else torch_table(cfg)
    struct = [] if "structure" in args.skip else structure()
    mem = [] if "memory" in args.skip else memory_rows(cfg["memory_n"])
    aa = [r["aa_ratio"] for r in steps if "aa_ratio" in r]
    result = {
        "machine": machine,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "quick": args.quick,
        "triad_n": cfg["triad_n"],
        "bandwidth_gbs": bandwidth / 1e9,
        "steps": steps,
        "compile": compiled,
        "trees": trees,
        "torch": ported,
        "structure": struct,
        "memory": mem,
        "summary": {
            "rows": len(steps),
            "geomean_ratio": geomean([r["ratio"] for r in steps]),
            "geomean_aa": geomean(aa),
            "aa_min": min(aa, default=float("nan")),
            "aa_max": max(aa, default=float("nan")),
            "load_average_end": os.getloadavg()[0],
            "seconds": time.perf_counter() - started,
        },
    }
    text = markdown(result)
    print("\n" + text)
    print(
        f"\n(took {result['summary']['seconds']:.0f} s; load average at end "
        f"{result['summary']['load_average_end']:.1f})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
