"""Published split files (METHOD.md §6): read them safely, check their shape, convert them to JSON.

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
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALLOWED = "lists, tuples, strings, ints, booleans and None"
PICKLE_SUFFIXES = (".pyb", ".pkl", ".pickle")


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
        ValueError: not decodable, or a pickle asking for any class or function (no code runs).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found; expected a published split file "
                                "(splits/<DATASET>/split_*.pyb) or its JSON form")
    data = path.read_bytes()
    if path.suffix.lower() == ".json" or (path.suffix.lower() not in PICKLE_SUFFIXES
                                          and data.lstrip()[:1] in (b"[", b"{")):
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err}); expected a split file's JSON form") from err
    try:
        value = SafeUnpickler(io.BytesIO(data), path).load()
    except ValueError:
        raise
    except Exception as err:  # any malformed pickle: truncated, bad opcode, ...
        raise ValueError(f"{path}: not a readable split file ({type(err).__name__}: {err}); expected a "
                         f"pickle holding only {ALLOWED}, or its JSON form") from err
    _check_types(value, path)
    return value


def _check_types(value: Any, path: Path) -> None:
    """Only ALLOWED types (no global is needed for dicts, sets, bytes or floats either: refuse them)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_types(item, path)
    elif value is not None and not isinstance(value, (str, int)):  # bool is an int
        raise ValueError(f"{path}: the split file holds a {type(value).__name__}; split files may only "
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
        raise ValueError(f"{path}: split files are read for datasets {sorted(SHAPES)}; dataset={dataset!r} "
                         "has none (drop --split-file)")
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
            raise ValueError(f"{where} (entry {item!r}); expected {shape.text}")
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
