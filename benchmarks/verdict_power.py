"""Power of the oat verdicts by simulation: how often a true change is called ``matters``, at K seeds.

Synthetic one-at-a-time studies (``search.analysis.simulate``: accuracies in steps of
1/10,000, a run's noise sd 0.0006 by default) with one move of a stated true change and
twelve moves of none. For each K and change it prints the share of studies whose moved
value is ``matters``, ``negligible`` and ``undetermined``, and the family-wise rate: the
share of studies where any move without an effect is ``matters`` (held at 5% by Holm).

    python benchmarks/verdict_power.py --studies 200 --seeds 3,5,10 --changes 0,0.001,0.002,0.004,0.008
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna

from search.analysis import simulate
from search.analysis.effects import oat_changes
from search.analysis.summary import oat_baseline
from search.analysis.verdicts import MARGIN, MATTERS, NEGLIGIBLE

MOVED = ("hidden_units", 256)


def one(seeds: int, change: float, rng: np.random.Generator, sd: float, margin: float) -> tuple[str, bool]:
    """The moved value's verdict in one simulated study, and whether any move without an effect matters."""
    study = optuna.create_study(direction="maximize")
    simulate.oat_study(study, {MOVED: change} if change else {}, seeds, rng, sd=sd)
    rows = oat_changes(study.get_trials(deepcopy=False), oat_baseline(study) or {}, margin)
    moved = next(r for r in rows if (r.parameter, r.value) == (MOVED[0], str(MOVED[1])))
    others = [r for r in rows if r is not moved]
    return moved.verdict, any(r.verdict == MATTERS for r in others) or (not change and moved.verdict == MATTERS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=200, help="simulated studies per K and change (default: 200)")
    parser.add_argument("--seeds", default="3,5,10", help="the K values, comma-separated (default: 3,5,10)")
    parser.add_argument("--changes", default="0,0.001,0.002,0.004,0.008", help="true changes of the moved value")
    parser.add_argument("--sd", type=float, default=simulate.SD, help="a run's noise sd (default: 0.0006)")
    parser.add_argument("--margin", type=float, default=MARGIN, help="the negligible margin (default: 0.002)")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's seed (default: 0)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(args.seed)
    print(
        f"{args.studies} simulated oat studies per row; a run's noise sd {args.sd}, steps of 1/10,000, "
        f"margin +-{args.margin}; the moved value is {MOVED[0]}={MOVED[1]}, the other 12 moves have no effect"
    )
    print(f"{'K':>3} {'true change':>12} {'matters':>8} {'negligible':>11} {'undetermined':>13} {'family-wise':>12}")
    for seeds in (int(k) for k in args.seeds.split(",")):
        for change in (float(c) for c in args.changes.split(",")):
            results = [one(seeds, change, rng, args.sd, args.margin) for _ in range(args.studies)]
            verdicts = [v for v, _ in results]
            shares = {v: verdicts.count(v) / len(verdicts) for v in (MATTERS, NEGLIGIBLE)}
            false = sum(f for _, f in results) / len(results)
            print(
                f"{seeds:>3} {change:>+12.4f} {shares[MATTERS]:>8.2f} {shares[NEGLIGIBLE]:>11.2f} "
                f"{1 - shares[MATTERS] - shares[NEGLIGIBLE]:>13.2f} {false:>12.3f}"
            )


if __name__ == "__main__":
    main()
