"""``python -m gradchain``: the commands print the expected rows; bad input exits with code 2
and a one-line message on stderr."""

import re
import subprocess
import sys
import types

import pytest

from gradchain.teaching import cli


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_memory_prints_the_ladder(capsys):
    code, out, _ = run(capsys, "memory", "--params", "1000000")
    assert code == 0
    assert "Optimizer state for 1,000,000 float32 parameters as one 1000x1000 matrix" in out
    lines = {}
    for line in out.splitlines():  # the table row: the first line that starts with the name
        if line.strip():
            lines.setdefault(line.split()[0], line)
    assert lines["momentum"].split() == ["momentum", "sgd", "4.00", "MB", "1", "1", "-", "+mu"]
    assert lines["adam"].split() == ["adam", "rmsprop", "8.00", "MB", "2", "2", "4.00", "MB", "+mu"]
    assert lines["amsgrad"].split()[2:] == ["12.00", "MB", "3", "3", "6.00", "MB", "+nu_max"]
    assert lines["adam_8bit"].split()[4:6] == ["2.01", "0.508"]  # 1 byte + scales per moment
    assert "lion" in lines and "adamax" in lines and "nadam" in lines
    assert "= scale_by_momentum -> bias_correct -> scale_by_rms -> add_decayed_weights" in out


@pytest.mark.parametrize("count, text", [("7B", "7,000,000,000"), ("1e6", "1,000,000")])
def test_memory_accepts_short_counts(capsys, count, text):
    code, out, _ = run(capsys, "memory", "--params", count, "--dtype", "bfloat16")
    assert code == 0 and f"{text} bfloat16 parameters" in out


def test_memory_for_shapes_and_one_optimizer(capsys):
    code, out, _ = run(capsys, "memory", "--shapes", "784x256,256,256x10,10", "--optimizer", "adam")
    assert code == 0
    # 784*256 + 256 + 256*10 + 10 = 203,530 parameters in 4 leaves
    assert "for 203,530 parameters in 4 leaves (float32, 814.12 kB)" in out
    assert re.search(r"scale_by_momentum +mu +same shape +float32 +203,530 +814.12 kB", out)
    assert "per-parameter state: 407,060 elements = 2x params" in out


def test_memory_shows_what_moment_dtypes_save(capsys):
    code, out, _ = run(
        capsys, "memory", "--params", "1000000", "--optimizer", "adam", "--mu-dtype", "bfloat16"
    )
    assert code == 0
    assert "adam(mu_dtype=bfloat16):" in out
    assert "saved: 2,000,000 bytes (2.00 MB, 25.0%)" in out


def test_explain_adamw(capsys):
    code, out, _ = run(capsys, "explain", "adamw")
    assert code == 0
    assert out.startswith("adamw: AdamW")
    assert (
        "adamw(learning_rate) = chain(scale_by_momentum, bias_correct, scale_by_rms, "
        "add_decayed_weights, scale_by_learning_rate)" in out
    )
    assert "1. scale_by_momentum -- Accumulate a velocity and emit it." in out
    assert "Update:     mu_t = decay * mu_{t-1} + c * u_t" in out
    assert "Update:     u_t = u_t + weight_decay * p_t" in out
    assert "Memory:     +nu: 4.00 MB (1x params, same shape, float32)" in out
    assert "hyperparameters (live, one place for the whole chain): b1=0.9, b2=0.999" in out
    assert "learning_rate=0.001, weight_decay=0.0001 (24 B)" in out
    assert "Scalars:    count (4 B)" in out
    assert "Reference:  Loshchilov & Hutter" in out


def test_explain_with_a_model_size(capsys):
    code, out, _ = run(capsys, "explain", "lion", "--params", "7B", "--dtype", "bfloat16")
    assert code == 0
    assert (
        "state for 7,000,000,000 bfloat16 parameters as one 80000x87500 matrix: "
        "14.00 GB = 1x params" in out
    )


def named():
    from gradchain import optimizers

    return sorted(n for n in optimizers.__all__ if callable(getattr(optimizers, n)))


@pytest.mark.parametrize("name", named())
def test_explain_every_named_optimizer(capsys, name):
    code, out, _ = run(capsys, "explain", name, "--params", "1000")
    assert code == 0 and out.startswith(f"{name}: ")
    assert "Update:" in out and "Memory:" in out
    assert "(not a gradchain transform)" not in out


def test_explain_shows_groups_and_wrapped_transforms(capsys):
    code, out, _ = run(capsys, "explain", "muon", "--params", "1000")
    assert code == 0
    assert "1. partition -- Parameter groups" in out
    assert "  1.1. [muon] scale_by_momentum -- Accumulate a velocity" in out
    assert "Memory:     +mu: 4.00 kB (1x params, same shape, float32)" in out
    assert "[adam] scale_by_rms" in out
    code, out, _ = run(capsys, "explain", "adam_8bit", "--params", "1000000")
    assert "1. quantized_moments(scale_by_momentum, mu=int8) -- Store some" in out
    assert "Update:     mu_t = decay * mu_{t-1} + c * u_t" in out  # the wrapped transform's
    assert "+mu: 1.02 MB (1x params, quantized, float32/int8)" in out


def test_docstring_section_reads_continuation_lines_only():
    from gradchain.teaching.explain import docstring_section

    doc = """Summary.

    Update:     a = b
                c = d
    State:      none.
    """
    assert docstring_section(doc, "Update") == ["a = b", "c = d"]
    assert docstring_section(doc, "State") == ["none."]
    assert docstring_section(doc, "Reference") == []


def test_unknown_optimizer_exits_2_with_a_suggestion(capsys):
    code, out, err = fails(capsys, "explain", "adamx")
    assert code == 2 and out == ""
    assert "unknown optimizer 'adamx'; did you mean 'adamax'?" in err
    assert "adamw" in err  # the list of names
    code, _, err = fails(capsys, "memory", "--params", "10", "--optimizer", "nope")
    assert code == 2 and "unknown optimizer 'nope'" in err


@pytest.mark.parametrize("shapes", ["784x,10", "3x-4", "abc", "", "0x3"])
def test_bad_shapes_exit_2(capsys, shapes):
    code, _, err = fails(capsys, "memory", "--shapes", shapes)
    assert code == 2 and "bad shape" in err and "784x256,256,256x10,10" in err


@pytest.mark.parametrize("count", ["-5", "1.5", "lots", "0"])
def test_bad_parameter_count_exits_2(capsys, count):
    code, _, err = fails(capsys, "memory", "--params", count)
    assert code == 2 and "whole number of parameters" in err


def test_memory_needs_a_model_and_moment_dtypes_need_an_option(capsys):
    code, _, err = fails(capsys, "memory")
    assert code == 2 and "--params" in err
    argv = ["memory", "--params", "10", "--optimizer", "momentum", "--mu-dtype", "bfloat16"]
    code, out, err = fails(capsys, *argv)
    assert code == 2 and "momentum has no mu_dtype option" in err


@pytest.mark.parametrize("argv", [[], ["--help"], ["memory", "--help"], ["explain", "--help"]])
def test_help(capsys, argv):
    code, out, err = fails(capsys, *argv)
    if argv:
        assert code == 0 and "usage: python -m gradchain" in out
    else:
        assert code == 2 and "COMMAND" in err
    if argv[:1] == ["memory"]:
        assert "SGD -> momentum" in out and "--shapes" in out and "examples:" in out
    if argv[:1] == ["explain"]:
        assert "update equation" in out


FAKE = types.SimpleNamespace(
    configure=lambda parser: parser.add_argument("--times", type=int, default=1),
    run=lambda args: print("fake " * args.times) or 0,
)


def test_a_command_registers_with_one_line(capsys, monkeypatch):
    monkeypatch.setattr(
        cli, "COMMANDS", [*cli.COMMANDS, cli.Command("fake", "a test", "tests.test_cli:FAKE")]
    )
    code, out, _ = run(capsys, "fake", "--times", "2")
    assert code == 0 and out.strip() == "fake fake"
    code, out, _ = run(capsys, "memory", "--params", "10")  # the others are unaffected
    assert code == 0


def test_a_missing_command_module_exits_2(capsys, monkeypatch):
    missing = cli.Command("ghost", "not written yet", "gradchain.no_such_module")
    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, missing])
    code, _, err = fails(capsys, "ghost")
    assert code == 2 and "the 'ghost' command is not available" in err
    code, out, _ = run(capsys, "explain", "sgd")  # only the chosen command is imported
    assert code == 0


def test_python_dash_m_gradchain():
    done = subprocess.run(
        [sys.executable, "-m", "gradchain", "memory", "--params", "1000000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "amsgrad" in done.stdout and "12.00 MB" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "gradchain", "explain", "no_such_optimizer"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "unknown optimizer 'no_such_optimizer'" in bad.stderr


@pytest.mark.parametrize("flags", [["--mu-dtype", "bfloat16"], ["--nu-dtype", "float16"]])
def test_a_moment_dtype_without_an_optimizer_is_refused(capsys, flags):
    code, out, err = fails(capsys, "memory", "--params", "1000000", *flags)
    assert code == 2 and out == ""
    assert flags[0] in err.splitlines()[-1] and "--optimizer" in err.splitlines()[-1]


def test_python_dash_m_gradchain_race_refuses_a_missing_folder_in_one_line(tmp_path):
    out = tmp_path / "nonexistent" / "race.png"
    done = subprocess.run(
        [sys.executable, "-m", "gradchain", "race", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "race: error: --out" in done.stderr and "does not exist" in done.stderr


# --- issue 23: every bad flag is an argparse-style error naming it ---------------------------


def refused(capsys, *argv):
    """Run ``argv``; assert exit 2, nothing on stdout (nothing ran), one error line, no
    traceback; return that line."""
    code, out, err = fails(capsys, *argv)
    assert code == 2, (code, out, err)
    assert out == "" and "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize("names", ["", ",", " , "])
@pytest.mark.parametrize("command", ["race", "train"])
def test_an_empty_optimizer_list_is_refused(capsys, command, names):
    line = refused(capsys, command, "--optimizers", names, "--out", "")
    assert f"{command}: error: --optimizers names no optimizer" in line


@pytest.mark.parametrize("command", ["race", "train"])
def test_a_name_given_twice_is_refused(capsys, command):
    line = refused(capsys, command, "--optimizers", "sgd", "--lr", "sgd=0.001,sgd=0.2", "--out", "")
    assert "--lr gives 'sgd' a learning rate twice" in line
    line = refused(capsys, command, "--optimizers", "sgd,adam,sgd", "--out", "")
    assert "--optimizers names 'sgd' twice" in line


@pytest.mark.parametrize(
    "argv, flag, bound",
    [
        (["race", "--steps", "3000000000"], "--steps", "from 1 to 1,000,000"),
        (["race", "--steps", "0"], "--steps", "from 1 to 1,000,000"),
        (["train", "--steps", "-1"], "--steps", "from 1 to 1,000,000"),
        (["train", "--batch-size", "0"], "--batch-size", "from 1 to 1,000,000"),
        (["train", "--batch-size", "-4"], "--batch-size", "from 1 to 1,000,000"),
        (["train", "--hidden", "0"], "--hidden", "from 1 to 4,096"),
        (["train", "--hidden", "-2"], "--hidden", "from 1 to 4,096"),
        (["train", "--seed", "-1"], "--seed", "from 0 to 2,147,483,646"),
        (["train", "--seed", str(2**70)], "--seed", "from 0 to 2,147,483,646"),
    ],
)
def test_integers_out_of_range_are_refused_with_the_bound(capsys, argv, flag, bound):
    line = refused(capsys, *argv, "--out", "")
    assert f"error: argument {flag}: must be an integer {bound}, got" in line


@pytest.mark.parametrize("count", ["1e400", "inf", "nan", "1e30", "2e14"])
def test_huge_or_infinite_parameter_counts_are_refused_at_once(capsys, count):
    # 1e400 and inf once raised OverflowError; 1e30 searched ~1e15 divisors (hours)
    line = refused(capsys, "memory", "--params", count)
    assert "argument --params: expected a whole number of parameters from 1 to 1e+14" in line


def test_the_largest_prime_count_below_the_bound_is_answered_quickly(capsys):
    import time

    began = time.perf_counter()
    code, out, _ = run(capsys, "memory", "--params", "99999999999973")  # a prime: one vector
    assert code == 0 and "99,999,999,999,973 float32 parameters as one" in out
    assert time.perf_counter() - began < 20  # measured: 1.2 s on a shared 2-core machine


@pytest.mark.parametrize("out", ["x.txt", "plot.PNGX", "figure.npz"])
def test_a_figure_suffix_matplotlib_cannot_write_is_refused_before_racing(capsys, tmp_path, out):
    line = refused(capsys, "race", "--optimizers", "sgd", "--out", str(tmp_path / out))
    assert "--out" in line and "end the name in one of .png, .pdf, .svg, .jpg, .jpeg" in line
    assert list(tmp_path.iterdir()) == []


def test_out_without_a_suffix_names_the_png_actually_written(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plot"
    argv = [
        "race",
        "--optimizers",
        "sgd",
        "--function",
        "valley",
        "--steps",
        "5",
        "--out",
        str(out),
    ]
    code, printed, _ = run(capsys, *argv)
    assert code == 0
    assert f"wrote {out}.png" in printed
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_out_where_nothing_can_be_written_is_refused_before_racing(capsys, tmp_path):
    import os

    line = refused(capsys, "race", "--optimizers", "sgd", "--out", "/proc/race.png")
    assert "--out '/proc/race.png': cannot write in the folder '/proc'" in line
    fifo = tmp_path / "race.png"
    os.mkfifo(fifo)  # exists, and savefig would block on it
    line = refused(capsys, "race", "--optimizers", "sgd", "--out", str(fifo))
    assert "exists and is not a regular file" in line


def test_a_write_that_fails_after_the_race_is_an_error_naming_out(capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    argv = ["race", "--optimizers", "sgd", "--function", "valley", "--steps", "5"]
    code, _, err = fails(capsys, *argv, "--out", str(tmp_path / "race.png"))
    assert code == 2 and "Traceback" not in err
    assert "--out" in err and "writing the figure failed (No space left on device)" in err
