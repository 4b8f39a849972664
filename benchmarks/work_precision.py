#!/usr/bin/env python
"""Work–precision of sdekit's SDE solvers: strong error against wall time and function evaluations.

    python benchmarks/work_precision.py [--paths 20000] [--out benchmarks/results]

Three closed-form problems (VALIDATION.md §1a), each solver on the problems its noise class and
calculus allow, steps 8 .. 1024 on nested grids sharing one Brownian path per path:
  gbm_ito   dX = 0.5 X dt + X dW (Itô)            : euler_maruyama, milstein
  gbm_strat dX = 0.5 X dt + X o dW (Stratonovich) : heun, milstein
  s3        additive, time-dependent (SciML's prob_sde_additive form): euler_maruyama, milstein, sra1
Wall time is the fastest of 3 solves after a warm-up (so compile time is excluded); it varies
between runs on a shared machine, the evaluations do not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from power import machine  # noqa: E402

from sdekit.validate.order import gbm_problem, s3_problem  # noqa: E402
from sdekit.validate.work_precision import work_precision  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", type=int, default=20_000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    s3 = s3_problem(1.0, 2.0)
    problems = {
        "gbm_ito": (gbm_problem(0.5, 1.0, "ito"), ["euler_maruyama", "milstein"]),
        "gbm_strat": (gbm_problem(0.5, 1.0, "stratonovich"), ["heun", "milstein"]),
        "s3": (s3, ["euler_maruyama", "milstein", "sra1"]),
    }
    md = ["# Work–precision of sdekit's SDE solvers", "",
          f"`python benchmarks/work_precision.py --paths {args.paths}` on {machine()['cpu_model']} "
          f"({machine()['affinity']} cores). Strong error RMS ||X_h(1) - X(1; W)|| against the closed form on the "
          "same Brownian path; wall time: fastest of 3 solves after a warm-up.", ""]
    record = {"machine": machine(), "paths": args.paths, "problems": {}}
    for name, (problem, solvers) in problems.items():
        wp = work_precision(problem, solvers, 1.0, 1.0, base_steps=8, levels=8, n_paths=args.paths, seed=7)
        wp.plot(out / f"work_precision_{name}.png", title=f"{name}: strong error vs wall time")
        wp.plot(out / f"work_precision_{name}_evals.png", cost="evals", title=f"{name}: strong error vs evals")
        md += [f"## {name}", "", wp.to_markdown(), "", f"![{name}](work_precision_{name}.png)", ""]
        record["problems"][name] = {s: {"steps": list(map(int, c.steps)), "errors": list(map(float, c.errors)),
                                        "seconds": list(map(float, c.seconds)), "evals": list(map(int, c.evals))}
                                    for s, c in wp.curves.items()}
        print(f"{name}: done", flush=True)
    (out / "work_precision.md").write_text("\n".join(md))
    (out / "work_precision.json").write_text(json.dumps(record, indent=1))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
