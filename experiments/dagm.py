"""DAGM 2007: one row per class with the published ICPR 2020 settings
(docs/method.md#published-settings, docs/method.md#published-results).

Each class is trained and evaluated on its own into OUT/dagm-class<c>; a last row joins the classes
(AP and AUC averaged, FP and FN summed). The paper reports TPR = TNR = 100 % on every class. With
every positive segmented the split is the dataset's own Train/Test folders, so --split-dir is not
needed here (the DAGM split files serve the mixed-supervision sweep, experiments/mixed.py).

    python experiments/dagm.py --data-root data/DAGM --out results/dagm
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

if __package__:  # python -m experiments.dagm
    from experiments import protocol
else:  # python experiments/dagm.py
    import protocol

PUBLISHED = {"TPR": 100.0, "TNR": 100.0}  # every class (ICPR 2020; docs/method.md#published-results)


def make_parser() -> argparse.ArgumentParser:
    parser = protocol.make_parser(__doc__.splitlines()[0])
    protocol.add_categories(parser)
    return parser


def plan(args: argparse.Namespace) -> list[protocol.Row]:
    """One row per class, then a row "all" that joins them (the runs are trained once)."""
    rows = [protocol.Row({"class": c}, {f"dagm-class{c}": protocol.build("dagm", args, category=c)},
                         PUBLISHED)
            for c in args.categories]
    every = {name: cfg for row in rows for name, cfg in row.runs.items()}
    return [*rows, protocol.Row({"class": "all"}, every, PUBLISHED)]


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the protocol; return (and print) the path of OUT/table.md."""
    return protocol.run_protocol(
        make_parser(), plan, "DAGM 2007: each class trained and evaluated separately",
        ("TPR", "TNR", "AP", "AUC", "FP", "FN"), ("TPR", "TNR"),
        notes=["TPR, TNR, FP and FN at each class's F-measure-best threshold (docs/method.md#evaluation); "
               "row 'all': AP and AUC averaged over the classes, counts summed. Published: ICPR 2020 "
               "(docs/method.md#published-results)."], argv=argv)


if __name__ == "__main__":
    main()
