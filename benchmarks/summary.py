"""The README's speed summary, printed from a benchmark run's JSON (``bench.py --json``).

    python benchmarks/summary.py [benchmarks/results/full.json]

Prints markdown: a few rows of the step table and one paragraph of the run's summary
numbers. README.md shows this output between ``<!-- output: ... -->`` markers, and
``tests/test_docs_outputs.py`` fails if the README's copy differs from the JSON's numbers;
``python docs/regenerate.py`` rewrites it after a new run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT = Path(__file__).resolve().parent / "results" / "full.json"
# (optimizer, params, leaves, group_leaves?) of the rows the README shows
ROWS = [
    ("adam", 10**7, 1, False),
    ("adamw", 10**7, 1, False),
    ("sgd", 10**7, 1, False),
    ("rmsprop", 10**6, 1, False),
    ("adam", 10**6, 1000, False),
    ("adam", 10**6, 1000, True),
    ("adam", 10**5, 1, False),
]


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def summary(result: dict) -> str:
    steps = {(r["opt"], r["total"], r["leaves"]): r for r in result["steps"]}
    lines = [
        f"Machine: {result['machine']}; jax {result['jax']}, optax {result['optax']}.",
        "",
        "| optimizer | params | leaves | gradchain ms | optax ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for opt, total, leaves, grouped in ROWS:
        r = steps[opt, total, leaves]
        name, ours = opt, r["gradchain_ms"]
        if grouped:
            name, ours = f"{opt}, `group_leaves` (opt-in)", r["grouped_ms"]
        lines.append(
            f"| {name} | 1e{len(str(total)) - 1} | {leaves} | {_ms(ours)} | {_ms(r['optax_ms'])} | "
            f"{ours / r['optax_ms']:.2f} |"
        )
    s = result["summary"]
    adam = steps["adam", 10**7, 1]
    first = next(r for r in result["compile"] if r["opt"] == "adam" and r["leaves"] == 1000)
    memory = {r["lib"]: r for r in result["memory"]}["gradchain"]
    same = "equal" if memory["state_bytes"] == memory["report_bytes"] else "do not equal"
    lines += [
        "",
        f"Geometric mean of the ratio over all {s['rows']} rows of the run: "
        f"{s['geomean_ratio']:.3f}; Optax against itself (A/A): {s['geomean_aa']:.3f}, from "
        f"{s['aa_min']:.2f} to {s['aa_max']:.2f}. Adam on 1e7 parameters in one leaf moves its "
        f"data at {adam['gradchain_fraction']:.0%} of the measured memory bandwidth (Optax "
        f"{adam['optax_fraction']:.0%}). First call (trace + compile), Adam on 1000 leaves of "
        f"64x64: {first['gradchain_s']:.1f} s (Optax {first['optax_s']:.1f} s). A donated Adam "
        f"step on {memory['n']:.0e} parameters peaks at {memory['peak_over_params']:.2f}x the "
        f"params, and the state's bytes {same} `memory_report`'s.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else DEFAULT
    print(summary(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
