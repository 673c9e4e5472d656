"""Chains whose members are named: the state is a dict by name, not a tuple by position."""

from __future__ import annotations

from typing import Any

from gradchain import _checks
from gradchain.base import Child, GradientTransformation, _as_transform, all_preprocessing, updater

__all__ = ["named_chain"]


def named_chain(*transforms: tuple[str, Any]) -> GradientTransformation:
    r"""``chain`` with a name for each member: ``named_chain(("clip", t1), ("adam", t2))``.

    Update:     u <- t_n(... t_1(u))
    State:      ``{name: that member's state}``, in order.   Memory: the members'.
    Note:       Each member receives the running update; unlike ``chain`` there is no
                ``gradient`` keyword (Optax's ``named_chain`` semantics).
    Reference:  Optax, ``optax.named_chain``.
    """
    names = [name for name, _ in transforms]
    if len(set(names)) != len(names):
        raise _checks.GradchainError(f"named_chain: the names must be unique, got {names}")
    members = [(name, _as_transform(t)) for name, t in transforms]
    calls = [updater(t) for _, t in members]

    def init(params):
        return {name: t.init(params) for name, t in members}

    def update(updates, state, params=None, *, gradient=None, **extra):
        new = {}
        for (name, _), call in zip(members, calls):
            updates, new[name] = call(updates, state[name], params, None, extra)
        return updates, new

    children = tuple(Child(name, t, (name,)) for name, t in members)
    return GradientTransformation(
        init,
        update,
        name="named_chain",
        preprocessing=all_preprocessing(c.transform for c in children),
        children=children,
    )
