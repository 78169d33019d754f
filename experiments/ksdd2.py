"""KolektorSDD2: full supervision with the 2021 settings
(docs/method.md#published-settings, docs/method.md#published-results).

One run on the dataset's own train/test folders, every positive with its pixel labels, into
OUT/ksdd2, beside the published AP (95.4). The mixed-supervision levels are experiments/mixed.py.

    python experiments/ksdd2.py --data-root data/KolektorSDD2 --out results/ksdd2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

if __package__:  # python -m experiments.ksdd2
    from experiments import protocol
else:  # python experiments/ksdd2.py
    import protocol

PUBLISHED = {"AP": 95.4}  # Computers in Industry 2021, full supervision (docs/method.md#published-results)


def make_parser() -> argparse.ArgumentParser:
    return protocol.make_parser(__doc__.splitlines()[0])


def plan(args: argparse.Namespace) -> list[protocol.Row]:
    """One row: the full-supervision run."""
    return [protocol.Row({"supervision": "full"}, protocol.runs_for("ksdd2", args, "ksdd2"), PUBLISHED)]


def main(argv: Sequence[str] | None = None) -> Path:
    """Run the protocol; return (and print) the path of OUT/table.md."""
    return protocol.run_protocol(
        make_parser(), plan, "KolektorSDD2: full supervision", ("AP", "AUC", "FP", "FN"), ("AP",),
        notes=["The dataset's own train/test split, every positive segmented; 2021 settings "
               "(docs/method.md#published-settings). Published: docs/method.md#published-results."],
        argv=argv)


if __name__ == "__main__":
    main()
