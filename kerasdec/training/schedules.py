"""Loss-balance schedule of the dynamically balanced loss (docs/method.md#loss-and-schedule): small
pure functions."""

from __future__ import annotations


def lambda_at(epoch: int, epochs: int) -> float:
    """λ = 1 − e/E for epoch e = 0..E−1.

    Args:
        epoch: zero-based epoch number e.
        epochs: total number of epochs E (>= 1).

    Returns:
        λ in (0, 1]; 1 at the first epoch.

    Raises:
        ValueError: if epochs < 1 or epoch is outside 0..E−1.

    Example:
        >>> lambda_at(1, 4)
        0.75
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs}; expected >= 1")
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch={epoch}; expected 0 <= epoch < epochs={epochs}")
    return 1.0 - epoch / epochs


def loss_weights(epoch: int, epochs: int, delta: float, dynamic_balance: bool = True) -> tuple[float, float]:
    """Weights (seg_w, cls_w) of L = seg_w·L_seg + cls_w·L_cls at an epoch.

    Args:
        epoch: zero-based epoch number e.
        epochs: total number of epochs E.
        delta: δ, the weight of the classification loss.
        dynamic_balance: True: (λ, δ·(1 − λ)) with λ = 1 − e/E, δ·(1 − λ) computed as δ·(e/E), as the
            published code does (1 − (1 − e/E) differs from e/E in the last bit); False: (1, δ).
            Default True.

    Returns:
        (seg_w, cls_w) as Python floats.

    Raises:
        ValueError: as lambda_at, or if delta < 0.

    Example:
        >>> loss_weights(0, 10, 0.1)
        (1.0, 0.0)
    """
    if delta < 0:
        raise ValueError(f"delta={delta}; expected >= 0")
    lam = lambda_at(epoch, epochs)
    if not dynamic_balance:
        return 1.0, float(delta)
    return lam, float(delta) * (epoch / float(epochs))
