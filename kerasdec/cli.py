"""The `kerasdec` command line: each command builds a config and makes one library call.

Library modules are imported inside the commands so `kerasdec --help` and flag errors stay fast
(importing tensorflow takes seconds).

Errors: every command runs inside one handler (``Commands.invoke``). A user or environment fault —
bad input or settings (ValueError), a missing or existing file (FileNotFoundError, FileExistsError),
any other OSError (permissions, a full or read-only disk, h5py's damaged files), a damaged zip
(BadZipFile), non-finite training (FloatingPointError), or one of those raised while tf.data read the
data — is ONE line on stderr and exit code 1. Anything else (TypeError, KeyError, ...) is a bug and
keeps its traceback; `kerasdec -v` shows the traceback of faults too.
"""

from __future__ import annotations

import builtins
import logging
import re
import zipfile
from typing import TYPE_CHECKING

import click

from kerasdec.config import DEFAULT_MAX_PIXELS, DISTRIBUTES  # no tensorflow
from kerasdec.echo import cut_line
from kerasdec.inference.contract import TFLITE_MODES  # no tensorflow: --help stays fast
from kerasdec.presets import PROTOCOLS

if TYPE_CHECKING:
    from kerasdec.config import RunConfig

TESTED_HELP = ("Which saved model of a run directory (default: the one its test evaluation used, which "
               "carries the threshold: final, or best where the preset selects on validation).")
FAULTS = (ValueError, OSError, FloatingPointError, zipfile.BadZipFile)  # user/environment faults
# A Python exception raised inside tf.data (tf.numpy_function) reaches us as a TensorFlow OpError whose
# message holds "<Name>Error: <message>" followed by the Python traceback.
_WRAPPED = re.compile(r"\b([A-Z]\w*(?:Error|Exception)): (.*?)\n\s*Traceback", re.DOTALL)


def fault_message(err: BaseException) -> str | None:
    """The one-line message for a user or environment fault, or None for a bug (keep the traceback)."""
    if isinstance(err, OSError) and err.strerror:
        text = (f"{err.filename}: " if err.filename else "") + err.strerror
    elif isinstance(err, FAULTS):
        text = str(err) or type(err).__name__
    elif type(err).__module__.startswith("tensorflow") and (found := _WRAPPED.search(str(err))):
        cls = getattr(builtins, found.group(1), None)
        if not (isinstance(cls, type) and issubclass(cls, FAULTS)):
            return None
        text = found.group(2)
    else:
        return None
    return cut_line(" ".join(text.split()))  # a value echoed from a file can be megabytes long


class Commands(click.Group):
    """The click group whose ``invoke`` turns faults (see the module docstring) into one line."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.ClickException as err:  # click's own errors quote the value given, too
            err.message = cut_line(err.message)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:
            message = fault_message(err)
            if message is None or ctx.params.get("verbose"):
                raise
            raise click.ClickException(message) from err


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages; show the traceback of any error.")
@click.version_option(package_name="kerasdec")
def main(verbose: bool) -> None:
    """Train, evaluate and deploy surface-defect detectors (SegDecNet, end to end)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


class MissingRuntime(click.ClickException):
    """A usage error told in ONE line (click's UsageError adds the usage text): an optional runtime the
    flags ask for is not installed. Exit code 2, like every usage error."""

    exit_code = 2


def require_litert(what: str) -> None:
    """Refuse (MissingRuntime) before any work when ``what`` needs LiteRT and it is not installed."""
    from kerasdec.deploy import runtimes  # no tensorflow: importlib.util.find_spec only

    message = runtimes.missing_litert(what)
    if message is not None:
        raise MissingRuntime(message)


def given(ctx: click.Context, name: str) -> bool:
    """Whether the parameter ``name`` was set by the user (command line or environment), not defaulted."""
    return ctx.get_parameter_source(name) in (click.core.ParameterSource.COMMANDLINE,
                                              click.core.ParameterSource.ENVIRONMENT)


def refuse_together(ctx: click.Context, name: str, others: tuple[str, ...], why: str) -> None:
    """Conflicting flags are a usage error, never one of them silently ignored: ``name`` with any of
    ``others`` (parameter names) given too raises click.UsageError naming both and ``why``."""
    if not given(ctx, name):
        return
    for other in others:
        if given(ctx, other):
            flags = ["/".join(p.opts) for p in ctx.command.params if p.name in (name, other)]
            raise click.UsageError(f"{' and '.join(flags)} conflict: {why}; give only one of them")


MAX_PIXELS_HELP = (f"Refuse an image (or mask) whose header declares more pixels, before decoding it "
                   f"(default {DEFAULT_MAX_PIXELS:,} = {DEFAULT_MAX_PIXELS // 10**6} MP; a small file can "
                   "declare a huge image).")

# Commands are defined below, one section each: fit, split, evaluate, predict, export, bench.


# ---------------------------------------------------------------------------------------------- fit
_DATA_FLAGS = ("root", "width", "height", "channels", "segmented", "fold", "category", "split_file",
               "dilate", "w_pos", "p", "weighted_seg", "frequency_sampling", "exclude", "decision_target",
               "mask_values", "augment_geometry", "augment_jitter", "max_pixels")
_TRAIN_FLAGS = ("epochs", "steps", "lr", "optimizer", "delta", "batch_size", "dynamic_balance",
                "gradient_adjustment", "precision", "jit", "validate_every", "distribute", "test_model",
                "drop_last", "deterministic")


def _exclude(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...] | None:
    """--exclude given: those names ("none" = nothing); not given: None (the dataset's default)."""
    if not values:
        return None
    names = tuple(v for v in values if v.lower() != "none")
    if names and len(names) < len(values):
        raise click.BadParameter(f"'none' (exclude nothing) with sample names {list(names)[:3]}; give one or "
                                 "the other")
    return names


def build_fit_config(dataset: str, positives: int | None, protocol: str | None, seed: int | None,
                     run_dir: str | None, recipe: str | None = None, **flags: object) -> "RunConfig":
    """The preset of ``dataset``, its recipe (default: recipes.default_recipe) on top, then every flag
    the user gave (not None); an explicit --epochs drops the recipe's step count."""
    from dataclasses import replace

    from kerasdec.presets import preset
    from kerasdec.recipes import apply_recipe, default_recipe

    data = {k: flags[k] for k in _DATA_FLAGS if flags.get(k) is not None}
    train = {k: flags[k] for k in _TRAIN_FLAGS if flags.get(k) is not None}
    if "epochs" in train and "steps" in train:
        raise ValueError(f"--epochs {train['epochs']} and --steps {train['steps']} conflict: both size the "
                         "run (--steps sets the epochs from the number of updates); give only one of them")
    if "epochs" in train and "steps" not in train:
        train["steps"] = None  # the user sized the run by epochs
    cfg = preset(dataset, positives=positives, protocol=protocol, **data)
    cfg = apply_recipe(cfg, recipe or default_recipe(dataset))
    cfg = replace(cfg, data=replace(cfg.data, **data), train=replace(cfg.train, **train))  # flags win
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    return replace(cfg, run_dir=run_dir)


@main.command()
@click.option("--dataset", type=click.Choice(["synthetic", "ksdd", "ksdd2", "dagm", "severstal", "folder"]),
              default="synthetic", show_default=True, help="Data source; sets the published defaults.")
@click.option("--data-root", "root", type=click.Path(file_okay=False),
              help="Dataset folder (stored resolved). With --resume: where the run's data is now.")
@click.option("--protocol", type=click.Choice(PROTOCOLS),
              help="Which paper's settings to start from (default: ICPR 2020 where it has the dataset).")
@click.option("--positives", type=click.IntRange(min=1),
              help="Positive training images to keep (default all).")
@click.option("--segmented", type=click.IntRange(min=0),
              help="Of those, how many keep pixel labels; the rest are image-label only (default all).")
@click.option("--fold", type=click.IntRange(0, 2), help="KSDD cross-validation fold (default 0).")
@click.option("--category", type=click.IntRange(1, 10), help="DAGM class 1..10 (required for dagm).")
@click.option("--split-file", type=click.Path(dir_okay=False, exists=True),
              help="Published split file (the reference's splits/<DATASET>/split_*.pyb, read without running "
                   "any code from it) or its JSON form; --fold/--category pick the fold/class.")
@click.option("--exclude", multiple=True, callback=_exclude,
              help="Sample name left out of every split, e.g. kos21/Part7 (repeatable; replaces the "
                   "dataset's default list, 'none' = exclude nothing).")
@click.option("--decision-target", type=click.Choice(["image_label", "mask_max"]),
              help="Classification target of a positive: 1, or the max of its 1/8 mask (published).")
@click.option("--mask-values", type=click.Choice(["binary", "gray"]),
              help="Training targets from mask files: binary (above half the range = defect), or gray "
                   "value / 255 with soft edges kept (published datasets; docs/fidelity.md).")
@click.option("--width", type=click.IntRange(min=8), help="Input width (multiple of 8).")
@click.option("--height", type=click.IntRange(min=8), help="Input height (multiple of 8).")
@click.option("--channels", type=click.Choice(["1", "3"]), callback=lambda c, p, v: v and int(v),
              help="1 = grayscale, 3 = colour.")
@click.option("--recipe", type=click.Choice(["published", "small"]),
              help="published = the paper's settings; small = the recipe for tens of defective images "
                   "(docs/small-data.md; default: small for folder, published otherwise).")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--steps", type=click.IntRange(min=1),
              help="Size the run by optimizer updates instead of epochs.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate (constant).")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]),
              help="sgd = plain SGD as published; adam = Adam (Keras defaults but the learning rate).")
@click.option("--delta", type=click.FloatRange(min=0), help="δ, weight of the classification loss.")
@click.option("--batch-size", type=click.IntRange(min=1))
@click.option("--dilate", type=click.IntRange(min=1), help="Mask dilation kernel size (1 = none).")
@click.option("--w-pos", type=click.FloatRange(min=0, min_open=True), help="Weight scale inside defects.")
@click.option("--p", type=click.FloatRange(min=0), help="Distance-transform weight exponent.")
@click.option("--no-dynamic-balance", "dynamic_balance", flag_value=False, default=None,
              help="Ablation: fixed loss weights (1 and δ) instead of λ = 1 − e/E.")
@click.option("--no-gradient-adjustment", "gradient_adjustment", flag_value=False, default=None,
              help="Ablation: let the decision loss train the segmentation stage.")
@click.option("--no-frequency-sampling", "frequency_sampling", flag_value=False, default=None,
              help="Ablation: uniform sampling of defect-free images.")
@click.option("--no-weighted-seg", "weighted_seg", flag_value=False, default=None,
              help="Ablation: no distance-transform weights inside defects.")
@click.option("--augment-geometry", type=click.Choice(["none", "flips", "rot180", "d4"]),
              help="Training-time flips/rotations of image and mask (d4 adds 90° turns: square inputs "
                   "whose texture looks alike rotated).")
@click.option("--augment-jitter", type=click.FloatRange(0, 0.5),
              help="Training-time brightness/contrast jitter amplitude (0 = off).")
@click.option("--max-pixels", type=click.IntRange(min=1), help=MAX_PIXELS_HELP)
@click.option("--precision", type=click.Choice(["auto", "float32", "mixed_float16", "mixed_bfloat16"]),
              help="Default auto: mixed_float16 on a GPU, float32 otherwise.")
@click.option("--jit/--no-jit", default=None, help="XLA compilation (default: on when a GPU is visible).")
@click.option("--validate-every", type=click.IntRange(min=1),
              help="Validate at epochs 0, V, 2V, ... and the last.")
@click.option("--test-model", type=click.Choice(["best", "final"]),
              help="Model the test evaluation reports (default: best for severstal, else final).")
@click.option("--drop-last/--keep-last", default=None,
              help="Drop an incomplete last training batch (default, as published) or keep it.")
@click.option("--distribute", type=click.Choice(DISTRIBUTES),
              help="mirrored = all local GPUs; multiworker = the cluster in TF_CONFIG (docs/distributed.md).")
@click.option("--nondeterministic", "deterministic", flag_value=False, default=None,
              help="Allow TensorFlow's faster nondeterministic arithmetic: the same command may then end "
                   "in other weights (default: reproducible, docs/run-directory.md#reproducibility).")
@click.option("--seed", type=int, help="Seeds splits, sampling, initialisation, synthetic data (default 0).")
@click.option("--run-dir", type=click.Path(file_okay=False),
              help="Where to write the run (default runs/<dataset>-<time>); must not exist yet.")
@click.option("--resume", type=click.Path(exists=True, file_okay=False),
              help="Continue an unfinished run directory from its last checkpoint (or complete its final "
                   "save and evaluation); only --data-root may be given with it.")
def fit(dataset: str, positives: int | None, protocol: str | None, seed: int | None,
        run_dir: str | None, resume: str | None, recipe: str | None, **flags: object) -> None:
    """Train end to end, then evaluate on the test split; prints the run directory."""
    from kerasdec.config import RunConfig

    if resume is not None:
        refuse_flags_with_resume(click.get_current_context())
        cfg = RunConfig()  # unused: the run's own config.json is
    else:
        try:
            cfg = build_fit_config(dataset, positives, protocol, seed, run_dir, recipe, **flags)
        except ValueError as err:
            raise click.UsageError(str(err)) from err
        if cfg.train.distribute == "multiworker":  # a bad TF_CONFIG fails before TensorFlow is imported
            from kerasdec.training.cluster import check_new_run

            check_new_run(cfg.run_dir)
    from kerasdec.training.fit import fit as fit_run

    out = fit_run(cfg, resume=resume, data_root=flags["root"] if resume else None)
    click.echo(str(out))


def refuse_flags_with_resume(ctx: click.Context) -> None:
    """--resume continues with the run's own settings: any flag but --data-root is a usage error."""
    given = [param for param in ctx.command.params if param.name not in ("resume", "root")
             and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE]
    if given:
        names = ["/".join(p.opts + p.secondary_opts) for p in given]
        raise click.UsageError(f"--resume continues a run with its own config.json (only --data-root may "
                               f"be given with it); drop {names}")


# -------------------------------------------------------------------------------------------- split
@main.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--to-json", "to_json", is_flag=True, required=True,
              help="Write SRC (a published pickle split file) as JSON to DST.")
def split(src: str, dst: str, to_json: bool) -> None:
    """Convert a split file: `kerasdec split --to-json SRC DST` (DST must not exist); prints DST.

    SRC is decoded without allowing any class or function (only lists, tuples, strings, ints, booleans
    and None), so no code from it runs.
    """
    from kerasdec.data.splits import to_json as convert

    click.echo(str(convert(src, dst)))


# ----------------------------------------------------------------------------------------- evaluate
@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data-root", type=click.Path(exists=True, file_okay=False),
              help="Dataset folder, when it is not where config.json says (moved data, another machine).")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="val = the split training validated on (test for datasets without one).")
@click.option("--model", "which", type=click.Choice(["best", "final"]),
              help=TESTED_HELP)
@click.option("--other-data", is_flag=True,
              help="Evaluate data whose samples are not the run's (samples.json); refused without it. The "
                   "result records its data root and never gives the model its threshold.")
def evaluate(run_dir: str, data_root: str | None, split: str, which: str, other_data: bool) -> None:
    """Evaluate a run into a new folder RUN_DIR/evaluate-<split>-<model>; prints that folder.

    The data must hold the samples the run used (samples.json), as with `fit --resume`.
    """
    from kerasdec.evaluation.evaluate import evaluate_run

    out = evaluate_run(run_dir, data_root=data_root, split=split, which=which,
                       other_data=other_data)  # faults: see Commands
    click.echo(str(out))


# ------------------------------------------------------------------------------------------ predict
@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.argument("inputs", metavar="IMAGE_OR_FOLDER...", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="New (or empty) folder for scores.csv and overlays/.")
@click.option("--threshold", type=click.FloatRange(0, 1),
              help="Decision threshold on the score (default: the model's stored one, else 0.5).")
@click.option("--width", type=click.IntRange(min=8),
              help="Input width: only for an old .keras file that does not record its size, or with "
                   "--allow-other-size.")
@click.option("--height", type=click.IntRange(min=8), help="Input height (see --width).")
@click.option("--allow-other-size", is_flag=True,
              help="Run a .keras model at --width x --height although it was trained at another size "
                   "(the scores change; refused without this flag).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS, help=MAX_PIXELS_HELP)
def predict(model: str, inputs: tuple[str, ...], out_dir: str, threshold: float | None, width: int | None,
            height: int | None, allow_other_size: bool, batch_size: int, max_pixels: int) -> None:
    """Score images with MODEL (run directory, .keras, SavedModel folder or .tflite); prints the out folder.

    Writes OUT/scores.csv (path, score, decision, overlay, error) and OUT/overlays/ (one heatmap overlay
    per image, at its original size). Unreadable files are reported, listed with their error and skipped.
    """
    from pathlib import Path

    from kerasdec.deploy.predict import predict as predict_images

    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars:
            stderr = click.get_text_stream("stderr")
            bars.append(click.progressbar(length=total, label="Scoring images", file=stderr))
        bars[0].update(done - bars[0].pos)

    if (width is None) != (height is None):
        raise click.UsageError("--width and --height go together")
    if allow_other_size and width is None:
        raise click.UsageError("--allow-other-size needs --width and --height (the size to run at)")
    if Path(model).suffix == ".tflite" and Path(model).is_file():  # what runners.load runs with LiteRT
        require_litert(f"MODEL {model} (a .tflite file)")
    try:
        out = predict_images(model, inputs, out_dir, threshold=threshold, width=width, height=height,
                             allow_other_size=allow_other_size, batch_size=batch_size, progress=progress,
                             max_pixels=max_pixels)
    finally:
        if bars:
            bars[0].render_finish()
    click.echo(str(out))


# ------------------------------------------------------------------------------------------- export
@main.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "base_dir", type=click.Path(file_okay=False), default="saved_models/segdec",
              show_default=True, help="Model base folder (TF Serving --model_base_path); versions go inside.")
@click.option("--version", type=click.IntRange(min=1),
              help="Integer version folder (default: 1 + the highest existing); never overwritten.")
@click.option("--tflite", "tflite_modes", type=click.Choice(TFLITE_MODES),
              multiple=True, help="Also convert to TFLite in this mode (repeatable; needs kerasdec[litert]). "
                                  "dynamic = int8 weights; int8 = calibrated on training images, "
                                  "FeatureNorm kept in float.")
@click.option("--model", "which", type=click.Choice(["best", "final"]),
              help=TESTED_HELP)
@click.option("--threshold", type=click.FloatRange(0, 1),
              help="Decision threshold to record (default: the one stored in the model).")
@click.option("--data-root", type=click.Path(exists=True, file_okay=False),
              help="Dataset folder for calibration and the self-check, when not where config.json says.")
@click.option("--width", type=click.IntRange(min=8),
              help="Input width, only for an old .keras file that does not record its size.")
@click.option("--height", type=click.IntRange(min=8), help="Input height (see --width).")
@click.option("--calibration-images", "calibration_count", type=click.IntRange(min=100), default=100,
              show_default=True, help="Training images that calibrate int8 (all when the split is smaller).")
@click.option("--check-images", "check_count", type=click.IntRange(min=1), default=200, show_default=True,
              help="Held-out images every artifact is checked on (all when the split is smaller).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=DEFAULT_MAX_PIXELS,
              help="The served signatures refuse an image of more pixels, serving_bytes from the file's "
                   f"header before decoding it (default {DEFAULT_MAX_PIXELS:,} = 50 MP).")
def export(source: str, base_dir: str, version: int | None, tflite_modes: tuple[str, ...], which: str,
           threshold: float | None, data_root: str | None, width: int | None, height: int | None,
           calibration_count: int, check_count: int, max_pixels: int) -> None:
    """Export SOURCE (a run directory or a .keras file) as a TF Serving SavedModel, optionally TFLite.

    Every artifact is checked against the Keras model on held-out images before the version is
    published; prints OUT/<version>/ first, then OUT/<version>/<name>_<mode>.tflite per --tflite.
    """
    from kerasdec.deploy.check import ExportCheckError
    from kerasdec.deploy.export import export_source

    if (width is None) != (height is None):
        raise click.UsageError("--width and --height go together")
    if given(click.get_current_context(), "calibration_count") and "int8" not in tflite_modes:
        raise click.UsageError("--calibration-images is only used by --tflite int8; add it or drop "
                               "--calibration-images")
    if tflite_modes:  # the self-check runs each .tflite with LiteRT: refuse before loading or converting
        require_litert(f"--tflite {'/'.join(dict.fromkeys(tflite_modes))}")
    try:
        written = export_source(source, base_dir, which=which, version=version, tflite_modes=tflite_modes,
                                threshold=threshold, data_root=data_root, width=width, height=height,
                                calibration_count=calibration_count, check_count=check_count,
                                max_pixels=max_pixels)
    except ExportCheckError as err:  # an artifact failed its self-check: nothing was published
        raise click.ClickException(" ".join(str(err).split())) from err
    for path in written.values():
        click.echo(str(path))


# -------------------------------------------------------------------------------------------- bench
def _parse_sizes(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple:
    sizes = []
    for value in values:
        parts = value.lower().split("x")
        if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
            raise click.BadParameter(f"{value!r}; expected WxH or WxHxC, e.g. 512x1408 or 232x640x3")
        sizes.append(tuple(int(p) for p in parts))
    return tuple(sizes)


@main.command()
@click.option("--dataset", type=click.Choice(["synthetic", "ksdd", "ksdd2", "dagm", "severstal", "folder"]),
              default="synthetic", show_default=True,
              help="Take the input width, height and channels of this dataset (nothing is read).")
@click.option("--width", type=click.IntRange(min=8), help="Input width (multiple of 8, >= 64).")
@click.option("--height", type=click.IntRange(min=8), help="Input height (multiple of 8, >= 64).")
@click.option("--channels", type=click.Choice(["1", "3"]), callback=lambda c, p, v: v and int(v),
              help="1 = grayscale, 3 = colour.")
@click.option("--size", "sizes", multiple=True, callback=_parse_sizes,
              help="WxH or WxHxC, repeatable (instead of --dataset/--width/--height).")
@click.option("--published", is_flag=True, help="Add every dataset's published input size.")
@click.option("--batch-size", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--precision", "precisions", multiple=True,
              type=click.Choice(["auto", "float32", "mixed_float16", "mixed_bfloat16"]),
              help="Repeatable, rows each (default auto: mixed_float16 on a GPU, else float32).")
@click.option("--jit/--no-jit", default=None, help="XLA compilation (default: on when a GPU is visible).")
@click.option("--xla-both", is_flag=True, help="Rows with XLA off AND on (not with --jit).")
@click.option("--steps", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed steps (and batches) per repeat.")
@click.option("--warmup", type=click.IntRange(min=0), default=2, show_default=True,
              help="Untimed steps after the first (tracing) call.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Repeats per row; the table gives the median.")
@click.option("--model/--no-model", default=True, show_default=True, help="Training-step and forward rows.")
@click.option("--pipeline/--no-pipeline", default=True, show_default=True, help="Input-pipeline rows.")
@click.option("--export/--no-export", default=False, show_default=True,
              help="SavedModel and TFLite (float32, float16, int8) rows; converting takes minutes.")
@click.option("--quick", is_flag=True, help="Smoke test: 64x64, batch 1, one step, one repeat, 4 images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the results to this new JSON file (never overwritten).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False),
              help="Also write the table to this new Markdown file (never overwritten).")
def bench(dataset: str, width: int | None, height: int | None, channels: int | None, sizes: tuple,
          published: bool, batch_size: int, precisions: tuple[str, ...], jit: bool | None, xla_both: bool,
          steps: int, warmup: int, repeats: int, model: bool, pipeline: bool, export: bool, quick: bool,
          json_path: str | None, markdown_path: str | None) -> None:
    """Time SegDecNet (training step, forward), the input pipeline and the exported files.

    Prints a Markdown table (medians over --repeats; FLOPs per image, achieved GFLOP/s and the share
    of this machine's measured matmul rate); see kerasdec/bench/suite.py for what each row times.
    """
    from pathlib import Path

    from kerasdec.presets import INPUTS

    ctx = click.get_current_context()
    refuse_together(ctx, "xla_both", ("jit",), "--xla-both times XLA off and on")
    refuse_together(ctx, "quick", ("steps", "warmup", "repeats", "batch_size", "sizes", "published", "width",
                                   "height"), "--quick fixes 64x64, batch 1, one step and one repeat")
    for path, flag in ((json_path, "--json"), (markdown_path, "--markdown")):
        if path is not None and Path(path).exists():
            raise click.ClickException(f"{flag} {path} already exists; choose a new file "
                                       "(results are never overwritten)")
        if path is not None:
            from kerasdec.files import check_writable

            check_writable(Path(path).absolute().parent, flag=flag)  # before minutes of benchmarking
    if export:  # the TFLite rows run the converted files with LiteRT
        require_litert("--export")
    given = {"width": width, "height": height, "channels": channels}
    default = {**INPUTS[dataset], **{k: v for k, v in given.items() if v is not None}}
    shapes = [(w, h, c or default["channels"]) for w, h, *c in sizes] or [
        (default["width"], default["height"], default["channels"])]
    if published:
        shapes += [(v["width"], v["height"], v["channels"]) for v in INPUTS.values()]
    if quick:
        shapes, batch_size, steps, warmup, repeats = [(64, 64, shapes[0][2])], 1, 1, 0, 1
    from kerasdec.config import DataConfig

    try:
        for w, h, c in shapes:  # flag errors before the slow tensorflow import
            DataConfig(width=w, height=h, channels=c)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    from kerasdec.bench.suite import SuiteConfig

    try:
        cfg = SuiteConfig(sizes=tuple(dict.fromkeys(shapes)), batch_size=batch_size,
                          precisions=precisions or ("auto",), jits=(False, True) if xla_both else (jit,),
                          steps=steps, warmup=warmup, repeats=repeats, model=model, pipeline=pipeline,
                          pipeline_images=4 if quick else 32, export=export)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    from kerasdec.bench.suite import markdown_table, run_suite
    from kerasdec.files import write_json, write_text

    result = run_suite(cfg)
    table = markdown_table(result)
    click.echo(table)
    for path, write, value in ((json_path, write_json, result), (markdown_path, write_text, table + "\n")):
        if path is not None:
            write(Path(path).resolve(), value, overwrite=False)
            click.echo(f"Wrote {path}")


if __name__ == "__main__":  # python -m kerasdec.cli
    main()
