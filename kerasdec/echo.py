"""Quoting untrusted values in messages, at a readable length.

Every error message or log line that echoes a value read from a file, the environment or a flag (a
split-file entry, a CSV field, a TF_CONFIG field, a key of config.json) quotes it with :func:`shown`:
a value from a file can be 200 MB, or a list nested 100,000 deep whose ``repr`` fails. The last guard
is :func:`cut_line`, which the CLI applies to every one-line error it prints. Lowest import floor:
imports nothing.
"""

from __future__ import annotations

from typing import Any

SHOWN_CHARS = 80  # characters of a quoted value kept in a message
LINE_CHARS = 2000  # an error line longer than this is cut in its middle (cut_line)
_MAX_DIGITS = 40  # integers with more digits are described, not printed (str() of a huge int is slow)


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long the value was.

    Never builds the whole ``repr`` of a long string or a deep container (both can be huge or fail).

    Example:
        >>> shown("x" * 1000, limit=8)
        "'xxxxxxxx…' (1,000 characters)"
        >>> shown([[[[1]]]], limit=20)
        '[[[<a list of 1>]]]'
    """
    return _shown(value, limit, depth=3)


def _shown(value: Any, limit: int, depth: int) -> str:
    if isinstance(value, (str, bytes)):
        if len(value) <= limit:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "bytes"
        text = repr(value[:limit])
        return f"{text[:-1]}…{text[-1]} ({len(value):,} {unit})"
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10 ** _MAX_DIGITS:
            return f"<an integer of {value.bit_length():,} bits>"
        return repr(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        name = type(value).__name__
        if depth == 0:
            return f"<a {name} of {len(value)}>"
        items = value.items() if isinstance(value, dict) else value
        parts, used, inner = [], 0, max(8, limit // 2)  # each item shorter, so that several fit
        for item in items:
            part = (f"{_shown(item[0], inner, depth - 1)}: {_shown(item[1], inner, depth - 1)}"
                    if isinstance(value, dict) else _shown(item, inner, depth - 1))
            if parts and used + len(part) > limit:
                parts.append(f"… ({len(value):,} items)")
                break
            parts.append(part)
            used += len(part) + 2
        open_, close = {"list": "[]", "tuple": "()", "dict": "{}"}.get(name, "{}")
        return open_ + ", ".join(parts) + ("," if name == "tuple" and len(value) == 1 else "") + close
    text = repr(value)
    return text if len(text) <= 2 * limit else f"{text[:2 * limit]}… ({len(text):,} characters)"


def cut_line(text: str, limit: int = LINE_CHARS) -> str:
    """``text`` with its middle replaced by a note when it is longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    head, tail = text[:limit * 2 // 3], text[-(limit // 3):]
    return f"{head} … ({len(text) - len(head) - len(tail):,} characters cut) … {tail}"
