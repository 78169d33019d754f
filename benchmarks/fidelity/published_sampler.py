"""The published code's epoch and negative sampling, as rules (pure numpy; no kerasdec, no torch).

What the reference implementation does, read from its data/dataset.py, data/dataset_catalog.py and
end2end.py (vicoslab/mixed-segdec-net-comind2021) and written here in our own words:

* The training Dataset has length L = 2·N_pos. Index i < N_pos is positive i; index i >= N_pos is the
  negative ``permutation[i mod N_pos]``.
* The DataLoader shuffles the L indices every epoch (shuffle=True), cuts them into batches of B and
  drops an incomplete last batch (drop_last=True): an epoch has floor(L / B) steps, and the dropped
  indices are never fetched.
* The permutation starts as a uniform permutation of all negatives. It is re-drawn when a fetch
  counter (incremented for every FETCHED item, positive or negative) has reached L, at the moment the
  next item is fetched. With L divisible by B that is the start of every epoch after the first;
  otherwise it drifts into the middle of later epochs (even into the middle of a batch).
* The re-draw: with frequency sampling, N_pos negatives without replacement with probabilities from
  the use counts f (s = 1 − f/max f; s = s − median(s) + 1; s = s^(4·ln N_neg); p = s/Σs); without it,
  a fresh uniform permutation. A negative's count grows by one each time it is FETCHED.

Used by the PyTorch rendition (published_loop.py) for its own runs, and by the harness to check
kerasdec's FrequencySampler against these rules.
"""

from __future__ import annotations

import math

import numpy as np


def frequency_probabilities(counts: np.ndarray) -> np.ndarray:
    """p of the published re-draw from the use counts f (the caller guarantees max f > 0)."""
    s = 1.0 - counts / counts.max()
    s = s - np.median(s) + 1.0
    s = s ** (math.log(counts.size) * 4.0)
    return s / s.sum()


class PublishedEpochs:
    """Batches of (is_positive, index) per epoch, by the published Dataset + DataLoader rules.

    Args:
        n_pos: positives N_pos.
        n_neg: negatives N_neg (>= N_pos, or the published code fails).
        batch_size: B.
        frequency: frequency-of-use sampling (else a uniform permutation at each re-draw).
        seed: seeds two numpy RandomStates: one for the negatives (the reference uses numpy's global
            one) and one for the index shuffle (the reference: torch's RandomSampler).
    """

    def __init__(self, n_pos: int, n_neg: int, batch_size: int, frequency: bool, seed: int) -> None:
        if n_neg < n_pos:
            raise ValueError(f"{n_neg} negatives < {n_pos} positives: the published sampler needs "
                             "at least as many negatives as positives")
        self.n_pos, self.n_neg, self.batch_size, self.frequency = n_pos, n_neg, batch_size, frequency
        self.length = 2 * n_pos
        self.negatives_rng = np.random.RandomState(seed)
        self.shuffle_rng = np.random.RandomState(seed + 1_000_003)
        self.permutation = self.negatives_rng.permutation(n_neg)
        self.counts = np.zeros(n_neg, dtype=np.int64)  # fetches per negative
        self.counter = 0  # items fetched since the last re-draw
        self.redraws: list[tuple[int, int, int]] = []  # (epoch, step, position in batch) of re-draws
        self.epoch = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.length // self.batch_size

    def _redraw(self) -> None:
        if self.frequency:
            p = frequency_probabilities(self.counts.astype(np.float64))
            self.permutation = self.negatives_rng.choice(self.n_neg, size=self.n_pos, p=p, replace=False)
        else:
            self.permutation = self.negatives_rng.permutation(self.n_neg)

    def fetch(self, index: int, where: tuple[int, int, int]) -> tuple[bool, int]:
        """The item behind Dataset index ``index``: (True, positive) or (False, negative)."""
        if self.counter >= self.length:
            self.counter = 0
            self._redraw()
            self.redraws.append(where)
        self.counter += 1
        if index < self.n_pos:
            return True, int(index)
        negative = int(self.permutation[index % self.n_pos])
        self.counts[negative] += 1
        return False, negative

    def next_epoch(self) -> list[list[tuple[bool, int]]]:
        """The batches of the next epoch, fetched in order (the dropped indices are never fetched)."""
        order = self.shuffle_rng.permutation(self.length)
        batches = []
        for step in range(self.steps_per_epoch):
            chunk = order[step * self.batch_size:(step + 1) * self.batch_size]
            batches.append([self.fetch(int(i), (self.epoch, step, k)) for k, i in enumerate(chunk)])
        self.epoch += 1
        return batches
