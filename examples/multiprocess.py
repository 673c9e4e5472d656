"""Two processes x four CPU devices train exactly as one process x eight devices.

    python examples/multiprocess.py            # about 10-20 s on 2 CPU cores

This script starts three Python processes of its own and compares what they compute:

- a reference: one process that sees 8 CPU devices;
- two workers joined by ``jax.distributed`` (a coordinator on 127.0.0.1, gloo for the CPU
  collectives), each seeing 4 CPU devices, so that together they see the same 8.

Each trains the same small MLP with ``gradchain.adamw`` for a few steps, in float64, on a
4 x 2 ('data', 'model') mesh over all 8 devices: the batch is split over 'data' (which spans
both workers), the params are partly split over 'model'. It does so twice: with the optimizer
state laid out like the params (``gradchain.state_shardings``: replicated over 'data'), and
with ZeRO-1 state (``gradchain.zero1_shardings``: moments split over 'data' as well). Then it
prints, for each layout, the largest difference between the workers' final params and the
reference's. ``tests/test_multiprocess.py`` runs this script and checks those numbers.

Every child has a time limit; if one fails or runs out of time, the others are killed and
the children's output is printed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

STEPS = 5
LAYOUTS = {
    "replicated": "replicated state (state_shardings)",
    "zero1": "ZeRO-1 state (zero1_shardings)",
}


# --- what each child computes -------------------------------------------------------------


def _host_data():
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(size=(8, 16)) * 0.3,
        "b1": rng.normal(size=(16,)) * 0.1,
        "w2": rng.normal(size=(16, 4)) * 0.3,
        "b2": np.zeros((4,)),
    }
    batches = [(rng.normal(size=(32, 8)), rng.normal(size=(32, 4))) for _ in range(STEPS)]
    return params, batches


def train(layout: str) -> dict[str, np.ndarray]:
    """``STEPS`` AdamW steps on a mesh of every device JAX sees (in every process); returns
    the final params, gathered whole into this process as numpy arrays."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import gradchain

    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    specs = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model", None), "b2": P()}

    def place(x, spec):
        # Every process holds the whole host array and hands JAX the pieces its devices own.
        sharding = NamedSharding(mesh, spec)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    def loss(params, batch):
        x, y = batch
        h = jnp.tanh(x @ params["w1"] + params["b1"])
        return jnp.mean((h @ params["w2"] + params["b2"] - y) ** 2)

    host_params, batches = _host_data()
    params = {k: place(v, specs[k]) for k, v in host_params.items()}
    opt = gradchain.adamw(1e-2)
    if layout == "zero1":
        state_sh = gradchain.zero1_shardings(opt, params, "data")
    else:
        state_sh = gradchain.state_shardings(opt, params)
    param_sh = gradchain.param_shardings(params)
    batch_sh = NamedSharding(mesh, P("data"))
    state = jax.jit(opt.init, out_shardings=state_sh)(params)

    def train_step(params, state, batch):
        grads = jax.grad(loss)(params, batch)
        updates, state = opt.update(grads, state, params)
        return gradchain.apply_updates(params, updates), state

    train_step = jax.jit(
        train_step,
        in_shardings=(param_sh, state_sh, (batch_sh, batch_sh)),
        out_shardings=(param_sh, state_sh),
        donate_argnums=(0, 1),
    )
    for x, y in batches:
        params, state = train_step(params, state, (place(x, P("data")), place(y, P("data"))))
    return multihost_utils.process_allgather(params, tiled=True)


def child(role: str, devices: int, out: str | None, port: int | None) -> None:
    """One child: the reference (``role='single'``) or worker ``role`` of two."""
    import jax

    import gradchain  # noqa: F401  before any setup: importing gradchain must start no backend

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", devices)
    jax.config.update("jax_enable_x64", True)
    if role != "single":
        # gloo is jax 0.10's default for CPU collectives; say so, in case the default moves.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        address = f"127.0.0.1:{port}"
        jax.distributed.initialize(
            coordinator_address=address,
            coordinator_bind_address=address,  # this machine only
            num_processes=2,
            process_id=int(role),
            local_device_ids=list(range(devices)),
            initialization_timeout=60,
        )
    print(
        f"process {jax.process_index()} of {jax.process_count()}: "
        f"{jax.local_device_count()} local devices of {jax.device_count()}",
        flush=True,
    )
    results = {layout: train(layout) for layout in LAYOUTS}
    if out is not None and jax.process_index() == 0:
        flat = {f"{layout}/{k}": v for layout, p in results.items() for k, v in p.items()}
        np.savez(out, **flat)
    if role != "single":
        jax.distributed.shutdown()


# --- the launcher ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_children(tmp: pathlib.Path, timeout: float) -> None:
    """Start the reference and the two workers at once; wait for all of them, or kill them all
    as soon as one fails or time runs out (a worker left alone would wait for its peer)."""
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_ENABLE_X64", None)
    script = str(pathlib.Path(__file__).resolve())
    commands = {
        "single": ["--child", "single", "--devices", "8", "--out", str(tmp / "single.npz")],
        "worker 0": ["--child", "0", "--devices", "4", "--port", str(port)],
        "worker 1": ["--child", "1", "--devices", "4", "--port", str(port)],
    }
    commands["worker 0"] += ["--out", str(tmp / "multi.npz")]
    procs, logs = {}, {}
    for name, args in commands.items():
        logs[name] = open(tmp / f"{name.replace(' ', '_')}.log", "w+")
        procs[name] = subprocess.Popen(
            [sys.executable, script, *args], env=env, stdout=logs[name], stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    failed = None
    while failed is None and any(p.poll() is None for p in procs.values()):
        failed = next((n for n, p in procs.items() if p.poll() not in (None, 0)), None)
        if time.monotonic() > deadline:
            failed = f"time limit ({timeout:.0f} s)"
        time.sleep(0.1)
    failed = failed or next((n for n, p in procs.items() if p.returncode != 0), None)
    for p in procs.values():
        if p.poll() is None:
            p.kill()
        p.wait()
    if failed is not None:
        for name, log in logs.items():
            log.seek(0)
            print(f"--- {name} (exit {procs[name].returncode}) ---\n{log.read()[-4000:]}")
            log.close()
        raise SystemExit(f"multiprocess example failed: {failed}")
    for name, log in logs.items():  # each child's first line: what devices it saw
        log.seek(0)
        print(f"{name + ':':9s} {log.readline().strip()}")
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=180, help="seconds for all children")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.devices, args.out, args.port)

    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        run_children(pathlib.Path(tmp), args.timeout)
        single = dict(np.load(pathlib.Path(tmp) / "single.npz"))
        multi = dict(np.load(pathlib.Path(tmp) / "multi.npz"))
    init, _ = _host_data()
    print(
        f"gradchain.adamw, {STEPS} steps, float64, mesh 4 x 2 ('data', 'model'):\n"
        "1 process x 8 CPU devices vs 2 processes x 4 (jax.distributed, gloo)"
    )
    for layout, label in LAYOUTS.items():
        keys = [k for k in single if k.startswith(layout + "/")]
        moved = max(np.max(np.abs(single[k] - init[k.split("/")[1]])) for k in keys)
        diff = max(np.max(np.abs(single[k] - multi[k])) for k in keys)
        print(f"{label + ':':37s} max |params difference| = {diff:.1e} (moved {moved:.1e})")
    print(f"took {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
