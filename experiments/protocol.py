"""What every experiment script shares: arguments, the output folder, running fits, writing the table.

A protocol is a list of ``Row``s. A row names its leading columns (``{"N": 33}``), the training runs it
needs (run folder name -> RunConfig) and the published figures to print beside ours
(docs/method.md#published-results).
The runs of a row are joined with ``kerasdec.evaluation.metrics.join_folds`` (AP and AUC averaged, FP
and FN summed): the three KSDD folds, or the DAGM classes of an ablation row; a row of one run keeps
that run's numbers. A run shared by several rows is trained once.

Splits: with ``--split-dir DIR`` (the reference repository's ``splits/`` folder) every row uses the
published split file of its N and M (``split_file``); without it, kerasdec's seeded equivalents.

Output, under ``--out``::

    OUT/protocol.json   the runs of the plan (name -> config), written before the first fit
    OUT/<run name>/     one kerasdec run directory per fit (config.json, metrics.json, models, ...)
    OUT/table.md        the table, our numbers beside the published ones (written last)
    OUT/table.csv       the same columns, unrounded
    OUT/summary.json    per row: the runs and every joined metric

Resumable: called again with the same ``--out`` and the same plan, a protocol skips the runs that
finished (their finished.json, kerasdec.rundir.FINISHED_FILE), resumes an interrupted run from its last
checkpoint, and starts the others. It refuses an OUT holding another plan, or a finished protocol
(table.md exists): nothing finished is ever re-run or overwritten.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerasdec.config import RunConfig
from kerasdec.files import new_folder, read_json, write_json, write_text
from kerasdec.presets import preset
from kerasdec.rundir import CHECKPOINT_DIR, CONFIG_FILE, FINISHED_FILE, METRICS_FILE

log = logging.getLogger("experiments")

OVERRIDES = ("epochs", "width", "height", "batch_size")  # quick-run flags that replace preset fields
# Table column -> (joined metric key, kind): "pct" = percent with 2 decimals in table.md, "int" = count.
METRICS: dict[str, tuple[str, str]] = {
    "AP": ("ap", "pct"), "AUC": ("auc", "pct"), "TPR": ("tpr", "pct"), "TNR": ("tnr", "pct"),
    "FP": ("fp", "int"), "FN": ("fn", "int"),
}
MISSING = "–"  # printed where the paper gives no figure


@dataclass(frozen=True)
class Row:
    """One line of a table: its leading columns, the runs joined into it, the published figures."""

    label: dict[str, Any]  # leading columns, e.g. {"N": 33}
    runs: dict[str, RunConfig]  # run folder name under OUT -> settings (run_dir is set when run)
    published: dict[str, Any] = field(default_factory=dict)  # METRICS column -> published value


def make_parser(description: str) -> argparse.ArgumentParser:
    """Parser with the flags every script takes: --data-root, --out, --seed, quick-run overrides, -v."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-root", help="Dataset folder (not needed for the synthetic dataset).")
    parser.add_argument("--split-dir", type=Path,
                        help="The reference repository's splits/ folder: use its published split files "
                             "(default: kerasdec's seeded splits with the same semantics).")
    parser.add_argument("--out", type=Path, required=True,
                        help="Folder for the runs and the table; called again with the same plan, the "
                             "protocol resumes. Nothing finished is overwritten.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every run (splits, sampling, weights).")
    parser.add_argument("--smoke", action="store_true",
                        help="Check the plumbing: every run on the synthetic dataset (at --data-root, or "
                             "generated) at 64x64 for 1 epoch, runs with equal settings trained once.")
    quick = parser.add_argument_group("quick-run overrides of the published settings (for smoke tests)")
    quick.add_argument("--epochs", type=int, help="Epochs of every run.")
    quick.add_argument("--width", type=int, help="Input width (multiple of 8, >= 64).")
    quick.add_argument("--height", type=int, help="Input height (multiple of 8, >= 64).")
    quick.add_argument("--batch-size", type=int, help="Batch size of every run.")
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    return parser


def add_folds(parser: argparse.ArgumentParser) -> None:
    """--folds: the KSDD cross-validation folds to run and join (default all three)."""
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2], choices=[0, 1, 2],
                        help="KSDD folds whose runs are joined into each row.")


def add_categories(parser: argparse.ArgumentParser) -> None:
    """--categories: the DAGM classes to run (default all ten)."""
    parser.add_argument("--categories", type=int, nargs="+", default=list(range(1, 11)),
                        choices=range(1, 11), metavar="{1..10}", help="DAGM classes.")


# Published split file names under --split-dir (docs/method.md#dataset-formats), by dataset: N positives,
# M segmented.
SPLIT_NAMES = {"ksdd": "KSDD/split_{n}_{m}.pyb", "ksdd2": "KSDD2/split_{m}.pyb", "dagm": "DAGM/split_{m}.pyb",
               "severstal": "STEEL/split_{n}_{m}.pyb"}


def split_file(args: argparse.Namespace, dataset: str, n: int | None, m: int | None) -> str | None:
    """The published split file of N positives / M segmented under --split-dir, or None without it.

    Raises:
        FileNotFoundError: --split-dir is given but has no such file (named).
    """
    if getattr(args, "split_dir", None) is None:
        return None
    path = (args.split_dir / SPLIT_NAMES[dataset].format(n=n, m=m)).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such published split file under --split-dir {args.split_dir}; "
                                f"expected the reference repository's splits/ folder")
    return str(path)


def build(dataset: str, args: argparse.Namespace, positives: int | None = None, *,
          split: tuple[int | None, int | None] | None = None, **data: Any) -> RunConfig:
    """The published preset of ``dataset`` with the script's --data-root, --seed and overrides applied.

    Args:
        dataset: a kerasdec dataset name.
        args: parsed arguments of ``make_parser``.
        positives: positive training images (KSDD: kos folders) to keep (None = all; sets the epochs
            where the paper does).
        split: (N, M) of the published split file to use with --split-dir; the file then fixes the
            training images, so positives/segmented are not set (the epochs still follow N).
        **data: further DataConfig fields (fold, category, segmented, ...).

    Raises:
        ValueError: an invalid value (from the config), naming the field.
        FileNotFoundError: --split-dir lacks the row's split file.
    """
    smoke = getattr(args, "smoke", False)  # the runs move to the synthetic dataset (smoke_rows)
    path = split_file(args, dataset, *split) if split is not None and not smoke else None
    root = None if args.data_root is None else str(Path(args.data_root).resolve())
    root = "(synthetic)" if smoke and root is None else root
    cfg = preset(dataset, positives=positives, root=root, **data)
    if path is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, split_file=path, positives=None,
                                                                segmented=None))
    given = {name: getattr(args, name) for name in OVERRIDES if getattr(args, name) is not None}
    data_fields = {k: v for k, v in given.items() if k in ("width", "height")}
    train_fields = {k: v for k, v in given.items() if k in ("epochs", "batch_size")}
    return dataclasses.replace(cfg, seed=args.seed, data=dataclasses.replace(cfg.data, **data_fields),
                               train=dataclasses.replace(cfg.train, **train_fields))


def runs_for(dataset: str, args: argparse.Namespace, prefix: str, positives: int | None = None,
             **data: Any) -> dict[str, RunConfig]:
    """The runs one result needs: one per KSDD fold (--folds), per DAGM class (--categories), else one.

    ``data`` goes to ``build`` (e.g. ``split=(N, M)``, ``segmented``, ``protocol``).

    Example:
        runs_for("ksdd", args, "ksdd-N10", positives=10)  # {"ksdd-N10-fold0": ..., "-fold1", "-fold2"}
    """
    if dataset == "ksdd":
        return {f"{prefix}-fold{k}": build(dataset, args, positives, fold=k, **data) for k in args.folds}
    if dataset == "dagm":
        return {f"{prefix}-class{c}": build(dataset, args, positives, category=c, **data)
                for c in args.categories}
    return {prefix: build(dataset, args, positives, **data)}


def overrides_text(args: argparse.Namespace) -> str:
    """The quick-run overrides given, as flags, or a note that the published settings were used."""
    given = [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in OVERRIDES
             if getattr(args, name) is not None]
    return " ".join(given) if given else "none (published settings)"


PLAN_FILE = "protocol.json"  # the plan an OUT folder holds: run name -> config
ABANDONED_DIR = "abandoned"  # runs killed before their first checkpoint, kept aside when restarted


SMOKE_SIZE, SMOKE_EPOCHS = 64, 1  # --smoke: input side and epochs unless --width/--height/--epochs say


def smoke_rows(rows: Sequence[Row], args: argparse.Namespace) -> list[Row]:
    """The rows with every run moved to the synthetic dataset (--smoke).

    Each run keeps the protocol's training switches (the ablation's) and loses what only its dataset
    has (folds, classes, split files, positives, segmented); runs that end up with equal settings
    become one run, named smoke-<k>, so the table's numbers all come from runs that were trained.
    """
    names: dict[str, str] = {}
    out = []
    for row in rows:
        runs = {}
        for cfg in row.runs.values():
            data = dataclasses.replace(
                preset("synthetic").data, width=args.width or SMOKE_SIZE,
                root=None if args.data_root is None else str(Path(args.data_root).resolve()),
                height=args.height or SMOKE_SIZE, weighted_seg=cfg.data.weighted_seg,
                frequency_sampling=cfg.data.frequency_sampling)
            train = dataclasses.replace(cfg.train, epochs=args.epochs or SMOKE_EPOCHS,
                                        batch_size=args.batch_size or preset("synthetic").train.batch_size)
            smoke = dataclasses.replace(cfg, data=data, train=train)
            key = json.dumps(smoke.to_dict(), sort_keys=True)
            name = names.setdefault(key, f"smoke-{len(names) + 1}")
            runs[name] = smoke
        out.append(dataclasses.replace(row, runs=runs))
    return out


def open_out(out: Path, rows: Sequence[Row]) -> None:
    """Start OUT, or accept it for resuming when it holds the same plan and no finished table.

    Raises:
        FileExistsError: OUT is a file, holds a finished protocol (table.md), another plan, or files
            that are not a protocol's; the message says what to do.
    """
    plan = json.loads(json.dumps({name: cfg.to_dict() for name, cfg in unique_runs(rows).items()}))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; expected a folder")
    if out.is_dir() and (out / "table.md").exists():
        raise FileExistsError(f"--out {out} holds a finished protocol (table.md); experiments never "
                              "overwrite results: choose a new folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / PLAN_FILE).is_file():
            raise FileExistsError(f"--out {out} already exists and is not empty (no {PLAN_FILE}); choose a "
                                  "new folder")
        stored = read_json(out / PLAN_FILE)
        if stored != plan:
            differ = sorted(set(stored) ^ set(plan)) or sorted(k for k in plan if stored[k] != plan[k])
            raise FileExistsError(f"--out {out} holds another plan ({out / PLAN_FILE}; runs {differ[:3]} "
                                  "differ); resume with the same arguments, or choose a new folder")
        log.info("Resuming the protocol in %s", out)
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PLAN_FILE, plan, overwrite=False)


def check_data(rows: Sequence[Row]) -> None:
    """List every run's training and test split before training anything, so that a missing file or
    too few positives fails in seconds rather than after hours of earlier runs.

    Raises:
        FileNotFoundError, ValueError: from the dataset sources, naming the file or the count.
    """
    from kerasdec.data import sources
    from kerasdec.training.run import require_both_classes

    for name, cfg in unique_runs(rows).items():
        for split in ("train", "test"):
            samples = sources.load_split(cfg.data, split, cfg.seed)
            if split == "test":
                require_both_classes(samples, f"{name} test")
            elif not any(s.is_positive for s in samples):
                raise ValueError(f"run {name}: the training split has no defective image; expected "
                                 "at least one")


def unique_runs(rows: Sequence[Row]) -> dict[str, RunConfig]:
    """Every run of the rows once, in order; one name must always mean the same settings.

    Raises:
        ValueError: two rows give one run name different settings.
    """
    runs: dict[str, RunConfig] = {}
    for row in rows:
        for name, cfg in row.runs.items():
            if runs.setdefault(name, cfg) != cfg:
                raise ValueError(f"run name {name!r} is used for two different configs")
    return runs


def run_rows(rows: Sequence[Row], out: Path) -> list[dict[str, Any]]:
    """Train and evaluate every run into OUT/<name> (skipping finished runs, resuming interrupted
    ones), then join each row's runs with join_folds.

    Returns:
        One joined metrics dict per row (keys of ``join_folds``).
    """
    from kerasdec.evaluation.metrics import join_folds

    runs = unique_runs(rows)
    metrics: dict[str, dict[str, Any]] = {}
    for i, (name, cfg) in enumerate(runs.items(), start=1):
        log.info("Run %d/%d: %s (%d epochs)", i, len(runs), name, cfg.train.epochs)
        run_dir = run_once(out / name, cfg)
        metrics[name] = read_json(run_dir / METRICS_FILE)
    return [join_folds([metrics[name] for name in row.runs]) for row in rows]


def run_once(run_dir: Path, cfg: RunConfig) -> Path:
    """A finished run (finished.json) as it is; an interrupted one (config.json) resumed; else a new fit."""
    from kerasdec.training.checkpoint import latest_checkpoint
    from kerasdec.training.fit import fit

    if (run_dir / FINISHED_FILE).is_file():
        log.info("%s finished before: kept", run_dir)
        return run_dir
    if (run_dir / CONFIG_FILE).is_file() and latest_checkpoint(run_dir / CHECKPOINT_DIR) is not None:
        log.info("%s was interrupted: resuming it", run_dir)
        return fit(cfg, resume=run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):  # killed before its first checkpoint: keep it aside
        aside = new_folder(run_dir.parent / ABANDONED_DIR, run_dir.name)
        run_dir.replace(aside)
        log.warning("%s was interrupted before its first checkpoint: moved to %s, starting it again",
                    run_dir, aside)
    return fit(dataclasses.replace(cfg, run_dir=str(run_dir)))


def write_table(out: Path, title: str, columns: Sequence[str], published: Sequence[str],
                rows: Sequence[Row], joined: Sequence[dict[str, Any]], notes: Sequence[str]) -> Path:
    """Write OUT/table.md, OUT/table.csv and OUT/summary.json; return the path of table.md.

    Args:
        out: the output folder.
        title: heading of table.md.
        columns: METRICS columns of ours, in order.
        published: METRICS columns of the paper, printed after ours as "published <col>" ("–" in rows
            the paper has no figure for).
        rows: the protocol's rows; joined: their joined metrics (``run_rows``).
        notes: lines printed under the table.
    """
    header = [*rows[0].label, *columns, *(f"published {c}" for c in published)]
    csv_rows, md_rows = [], []
    kinds = [METRICS[c][1] for c in (*columns, *published)]
    for row, m in zip(rows, joined):
        values = [*(_ours(m, c) for c in columns), *(row.published.get(c, MISSING) for c in published)]
        csv_rows.append([*row.label.values(), *values])
        md_rows.append([*map(str, row.label.values()), *map(_fmt, values, kinds)])
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([header, *csv_rows])
    write_text(out / "table.csv", buffer.getvalue())  # derived from finished runs: redone after a kill
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in md_rows]
    summary = [{"label": row.label, "runs": [str(out / n) for n in row.runs], "metrics": m,
                "published": row.published} for row, m in zip(rows, joined)]
    write_json(out / "summary.json", summary)
    # table.md last: its presence marks the protocol finished
    return write_text(out / "table.md", "\n".join([*lines, "", "\n\n".join(notes)]) + "\n", overwrite=False)


def _ours(metrics: dict[str, Any], column: str) -> float | int:
    key, kind = METRICS[column]
    return 100 * metrics[key] if kind == "pct" else metrics[key]


def _fmt(value: Any, kind: str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.2f}" if kind == "pct" else str(int(value))


def run_protocol(parser: argparse.ArgumentParser, plan: Callable[[argparse.Namespace], list[Row]],
                 title: str, columns: Sequence[str], published: Sequence[str], notes: Sequence[str] = (),
                 argv: Sequence[str] | None = None) -> Path:
    """Parse the arguments, run the plan's rows into --out and write the table; print its path.

    Args:
        parser: from ``make_parser`` (plus the script's own flags).
        plan: builds the rows from the parsed arguments (no training).
        title: heading of table.md.
        columns: METRICS columns of ours.
        published: METRICS columns of the paper, beside ours.
        notes: lines printed under the table (how the rows were joined, where the figures come from).
        argv: arguments (default sys.argv[1:]).

    Returns:
        The path of table.md. Errors (an existing --out, bad values, missing data) exit with status 1
        and a message naming the argument or file.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        rows = plan(args)
        if args.smoke:
            rows = smoke_rows(rows, args)
        check_data(rows)
        open_out(args.out, rows)
        joined = run_rows(rows, args.out)
        notes = [*notes, f"AP, AUC, TPR and TNR in %. Quick-run overrides: {overrides_text(args)}; seed "
                 f"{args.seed}. Runs and every metric: {args.out / 'summary.json'}."]
        if args.smoke:
            notes.insert(0, "SMOKE RUN (--smoke): every run on the synthetic dataset, a plumbing check, not "
                            "a result; rows sharing settings share a run.")
        path = write_table(args.out, title, columns, published, rows, joined, notes)
    except (OSError, ValueError, FloatingPointError) as err:
        parser.exit(1, f"{parser.prog}: error: {err}\n")
    print(path, file=sys.stdout)  # the one print: the table's path, for scripts that chain on it
    return path
