"""``kerasdec export``: a run (or a .keras file) → one checked TF Serving version, with TFLite files.

Layout: ``base_dir/<version>/`` holds saved_model.pb, variables/, metadata.json,
assets.extra/tf_serving_warmup_requests (with the ``serving`` extra) and, per ``--tflite`` mode,
``<base name>_<mode>.tflite`` with ``<base name>_<mode>.metadata.json`` (TF Serving reads only the
SavedModel files there).

A version is published all at once or not at all: everything the export needs (model file, data
root, calibration and held-out images) is checked first; the whole version is then built in a hidden
``.tmp-<pid>-...`` folder beside the versions (TF Serving only loads integer names), every artifact
passes its self-check (kerasdec/deploy/check.py), and only then is the folder renamed to its integer
version. A failure or a kill leaves no servable version, and the next export into the same base folder
removes what a killed one left: each export holds an exclusive lock (``flock``) on its own
``.tmp-<pid>-<id>.lock`` file while it runs, which the kernel releases when the process ends, however
it ends; hidden folders whose lock file is free are removed, those whose lock is held (an export still
running, on this machine or another one sharing the folder) are kept. Hidden folders without a lock
file (left by an older kerasdec) are removed once their process is gone and they are older than
``STALE_AFTER_S``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kerasdec.config import DEFAULT_MAX_PIXELS
from kerasdec.deploy import data as export_data
from kerasdec.determinism import deterministic
from kerasdec.files import TMP_PREFIX, fsync_dir, read_json, remove, write_json
from kerasdec.inference.contract import METADATA_FILE, ModelInfo
from kerasdec.rundir import compare_samples, model_path, read_run_config, tested_model

logger = logging.getLogger(__name__)

STALE_AFTER_S = 600  # a hidden folder WITHOUT a lock file (older kerasdec), process gone: removed after this
LOCK_SUFFIX = ".lock"  # <token>.lock: held (flock) by the export that writes <token>-* while it runs


@deterministic()  # the same inputs give the same scores, whatever the load
def export_source(source: Path | str, base_dir: Path | str, *, which: str | None = None,
                  version: int | None = None, tflite_modes: Sequence[str] = (),
                  threshold: float | None = None, data_root: Path | str | None = None,
                  width: int | None = None, height: int | None = None,
                  calibration_count: int = export_data.MIN_CALIBRATION,
                  check_count: int = export_data.DEFAULT_CHECK_IMAGES,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Path]:
    """Export ``source`` as SavedModel version ``base_dir/<version>`` plus one .tflite per mode.

    Args:
        source: a run directory (config.json + model_<which>.keras) or a .keras file.
        base_dir: the model base path (TF Serving ``--model_base_path``); created if missing.
        which: "final" or "best" (run directories); None = the model the run's test evaluation used.
        version: integer version (>= 1); None = 1 + the highest existing one. Never overwritten.
        tflite_modes: modes of kerasdec.deploy.tflite.MODES; dynamic and int8 need a run directory.
        threshold: the decision threshold to record; None = the one of the run's own test evaluation of
            the model (inference/threshold.py ``export_threshold``; never a default).
        data_root: the dataset folder when it is not where the run's config.json says.
        width: input width, only for an old .keras file that does not record its size.
        height: likewise the height.
        calibration_count: int8 calibration images (>= 100, or the whole training split).
        check_count: held-out images of the self-check (all when fewer).
        max_pixels: the served signatures refuse images of more pixels (serving_bytes: declared by the
            file's header, before decoding).

    Returns:
        {"saved_model": version folder, <mode>: .tflite path, ...}.

    Raises:
        FileExistsError: the version exists. FileNotFoundError: source or data missing.
        kerasdec.deploy.runtimes.MissingRuntimeError: TFLite modes without ai-edge-litert (checked first).
        ValueError: bad arguments, a model that is not a kerasdec model, data the export cannot use, no
            threshold (none given, none carried, no evaluation of the run's own data).
        kerasdec.deploy.check.ExportCheckError: an artifact failed its self-check (nothing published).
        OSError: a write failed (disk full, read-only folder); nothing published.

    Example:
        >>> export_source("runs/synthetic-1", "saved_models/segdec", tflite_modes=["float16", "int8"])
    """
    from kerasdec.deploy.tflite import MODES, QUANTISED

    modes = tuple(dict.fromkeys(tflite_modes))
    unknown = [m for m in modes if m not in MODES]
    if unknown or (version is not None and (isinstance(version, bool) or int(version) < 1)):
        raise ValueError(f"tflite modes {unknown or list(modes)} / version {version!r}; expected modes from "
                         f"{MODES} and an integer version >= 1")
    if modes:  # the self-check runs each .tflite with LiteRT: refuse before loading or converting
        from kerasdec.deploy.runtimes import require_litert

        require_litert(f"--tflite {'/'.join(modes)}")
    model_file = _model_file(source, which)
    cfg = read_run_config(model_file.parent)
    if cfg is None and any(m in QUANTISED for m in modes):
        raise ValueError(f"--tflite {'/'.join(m for m in modes if m in QUANTISED)} needs the training and "
                         f"held-out images of a run, but {model_file} has no config.json beside it; "
                         "export the run directory instead")
    from kerasdec.inference import runners
    from kerasdec.inference.threshold import export_threshold
    from kerasdec.models.saving import read_model_config

    carried = read_model_config(model_file).get("threshold")  # a truncated or foreign file fails first
    base = prepare_base(base_dir, version)
    calibration, held_out = _export_images(cfg, data_root, modes, calibration_count, check_count)
    threshold, origin = export_threshold(model_file, carried, threshold)  # never a default
    size = (height, width) if height and width else None
    keras = runners.load(model_file, threshold=threshold, size_hw=size)
    info = dataclasses.replace(keras.info, dataset=cfg.data.dataset if cfg is not None else None,
                               threshold_from=origin, max_pixels=int(max_pixels))
    logger.info("decision threshold %.6g from %s", threshold, origin)
    held_out = held_out or export_data.probe_images(info.height, info.width, info.channels)
    extra = {"source": str(Path(source).resolve()), "model_file": str(model_file.resolve()),
             **_data_record(cfg, data_root, model_file.parent, modes)}
    return _build_and_publish(keras.model, info, base, version, modes, calibration, held_out, extra)


def _export_images(cfg: Any, data_root: Path | str | None, modes: Sequence[str], calibration_count: int,
                   check_count: int) -> tuple[np.ndarray | None, export_data.HeldOut | None]:
    """Calibration images (int8) and held-out images of a run, decoded now: data errors come first."""
    from kerasdec.deploy.tflite import CALIBRATED

    if cfg is None:
        return None, None
    data_cfg = export_data.data_config(cfg, data_root)
    try:
        calibration = (export_data.calibration_images(data_cfg, cfg.seed, calibration_count)
                       if any(m in CALIBRATED for m in modes) else None)
        return calibration, export_data.held_out_images(data_cfg, cfg.seed, check_count)
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"{err} (export checks every artifact on the run's held-out images; pass --data-root "
                        "when the data moved)") from err


def _data_record(cfg: Any, data_root: Path | str | None, run_dir: Path,
                 modes: Sequence[str]) -> dict[str, Any]:
    """What data calibrated and checked the export: its root, and whether it holds the run's own samples
    (samples.json; a warning when it does not: int8 calibrated on other data ships other weights)."""
    from kerasdec.data.sources import load_split, validation_split
    from kerasdec.deploy.tflite import CALIBRATED

    if cfg is None:
        return {}
    data_cfg = export_data.data_config(cfg, data_root)
    splits = [validation_split(data_cfg)] + (["train"] if any(m in CALIBRATED for m in modes) else [])
    found = {split: [[s.name, s.is_positive, s.is_segmented] for s in load_split(data_cfg, split, cfg.seed)]
             for split in splits}
    own, difference = compare_samples(run_dir, found, data_cfg.root)
    if own is False:
        logger.warning("%s. The export calibrates and checks on it anyway; metadata.json records its root "
                       "and run_data false", difference)
    return {"data_root": data_cfg.root, "run_data": own}


def prepare_base(base_dir: Path | str, version: int | None) -> Path:
    """Create the base folder, refuse an existing version, remove stale hidden folders.

    Raises:
        FileExistsError: ``version`` exists (never overwritten).
        OSError: the base folder cannot be created or written (message names it).
    """
    base = Path(base_dir).resolve()
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"--out {base} is a file; expected a folder for the model's versions")
    base.mkdir(parents=True, exist_ok=True)
    if not writable(base):
        raise PermissionError(f"--out {base} is not writable; expected a folder kerasdec can write "
                              "versions into")
    if version is not None and (base / str(version)).exists():
        raise FileExistsError(f"version folder {base / str(version)} already exists; exporting never "
                              "overwrites: pass another --version or leave it out")
    clean_stale(base)
    return base


def clean_stale(base: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove what killed exports left in ``base`` (hidden ``.tmp-<pid>-<id>-...`` entries); returns them.

    The entries of one export share its token ``.tmp-<pid>-<id>``. They are stale when the token's lock
    file exists and no process holds its lock (the export ended without cleaning up: a kill, a crash).
    Without a lock file (an older kerasdec), when the pid no longer runs and the entry was last modified
    more than ``older_than_s`` seconds ago (a name without a pid only needs the age).
    """
    removed = []
    for path in sorted(base.glob(f"{TMP_PREFIX}*")):
        token = _token(path.name)
        lock = base / f"{token}{LOCK_SUFFIX}"
        if lock.exists():
            stale = path != lock and not _lock_held(lock)
        else:
            pid = token[len(TMP_PREFIX):].split("-", 1)[0]
            try:
                age = time.time() - path.lstat().st_mtime
            except OSError:
                continue
            stale = not (pid.isdigit() and _process_alive(int(pid))) and age > older_than_s
        if stale:
            remove(path)
            removed.append(path)
            logger.warning("removed %s, left by an export that did not finish", path)
    for lock in base.glob(f"{TMP_PREFIX}*{LOCK_SUFFIX}"):  # a dead export's lock, once its folders are gone
        if not any(p != lock for p in base.glob(f"{_token(lock.name)}*")) and not _lock_held(lock):
            lock.unlink(missing_ok=True)
    return removed


def _token(name: str) -> str:
    """``.tmp-<pid>-<id>`` of a hidden entry's name (the whole name when it has no such parts)."""
    parts = name[len(TMP_PREFIX):].split("-")
    return f"{TMP_PREFIX}{parts[0]}-{parts[1][:8]}" if len(parts) > 1 else name.removesuffix(LOCK_SUFFIX)


def _lock_held(lock: Path) -> bool:
    """Whether a process holds the flock of ``lock`` (False when the file is gone or the lock is free)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we took it
    return False


@contextlib.contextmanager
def export_lock(lock: Path) -> Iterator[None]:
    """Hold an exclusive flock on the new file ``lock`` while the block runs; remove it afterwards.

    The kernel releases the lock when the process ends, however it ends, so ``clean_stale`` can tell
    the leftovers of a killed export from the folders of one still running.
    """
    fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def next_version(base: Path) -> int:
    """1 + the highest integer-named folder in ``base`` (1 when there is none)."""
    if not base.is_dir():
        return 1
    return max((int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()), default=0) + 1


def _build_and_publish(model: Any, info: ModelInfo, base: Path, version: int | None, modes: Sequence[str],
                       calibration: np.ndarray | None, held_out: export_data.HeldOut,
                       extra: dict[str, Any]) -> dict[str, Path]:
    token = f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging, work = base / f"{token}-version", base / f"{token}-tflite-source"
    with export_lock(base / f"{token}{LOCK_SUFFIX}"):  # clean_stale keeps our folders while we run
        try:
            artifacts = build_version(model, info, staging, work, base.name, modes, calibration, held_out,
                                      extra)
            final = publish(staging, base, version)
        finally:
            remove(staging)
            remove(work)
    logger.info("exported version %s (%s)", final, ", ".join(["SavedModel", *modes]))
    return {"saved_model": final, **{mode: final / path.name for mode, path in artifacts.items()}}


def build_version(model: Any, info: ModelInfo, staging: Path, work: Path, name: str, modes: Sequence[str],
                  calibration: np.ndarray | None, held_out: export_data.HeldOut,
                  extra: dict[str, Any]) -> dict[str, Path]:
    """Write and self-check every artifact of one version into ``staging``; returns the .tflite paths."""
    from kerasdec.deploy import check, tflite
    from kerasdec.deploy.saved_model import write_saved_model
    from kerasdec.deploy.warmup import write_warmup
    from kerasdec.inference.runners import KerasRunner, SavedModelRunner, TFLiteRunner, predict_batches

    write_saved_model(model, staging, info, extra)
    reference, _ = predict_batches(KerasRunner(model, info), held_out.batches)

    def checked(artifact: str, runner: Any) -> dict[str, Any]:
        scores, _ = predict_batches(runner, held_out.batches)
        report = check.compare(artifact, scores, reference, held_out.labels, info.threshold,
                               held_out.description)
        return check.require_passed(report).to_dict()

    reports = {"saved_model": checked("saved_model", SavedModelRunner(staging, info))}
    written = {}
    if modes:
        tflite.write_fixed_saved_model(model, info, work)
    for mode in modes:
        path = staging / f"{name}_{mode}.tflite"
        path.write_bytes(tflite.convert(work, mode, calibration))
        meta = {**read_json(staging / METADATA_FILE), "format": "tflite", "mode": mode,
                "input_shape": [1, info.height, info.width, info.channels],
                "tflite_outputs": {"score": "(1,)", "decision": "(1,)", "seg": "(1, H/8, W/8)"}}
        write_json(path.with_name(f"{path.stem}.metadata.json"), meta)
        meta["self_check"] = reports[mode] = checked(mode, TFLiteRunner(path, info))
        write_json(path.with_name(f"{path.stem}.metadata.json"), meta)
        written[mode] = path
    write_warmup(staging, info)
    write_json(staging / METADATA_FILE, {**read_json(staging / METADATA_FILE), "self_check": reports,
                                         "tflite": sorted(p.name for p in written.values())})
    return written


def publish(staging: Path, base: Path, version: int | None) -> Path:
    """Rename the checked ``staging`` folder to its integer version: the one moment it becomes servable.

    Raises:
        FileExistsError: ``version`` appeared meanwhile (an automatic version tries the next one).
    """
    staging.chmod(0o755)  # readable by a TF Serving that runs as another user
    for _ in range(100):
        number = version if version is not None else next_version(base)
        final = base / str(number)
        if not final.exists():
            try:
                os.rename(staging, final)
                fsync_dir(base)
                return final
            except OSError:
                if not final.exists():
                    raise
        if version is not None:
            raise FileExistsError(f"version folder {final} appeared during the export; not overwritten")
    raise FileExistsError(f"could not find a free version number in {base}")


def _model_file(source: Path | str, which: str | None) -> Path:
    path = Path(source)
    which = tested_model(path) if which is None and path.is_dir() else which or "final"
    if which not in ("final", "best"):
        raise ValueError(f"which={which!r}; expected 'final' or 'best'")
    model_file = model_path(path, which) if path.is_dir() else path
    if not model_file.is_file() or model_file.suffix != ".keras":
        raise FileNotFoundError(f"{model_file} not found; expected a run directory (config.json + "
                                f"model_{which}.keras) or a .keras file")
    return model_file


def writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (root passes unless the mount is read-only)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True
