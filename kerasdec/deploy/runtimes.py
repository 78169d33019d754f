"""Optional runtimes, checked before any work starts (no TensorFlow, nothing imported).

TFLite files are converted by TensorFlow but run, and therefore self-checked, by LiteRT
(``ai_edge_litert``), which the base install does not bring: it is the ``litert`` extra
(``pip install "kerasdec[litert]"``). An export with ``--tflite``, ``predict`` on a ``.tflite`` file and
``bench --export`` need it; without it they refuse in one line before loading a model or converting
anything, instead of failing with a traceback after minutes of work.

:func:`missing_litert` looks the package up with ``importlib.util.find_spec``, which finds it without
importing it (importing ai_edge_litert takes a second).
"""

from __future__ import annotations

import importlib.util

LITERT_MODULE = "ai_edge_litert"  # import name; the distribution is ai-edge-litert
LITERT_INSTALL = 'pip install "kerasdec[litert]"'  # the extra in setup.py


class MissingRuntimeError(ValueError):
    """An optional runtime is not installed; the message names the ``pip install`` that adds it."""


def litert_installed() -> bool:
    """Whether ``ai_edge_litert`` can be imported (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(LITERT_MODULE) is not None
    except (ImportError, ValueError):  # a broken parent entry or a None placeholder in sys.modules
        return False


def missing_litert(flag: str) -> str | None:
    """The one-line refusal for ``flag`` when LiteRT is not installed, else None.

    Example:
        >>> missing_litert("--tflite int8")  # None when ai-edge-litert is installed
    """
    if litert_installed():
        return None
    return (f"{flag} needs LiteRT ({LITERT_MODULE}), which is not installed; install it with: "
            f"{LITERT_INSTALL} (or pip install ai-edge-litert)")


def require_litert(flag: str) -> None:
    """Raise :class:`MissingRuntimeError` (one line naming ``flag`` and the fix) without LiteRT."""
    message = missing_litert(flag)
    if message is not None:
        raise MissingRuntimeError(message)
