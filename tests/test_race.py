"""The optimizer race: its table, convergence facts that could fail, and the PNG."""

import argparse
import sys

import numpy as np
import pytest

from gradchain import GradchainError
from gradchain.teaching import race


@pytest.fixture(scope="module")
def valley():
    """A short race on the thin valley, run once for the tests below."""
    return race.race(["sgd", "momentum", "adam"], ["valley"])["valley"]


def by_name(rows):
    return {r.optimizer: r for r in rows}


def test_adam_and_momentum_reach_the_valley_threshold_before_sgd(valley):
    rows = by_name(valley)
    assert rows["adam"].reached is not None
    assert rows["momentum"].reached is not None
    # With lr < 2/100 gradient descent crawls along the flat axis: about 320 steps.
    assert rows["sgd"].reached is not None
    assert rows["momentum"].reached < rows["sgd"].reached
    assert rows["adam"].reached < rows["sgd"].reached
    assert all(not r.diverged for r in valley)
    assert rows["adam"].final_loss <= race.FUNCTIONS["valley"].threshold


def test_path_starts_at_the_start_and_losses_match_the_path(valley):
    fn = race.FUNCTIONS["valley"]
    for r in valley:
        assert r.path.shape == (fn.steps + 1, 2)
        np.testing.assert_allclose(r.path[0], fn.start)
        x, y = r.path[:, 0], r.path[:, 1]
        np.testing.assert_allclose(r.losses, 0.5 * (x**2 + 100 * y**2), rtol=1e-5, atol=1e-12)
        assert r.reached is not None
        assert np.all(r.losses[r.reached :] <= fn.threshold)
        assert r.losses[r.reached - 1] > fn.threshold


def test_state_column_counts_the_moments(valley):
    rows = by_name(valley)
    assert [rows[n].state_multiple for n in ("sgd", "momentum", "adam")] == [0.0, 1.0, 2.0]
    # Two float32 parameters: mu is 8 bytes; Adam keeps mu and nu.
    assert rows["momentum"].state_bytes == 8
    assert rows["adam"].state_bytes == 16
    assert rows["sgd"].state_bytes == 0


def test_table_has_one_row_per_optimizer_with_every_column(valley):
    text = race.format_table("valley", valley)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("optimizer"))
    for column in ("lr", "state", "state bytes", "steps", "final loss", "diverged"):
        assert column in header
    rows = {line.split()[0]: line.split() for line in lines if line.split()[0] in by_name(valley)}
    assert set(rows) == {"sgd", "momentum", "adam"}
    assert rows["adam"][1] == "0.316"
    assert rows["adam"][2] == "2x"
    assert rows["adam"][-1] == "no"


def test_steps_count_only_a_threshold_reached_for_good():
    losses = np.array([5.0, 0.5, 2.0, 0.5, 0.1, 0.05])
    assert race.reached_for_good(losses, 1.0) == 3  # the dip at step 1 bounced back
    assert race.reached_for_good(losses, 10.0) == 0
    assert race.reached_for_good(np.array([5.0, 0.5, 2.0]), 1.0) is None
    assert race.reached_for_good(np.array([5.0, 0.5, np.nan]), 1.0) is None


def test_sgd_beyond_its_stability_limit_is_reported_diverged():
    # On the valley the steep axis needs lr < 2/100; 0.05 blows up.
    r = race.run_one("sgd", "valley", 0.05, steps=200)
    assert r.diverged
    assert r.reached is None


def test_adam_reaches_rosenbrock_minimum_and_escapes_the_saddle_before_sgd():
    rosen = race.run_one("adam", "rosenbrock", race.DEFAULT_LEARNING_RATES["rosenbrock"]["adam"])
    assert rosen.reached is not None
    np.testing.assert_allclose(rosen.path[-1], [1.0, 1.0], atol=1e-3)
    adam = race.run_one("adam", "saddle", 0.05)
    sgd = race.run_one("sgd", "saddle", 0.05)
    assert adam.reached is not None and sgd.reached is not None
    assert adam.reached < sgd.reached  # normalised steps leave the flat saddle at once
    assert not adam.diverged and not sgd.diverged  # the saddle is unbounded, not divergence


def test_beale_is_solved_by_momentum():
    r = race.run_one("momentum", "beale", race.DEFAULT_LEARNING_RATES["beale"]["momentum"])
    assert r.reached is not None and not r.diverged
    # Loss 4e-5 at the end (the default 0.001 stops at the threshold's scale): 0.017 away.
    np.testing.assert_allclose(r.path[-1], [3.0, 0.5], atol=0.025)


def test_cli_prints_tables_and_writes_the_png(tmp_path, capsys):
    out = tmp_path / "race.png"
    code = race.main(
        [
            "--optimizers",
            "sgd,adam",
            "--function",
            "valley,saddle",
            "--steps",
            "60",
            "--lr",
            "adam=0.2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "Thin valley" in text and "Saddle" in text
    adam_rows = [line.split() for line in text.splitlines() if line.startswith("adam ")]
    assert [row[1] for row in adam_rows] == ["0.2", "0.2"]
    sgd_rows = [line.split() for line in text.splitlines() if line.startswith("sgd ")]
    assert [row[1] for row in sgd_rows] == ["0.0178", "0.05"]  # the defaults
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000


def test_one_learning_rate_for_all_and_configure_on_a_subparser(capsys):
    parser = argparse.ArgumentParser(prog="gradchain")
    sub = parser.add_subparsers(dest="command")
    race.configure(sub.add_parser("race"))
    argv = ["race", "--optimizers", "sgd,momentum", "--function", "valley", "--lr", "0.01"]
    args = parser.parse_args([*argv, "--steps", "5", "--out", ""])
    assert race.run(args) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.startswith(("sgd ", "momentum "))]
    assert [(row[0], row[1]) for row in rows] == [("sgd", "0.01"), ("momentum", "0.01")]
    assert "wrote" not in text  # --out '' writes no PNG


def test_unknown_names_are_refused_with_the_choices(capsys):
    with pytest.raises(GradchainError, match="unknown optimizer 'adamm'.*adam"):
        race.race(["adamm"], ["valley"])
    with pytest.raises(GradchainError, match="unknown function 'himmelblau'.*rosenbrock"):
        race.race(["adam"], ["himmelblau"])
    for bad in (["--lr", "adam="], ["--lr", "fast"], ["--steps", "0"]):
        with pytest.raises(SystemExit) as exit_:
            race.main([*bad, "--out", ""])
        assert exit_.value.code == 2
        assert "--" in capsys.readouterr().err.splitlines()[-1]


def test_without_matplotlib_the_tables_print_and_the_hint_says_what_to_install(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    out = tmp_path / "race.png"
    argv = ["--optimizers", "adam", "--function", "valley", "--steps", "5", "--out", str(out)]
    assert race.main(argv) == 0
    captured = capsys.readouterr()
    assert "Thin valley" in captured.out
    assert 'pip install "gradchain[plot]"' in captured.err
    assert not out.exists()


# --- faults of the command line (issue 15) --------------------------------------------------


def test_out_in_a_missing_folder_is_refused_before_the_race_runs(tmp_path, capsys):
    out = tmp_path / "no_such_folder" / "race.png"
    with pytest.raises(SystemExit) as exit_:
        race.main(["--optimizers", "sgd", "--function", "valley", "--out", str(out)])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran
    assert "no_such_folder" in captured.err.splitlines()[-1]
    assert "does not exist" in captured.err.splitlines()[-1]


def test_lr_naming_an_optimizer_not_raced_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        race.main(["--optimizers", "sgd,adam", "--lr", "nosuch=0.1", "--out", ""])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert "'nosuch'" in err and "--optimizers" in err


def test_a_path_leaving_the_box_is_diverged_and_the_plot_is_the_box():
    # AdaGrad at 2.0 (the old default) overshoots the top of Rosenbrock's box, then settles.
    r = race.run_one("adagrad", "rosenbrock", 2.0)
    x0, x1, y0, y1 = race.FUNCTIONS["rosenbrock"].box
    assert r.path[:, 1].max() > y1 and np.all(np.isfinite(r.losses))
    assert r.diverged
    fig = race.plot_race({"rosenbrock": [r]})
    assert fig.axes[0].get_xlim() == (x0, x1) and fig.axes[0].get_ylim() == (y0, y1)
    assert "diverged" in fig.axes[1].get_legend().get_texts()[0].get_text()
    inside = race.run_one("adagrad", "rosenbrock", 1.0)  # the default: stays in the box
    assert not inside.diverged and not race.left_the_box(inside.path, (x0, x1, y0, y1))


def test_leaving_the_saddle_is_not_divergence_but_overflowing_is():
    assert not race.run_one("sgd", "saddle", 0.05).diverged  # left the box: the goal
    assert race.run_one("sgd", "saddle", 1.78).diverged  # y grows 4.6x a step: inf


# --- the sweep (issue 17) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def swept():
    """Every optimizer with a default, at every rate of the documented grid, on the three
    functions with a minimum (one compiled call per optimizer and function: ~12 s)."""
    names = sorted({n for rates in race.DEFAULT_LEARNING_RATES.values() for n in rates})
    return race.sweep(names, ["rosenbrock", "valley", "beale"], race.GRID)


def test_the_grid_is_log_spaced_four_a_decade_from_1e_4():
    grid = np.array(race.GRID)
    assert grid[0] == 1e-4 and grid[-1] == 3.16 and len(grid) == 19
    np.testing.assert_allclose(np.diff(np.log10(grid)), 0.25, atol=2e-3)


def test_each_default_learning_rate_is_the_best_of_the_grid_or_next_to_it(swept):
    for function, per_optimizer in swept.items():
        for name, runs in per_optimizer.items():
            default = race.DEFAULT_LEARNING_RATES[function][name]
            assert default in race.GRID, (function, name, default)
            best = race.best(runs)
            assert not best.diverged, (function, name)
            off = abs(race.GRID.index(default) - race.GRID.index(best.learning_rate))
            assert off <= 1, f"{name} on {function}: default {default}, best {best.learning_rate}"


def test_best_prefers_fewest_steps_then_lower_loss_and_never_a_diverged_run(swept):
    runs = swept["valley"]["sgd"]
    assert race.best(runs).learning_rate == 0.0178  # 321 steps; 0.0316 breaks the 2/100 limit
    assert runs[race.GRID.index(0.0316)].diverged
    rosen = swept["rosenbrock"]["sgd"]  # SGD never reaches 1e-4 on the grid: the lowest loss
    assert all(r.reached is None for r in rosen)
    assert race.best(rosen).final_loss == min(r.final_loss for r in rosen if not r.diverged)


def test_sweep_command_prints_a_row_per_rate_and_draws_the_plot(swept, tmp_path, capsys):
    out = tmp_path / "sweep.png"
    argv = ["--sweep", "--optimizers", "sgd,adam", "--function", "valley", "--out", str(out)]
    assert race.main(argv) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert all(f"{lr:g}" in rows for lr in race.GRID)
    assert rows["0.0178"][0] == "321*"  # SGD's best, marked
    assert rows["0.0316"][0] == "x"  # diverged
    assert rows["default"] == ["0.0178", "0.316"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_takes_no_learning_rate(capsys):
    with pytest.raises(SystemExit) as exit_:
        race.main(["--sweep", "--lr", "0.1", "--out", ""])
    assert exit_.value.code == 2
    assert "--sweep" in capsys.readouterr().err.splitlines()[-1]
