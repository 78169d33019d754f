"""KolektorSDD: AP by number N of positive training kos folders, 3-fold CV
(docs/method.md#evaluation, docs/method.md#published-settings, docs/method.md#published-results).

For each N in --positives and each fold, train with the published ICPR 2020 settings (epochs by N)
into OUT/ksdd-N<n>-fold<k>; join the folds (AP and AUC averaged, FP and FN summed) into one row per N
beside the published AP. N counts kos FOLDERS (all their parts), as the published split_N_N files do;
with --split-dir each row uses KSDD/split_<N>_<N>.pyb, without it the seeded folds and folder draw.

    python experiments/ksdd.py --data-root data/KolektorSDD --split-dir splits --out results/ksdd
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

if __package__:  # python -m experiments.ksdd
    from experiments import protocol
else:  # python experiments/ksdd.py
    import protocol

# Published AP (%) by number of positive training images N (ICPR 2020; docs/method.md#published-results).
PUBLISHED_AP = {33: 100.00, 25: 99.78, 20: 100.00, 15: 99.88, 10: 99.31, 5: 96.71}


def make_parser() -> argparse.ArgumentParser:
    parser = protocol.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--positives", type=int, nargs="+", default=list(PUBLISHED_AP),
                        help="Numbers of positive training kos folders N, one row each.")
    protocol.add_folds(parser)
    return parser


def plan(args: argparse.Namespace) -> list[protocol.Row]:
    """One row per N: the fold runs with N positives, and the published AP where the paper has N."""
    published = {n: {"AP": ap} for n, ap in PUBLISHED_AP.items()}
    return [protocol.Row({"N": n}, protocol.runs_for("ksdd", args, f"ksdd-N{n}", positives=n, split=(n, n)),
                         published.get(n, {}))
            for n in args.positives]


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the protocol; return (and print) the path of OUT/table.md."""
    return protocol.run_protocol(
        make_parser(), plan, "KolektorSDD: AP by number N of positive training kos folders",
        ("AP", "AUC", "FP", "FN"), ("AP",),
        notes=["AP and AUC averaged over the folds, FP and FN summed, each fold at its F-measure-best "
               "threshold (docs/method.md#evaluation). Published: ICPR 2020 "
               "(docs/method.md#published-results)."], argv=argv)


if __name__ == "__main__":
    main()
