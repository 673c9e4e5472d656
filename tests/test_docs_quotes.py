"""Every error message docs/robustness.md quotes is one the code prints, so the doc cannot
drift: each quoted message (a code span reading as a sentence) has a producer here, and the
producer's error must contain it. ``...`` in a quote stands for elided text."""

import math
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradchain
from gradchain import checkpoint

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "robustness.md"


def quoted_messages(text):
    """Code spans that read as a sentence: three words in a row, the last two lowercase
    (``learning_rate must be``). Code (``jax.eval_shape(opt.init, params)``) never does."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks hold no quotes
    spans = (" ".join(s.split()) for s in re.findall(r"`([^`]+)`", prose))  # unwrap lines
    return [s for s in spans if re.search(r"[A-Za-z_]+ [a-z]+ [a-z]+", s)]


def matches(quote, message):
    """``message`` holds the pieces of ``quote`` between its ``...``s, in order."""
    at = 0
    for piece in (p.strip() for p in quote.split("...")):
        found = message.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True


# --- producers: each makes the code print the message, as the doc describes it ------------

P = {"w": jnp.ones((3, 2))}


def structure():
    params, opt = {"w": jnp.ones(2), "b": jnp.ones(2)}, gradchain.adam(0.1)
    opt.update({"w": jnp.ones(2)}, opt.init(params), params)


def broadcast():
    opt = gradchain.adam(0.1)
    opt.update({"w": jnp.ones((1, 2))}, opt.init(P), P)


def integer_params():
    gradchain.adam(0.1).init({"step": jnp.asarray(0, jnp.int32)})


def complex_for_real():
    params = {"b": jnp.ones(2)}
    opt = gradchain.adam(0.1)
    opt.update({"b": jnp.ones(2, jnp.complex64)}, opt.init(params), params)


def float_for_int():
    gradchain.apply_updates({"n": jnp.asarray([1], jnp.int32)}, {"n": jnp.ones(1)})


def foreign_live():
    params = {"w": jnp.ones(2)}
    gradchain.adamax(0.1).update(params, gradchain.adam(0.1).init(params), params)


def foreign_tuple():  # the chains themselves, as a user builds them
    params = {"w": jnp.ones(2)}
    momentum = gradchain.momentum.__wrapped__(0.1)
    momentum.update(params, gradchain.adam.__wrapped__(0.1).init(params), params)


def foreign_member():
    params = {"w": jnp.ones(2)}
    adamax = gradchain.adamax.__wrapped__(0.1)
    adamax.update(params, gradchain.adam.__wrapped__(0.1).init(params), params)


def other_tree():
    params = {"w": jnp.ones(2)}
    state = gradchain.momentum(0.1).init(dict(params, v=jnp.ones(2)))
    gradchain.momentum(0.1).update(params, state, params)


def other_shape():
    opt = gradchain.momentum(0.1)
    opt.update(P, opt.init({"w": jnp.ones(3)}), P)


def vector_schedule():
    opt = gradchain.sgd(lambda count: jnp.ones(3, jnp.float32))
    opt.update(P, opt.init(P), P)


def vector_schedule_in_its_transform():
    gradchain.scale_by_learning_rate(lambda count: jnp.ones(3)).update(
        jnp.ones(3), gradchain.scale_by_learning_rate(lambda count: jnp.ones(3)).init(jnp.ones(3))
    )


def string_leaf():
    gradchain.adam(0.1).init({"name": "abc"})


def apply_string_leaf():
    gradchain.apply_updates({"name": "abc"}, {"name": "abc"})


def norm_of_string_leaf():
    gradchain.global_norm({"name": "abc"})


def on_save(tmp_path):
    checkpoint.save(tmp_path / "c.npz", {"name": "abc"}, (), 0)


def eager_skips():
    opt = gradchain.skip_non_finite(gradchain.sgd(0.1), max_consecutive=2)
    state, nan = opt.init(P), {"w": jnp.full((3, 2), jnp.nan)}
    for _ in range(3):
        _, state = opt.update(nan, state, P)


def saved(tmp_path, opt=None, params=None):
    """A checkpoint of Adam on ``P`` (or of ``opt`` on ``params``); returns its path."""
    opt, params = opt or gradchain.adam(0.1), params or P
    checkpoint.save(tmp_path / "c.npz", params, opt.init(params), 0)
    return tmp_path / "c.npz"


def restore_into_other_state(tmp_path):
    path = saved(tmp_path, params={"w": jnp.ones(2), "b": jnp.ones(2)})
    sgd_state = gradchain.sgd(0.1).init(P)
    checkpoint.restore(
        path, {"w": jnp.ones(2), "b": jnp.ones(2)}, sgd_state, allow_other_optimizer=True
    )


def restore_other_optimizer(tmp_path):
    checkpoint.restore(saved(tmp_path), P, gradchain.nadam(0.1).init(P))


def zero1_axis_not_in_mesh():
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((1, 1), ("data", "model"))
    w = jax.ShapeDtypeStruct((4, 2), jnp.float32, sharding=NamedSharding(mesh, PartitionSpec()))
    gradchain.state_bytes_per_device(gradchain.adam(0.1), {"w": w}, zero1_axis="dta")


def restore_other_shape(tmp_path):
    checkpoint.restore(saved(tmp_path), {"w": jnp.ones((2, 3))}, gradchain.adam(0.1).init(P))


def restore_other_dtype(tmp_path):
    bf16 = {"w": jnp.ones((3, 2), jnp.bfloat16)}
    checkpoint.restore(saved(tmp_path), bf16, gradchain.adam(0.1).init(P))


def restore_truncated(tmp_path):
    path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[:500])
    checkpoint.restore(path, P, gradchain.adam(0.1).init(P))


def restore_flipped_bits(tmp_path):
    import zipfile

    path = saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("params['w'].npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 128  # past both headers
    data[start : start + 8] = bytes(b ^ 0xFF for b in data[start : start + 8])
    path.write_bytes(bytes(data))
    checkpoint.restore(path, P, gradchain.adam(0.1).init(P))


def restore_version_1(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "VERSION", 1)
    path = saved(tmp_path)
    monkeypatch.undo()
    checkpoint.restore(path, P, gradchain.adam(0.1).init(P))


def restore_extra_entry(tmp_path):
    import zipfile

    path = saved(tmp_path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("extra.npy", b"")
    checkpoint.restore(path, P, gradchain.adam(0.1).init(P))


PRODUCERS = {
    "updates and params have different tree structures (only in params: ['b'])": structure,
    "at ['w']: updates has shape (1, 2) but params has shape (3, 2)": broadcast,
    "at ['step']: params has a leaf of dtype int32; optimizers need floating leaves: keep "
    "integer and boolean leaves out of the optimizer (gradchain.partition or a mask), or cast "
    "them to a float dtype": integer_params,
    "at ['b']: a complex update for a real (float32) parameter would lose its imaginary part": (
        complex_for_real
    ),
    "at ['n']: a float32 update for a parameter of dtype int32 would be truncated; ...": (
        float_for_int
    ),
    "this state does not belong to this optimizer: adamax expects its AdamaxLiveState "
    "(hyperparameters ['b1', 'b2', 'eps', 'learning_rate']), got AdamLiveState with "
    "hyperparameters ['b1', 'b2', 'eps', 'eps_root', 'learning_rate'] (was it built by "
    "another optimizer's init?)": foreign_live,
    "this state does not belong to this optimizer: chain(scale_by_momentum, ...) expects a "
    "tuple of 2 member states, got 4": foreign_tuple,
    "member 2 (scale_by_inf_norm) expects a state of type InfNormState, got RmsState": (
        foreign_member
    ),
    "the state of member 0 (scale_by_momentum) does not fit these updates (only in the state: "
    ".mu['v']): was it built by another optimizer, or for another params tree?": other_tree,
    "... at .mu['w'] has shape (3,) but these updates need (3, 2)": other_shape,
    "the schedule given as learning_rate returned shape (3,) at a step; a schedule must "
    "return a scalar": vector_schedule,
    "the learning-rate schedule returned shape (3,) at a step; a schedule must return a "
    "scalar": vector_schedule_in_its_transform,
    "at ['name']: params has a leaf of type str; leaves must be arrays (or Python floats)": (
        string_leaf
    ),
    "cannot save params at ['name']: a leaf of type str (checkpoints hold arrays and numbers)": (
        on_save
    ),
    "at ['name']: a leaf of type str; params and updates must hold arrays": apply_string_leaf,
    "at ['name']: tree has a leaf of type str; ...": norm_of_string_leaf,
    "learning_rate must be >= 0, got -0.001": lambda: gradchain.adam(-1e-3),
    "decay must be in [0, 1), got 1.0": lambda: gradchain.scale_by_momentum(1.0),
    "eps must be >= 0, got -1.0": lambda: gradchain.scale_by_rms(0.9, -1.0),
    "learning_rate must not be NaN": lambda: gradchain.adam(math.nan),
    "learning_rate must be finite, got inf": lambda: gradchain.adam(math.inf),
    "step_size must be a number, got the bool True": lambda: gradchain.scale(True),
    "step_size: expected a scalar hyperparameter, got shape (3,)": lambda: gradchain.scale(
        np.ones(3)
    ),
    "learning_rate: expected a real number, got '0.1'": lambda: gradchain.adam("0.1"),
    "learning_rate: expected a number, got the type float32": lambda: gradchain.adam(jnp.float32),
    "ns_steps must be an integer >= 1, got True": lambda: gradchain.scale_by_newton_schulz(
        ns_steps=True
    ),
    "mu_dtype must be a floating dtype, got int8": lambda: gradchain.adam(0.1, mu_dtype=jnp.int8),
    "b2 must be in [0, 1), got 1.0 (checked as decay by a transform inside adam)": lambda: (
        gradchain.adam(0.1, b2=1.0)
    ),
    "3 non-finite gradients in a row, more than max_consecutive=2": eager_skips,
    "opt_state has another tree structure than the target (only in the file: .hyperparams['b1'], "
    "...)": restore_into_other_state,
    "params at ['w'] has shape (3, 2) in the file, (2, 3) in the target": restore_other_shape,
    "was written by another optimizer: its state is AdamLiveState(...), the target's is "
    "NadamLiveState(...)": restore_other_optimizer,
    "zero1_axis='dta' is not an axis of the params' mesh, whose axes are ('data', 'model')": (
        zero1_axis_not_in_mesh
    ),
    "every_k_schedule must be an integer <= 2,147,483,647, got 1,000,000,000,000 (it is "
    "counted in an int32)": lambda: gradchain.MultiSteps(gradchain.sgd(0.1), 10**12),
    "... has dtype float32 in the file, bfloat16 in the target": restore_other_dtype,
    "... is not a readable gradchain checkpoint (not an .npz file, or corrupted or "
    "truncated?)": restore_truncated,
    "... is corrupted or truncated: ...": restore_flipped_bits,
    "has checkpoint format version 1; this gradchain reads version 2": restore_version_1,
    "holds 1 entry that its metadata does not name: 'extra.npy'; refused, as a damaged or "
    "crafted file": restore_extra_entry,
}


def test_every_quoted_message_has_a_producer():
    quotes = quoted_messages(DOC.read_text())
    missing = [q for q in quotes if q not in PRODUCERS]
    assert not missing, f"quoted in {DOC.name} with no producer in this test: {missing}"
    unused = [q for q in PRODUCERS if q not in quotes]
    assert not unused, f"producers for messages {DOC.name} no longer quotes: {unused}"


@pytest.mark.parametrize("quote", sorted(PRODUCERS))
def test_the_code_prints_the_quoted_message(quote, tmp_path, monkeypatch):
    produce = PRODUCERS[quote]
    wants = produce.__code__.co_varnames[: produce.__code__.co_argcount]
    fixtures = {"tmp_path": tmp_path, "monkeypatch": monkeypatch}
    with pytest.raises((ValueError, TypeError)) as error:
        with jax.numpy_dtype_promotion("standard"):
            produce(*(fixtures[name] for name in wants))
    assert matches(quote, str(error.value)), f"the code says: {error.value}"
