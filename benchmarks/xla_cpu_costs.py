"""What a first call and a step cost on XLA:CPU, taken apart: the facts behind the limits that
docs/performance.md reports for many-leaf optimizers.

    python benchmarks/xla_cpu_costs.py            # about 1 minute on 2 cores

Each part prints gradchain against Optax (or one XLA construction against another) measured in
this run. Nothing here is asserted; the numbers move 20 % from run to run on a shared machine.

1. split    -- trace, lowering and XLA compile of a donated adamw step, both libraries.
2. dedup    -- N elementwise fusions of one shape against N of N distinct shapes: XLA:CPU
               compiles a repeated kernel once, but still pays for every fusion it emits.
3. extract  -- taking N leaves out of one stacked buffer: constant offsets make N distinct
               kernels; offsets read at run time make them one kernel, repeated.
4. buffers  -- what each array passed in and out of a jitted call costs per call.
5. stacked  -- a prototype: adamw with its state stacked per leaf shape (runtime row offsets),
               first call and step against Optax's adamw.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax
from jax import lax

import gradchain


def _median_ms(call, args, *, runs: int = 30, donate: bool = False) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = call(*args)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
        if donate:
            args = out
    return 1e3 * statistics.median(times)


def _compile_s(fn, *args, donate=()) -> float:
    start = time.perf_counter()
    jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return time.perf_counter() - start


def split(n: int) -> None:
    params = {f"w{i}": jnp.full((32, 32), 0.01 * i) for i in range(n)}
    print(f"\n1. split: adamw on {n} leaves of 32x32, donated step (trace / lower / compile, s)")
    for name, opt in (("optax", optax.adamw(1e-3)), ("gradchain", gradchain.adamw(1e-3))):
        state = opt.init(params)

        def step(p, s, g, opt=opt):
            u, s = opt.update(g, s, p)
            return optax.apply_updates(p, u), s

        jitted = jax.jit(step, donate_argnums=(0, 1))
        t0 = time.perf_counter()
        traced = jitted.trace(params, state, params)
        t1 = time.perf_counter()
        lowered = traced.lower()
        t2 = time.perf_counter()
        compiled = lowered.compile()
        t3 = time.perf_counter()
        fusions = sum(" fusion(" in line for line in compiled.as_text().splitlines())
        print(
            f"   {name:10s} {t1 - t0:5.2f} / {t2 - t1:5.2f} / {t3 - t2:5.2f}  "
            f"(total {t3 - t0:5.2f} s, {fusions} fusions)"
        )


def dedup(n: int) -> None:
    same = [jnp.ones((32, 32))] * n
    distinct = [jnp.ones((32, 32 + i)) for i in range(n)]
    fn = lambda a, b: [x * 2.0 + y * 3.0 for x, y in zip(a, b)]  # noqa: E731
    t_same = _compile_s(fn, same, same)
    t_distinct = _compile_s(fn, distinct, distinct)
    print(f"\n2. dedup: {n} fusions x*2+y*3, compile")
    print(f"   one shape     {t_same:5.2f} s ({1e3 * t_same / n:5.2f} ms a fusion)")
    print(f"   {n} shapes    {t_distinct:5.2f} s ({1e3 * t_distinct / n:5.2f} ms a fusion)")


def extract(n: int) -> None:
    params = [jnp.zeros((32, 32)) for _ in range(n)]
    stacked = jnp.zeros((n, 32, 32))
    rows = tuple(jnp.int32(i) for i in range(n))
    constant = lambda p, s: [x + s[i] for i, x in enumerate(p)]  # noqa: E731
    runtime = lambda p, s, r: [  # noqa: E731
        x + lax.dynamic_index_in_dim(s, i, keepdims=False) for x, i in zip(p, r)
    ]
    t_const = _compile_s(constant, params, stacked, donate=(0,))
    t_run = _compile_s(runtime, params, stacked, rows, donate=(0,))
    print(f"\n3. extract: {n} leaves out of one (n, 32, 32) buffer, each added to a param, compile")
    print(f"   constant offsets  {t_const:5.2f} s ({1e3 * t_const / n:5.2f} ms a leaf)")
    print(f"   runtime offsets   {t_run:5.2f} s ({1e3 * t_run / n:5.2f} ms a leaf)")


def buffers(n: int) -> None:
    x = jnp.ones(4)
    scalars = tuple(jnp.int32(i) for i in range(n))
    with_n = jax.jit(lambda r, x: (r, x + 1), donate_argnums=(0, 1))
    alone = jax.jit(lambda x: (x + 1,), donate_argnums=(0,))
    t_with = _median_ms(with_n, (scalars, x), runs=60, donate=True)
    t_alone = _median_ms(alone, (jnp.ones(4),), runs=60, donate=True)
    print(f"\n4. buffers: a call passing {n} more 0-d arrays in and out (donated)")
    print(f"   {t_with:.3f} ms against {t_alone:.3f} ms: {1e3 * (t_with - t_alone) / n:.2f} us an array")


def _stacked_adamw(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=1e-4):
    """Prototype only: adamw with mu and nu stacked per (shape, dtype), rows read at run time."""

    def groups(params):
        leaves, treedef = jax.tree.flatten(params)
        found: dict = {}
        for i, x in enumerate(leaves):
            found.setdefault((x.shape, x.dtype.name), []).append(i)
        return treedef, found

    def init(params):
        _, found = groups(params)
        zeros = {k: jnp.zeros((len(ix), *k[0])) for k, ix in found.items()}
        rows = {k: tuple(jnp.int32(j) for j in range(len(ix))) for k, ix in found.items()}
        return {"mu": zeros, "nu": dict(zeros), "count": jnp.zeros([], jnp.int32), "rows": rows}

    def update(grads, state, params):
        treedef, found = groups(params)
        g_leaves, p_leaves = treedef.flatten_up_to(grads), treedef.flatten_up_to(params)
        count = state["count"] + 1
        t = count.astype(jnp.float32)
        c1, c2 = 1 - b1**t, 1 - b2**t
        out, mus, nus = [None] * len(g_leaves), {}, {}
        for k, ix in found.items():
            g = jnp.stack([g_leaves[i] for i in ix])
            mus[k] = mu = b1 * state["mu"][k] + (1 - b1) * g
            nus[k] = nu = b2 * state["nu"][k] + (1 - b2) * g * g
            u = (mu / c1) / (jnp.sqrt(nu / c2) + eps)
            for j, i in enumerate(ix):
                row = lax.dynamic_index_in_dim(u, state["rows"][k][j], keepdims=False)
                out[i] = -lr * (row + wd * p_leaves[i])
        new = {"mu": mus, "nu": nus, "count": count, "rows": state["rows"]}
        return treedef.unflatten(out), new

    return init, update


def stacked(n: int) -> None:
    params = {f"w{i}": jnp.full((32, 32), 0.01 * i) for i in range(n)}
    print(f"\n5. stacked: adamw on {n} leaves of 32x32 (first call s, step ms)")
    results = {}
    reference = optax.adamw(1e-3, weight_decay=1e-4)
    for name, (init, update) in (
        ("optax", (reference.init, reference.update)),
        ("stacked", _stacked_adamw()),
    ):
        state = init(params)

        def step(p, s, g, update=update):
            u, s = update(g, s, p)
            return optax.apply_updates(p, u), s

        start = time.perf_counter()
        compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params).compile()
        first = time.perf_counter() - start
        p, s = jax.tree.map(jnp.copy, (params, state))
        g = jax.tree.map(jnp.copy, params)
        for _ in range(3):
            p, s = compiled(p, s, g)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            p, s = compiled(p, s, g)
            jax.block_until_ready(p)
            times.append(time.perf_counter() - t0)
        results[name] = (first, 1e3 * statistics.median(times), p)
        print(f"   {name:8s} first call {first:5.2f} s, step {results[name][1]:6.2f} ms")
    (f_o, s_o, p_o), (f_s, s_s, p_s) = results["optax"], results["stacked"]
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(p_o), jax.tree.leaves(p_s)))
    print(f"   ratios: first call {f_s / f_o:.2f}x, step {s_s / s_o:.2f}x (params agree to {diff:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1000)
    args = parser.parse_args()
    n = args.leaves
    split(n)
    dedup(n // 2)
    extract(n // 5)
    buffers(n)
    stacked(n)


if __name__ == "__main__":
    main()
