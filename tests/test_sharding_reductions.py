"""Reductions over a sharded leaf are right or refused (issue 15, item 5): the cases in
``tests/sharding_reduction_cases.py`` run in a subprocess with 8 simulated CPU devices (JAX fixes
the device count when its backend starts, and this process has started it with one)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

CASES = pathlib.Path(__file__).with_name("sharding_reduction_cases.py")


def test_sharding_reduction_cases_pass_on_eight_simulated_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        cwd=CASES.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"sharding reduction cases failed:\n{output[-20000:]}"
    assert " passed" in output and "failed" not in output
