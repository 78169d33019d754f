"""How the dataset sources test what they list: a broken symbolic link is an error, never left out.

``Path.is_file()`` is False for a link whose target is gone, so a lister that filters with it drops
the image without a word and trains on fewer images than the user has. Every source filters the
entries of its folders with :func:`is_file` / :func:`is_dir` below instead, which raise for a broken
link (one line naming it and its target).
"""

from __future__ import annotations

import os
from pathlib import Path


def broken_link(path: Path) -> FileNotFoundError:
    """The error for a broken symbolic link among a dataset's files."""
    return FileNotFoundError(f"{path} is a broken symbolic link (to {os.readlink(path)}); expected an "
                             "image file or folder: restore its target or remove the link")


def is_file(path: Path) -> bool:
    """``path.is_file()``, raising FileNotFoundError for a broken symbolic link."""
    if path.is_symlink() and not path.exists():
        raise broken_link(path)
    return path.is_file()


def is_dir(path: Path) -> bool:
    """``path.is_dir()``, raising FileNotFoundError for a broken symbolic link."""
    if path.is_symlink() and not path.exists():
        raise broken_link(path)
    return path.is_dir()
