"""Moving a run between torch and JAX: a torch optimizer's ``state_dict()`` as a gradchain
state (``from_torch_state_dict``), and a gradchain state as a ``state_dict()`` that a torch
optimizer loads (``to_torch_state_dict``). Only the export imports torch, when called."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradchain import _checks
from gradchain.base import GradientTransformation
from gradchain.state import set_hyperparam
from gradchain.torch.cycled import ScheduledValueState
from gradchain.transforms import LearningRateState, SgdMomentumState

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor: no torch import needed to read it
        x = x.detach().cpu()
        if hasattr(x, "resolve_conj"):
            x = x.resolve_conj()
        return x.numpy()
    return np.asarray(x)


_GROUP_MATH = ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "alpha",
               "centered", "nesterov", "amsgrad", "maximize", "lr_decay", "momentum_decay",
               "initial_accumulator_value", "rho", "etas", "step_sizes",
               "decoupled_weight_decay")  # fmt: skip


def from_torch_state_dict(
    optimizer: GradientTransformation,
    state_dict: dict[str, Any],
    params: Any,
    *,
    step: int | None = None,
) -> Any:
    """Convert ``torch_optimizer.state_dict()`` into the state of a ``gradchain.torch`` chain.

    Args:       optimizer -- built by ``gradchain.torch`` with the same arguments as the torch
                optimizer.  state_dict -- ``torch_optimizer.state_dict()``.  params -- the
                JAX params; their leaves, in ``jax.tree.leaves`` order, are torch's params in
                the order the torch optimizer was given them.  step -- the step count for
                optimizers whose torch state has none (SGD); otherwise read from ``step``.
    Returns:    the gradchain state (the optimizer's ``LiveState``): the next
                ``optimizer.update`` takes torch's next step.
    Note:       torch keeps one step counter per tensor; gradchain one per chain, so they
                must agree. The live hyperparameters (lr, eps, ...) are torch's current
                ``param_groups`` values, set under the same names (``set_hyperparam``, with
                its checks); an lr given to ``optimizer`` as a schedule stays the schedule,
                continued from torch's step. The fixed ones (betas, weight_decay, the flags)
                come from ``optimizer``. With several param groups of different
                hyperparameters, convert each group's params with its own optimizer (see
                ``gradchain.partition``).
    """
    keys = getattr(optimizer, "torch_state_keys", None)
    if keys is None:
        raise _checks.GradchainError(
            "from_torch_state_dict needs an optimizer built by gradchain.torch "
            f"(e.g. gradchain.torch.Adam(...)), got {optimizer!r}"
        )
    groups = state_dict["param_groups"]
    for g in groups[1:]:
        differ = [k for k in _GROUP_MATH if k in g and g[k] != groups[0].get(k)]
        if differ:
            raise _checks.GradchainError(
                f"the torch optimizer has param groups with different {differ}; a gradchain.torch"
                " optimizer is one group: convert each group's params separately"
            )
    indices = [i for g in groups for i in g["params"]]
    leaves, treedef = jax.tree.flatten(params)
    if len(indices) != len(leaves):
        raise _checks.GradchainError(
            f"the torch optimizer has {len(indices)} params but params has {len(leaves)} leaves"
        )
    per_param = [state_dict["state"].get(i, {}) for i in indices]
    torch_steps = {float(_as_numpy(s["step"])) for s in per_param if "step" in s}
    if len(torch_steps) > 1:
        raise _checks.GradchainError(
            f"torch's params were stepped different numbers of times ({sorted(torch_steps)}); "
            "gradchain keeps one step count per optimizer"
        )
    if step is None:
        step = int(torch_steps.pop()) if torch_steps else 0

    def per_param_tree(key, like, convert=None):
        like_leaves = treedef.flatten_up_to(like)
        out = []
        for i, (entry, ref, leaf) in enumerate(zip(per_param, like_leaves, leaves)):
            value = entry.get(key)
            if value is None:
                out.append(ref)
                continue
            value = _as_numpy(value) if convert is None else convert(_as_numpy(value))
            if value.shape != np.shape(ref):  # the slot's shape: a param's, or a factor's
                raise _checks.GradchainError(
                    f"torch's {key} of param {indices[i]} has shape {value.shape}, but the "
                    f"matching slot for the leaf of params of shape {np.shape(leaf)} has "
                    f"shape {np.shape(ref)}"
                )
            out.append(jnp.asarray(value, dtype=ref.dtype))
        return treedef.unflatten(out)

    def scalar(key, like):
        if key == "step":
            return jnp.asarray(step, like.dtype)
        values = {float(_as_numpy(s[key])) for s in per_param if key in s}
        return jnp.asarray(values.pop(), like.dtype) if values else like

    start = optimizer.init(params)
    new_state = []
    for outer in start.inner:
        # a cycled momentum's member (ScheduledValueState): torch's entries fill its inner
        # state; its count, the schedule's argument, is the step count
        member_state = outer.inner if isinstance(outer, ScheduledValueState) else outer
        fields = keys.get(type(member_state), {})
        replaced = {}
        for field, key in fields.items():
            like = getattr(member_state, field)
            if like is None:
                continue
            key, convert = key if isinstance(key, tuple) else (key, None)
            if key in ("step", "mu_product"):
                replaced[field] = scalar(key, like)
            else:
                replaced[field] = per_param_tree(key, like, convert)
        if isinstance(member_state, SgdMomentumState):
            has_buffer = any(s.get("momentum_buffer") is not None for s in per_param)
            replaced["count"] = jnp.asarray(max(step, 1) if has_buffer else 0, jnp.int32)
        member_state = member_state._replace(**replaced) if replaced else member_state
        if isinstance(outer, ScheduledValueState):
            member_state = outer._replace(count=jnp.asarray(step, outer.count.dtype),
                                          inner=member_state)  # fmt: skip
        new_state.append(member_state)
    count = None if start.count is None else jnp.asarray(step, start.count.dtype)
    state = start._replace(count=count, inner=tuple(new_state))
    for name in start.hyperparams:  # torch's param_groups keep them under the same names
        if name in groups[0] and name not in start.scheduled:  # a schedule's: set by count
            state = set_hyperparam(state, name, float(groups[0][name]))
    return state


# torch optimizers whose per-param state has no "step" entry.
_NO_STEP = frozenset({"SGD", "Muon"})


def _next_count(state: Any) -> Any:
    """The count a schedule takes at the next step: the live state's, else (a cycled momentum
    with a plain lr) the scheduled member's."""
    if state.count is not None:
        return state.count
    counts = [m.count for m in state.inner if isinstance(m, ScheduledValueState)]
    return counts[0] if counts else 0


def _group_value(name: str, given: Any, state: Any) -> Any:
    """A param_group entry: a live number's current value, a schedule's value for the next
    step (torch's group["lr"], or its cycled momentum or betas[0], after its scheduler
    stepped), or the fixed argument."""
    if callable(given):  # before hyperparams, which keep a schedule's value at the last step
        return float(given(_next_count(state)))
    if name in state.hyperparams:
        return float(state.hyperparams[name])
    if isinstance(given, (list, tuple)):
        return tuple(float(v(_next_count(state))) if callable(v) else v for v in given)
    return given


def to_torch_state_dict(
    optimizer: GradientTransformation, state: Any, params: Any, *, step: int | None = None
) -> dict[str, Any]:
    """Convert the state of a ``gradchain.torch`` chain into a torch optimizer's ``state_dict()``.

    Args:       optimizer -- built by ``gradchain.torch``.  state -- its state.  params -- the
                JAX params (their leaves in ``jax.tree.leaves`` order are torch's params, in
                the order the torch optimizer is given them).  step -- the step count, only
                for a chain that keeps none (a ``Rprop``).
    Returns:    ``{"state": {i: {...}}, "param_groups": [{...}]}`` of torch tensors, for
                ``torch_optimizer.load_state_dict``; the next ``torch_optimizer.step()`` takes
                the step gradchain would have taken.
    Note:       one param group: the constructor's arguments, the live ones (lr, eps, ...)
                at their current values; an ``lr`` given as a schedule is its value for the
                next step -- recreate torch's scheduler yourself (``last_epoch``) to continue
                the schedule. Slots torch has no entry for are left out: the memory of
                ``scale_by_learning_rate``'s schedule (torch's scheduler keeps it), an
                ``SGD`` buffer before the first step (torch has none yet), Adafactor's empty
                placeholders. Measured: gradchain 50 float64 steps, exported, torch 50 more
                equals torch all the way to 1.3e-15 (SGD with momentum, Adam, AdamW, AMSGrad,
                Muon, Adafactor, ASGD; test bound 1e-10). Imports torch when called.
    """
    import torch  # only here: the rest of gradchain.torch never imports it

    keys = getattr(optimizer, "torch_state_keys", None)
    if keys is None:
        raise _checks.GradchainError(
            "to_torch_state_dict needs an optimizer built by gradchain.torch "
            f"(e.g. gradchain.torch.Adam(...)), got {optimizer!r}"
        )
    leaves, treedef = jax.tree.flatten(params)
    per_param: list[dict[str, Any]] = [{} for _ in leaves]
    steps, counted = set(), None  # counted: a schedule's count, if no slot maps to "step"
    for member_state in state.inner:
        if isinstance(member_state, ScheduledValueState):  # a cycled momentum's member
            counted = int(member_state.count)  # its schedule's count: the steps taken
            member_state = member_state.inner
        if isinstance(member_state, LearningRateState):  # torch's scheduler keeps it
            if member_state.count is not None:
                counted = int(member_state.count)
            continue
        for field, key in keys.get(type(member_state), {}).items():
            value = getattr(member_state, field)
            key = key[0] if isinstance(key, tuple) else key
            if value is None:
                continue
            if key in ("step", "mu_product"):
                if key == "step":
                    steps.add(int(value))
                for entry in per_param:
                    entry[key] = float(value)
                continue
            if isinstance(member_state, SgdMomentumState) and int(member_state.count) == 0:
                continue  # torch's buffer does not exist before the first step
            for entry, slot, leaf in zip(per_param, treedef.flatten_up_to(value), leaves):
                if np.size(slot) == 0 and np.size(leaf) != 0:
                    continue  # a placeholder (Adafactor's unused factor)
                entry[key] = torch.from_numpy(np.array(slot))
    if len(steps) > 1:
        raise _checks.GradchainError(f"the chain's step counts disagree: {sorted(steps)}")
    if optimizer.torch_name not in _NO_STEP:
        if counted is None and state.count is not None:  # a live schedule's count
            counted = int(state.count)
        count = steps.pop() if steps else step if step is not None else counted
        if count is None:
            raise _checks.GradchainError(
                f"this {optimizer.torch_name} state keeps no step count: pass step="
            )
        scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        for entry in per_param:
            entry["step"] = torch.tensor(float(count), dtype=scalar)
    for entry in per_param:
        if "mu_product" in entry:
            entry["mu_product"] = torch.tensor(entry["mu_product"])
    group = {
        name: _group_value(name, given, state) for name, given in optimizer.torch_arguments.items()
    }
    group["params"] = list(range(len(leaves)))
    if optimizer.torch_name == "ASGD":  # torch keeps eta and mu for the next step; closed forms
        t = float(per_param[0]["step"]) if per_param else 0.0
        lr, lambd = group["lr"], group["lambd"]
        for entry in per_param:
            entry["eta"] = torch.tensor(lr / (1 + lambd * lr * t) ** group["alpha"])
            entry["mu"] = torch.tensor(1 / max(1.0, t - group["t0"]))
    return {"state": {i: e for i, e in enumerate(per_param) if e}, "param_groups": [group]}
