"""Power of the oat verdicts by simulation: how often a true change gets each answer, at K seeds.

Synthetic one-at-a-time studies (``search.analysis.simulate``: accuracies in steps of 1/10,000,
a run's seed spread sd 0.0006 by default, half of its variance training noise shared by the
network's validation and test accuracies, a point's luck on its validation images of sd
``--offset``) with one move of a stated true change and twelve moves of none. For each K and
change it prints the share of studies whose moved value is ``matters``, ``nonzero``,
``negligible`` and ``undetermined``, and the family-wise rate: the share of studies where any
move without an effect is claimed (``matters`` or ``nonzero``), with its Clopper-Pearson 95%
upper bound.

    python benchmarks/verdict_power.py --studies 200 --seeds 3,5,10 --changes 0,0.001,0.002,0.004,0.008
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from search.analysis import simulate
from search.analysis.oat import oat_family
from search.analysis.verdicts import CLAIMS, MARGIN, MATTERS, NEGLIGIBLE, NONZERO, clopper_pearson

MOVED = ("hidden_units", 256)
ANSWERS = (MATTERS, NONZERO, NEGLIGIBLE)


def one(seeds: int, change: float, rng: np.random.Generator, noise: simulate.Noise, margin: float) -> tuple[str, bool]:
    """The moved value's verdict in one simulated study, and whether any move without an effect is claimed."""
    trials = simulate.oat_trials({MOVED: change} if change else {}, seeds, rng, noise)
    rows = oat_family(trials, simulate.OAT_POINTS[0], margin).rows
    moved = next(r for r in rows if (r.parameter, r.value) == (MOVED[0], str(MOVED[1])))
    others = [r for r in rows if r is not moved]
    return moved.verdict, any(r.verdict in CLAIMS for r in others) or (not change and moved.verdict in CLAIMS)


def row(seeds: int, change: float, args: argparse.Namespace) -> str:
    """One printed row: its studies drawn from their own seeded stream, so rows can run in any order or at once."""
    rng = np.random.default_rng([args.seed, seeds, round(change * 1e6)])
    noise = simulate.Noise(sd=args.sd, offset=args.offset)
    results = [one(seeds, change, rng, noise, args.margin) for _ in range(args.studies)]
    verdicts = [v for v, _ in results]
    shares = {v: verdicts.count(v) / len(verdicts) for v in ANSWERS}
    false = sum(f for _, f in results)
    return (
        f"{seeds:>3} {change:>+12.4f} {shares[MATTERS]:>8.2f} {shares[NONZERO]:>8.2f} "
        f"{shares[NEGLIGIBLE]:>11.2f} {1 - sum(shares.values()):>13.2f} {false / len(results):>12.3f} "
        f"{clopper_pearson(false, len(results))[1]:>6.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=200, help="simulated studies per K and change (default: 200)")
    parser.add_argument("--seeds", default="3,5,10", help="the K values, comma-separated (default: 3,5,10)")
    parser.add_argument("--changes", default="0,0.001,0.002,0.004,0.008", help="true changes of the moved value")
    parser.add_argument("--sd", type=float, default=simulate.SD, help="a run's seed spread sd (default: 0.0006)")
    parser.add_argument("--offset", type=float, default=0.0, help="sd of a point's validation-image luck (default: 0)")
    parser.add_argument("--margin", type=float, default=MARGIN, help="the margin (default: 0.002)")
    parser.add_argument("--seed", type=int, default=0, help="the simulation's seed (default: 0)")
    parser.add_argument("--jobs", type=int, default=1, help="rows computed at once, in processes (default: 1)")
    args = parser.parse_args()
    print(f"{args.studies} simulated oat studies per row; seed spread sd {args.sd}, validation-image offset sd "
          f"{args.offset}, steps of 1/10,000, margin +-{args.margin}")  # fmt: skip
    print(f"the moved value is {MOVED[0]}={MOVED[1]}, the other 12 moves have no effect; family-wise: any of them "
          "claimed (matters or nonzero), with its Clopper-Pearson 95% upper bound")  # fmt: skip
    print(f"{'K':>3} {'true change':>12} {'matters':>8} {'nonzero':>8} {'negligible':>11} {'undetermined':>13} "
          f"{'family-wise':>12} {'upper':>6}")  # fmt: skip
    cases = [(int(k), float(c)) for k in args.seeds.split(",") for c in args.changes.split(",")]
    with ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(row, *zip(*cases, strict=True), [args] * len(cases)):
            print(line, flush=True)


if __name__ == "__main__":
    main()
