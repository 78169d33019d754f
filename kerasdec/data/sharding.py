"""One worker's share of every global batch of a sampler's epoch (multi-worker training).

Every worker holds the same sampler (same seed, same counts), so all draw the same epoch. Each global
batch of ``batch_size`` indices is cut into ``n_workers`` consecutive slices of
``ceil(batch_size / n_workers)``; a slice that comes up short (the last, partial batch, or a batch size
that does not divide) is padded with ``PAD`` = -1, which the pipeline turns into a sample of zero
weight. Summed over the workers, each step therefore sees exactly the global batch of a
single-machine run, and the summed loss is unchanged. Pure numpy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PAD = -1  # an index the pipeline loads as a zero-weight sample (kerasdec.data.pipeline.ElementLoader)


def shard_indices(indices: np.ndarray, batch_size: int, rank: int, n_workers: int,
                  drop_last: bool = False) -> np.ndarray:
    """Worker ``rank``'s indices: its slice of every global batch, padded with PAD to equal length.

    With ``drop_last`` an incomplete last global batch is left out, as a single-machine run drops it.

    Example:
        >>> shard_indices(np.arange(5), batch_size=2, rank=1, n_workers=2).tolist()
        [1, 3, -1]
    """
    if not 0 <= rank < n_workers:
        raise ValueError(f"rank={rank}; expected 0..{n_workers - 1}")
    per_worker = math.ceil(batch_size / n_workers)
    n_batches = (len(indices) // batch_size) if drop_last else math.ceil(len(indices) / batch_size)
    padded = np.full((n_batches, n_workers * per_worker), PAD, np.int64)
    for b in range(n_batches):
        chunk = np.asarray(indices[b * batch_size:(b + 1) * batch_size], np.int64)
        padded[b, :len(chunk)] = chunk
    return padded[:, rank * per_worker:(rank + 1) * per_worker].reshape(-1)


class ShardView:
    """A sampler as one worker sees it: the attributes the training pipeline reads, sharded.

    ``current_epoch`` is the underlying sampler's (the callbacks set that one); ``indices(e)`` is this
    worker's share of the sampler's epoch ``e``; ``batch_size`` is the per-worker batch.

    Args:
        sampler: a :class:`kerasdec.data.sampling.FrequencySampler` (shared state, not copied).
        batch_size: the global batch size.
        rank: this worker's rank (0 = chief).
        n_workers: the number of workers.
        drop_last: leave out an incomplete last global batch (TrainConfig.drop_last). Default False.
    """

    def __init__(self, sampler: Any, batch_size: int, rank: int, n_workers: int,
                 drop_last: bool = False) -> None:
        self.sampler, self.global_batch, self.drop_last = sampler, int(batch_size), bool(drop_last)
        self.rank, self.n_workers = int(rank), int(n_workers)
        self.batch_size = math.ceil(self.global_batch / self.n_workers)

    @property
    def current_epoch(self) -> int:
        return self.sampler.current_epoch

    @property
    def seed(self) -> int:
        """The sampler's seed, which also keys the augmentation draws (the same on every worker)."""
        return self.sampler.seed

    @property
    def n_samples(self) -> int:
        return self.sampler.n_samples

    @property
    def epoch_size(self) -> int:
        """Indices per epoch for this worker (padding included): equal on every worker."""
        size = self.sampler.epoch_size
        n_batches = size // self.global_batch if self.drop_last else math.ceil(size / self.global_batch)
        return n_batches * self.batch_size

    def indices(self, epoch: int) -> np.ndarray:
        return shard_indices(self.sampler.indices(epoch), self.global_batch, self.rank, self.n_workers,
                             self.drop_last)
