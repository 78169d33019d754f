"""Severstal Steel: AP, FP and FN by number of positive training images
(docs/method.md#published-settings, docs/method.md#published-results).

For each N in --positives, train with the published ICPR 2020 settings (epochs by N) into
OUT/severstal-N<n> and evaluate the best-validation model on the test split (docs/method.md#evaluation),
beside the published figures. With --split-dir each row uses STEEL/split_<N>_<N>.pyb; without it,
kerasdec's seeded split with the published proportions (kerasdec/data/severstal.py).

    python experiments/severstal.py --data-root data/severstal --split-dir splits --out results/severstal
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

if __package__:  # python -m experiments.severstal
    from experiments import protocol
else:  # python experiments/severstal.py
    import protocol

# Published AP (%), FP and FN by number of positive training images N
# (ICPR 2020; docs/method.md#published-results).
PUBLISHED = {3000: {"AP": 99.04, "FP": 34, "FN": 54}, 1500: {"AP": 99.00, "FP": 41, "FN": 70},
             750: {"AP": 98.91, "FP": 52, "FN": 65}, 300: {"AP": 97.78, "FP": 95, "FN": 77}}


def make_parser() -> argparse.ArgumentParser:
    parser = protocol.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--positives", type=int, nargs="+", default=list(PUBLISHED),
                        help="Numbers of positive training images N, one row each.")
    return parser


def plan(args: argparse.Namespace) -> list[protocol.Row]:
    """One run and row per N, with the published figures where the paper has N."""
    return [protocol.Row({"N": n}, protocol.runs_for("severstal", args, f"severstal-N{n}", positives=n,
                                                  split=(n, n)),
                         PUBLISHED.get(n, {}))
            for n in args.positives]


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the protocol; return (and print) the path of OUT/table.md."""
    return protocol.run_protocol(
        make_parser(), plan, "Severstal Steel: AP by number of positive training images N",
        ("AP", "AUC", "FP", "FN"), ("AP", "FP", "FN"),
        notes=["FP and FN at the F-measure-best threshold of the best-validation model "
               "(docs/method.md#evaluation). Splits: the published STEEL/split_<N>_<N>.pyb with "
               "--split-dir, else kerasdec's seeded split with the published proportions. Published: "
               "ICPR 2020 (docs/method.md#published-results)."],
        argv=argv)


if __name__ == "__main__":
    main()
