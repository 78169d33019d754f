"""Speed of the input pipeline alone: decode + targets + sampling + batching, from its cache and cold.

``pipeline_benchmark`` writes a small synthetic dataset (kerasdec.data.synthetic: textured surfaces,
half of them defective, with masks; colour PNGs for 3 channels) at the input size into a temporary
folder, builds the training dataset exactly as ``kerasdec fit`` does (``pipeline.make_train_dataset``
with a frequency-of-use sampler), and iterates whole epochs:

* ``cached``: every image decoded once beforehand (``preload``, the default of ``fit``), then
  elements come from the in-memory cache;
* ``cold``: no cache (``cache_bytes=0``): every element is read from disk, decoded and its targets
  computed on every read (what a dataset larger than the cache costs).

Images/s are the samples of the timed epochs over their wall time, batches fully materialised as
tensors (as ``fit`` receives them), no model attached.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from kerasdec.bench.timing import row
from kerasdec.config import DataConfig
from kerasdec.data import pipeline, synthetic
from kerasdec.data.samples import Sample
from kerasdec.data.sampling import FrequencySampler


def time_epochs(samples: list[Sample], cfg: DataConfig, batch_size: int, cached: bool,
                epochs: int) -> dict[str, float]:
    """Images/s over ``epochs`` epochs after one untimed epoch."""
    sampler = FrequencySampler([s.is_positive for s in samples], seed=0)
    ds = pipeline.make_train_dataset(samples, cfg, batch_size, sampler, preload=cached,
                                     cache_bytes=pipeline.DEFAULT_CACHE_BYTES if cached else 0)
    sampler.current_epoch = 0
    for _ in ds:  # untimed: tf.data threads start, autotuning settles
        pass
    n, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        sampler.current_epoch = epoch
        for x, _, _ in ds:
            n += int(x.shape[0])
    seconds = time.perf_counter() - start
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds}


def pipeline_benchmark(width: int = 128, height: int = 128, channels: int = 1, batch_size: int = 2,
                       n_images: int = 32, epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """Images/s of the training input pipeline at one input size, from cache and cold.

    Args:
        width: input width (multiple of 8, >= 64). Default 128.
        height: input height. Default 128.
        channels: 1 or 3. Default 1.
        batch_size: batch size. Default 2.
        n_images: images written (half defective); an epoch draws every positive and as many
            negatives. Default 32.
        epochs: timed epochs per mode. Default 3.
        seed: seeds the images. Default 0.

    Returns:
        {"width", "height", "channels", "batch_size", "n_images", "cached_images_per_s",
        "cold_images_per_s", "cached", "cold"} (the last two: images, seconds, images_per_s).

    Example:
        >>> pipeline_benchmark(512, 1408, batch_size=1)["cached_images_per_s"]
    """
    if n_images < 2 or epochs < 1 or batch_size < 1:
        raise ValueError(f"n_images={n_images}, epochs={epochs}, batch_size={batch_size}; expected "
                         "n_images >= 2, epochs >= 1, batch_size >= 1")
    cfg = dataclasses.replace(DataConfig(), width=width, height=height, channels=channels)
    with tempfile.TemporaryDirectory(prefix="kerasdec-bench-") as tmp:
        positives = (n_images + 1) // 2
        samples = synthetic.list_samples(Path(tmp) / "data", "train", seed, (height, width),
                                         channels=channels, train_defect=positives,
                                         train_ok=n_images - positives, test_defect=0, test_ok=0)
        cached = time_epochs(samples, cfg, batch_size, True, epochs)
        cold = time_epochs(samples, cfg, batch_size, False, epochs)
    return {"width": width, "height": height, "channels": channels, "batch_size": batch_size,
            "n_images": n_images, "cached_images_per_s": cached["images_per_s"],
            "cold_images_per_s": cold["images_per_s"], "cached": cached, "cold": cold}


def pipeline_rows(size: tuple[int, int, int], batch_size: int, n_images: int,
                  repeats: int) -> list[dict[str, Any]]:
    """Cached and cold rows of the input pipeline at one size (one row each, medians over repeats)."""
    width, height, channels = size
    results = [pipeline_benchmark(width, height, channels, batch_size, n_images=n_images, epochs=1, seed=i)
               for i in range(repeats)]
    rows = []
    for mode in ("cached", "cold"):
        all_ms = [1000 * batch_size / r[f"{mode}_images_per_s"] for r in results]  # ms per batch
        rows.append(row("pipeline", mode, None, size, batch_size, all_ms))
    return rows
