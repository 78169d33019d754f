"""Mixed supervision (Computers in Industry 2021): AP by the number M of positives with pixel labels.

One row per M, with the 2021 settings (docs/method.md#published-settings; M = 0 turns the dynamic
balance off, and for KSDD also gives lr 0.01 and δ 1): KSDD2 M = 0, 16, 53, 126, 246 and "full"; KSDD
(all 33 training folders) M = 0, 5, 10, 15, 20, 33 folders, three folds joined; DAGM M = 0, 5, 15, 45
and "all" per class, classes joined. With --split-dir each numeric row uses the published
KSDD2/split_<M>.pyb, KSDD/split_33_<M>.pyb or DAGM/split_<M>.pyb; "full"/"all" use the dataset's own
train/test folders with every pixel label. Without --split-dir, the seeded equivalents (M of the
positives, KSDD: of the folders, keep pixel labels).

    python experiments/mixed.py --dataset ksdd2 --data-root data/KolektorSDD2 --split-dir splits \
        --out results/mixed-ksdd2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

if __package__:  # python -m experiments.mixed
    from experiments import protocol
else:  # python experiments/mixed.py
    import protocol

FULL = "full"  # every positive keeps its pixel labels, the dataset's own split
LEVELS: dict[str, list[int | str]] = {
    "ksdd2": [0, 16, 53, 126, 246, FULL],
    "ksdd": [0, 5, 10, 15, 20, 33],
    "dagm": [0, 5, 15, 45, FULL],
}
KSDD_FOLDERS = 33  # N of the KSDD sweep: every training folder
# Published AP (%) where docs/method.md#published-results has it.
PUBLISHED = {("ksdd2", FULL): {"AP": 95.4}}


def make_parser() -> argparse.ArgumentParser:
    parser = protocol.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(LEVELS), required=True, help="Dataset of the sweep.")
    parser.add_argument("--segmented", nargs="+",
                        help="Levels M to run (numbers, or 'full'); default: the published ones.")
    protocol.add_folds(parser)
    protocol.add_categories(parser)
    return parser


def _level(value: str | int) -> int | str:
    return value if isinstance(value, int) or value == FULL else int(value)


def plan(args: argparse.Namespace) -> list[protocol.Row]:
    """One row per level M: the dataset's runs (folds, classes or one) with M pixel-labelled positives."""
    levels = [_level(v) for v in (args.segmented or LEVELS[args.dataset])]
    rows = []
    for m in levels:
        extra: dict = {"protocol": "cis2021"}
        if m != FULL:
            n = KSDD_FOLDERS if args.dataset == "ksdd" else None
            extra.update(segmented=m, split=(n, m))
        runs = protocol.runs_for(args.dataset, args, f"{args.dataset}-M{m}", **extra)
        rows.append(protocol.Row({"segmented": m}, runs, PUBLISHED.get((args.dataset, m), {})))
    return rows


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the protocol; return (and print) the path of OUT/table.md."""
    return protocol.run_protocol(
        make_parser(), plan, "Mixed supervision: AP by the number M of pixel-labelled positives",
        ("AP", "AUC", "FP", "FN"), ("AP",),
        notes=["2021 settings (docs/method.md#published-settings); KSDD rows join the folds, DAGM rows "
               "the classes (AP and AUC averaged, FP and FN summed). Published: "
               "docs/method.md#published-results (KSDD2 full supervision only)."],
        argv=argv)


if __name__ == "__main__":
    main()
