"""Reproducible arithmetic: the same command, seed and data give the same bits, whatever the load.

Two settings, both process-wide in TensorFlow, applied for the duration of :func:`deterministic`:

* ``tf.config.experimental.enable_op_determinism()``: TensorFlow's deterministic kernels where an op
  has two (GPU convolutions, reductions, scatter), and an error for an op that has none, so nothing
  nondeterministic slips in unnoticed. It also makes tf.data keep element order.
* Grappler (TensorFlow's graph optimiser) off. Measured on this project's 2-core CPU machines: with
  it on, a graph gave results that differ in the last bits from call to call and from process to
  process, with identical inputs and weights: the row-GEMM 15×15 convolution (kerasdec/models/
  rowconv.py) at some shapes (batch 10 of 64×256 or 128×128 images: up to 8 distinct outputs in 8
  identical calls), and the decision stage's gradients of a trained network (3 distinct results in 20
  calls on one recorded batch). A Severstal-layout run trained under load ended at test AP 0.44 in one
  process and 0.72 in another. No single Grappler pass explains the second case (turning off constant
  folding, arithmetic, layout, remapping, memory, loop, dependency, shape or function optimisation one
  at a time left it), and enable_op_determinism covers neither; with Grappler off, repeated calls,
  in-process fits and fits in separate processes beside 0-4 busy processes agree bit for bit.
  benchmarks/determinism.py reproduces the first finding and measures the cost (docs/
  run-directory.md "Reproducibility" has the numbers).

Imports TensorFlow only when entered, so the package root stays light.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)

GRAPPLER_OPTION = "disable_meta_optimizer"  # Grappler off entirely for reproducible results


def _op_determinism() -> tuple:
    """(is_enabled, enable, disable) for TensorFlow's op determinism; disable may be None."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # disable_op_determinism is not exported

    return (getattr(tf_config, "is_op_determinism_enabled", lambda: False),
            tf.config.experimental.enable_op_determinism,
            getattr(tf_config, "disable_op_determinism", None))


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[bool]:
    """Run the block with reproducible arithmetic (``enabled``), then restore the previous settings.

    With ``enabled=False`` nothing is changed (TensorFlow's defaults, or whatever the caller set).
    Functions traced inside the block keep the behaviour they were built with.

    Args:
        enabled: turn TensorFlow's op determinism on and Grappler off.

    Yields:
        ``enabled``.

    Example:
        >>> with deterministic():
        ...     model.fit(dataset)  # the same weights in every process, alone or under load
    """
    if not enabled:
        yield False
        return
    import tensorflow as tf

    is_enabled, enable, disable = _op_determinism()
    was_enabled = is_enabled()
    options = tf.config.optimizer.get_experimental_options()
    previous_grappler = options.get(GRAPPLER_OPTION)
    enable()
    tf.config.optimizer.set_experimental_options({GRAPPLER_OPTION: True})
    try:
        yield True
    finally:
        tf.config.optimizer.set_experimental_options(
            {GRAPPLER_OPTION: False if previous_grappler is None else previous_grappler})
        if not was_enabled and disable is not None:
            disable()
        elif not was_enabled:
            logger.debug("TensorFlow has no disable_op_determinism: op determinism stays on in this process")
