"""Frequency-of-use sampling of negatives (docs/method.md#frequency-of-use-sampling), pure numpy.

Each epoch holds every positive once plus min(N_pos, N_neg) negatives drawn without replacement,
in a seeded random order. With frequency sampling, negatives used less often so far are preferred:
s = 1 − f/max(f); s = s − median(s) + 1; s = s^(4·ln N_neg); p = s/Σs (uniform while max f = 0,
i.e. in the first epoch). Without it, every epoch is a fresh uniform draw. f counts the times a
negative was TRAINED on: given the batch size and ``drop_last``, a negative that falls into the
incomplete last batch (which the pipeline drops) is not counted, as the published code counts only
the images its loader fetched.

Draws are memoised by epoch number and made strictly in epoch order, so the result never depends on
how often or in which order epochs are asked for (e.g. Keras pulling a batch early).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

STATE_VERSION = 1  # bump when the state_dict layout changes
EXPONENT_SCALE = 4.0  # s is raised to EXPONENT_SCALE·ln(N_neg), as the reference does
ZERO_PROB_FLOOR = 1e-12  # relative probability given to s = 0 negatives so a draw never runs short


def negative_probabilities(counts: np.ndarray) -> np.ndarray:
    """Probability of drawing each negative given how often each has been used.

    Args:
        counts: (N_neg,) use counts f.

    Returns:
        (N_neg,) float64 probabilities summing to 1; uniform when max(f) = 0 or N_neg <= 1.
    """
    n_neg = counts.size
    if n_neg <= 1 or counts.max() == 0:
        return np.full(n_neg, 1.0 / max(n_neg, 1))
    s = 1.0 - counts / counts.max()
    s = s - np.median(s) + 1.0  # in [0, 2]
    s = s ** (EXPONENT_SCALE * math.log(n_neg))
    # A negative with s = 0 would have probability 0; keep it drawable (last) so that a draw of
    # min(N_pos, N_neg) without replacement can always be completed.
    positive = s[s > 0]
    s = np.where(s > 0, s, positive.min() * ZERO_PROB_FLOOR)
    return s / s.sum()


class FrequencySampler:
    """Per-epoch index lists into a sample list, with frequency-of-use sampling of negatives.

    Args:
        is_positive: one flag per sample (index i of the sample list).
        seed: seeds every draw.
        frequency: True = frequency-of-use sampling, False = uniform draw each epoch.
        batch_size: the training batch size; with ``drop_last``, only the first
            floor(epoch_size / batch_size) · batch_size indices of an epoch are trained on and counted.
            None = every index counts.
        drop_last: the pipeline drops an incomplete last batch (TrainConfig.drop_last). Default False.

    Attributes:
        current_epoch: the epoch the pipeline reads next (set by a callback at each epoch start).
        epoch_size: positives + negatives per epoch.
        trained_per_epoch: how many of them are trained on (epoch_size unless a batch is dropped).
        n_samples: length of the sample list the indices refer to.

    Raises:
        ValueError: there are no positives.

    Example:
        >>> sampler = FrequencySampler([s.is_positive for s in samples], seed=0)
        >>> sampler.indices(0)  # np.ndarray of sample indices, epoch 0
    """

    def __init__(self, is_positive: Sequence[bool], seed: int, frequency: bool = True,
                 batch_size: int | None = None, drop_last: bool = False) -> None:
        flags = np.asarray(is_positive, dtype=bool)
        self.positives = np.flatnonzero(flags)  # sample indices of positives
        self.negatives = np.flatnonzero(~flags)  # sample indices of negatives
        if self.positives.size == 0:
            raise ValueError(f"is_positive has no positives among {flags.size} samples; "
                             "expected at least one positive training image")
        self.n_samples = int(flags.size)
        self.seed = int(seed)
        self.frequency = bool(frequency)
        self.n_negatives_per_epoch = min(self.positives.size, self.negatives.size)
        self.epoch_size = int(self.positives.size + self.n_negatives_per_epoch)
        self.trained_per_epoch = self.epoch_size
        if drop_last and batch_size:
            self.trained_per_epoch = (self.epoch_size // int(batch_size)) * int(batch_size)
        self._negative_slot = np.full(flags.size, -1, dtype=np.int64)  # sample index → position in negatives
        self._negative_slot[self.negatives] = np.arange(self.negatives.size)
        self.current_epoch = 0
        self.counts = np.zeros(self.negatives.size, dtype=np.int64)  # uses per negative
        self._rng = np.random.default_rng(self.seed)
        self._epochs: list[np.ndarray] = []  # _epochs[e] = the draw of epoch e
        # tf.data may ask from several threads: two concurrent first calls for one epoch would draw twice
        # (counts and RNG advanced twice, a different run); the lock makes each epoch one draw.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.epoch_size

    def indices(self, epoch: int) -> np.ndarray:
        """The sample indices of one epoch, in training order (memoised; read-only array).

        Args:
            epoch: epoch number >= 0; earlier epochs not drawn yet are drawn first, in order.

        Returns:
            (epoch_size,) int64 array of indices into the sample list.
        """
        if epoch < 0:
            raise ValueError(f"epoch={epoch}; expected >= 0")
        with self._lock:
            while len(self._epochs) <= epoch:
                self._epochs.append(self._draw())
            return self._epochs[epoch]

    def _draw(self) -> np.ndarray:
        p = negative_probabilities(self.counts) if self.frequency else None  # None = uniform
        if self.n_negatives_per_epoch == 0:  # no negatives at all
            chosen = np.zeros(0, dtype=np.int64)
        else:
            chosen = self._rng.choice(self.negatives.size, size=self.n_negatives_per_epoch,
                                      replace=False, p=p)  # positions in self.negatives
        order = self._rng.permutation(np.concatenate([self.positives, self.negatives[chosen]]))
        order = order.astype(np.int64)
        trained = self._negative_slot[order[:self.trained_per_epoch]]
        self.counts[trained[trained >= 0]] += 1  # only negatives that are trained on (not dropped)
        order.flags.writeable = False
        logger.debug("drew epoch %d: %d samples", len(self._epochs), order.size)
        return order

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: counts, RNG state and every epoch drawn so far."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "frequency": self.frequency,
            "n_samples": self.n_samples,
            "n_positives": int(self.positives.size),
            "current_epoch": int(self.current_epoch),
            "counts": self.counts.tolist(),
            "rng": self._rng.bit_generator.state,
            "epochs": [e.tolist() for e in self._epochs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (e.g. after a JSON round trip) to resume sampling.

        Raises:
            ValueError: the state belongs to a different sample list or sampling mode.
        """
        expected = {"version": STATE_VERSION, "frequency": self.frequency,
                    "n_samples": self.n_samples,
                    "n_positives": int(self.positives.size)}
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(f"sampler state has {key}={state.get(key)!r}; expected {value!r} "
                                 "(was it saved for another sample list or sampling mode?)")
        counts = np.asarray(state["counts"], dtype=np.int64)
        if counts.shape != self.counts.shape:
            raise ValueError(f"sampler state has {counts.size} counts; expected {self.counts.size}")
        self.seed = int(state["seed"])
        self.current_epoch = int(state["current_epoch"])
        self.counts = counts
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._epochs = []
        for epoch in state["epochs"]:
            order = np.asarray(epoch, dtype=np.int64)
            order.flags.writeable = False
            self._epochs.append(order)
