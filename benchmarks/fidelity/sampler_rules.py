"""kerasdec's sampler and epoch against the published code's rules (published_sampler.py), in numpy.

    python benchmarks/fidelity/sampler_rules.py [--seeds 200] [--epochs 60] [--out FILE.md]

For each (positives, negatives, batch size) it reports, for kerasdec's FrequencySampler as the
training pipeline uses it (an epoch = the sampler's order cut into batches, the incomplete last batch
dropped) and for the published Dataset + DataLoader rules:

* steps per epoch and images left out per epoch;
* when the negatives are re-drawn (kerasdec: at every epoch start; published: every 2·N_pos FETCHED
  images, which lands mid-epoch when 2·N_pos is not a multiple of the batch size);
* what the use counts count (kerasdec: every negative drawn for an epoch, also one left out with the
  incomplete batch; published: every negative fetched);
* over many seeds: negatives never trained on after 5 and after all epochs, the spread (max − min) of
  how often each negative was trained on, and how many epochs train on one negative twice;
* λ_seg, λ_cls and m at every epoch of the published presets (kerasdec's LossBalance /
  GradientAdjustment arithmetic against 1 − e/E, δ·e/E and 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import kerasdec_side as kd  # noqa: E402
from published_sampler import PublishedEpochs  # noqa: E402

SCENARIOS = [(8, 12, 1), (8, 12, 5), (6, 10, 5), (10, 40, 5), (12, 100, 5), (75, 500, 5), (24, 60, 10)]


def kerasdec_epochs(n_pos: int, n_neg: int, batch: int, frequency: bool, seed: int, epochs: int,
                    count_trained: bool = True) -> tuple[list[list[int]], np.ndarray]:
    """Negatives (0..n_neg−1) trained on in each epoch (the incomplete last batch dropped), and the
    sampler's own counts at the end. ``count_trained`` False: the sampler as it was before it knew the
    batch size (it counted every negative drawn, also those dropped with the incomplete batch)."""
    sampler = kd.FrequencySampler([True] * n_pos + [False] * n_neg, seed=seed, frequency=frequency,
                                  batch_size=batch if count_trained else None, drop_last=count_trained)
    kept = (sampler.epoch_size // batch) * batch
    trained = []
    for epoch in range(epochs):
        order = sampler.indices(epoch)[:kept]
        trained.append([int(i) - n_pos for i in order if i >= n_pos])
    return trained, sampler.counts.copy()


def published_epochs(n_pos: int, n_neg: int, batch: int, frequency: bool, seed: int,
                     epochs: int) -> tuple[list[list[int]], PublishedEpochs]:
    sampler = PublishedEpochs(n_pos, n_neg, batch, frequency, seed)
    trained = []
    for _ in range(epochs):
        trained.append([i for batch_items in sampler.next_epoch() for pos, i in batch_items if not pos])
    return trained, sampler


def usage_stats(trained: list[list[int]], n_neg: int) -> dict[str, float]:
    counts = np.zeros(n_neg, np.int64)
    unseen_at_5 = None
    for e, negatives in enumerate(trained):
        np.add.at(counts, negatives, 1)
        if e == 4:
            unseen_at_5 = int(np.sum(counts == 0))
    repeats = sum(len(n) != len(set(n)) for n in trained)
    return {"unseen_5": unseen_at_5, "unseen_end": int(np.sum(counts == 0)),
            "spread": int(counts.max() - counts.min()), "repeat_epochs": repeats,
            "per_epoch": float(np.mean([len(n) for n in trained]))}


def structure_rows(epochs: int) -> list[str]:
    rows = ["| N_pos, N_neg, batch | steps/epoch kerasdec / published | images left out per epoch | "
            "published re-draws in epochs 0-5 at (epoch, step, image) | counts after 6 epochs: "
            "kerasdec sampler / trained on (both rules) |", "|---|---|---|---|---|"]
    for n_pos, n_neg, batch in SCENARIOS:
        k_trained, k_counts = kerasdec_epochs(n_pos, n_neg, batch, True, 0, 6)
        p_trained, p = published_epochs(n_pos, n_neg, batch, True, 0, 6)
        size = n_pos + min(n_pos, n_neg)
        redraws = ", ".join(str(r) for r in p.redraws)
        rows.append(f"| {n_pos}, {n_neg}, {batch} | {size // batch} / {p.steps_per_epoch} | "
                    f"{size % batch} / {2 * n_pos % batch} | {redraws} | {int(k_counts.sum())} / "
                    f"{sum(map(len, k_trained))} and {int(p.counts.sum())} |")
    return rows


def statistics_rows(seeds: int, epochs: int) -> list[str]:
    keys = ("unseen_5", "unseen_end", "spread", "repeat_epochs", "per_epoch")
    rows = [f"| N_pos, N_neg, batch, sampling | rule | negatives never trained on after 5 epochs | after "
            f"{epochs} | spread of use counts after {epochs} | epochs training one negative twice | "
            "negatives per epoch |", "|---|---|---|---|---|---|---|"]
    for n_pos, n_neg, batch in SCENARIOS:
        for frequency in (True, False):
            for rule in ("kerasdec before", "kerasdec", "published"):
                if rule == "kerasdec before" and (n_pos * 2) % batch == 0:
                    continue  # nothing is dropped: the same as "kerasdec"
                stats = []
                for seed in range(seeds):
                    if rule == "published":
                        trained = published_epochs(n_pos, n_neg, batch, frequency, seed, epochs)[0]
                    else:
                        trained = kerasdec_epochs(n_pos, n_neg, batch, frequency, seed, epochs,
                                                  count_trained=rule == "kerasdec")[0]
                    stats.append(usage_stats(trained, n_neg))
                cells = [f"{np.mean([s[k] for s in stats]):.2f}" for k in keys]
                name = "frequency" if frequency else "uniform"
                rows.append(f"| {n_pos}, {n_neg}, {batch}, {name} | {rule} | " + " | ".join(cells) + " |")
    return rows


def schedule_rows() -> list[str]:
    from kerasdec.training.schedules import loss_weights  # the arithmetic LossBalance assigns

    rows = ["| preset epochs E, δ | max abs diff λ_seg | max abs diff λ_cls | m |", "|---|---|---|---|"]
    for epochs, delta in ((60, 1.0), (50, 1.0), (70, 1.0), (35, 0.01), (90, 0.01), (150, 0.01), (40, 0.1)):
        seg, cls = 0.0, 0.0
        for e in range(epochs):
            k_seg, k_cls = loss_weights(e, epochs, delta, True)
            seg = max(seg, abs(k_seg - (1 - e / float(epochs))))
            cls = max(cls, abs(k_cls - delta * (e / float(epochs))))
        rows.append(f"| {epochs}, {delta} | {seg:.1e} | {cls:.1e} | 0 at every epoch (both) |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = "\n".join(["## Epoch structure", *structure_rows(args.epochs), "",
                      f"## Use of negatives, mean over {args.seeds} seeds",
                      *statistics_rows(args.seeds, args.epochs),
                      "", "## Loss weights and gradient multiplier", *schedule_rows()])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
