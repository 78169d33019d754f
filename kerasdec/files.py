"""Crash-safe files: every file kerasdec writes goes through :func:`atomic_path` (or the helpers
built on it), and JSON is read back with one clear error.

A file (or a folder) is written under a hidden temporary name in the same folder, flushed to disk,
and renamed onto its final name, so a kill or power loss at any moment leaves either the old file or
the new one, never a truncated one. The lowest floor of the package: imports nothing of kerasdec and
no tensorflow (OpenCV only inside :func:`write_image`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # hidden temporary names; never a final name


def _temporary_name(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")


def _fsync(path: Path) -> None:
    """Flush a file, or every file of a folder, and the folder entries themselves, to disk."""
    targets = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for target in targets:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(path if path.is_dir() else path.parent)


def fsync_dir(folder: Path | str) -> None:
    """fsync a folder so a rename inside it survives a power loss (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path | str, *, overwrite: bool = True, size_hint: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move it onto ``path``.

    The caller writes a file (or a folder) at the yielded path. On success it is flushed to disk and
    renamed onto ``path`` in one step; on any error (disk full, kill, exception) the temporary is
    removed and ``path`` is untouched. The temporary keeps ``path``'s suffix (``model.save`` needs it).

    Args:
        path: the final path.
        overwrite: replace an existing file at ``path`` (default). False: raise FileExistsError when
            ``path`` exists at the end, never replacing it (for files that are never overwritten).
            A folder written at the temporary path is never replaced, whatever ``overwrite`` says.
        size_hint: about how many bytes the write needs, quoted when the disk is full.

    Raises:
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        OSError: the write or the rename failed (e.g. no space left, read-only folder); the message
            names ``path`` (and, for a full disk, the space needed and free).

    Example:
        >>> with atomic_path(run_dir / "model_final.keras") as tmp:
        ...     model.save(tmp)
    """
    path = Path(path)
    tmp = _temporary_name(path)
    try:
        _check_space(path, size_hint)
        yield tmp
        _publish(tmp, path, overwrite)
    except FileExistsError:
        raise
    except OSError as err:  # disk full, read-only or immutable folder, I/O error (h5py's included)
        raise write_error(err, path, size_hint) from err
    finally:
        remove(tmp)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Flush ``tmp`` to disk and rename it onto ``path`` (see :func:`atomic_path`)."""
    if not tmp.exists():
        raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
    _fsync(tmp)
    if tmp.is_dir():  # folders are never replaced: rename fails onto a non-empty one
        if path.exists():
            raise FileExistsError(f"{path} already exists; it is never overwritten")
        os.rename(tmp, path)
    elif overwrite:
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # fails if path exists: no window where it could be clobbered
        except FileExistsError as err:
            raise FileExistsError(f"{path} already exists; it is never overwritten") from err
    fsync_dir(path.parent)


def _check_space(path: Path, size_hint: int | None) -> None:
    """Fail before writing when the disk has less free space than ``size_hint`` bytes.

    Cheaper and cleaner than failing half-way: h5py, for one, then also prints errors while closing.
    """
    free = _free_bytes(path.parent)
    if size_hint and free is not None and free < size_hint:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def write_error(err: OSError, path: Path | str, size_hint: int | None = None) -> OSError:
    """An OSError of the same kind whose message names ``path`` and, for a full disk, the space.

    h5py reports a full disk as a plain OSError whose long text holds "No space left on device": it
    is recognised by that text and given errno ENOSPC.
    """
    if getattr(err, "names_path", False):  # already says which path (a write nested in another)
        return err
    reason = err.strerror or str(err)
    code = err.errno
    if code is None and "No space left on device" in str(err):
        code = errno.ENOSPC
    if code == errno.ENOSPC:
        reason = os.strerror(errno.ENOSPC)
    message = f"Could not write {path}: {reason}"
    if code == errno.ENOSPC:
        free = _free_bytes(Path(path).parent)
        needed = f"about {size_hint / 1e6:.0f} MB needed, " if size_hint else ""
        message += f" ({needed}{'unknown' if free is None else f'{free / 1e6:.0f} MB'} free there)"
    wrapped = OSError(code, message) if code is not None else OSError(message)
    wrapped.names_path = True
    return wrapped


def _free_bytes(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return None


def remove_temporaries(folder: Path | str) -> list[str]:
    """Delete what killed writers left in ``folder``: entries named TMP_PREFIX*; returns their names.

    Only for folders no other process writes into (a run being resumed).
    """
    folder = Path(folder)
    stale = sorted(p for p in folder.glob(f"{TMP_PREFIX}*")) if folder.is_dir() else []
    for path in stale:
        remove(path)
    return [p.name for p in stale]


def check_writable(folder: Path | str, flag: str = "--run-dir") -> None:
    """Create ``folder`` if needed and write and delete a probe file in it (root ignores permission
    bits and ``chattr +i`` folders refuse root too, so ``os.access`` cannot tell).

    Args:
        folder: where output will go.
        flag: the option that chooses it, named in the message.

    Raises:
        OSError: the folder cannot be created or written (read-only disk, permissions, immutable).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = _temporary_name(folder / "probe")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise OSError(err.errno, f"Cannot write into {folder}: {err.strerror or err}; expected a "
                      f"writable folder (choose another with {flag})") from err


def write_bytes(path: Path | str, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path | str, text: str, *, overwrite: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def write_json(path: Path | str, value: Any, *, overwrite: bool = True) -> Path:
    """Write ``value`` as indented JSON to ``path`` atomically; returns ``path``."""
    return write_text(path, json.dumps(value, indent=2) + "\n", overwrite=overwrite)


def read_json(path: Path | str) -> Any:
    """Read a JSON file; a corrupt one is a ValueError naming the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid UTF-8 JSON (message names the file and the position).
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError as err:  # json.loads recurses per level of nesting
        raise ValueError(f"{path} nests its values too deeply to be read; expected the file kerasdec wrote — "
                         "restore it or start a new run") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); expected the file kerasdec wrote — "
                         "restore it or start a new run") from err


def new_folder(parent: Path, name: str) -> Path:
    """Create and return parent/name, or parent/name-2, -3, ... if taken (never reuses a folder)."""
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        candidate = parent / (name if k == 1 else f"{name}-{k}")
        try:
            candidate.mkdir(parents=False)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent / name} and 9,998 numbered variants exist; remove some")


def write_image(path: Path | str, image: Any, *, overwrite: bool = True) -> Path:
    """Encode ``image`` (uint8, (H, W) grey or (H, W, 3) BGR) by ``path``'s suffix (.png, .jpg, .bmp, ...)
    and write it atomically, creating the folder; returns ``path``.

    Raises:
        ValueError: OpenCV cannot encode the image for that suffix.
        OSError: the write failed (message names the path).
    """
    import cv2

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise ValueError(f"could not encode an image of shape {getattr(image, 'shape', '?')} as {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bytes(path, encoded.tobytes(), overwrite=overwrite)
