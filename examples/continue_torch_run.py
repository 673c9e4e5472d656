"""Start a run in PyTorch, continue it in JAX with gradchain.torch, and check that the JAX half
takes the steps torch would have taken.

    .venv/bin/python examples/continue_torch_run.py

A small linear model, AdamW with a warmup-then-cosine schedule, 100 steps in torch; then the
torch optimizer's state_dict() becomes the gradchain state and both frameworks take 100 more
steps from the same point. Float64 on both sides.
"""

import jax
import jax.numpy as jnp
import numpy as np
import torch

import gradchain
import gradchain.torch as gt

jax.config.update("jax_enable_x64", True)
torch.set_default_dtype(torch.float64)

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(256, 8)), rng.normal(size=(256, 1))
HYPER = dict(lr=3e-2, betas=(0.9, 0.95), weight_decay=0.1)


def torch_schedule(opt):
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=20)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=180)
    return torch.optim.lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[20])


# --- the torch run -----------------------------------------------------------------------
model = torch.nn.Linear(8, 1)
topt = torch.optim.AdamW(model.parameters(), **HYPER)
tsched = torch_schedule(topt)
x, y = torch.tensor(X), torch.tensor(Y)


def torch_steps(n):
    for _ in range(n):
        topt.zero_grad()
        torch.mean((model(x) - y) ** 2).backward()
        topt.step()
        tsched.step()


torch_steps(100)

# --- hand over to JAX ----------------------------------------------------------------------
# torch's params in the order the optimizer got them: weight, then bias (a list keeps order).
params = [jnp.asarray(p.detach().numpy()) for p in model.parameters()]
lr = gt.SequentialLR(
    [gt.LinearLR(HYPER["lr"], 0.1, total_iters=20), gt.CosineAnnealingLR(HYPER["lr"], T_max=180)],
    milestones=[20],
)
opt = gt.AdamW(**{**HYPER, "lr": lr})
state = gt.from_torch_state_dict(opt, topt.state_dict(), params)


def loss(params, x, y):
    w, b = params
    return jnp.mean((x @ w.T + b - y) ** 2)


@jax.jit
def jax_step(params, state, x, y):
    grads = jax.grad(loss)(params, x, y)
    updates, state = opt.update(grads, state, params)
    return gradchain.apply_updates(params, updates), state


for _ in range(100):
    params, state = jax_step(params, state, jnp.asarray(X), jnp.asarray(Y))

torch_steps(100)  # torch takes the same 100 steps
diff = max(
    float(np.max(np.abs(np.asarray(p) - t.detach().numpy())))
    for p, t in zip(params, model.parameters())
)
print(f"after 200 steps (100 in torch, then 100 in JAX): loss {float(loss(params, X, Y)):.6f}")
print(f"max |JAX - torch| over the params: {diff:.1e}")
