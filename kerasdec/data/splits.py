"""Published split files (docs/datasets.md#published-split-files): read them safely, check their
shape, convert them to JSON.

The reference repository ships its splits as Python pickles (``splits/KSDD/split_<N>_<M>.pyb``,
``splits/KSDD2/split_<M>.pyb``, ``splits/DAGM/split_<M>.pyb``, ``splits/STEEL/split_<N>_<M>.pyb``).
A pickle can run any code while it is decoded, so kerasdec reads them with :class:`SafeUnpickler`,
which refuses EVERY global (class or function): only lists, tuples, strings, ints, booleans and None
can come out of it, and a file that asks for anything else is a ValueError naming the file; no code
from it runs.

The JSON form holds the same structure, tuples written as 2-element lists (``kerasdec split --to-json``
writes it)::

    KSDD       [train_folds, test_folds]           3 lists each of ["kos01", true], ...
    KSDD2      [train, test]                        lists of [10000, true], ...
    DAGM       [train_by_class, test_by_class]      10 lists each of ["0576.PNG", false], ...
    Severstal  [train, test, validation]            lists of ["0002cc93b", true], ...

The boolean says whether the entry's pixel labels are used (segmented); it only matters for positives
(negatives always train segmentation against an all-zero target).

A split file comes from the internet, so its sizes are bounded before and while it is decoded: at most
MAX_FILE_BYTES, about MAX_VALUES values (counted in the file's opcodes or JSON tokens before anything
is built), lists nested at most MAX_DEPTH deep (measured before ``json.loads``, which recurses per
level), names of at most MAX_NAME_CHARS characters, integers of 64 bits; messages quote entries cut to
a readable length (kerasdec/echo.py). Every name it gives
reaches the disk through :func:`resolve_name` only: a name must stay under the data root.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from kerasdec.echo import shown

ALLOWED = "lists, tuples, strings, ints, booleans and None"
PICKLE_SUFFIXES = (".pyb", ".pkl", ".pickle")
MAX_FILE_BYTES = 8 * 2**20  # the largest published split file (Severstal) is under 1 MB
MAX_DEPTH = 6  # nesting levels of lists; the deepest layout (KSDD, DAGM) uses 4
MAX_VALUES = 1_000_000  # values in a file (the largest published file holds about 40,000)
MAX_NAME_CHARS = 255  # characters of a string: a file or folder name
MAX_INT = 2**63 - 1  # |integer| in a file (KolektorSDD2 ids are 5 digits)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class Shape:
    """The structure a dataset's split file must have."""

    parts: tuple[str, ...]  # the top-level lists, in order (kerasdec split names)
    groups: int  # 0 = each part is a list of entries; k = each part holds k lists (folds, classes)
    key_type: type  # type of an entry's first element
    text: str  # how the message names the expected shape


SHAPES: dict[str, Shape] = {
    "ksdd": Shape(("train", "test"), 3, str,
                  "[train_folds, test_folds], each a list of 3 lists of (kos_folder, segmented)"),
    "ksdd2": Shape(("train", "test"), 0, int, "[train, test], lists of (image_id int, segmented)"),
    "dagm": Shape(("train", "test"), 10, str,
                  "[train_by_class, test_by_class], each a list of 10 lists of (file_name, segmented)"),
    "severstal": Shape(("train", "test", "val"), 0, str,
                       "[train, test, validation], lists of (image_id without .jpg, segmented)"),
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that allows no global at all: only built-in containers and scalars decode."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        raise ValueError(f"{self.path}: the split file asks for class {module}.{name}; split files may "
                         f"only hold {ALLOWED}")

    def persistent_load(self, pid: Any) -> Any:
        raise ValueError(f"{self.path}: the split file asks for a persistent object; split files may only "
                         f"hold {ALLOWED}")


def read_raw(path: Path | str) -> Any:
    """Decode a split file (pickle or JSON, by extension, else by content) without checking its shape.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not decodable, a pickle asking for any class or function (no code runs), or a file
            over one of the bounds of the module docstring (message says which).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found; expected a published split file "
                                "(splits/<DATASET>/split_*.pyb) or its JSON form")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: the split file is {size:,} bytes; split files are at most "
                         f"{MAX_FILE_BYTES:,} bytes (the published ones are under 1 MB)")
    data = path.read_bytes()
    if path.suffix.lower() == ".json" or (path.suffix.lower() not in PICKLE_SUFFIXES
                                          and data.lstrip()[:1] in (b"[", b"{")):
        _check_json_size(data, path)
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err}); expected a split file's JSON form") from err
    else:
        try:
            _check_pickle_size(data, path)
            value = SafeUnpickler(io.BytesIO(data), path).load()
        except ValueError:
            raise
        except Exception as err:  # any malformed pickle: truncated, bad opcode, ...
            raise ValueError(f"{path}: not a readable split file ({type(err).__name__}: "
                             f"{shown(str(err))}); expected a pickle holding only {ALLOWED}, or its JSON "
                             "form") from err
    _check_values(value, path)
    return value


def _too_many(path: Path) -> ValueError:
    return ValueError(f"{path}: the split file holds more than {MAX_VALUES:,} values; expected a published "
                      "split file (the largest holds about 40,000)")


def _too_deep(path: Path) -> ValueError:
    return ValueError(f"{path}: the split file nests lists more than {MAX_DEPTH} levels deep; expected at "
                      f"most {MAX_DEPTH} (the published layouts use 4)")


def _check_json_size(data: bytes, path: Path) -> None:
    """Count JSON values and measure the nesting before decoding (json.loads recurses per level)."""
    tokens = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)  # brackets inside strings gone
    opening = np.isin(tokens, (ord("["), ord("{")))
    if int(opening.sum()) + int((tokens == ord(",")).sum()) > 2 * MAX_VALUES:
        raise _too_many(path)
    steps = opening.astype(np.int64) - np.isin(tokens, (ord("]"), ord("}")))
    if steps.size and int(np.cumsum(steps).max()) > MAX_DEPTH:
        raise _too_deep(path)


def _check_pickle_size(data: bytes, path: Path) -> None:
    """Count the pickle's opcodes before anything is built (a few bytes can build a million lists)."""
    for count, _ in enumerate(pickletools.genops(data)):
        if count > 3 * MAX_VALUES:
            raise _too_many(path)


def _check_values(value: Any, path: Path) -> None:
    """Only ALLOWED types, within the bounds of the module docstring; walked without recursion (a pickle
    can nest 100,000 deep, refer to a list inside itself, or share one list a million times)."""
    stack, seen = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise _too_many(path)
        if isinstance(item, (list, tuple)):
            if depth >= MAX_DEPTH:
                raise _too_deep(path)
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and len(item) > MAX_NAME_CHARS:
            raise ValueError(f"{path}: the split file holds the name {shown(item)}; expected names of at "
                             f"most {MAX_NAME_CHARS} characters (a file or folder name)")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise ValueError(f"{path}: the split file holds the integer {shown(item)}; expected 64-bit ids")
        elif item is not None and not isinstance(item, (str, int)):  # bool is an int
            # No global is needed for dicts, sets, bytes or floats either: refuse them.
            raise ValueError(f"{path}: the split file holds a {type(item).__name__}; split files may only "
                             f"hold {ALLOWED}")


def read_split_file(path: Path | str, dataset: str) -> dict[str, list]:
    """Read and check a split file of ``dataset``.

    Returns:
        {split: entries} with split in "train"/"test"/"val" (Severstal); entries are lists of
        (key, segmented) for ksdd2/severstal, and lists of ``groups`` such lists for ksdd/dagm.

    Raises:
        ValueError: a dataset without split files, or a file of another shape (the message says which
            shape was expected).
    """
    if dataset not in SHAPES:
        raise ValueError(f"{path}: split files are read for datasets {sorted(SHAPES)}; "
                         f"dataset={shown(dataset)} has none (drop --split-file)")
    shape, raw = SHAPES[dataset], read_raw(path)
    where = f"{path}: not a {dataset} split file"
    if not isinstance(raw, (list, tuple)) or len(raw) != len(shape.parts):
        raise ValueError(f"{where} (top level is {_describe(raw)}); expected {shape.text}")
    out = {}
    for name, part in zip(shape.parts, raw):
        if shape.groups:
            if not isinstance(part, (list, tuple)) or len(part) != shape.groups:
                raise ValueError(f"{where} ({name} part is {_describe(part)}); expected {shape.text}")
            out[name] = [_entries(group, shape, where) for group in part]
        else:
            out[name] = _entries(part, shape, where)
    return out


def _entries(items: Any, shape: Shape, where: str) -> list[tuple[Any, bool]]:
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{where} (found {_describe(items)} where a list of entries belongs); "
                         f"expected {shape.text}")
    entries = []
    for item in items:
        ok = (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], bool)
              and isinstance(item[0], shape.key_type) and not isinstance(item[0], bool))
        if not ok:
            raise ValueError(f"{where} (entry {shown(item)}); expected {shape.text}")
        entries.append((item[0], item[1]))
    return entries


def _describe(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def entries_for(path: Path | str, dataset: str, split: str,
                group: int | None = None) -> list[tuple[Any, bool]]:
    """The (key, segmented) entries of one split; ``group`` = KSDD fold 0..2 or DAGM class 1..10.

    ``split`` "val" of a dataset without a validation part gives its "test" part.
    """
    parts = read_split_file(path, dataset)
    part = parts.get(split, parts["test"])
    if SHAPES[dataset].groups:
        index = group if dataset == "ksdd" else int(group) - 1
        part = part[index]
    return part


def resolve_name(root: Path | str, base: Path | str, name: Any, split_file: Path | str,
                 suffix: str = "") -> Path:
    """The file or folder a split file's entry names: ``base/<name><suffix>`` with every link resolved,
    refused unless it stays under ``root``. The one way a name from a split file reaches the disk.

    Args:
        root: the data root (--data-root); the resolved path must lie inside it.
        base: the folder the dataset's names are relative to (the root, or a split folder under it).
        name: the entry's name (an int id is turned into its text).
        split_file: the file the name comes from, for the message.
        suffix: appended to the name (the dataset's file extension, when names leave it out).

    Returns:
        The resolved path (it need not exist).

    Raises:
        ValueError: an empty name, one holding a NUL byte, an absolute name, or one whose resolved path
            leaves ``root`` (through ``..`` or a symbolic link); one line naming the entry.

    Example:
        >>> resolve_name("data/KSDD", "data/KSDD", "kos01", "split_10_10.pyb")
        PosixPath('/home/me/data/KSDD/kos01')
    """
    text, root = str(name), Path(root).resolve()
    where = f"{split_file}: entry {shown(name)}"
    if not text or "\0" in text:
        raise ValueError(f"{where} is not a file or folder name; expected a name under the data root {root}")
    if PurePath(text).is_absolute():
        raise ValueError(f"{where} is an absolute path; expected a name relative to the data root {root} "
                         "(a split file only names files under --data-root)")
    try:
        target = (Path(base) / f"{text}{suffix}").resolve()
    except (OSError, RuntimeError) as err:  # a loop of symbolic links
        raise ValueError(f"{where} cannot be resolved ({err}); expected a name under the data root "
                         f"{root}") from err
    if target != root and root not in target.parents:
        raise ValueError(f"{where} resolves to {target}, outside the data root {root} (through '..' or a "
                         "symbolic link); expected a name under --data-root (a split file only names files "
                         "inside it)")
    return target


def to_json(src: Path | str, dst: Path | str) -> Path:
    """Write a split file's structure as JSON (tuples as lists); ``dst`` must not exist.

    Raises:
        FileExistsError: ``dst`` exists (never overwritten).
        ValueError: ``src`` is not a readable split file (see :func:`read_raw`).
    """
    from kerasdec.files import write_text

    dst = Path(dst).resolve()
    if dst.exists():
        raise FileExistsError(f"{dst}: already exists; choose a new file (split files are never overwritten)")
    text = json.dumps(read_raw(src))
    return write_text(dst, text + "\n", overwrite=False)
