"""Ablation (ICPR 2020 Table 5): the four improvements added one by one
(docs/method.md#published-settings, docs/method.md#published-results).

Rows, on one dataset: none of the four; + dynamically balanced loss; + gradient-flow adjustment;
+ frequency-of-use sampling; + distance-transform weights (= the full method). Every other setting is
the dataset's published preset. KSDD rows join the folds (--folds), DAGM rows the classes
(--categories): AP and AUC averaged, FP and FN summed. KSDD trains on all 33 folders, Severstal on the
1000/1000 split with its 50 epochs; with --split-dir their rows use the published split_<N>_<N>.pyb.

    python experiments/ablation.py --dataset ksdd --data-root data/KolektorSDD --out results/ablation-ksdd
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

if __package__:  # python -m experiments.ablation
    from experiments import protocol
else:  # python experiments/ablation.py
    import protocol

from kerasdec.config import DATASETS, RunConfig

# The switches in the order the rows add them: (row label, config section, field).
SWITCHES = (
    ("dynamic balance", "train", "dynamic_balance"),
    ("gradient adjustment", "train", "gradient_adjustment"),
    ("frequency sampling", "data", "frequency_sampling"),
    ("distance-transform weights", "data", "weighted_seg"),
)
# Positive training images when --positives is not given (None = all): KSDD all 33 folders; Severstal
# the 1000/1000 split with its 50 epochs (docs/method.md#published-settings).
DEFAULT_POSITIVES = {"ksdd": 33, "severstal": 1000}
SPLIT_DATASETS = ("ksdd", "severstal")  # their rows use the published split_<N>_<N> with --split-dir
# Published AP (%), FP, FN of the first (none) and last (all four) rows (docs/method.md#published-results).
PUBLISHED = {
    "dagm": {0: {"AP": 90.84, "FP": 661, "FN": 45}, 4: {"AP": 100.0, "FP": 0, "FN": 0}},
    "ksdd": {0: {"AP": 99.77, "FP": 0, "FN": 1}, 4: {"AP": 100.0, "FP": 0, "FN": 0}},
    "severstal": {0: {"AP": 95.90, "FP": 59, "FN": 102}, 4: {"AP": 98.74, "FP": 59, "FN": 40}},
}


def with_switches(cfg: RunConfig, n_on: int) -> RunConfig:
    """``cfg`` with the first ``n_on`` switches of SWITCHES on and the others off.

    Raises:
        ValueError: n_on outside 0..4.
    """
    if not 0 <= n_on <= len(SWITCHES):
        raise ValueError(f"n_on={n_on}; expected 0..{len(SWITCHES)}")
    train: dict[str, bool] = {}
    data: dict[str, bool] = {}
    for i, (_, section, name) in enumerate(SWITCHES):
        (train if section == "train" else data)[name] = i < n_on
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train),
                               data=dataclasses.replace(cfg.data, **data))


def row_label(n_on: int) -> str:
    """'none' for 0, else '+ <the switch added last>'."""
    return "none" if n_on == 0 else f"+ {SWITCHES[n_on - 1][0]}"


def make_parser() -> argparse.ArgumentParser:
    parser = protocol.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="Dataset of the ablation.")
    parser.add_argument("--positives", type=int,
                        help=f"Positive training images (default: {DEFAULT_POSITIVES}, else all).")
    protocol.add_folds(parser)
    protocol.add_categories(parser)
    return parser


def plan(args: argparse.Namespace) -> list[protocol.Row]:
    """Five rows; each row's runs are the dataset's runs (folds, classes or one) with its switches."""
    positives = args.positives if args.positives is not None else DEFAULT_POSITIVES.get(args.dataset)
    rows = []
    for n_on in range(len(SWITCHES) + 1):
        prefix = f"{args.dataset}-a{n_on}-" + row_label(n_on).strip("+ ").replace(" ", "-")
        split = (positives, positives) if args.dataset in SPLIT_DATASETS else None
        runs = protocol.runs_for(args.dataset, args, prefix, positives, split=split)
        rows.append(protocol.Row({"switches": row_label(n_on)},
                                 {name: with_switches(cfg, n_on) for name, cfg in runs.items()},
                                 PUBLISHED.get(args.dataset, {}).get(n_on, {})))
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the protocol; return (and print) the path of OUT/table.md."""
    return protocol.run_protocol(
        make_parser(), plan, "Ablation: the four improvements added in order (ICPR 2020 Table 5)",
        ("AP", "AUC", "FP", "FN"), ("AP", "FP", "FN"),
        notes=["Each row adds one switch to the row above; the last row is the full method. FP and FN "
               "at the F-measure-best threshold, summed over KSDD folds or DAGM classes. Published "
               "(docs/method.md#published-results): first and last rows only."], argv=argv)


if __name__ == "__main__":
    main()
