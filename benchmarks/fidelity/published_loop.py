"""The published training loop of SegDecNet, written independently in PyTorch (benchmarks only).

Runs in the PyTorch venv (benchmarks/setup_torch.sh, plus opencv-python-headless and scipy); it never
imports kerasdec or TensorFlow. It follows the reference implementation's rules (read from
vicoslab/mixed-segdec-net-comind2021: data/dataset.py, data/input_*.py, end2end.py, models.py; our own
code): images read with OpenCV (grayscale, or colour in OpenCV's BGR order), resized bilinearly to the
input size, scaled by 1/255; masks read as gray values, dilated with a d×d square, resized, scaled by
1/255 (NOT binarised); distance-transform weights w_pos·(d/max d)^p inside, 1 outside; both brought to
1/8 by reflect-padding 8 and a 17×17 average with stride 8; decision target = max of the 1/8 mask.
Each epoch: λ_seg = 1 − e/E, λ_cls = δ·e/E (or 1 and δ without dynamic balance); gradient multiplier
m = 0 with gradient adjustment (1 without) on the decision stage's inputs; every image of a batch is
forwarded and back-propagated alone and the gradients are summed before one plain SGD step;
validation at epochs 0, V, 2V, ... and the last; the final model is tested (AP as scikit-learn's
average_precision_score). Sampling: published_sampler.py.

Two modes:

* ``python published_loop.py --worker`` answers JSON commands on stdin (the step-by-step harness,
  fidelity_run.py): ``setup`` (data, kerasdec's initial weights, float64), ``step`` (one training step
  on the images kerasdec's step saw, identified by their pixel sums; the parameters after it are
  written to an .npz in kerasdec's names and layouts), ``validate``, ``quit``.
* ``python published_loop.py --train CONFIG.json --out RESULT.json``: a whole run with its own
  initialisation (Xavier-normal convolutions, PyTorch's default Linear) and its own sampler, float32,
  as a user of the published code runs it (the statistics of docs/fidelity.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from published_sampler import PublishedEpochs  # noqa: E402
from torch_segdec import SegDec, export_weights, load_weights, serve  # noqa: E402

DOWNSIZE = 8
EXCLUDED = {"kos21_Part7"}  # the published KSDD reader skips this image


# ----------------------------------------------------------------------------------------------- data
@dataclass
class Item:
    """One image as the published Dataset holds it (float32 tensors, CHW)."""

    name: str
    image: torch.Tensor  # (C, H, W) in [0, 1]
    seg_mask: torch.Tensor  # (1, H/8, W/8)
    seg_loss_mask: torch.Tensor  # (1, H/8, W/8)
    positive: bool
    is_segmented: bool = True

    @property
    def fingerprint(self) -> float:
        return float(self.image.double().sum())


def read_image(path: Path, channels: int, size_wh: tuple[int, int]) -> np.ndarray:
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR  # colour stays BGR, as published
    image = cv2.imread(str(path), flag)
    if image is None:
        raise ValueError(f"cannot read {path}")
    return np.asarray(cv2.resize(image, dsize=size_wh), dtype=np.float32) / 255.0


def read_label(path: Path, size_wh: tuple[int, int], dilate: int) -> np.ndarray:
    label = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if label is None:
        raise ValueError(f"cannot read {path}")
    if dilate > 1:
        label = cv2.dilate(label, np.ones((dilate, dilate)))
    return np.asarray(cv2.resize(label, dsize=size_wh) / 255.0, dtype=np.float32)  # raw gray / 255


def distance_weights(mask: np.ndarray, w_pos: float, p: float) -> np.ndarray:
    distance = distance_transform_edt(mask)
    if distance.max() > 0:
        distance = (distance / distance.max()) ** p * w_pos
    distance[mask == 0] = 1.0
    return np.asarray(distance, dtype=np.float32)


def downsize(array: np.ndarray, float64: bool = True) -> np.ndarray:
    """Reflect-pad by 8, 17×17 average, stride 8. The reference averages in float32; float64 here
    (then rounded to float32), so the float64 comparison is not limited by the order of a float32 sum."""
    dtype = torch.float64 if float64 else torch.float32
    t = torch.from_numpy(np.ascontiguousarray(array)).to(dtype)[None, None]
    t = F.pad(t, (DOWNSIZE,) * 4, mode="reflect")
    return F.avg_pool2d(t, 2 * DOWNSIZE + 1, stride=DOWNSIZE)[0, 0].float().numpy()


def downsize_gap(cfg: dict, split: str = "train") -> float:
    """Largest |float32 − float64 average| over the 1/8 masks of a split: the reference's own rounding."""
    gap = 0.0
    for _, _, mask_path in list_files(cfg, split):
        if mask_path is not None:
            mask = read_label(mask_path, (cfg["width"], cfg["height"]), cfg["dilate"])
            gap = max(gap, float(np.max(np.abs(downsize(mask, True) - downsize(mask, False)))))
    return gap


def to_chw(image: np.ndarray) -> torch.Tensor:
    chw = image.transpose(2, 0, 1) if image.ndim == 3 else image[None]
    return torch.from_numpy(np.ascontiguousarray(chw))


def list_files(cfg: dict, split: str) -> list[tuple[str, Path, Path | None]]:
    """(name, image, mask or None) of a split in the DAGM, KSDD2 or KSDD layout (the folder's files)."""
    root, layout = Path(cfg["root"]), cfg["layout"]
    files = []
    if layout == "dagm":
        folder = root / f"Class{cfg['category']}" / ("Train" if split == "train" else "Test")
        for image in sorted(folder.glob("*.PNG")):
            mask = folder / "Label" / f"{image.stem}_label.PNG"
            files.append((image.stem, image, mask if mask.is_file() else None))
    elif layout == "ksdd2":
        for image in sorted((root / split).glob("*.png")):
            if not image.stem.endswith("_GT"):
                files.append((image.stem, image, image.with_name(f"{image.stem}_GT.png")))
    elif layout == "ksdd":
        for kos in cfg["folders"][split]:
            for name in sorted(os.listdir(root / kos)):
                if "label" not in name and f"{kos}_{name}"[:-4] not in EXCLUDED:
                    image = root / kos / name
                    files.append((f"{kos}/{image.stem}", image, image.with_name(f"{image.stem}_label.bmp")))
    else:
        raise ValueError(f"layout {layout!r}")
    return files


def read_items(cfg: dict, split: str, float64_downsize: bool = True) -> list[Item]:
    size = (cfg["width"], cfg["height"])
    items = []
    for name, image_path, mask_path in list_files(cfg, split):
        image = read_image(image_path, cfg["channels"], size)
        if mask_path is None:  # DAGM: no label file = defect-free
            mask = np.zeros(image.shape[:2], np.float32)
        else:
            mask = read_label(mask_path, size, cfg["dilate"])
        positive = bool(mask.max() > 0)
        weights = distance_weights(mask, cfg["w_pos"], cfg["p"]) if positive else np.ones_like(mask)
        items.append(Item(name, to_chw(image), to_chw(downsize(mask, float64_downsize)),
                          to_chw(downsize(weights, float64_downsize)), positive))
    return items


# ---------------------------------------------------------------------------------------- the loop
def published_feature_norm(norm: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """FeatureNorm as the reference computes it: torch.std (unbiased) and torch.mean over H and W."""
    std = torch.std(x, dim=(2, 3), keepdim=True)
    mean = torch.mean(x, dim=(2, 3), keepdim=True)
    return norm.scale * ((x - mean) / (std + norm.eps).sqrt()) + norm.bias


def use_published_feature_norm(model: SegDec) -> SegDec:
    """Switch every FeatureNorm of a torch_segdec network to the reference's formula (same maths as
    torch_segdec's explicit sum of squares; different rounding)."""
    for block in model.blocks():
        block.norm.forward = functools.partial(published_feature_norm, block.norm)
    return model


def loss_weights(epoch: int, cfg: dict) -> tuple[float, float]:
    if cfg["dynamic_balance"]:
        return 1 - epoch / float(cfg["epochs"]), cfg["delta"] * (epoch / float(cfg["epochs"]))
    return 1.0, cfg["delta"]


def training_iteration(model: SegDec, optimizer: torch.optim.Optimizer, batch: list[Item], seg_w: float,
                       cls_w: float, dtype: torch.dtype) -> dict[str, float]:
    """One step: each image forwarded and back-propagated alone, gradients summed, one SGD step."""
    optimizer.zero_grad()
    total = {"loss": 0.0, "seg_loss": 0.0, "cls_loss": 0.0}
    for item in batch:
        image = item.image[None].to(dtype)
        seg_mask, seg_loss_mask = item.seg_mask[None].to(dtype), item.seg_loss_mask[None].to(dtype)
        decision, seg = model(image)
        is_pos = seg_mask.max().reshape(1, 1)  # decision target: max of the 1/8 mask (soft)
        loss_cls = F.binary_cross_entropy_with_logits(decision, is_pos)
        if item.is_segmented:
            loss_seg = torch.mean(F.binary_cross_entropy_with_logits(seg, seg_mask, reduction="none")
                                  * seg_loss_mask)
            loss = seg_w * loss_seg + cls_w * loss_cls
            total["seg_loss"] += loss_seg.item()
        else:
            loss = cls_w * loss_cls
        total["cls_loss"] += loss_cls.item()
        total["loss"] += loss.item()
        loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return total


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise AP with ties as one operating point (scikit-learn's average_precision_score)."""
    order = np.argsort(-scores, kind="mergesort")
    labels, scores = np.asarray(labels, bool)[order], scores[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    tps = np.cumsum(labels)[distinct]
    fps = (distinct + 1) - tps
    precision, recall = tps / (tps + fps), tps / max(labels.sum(), 1)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@torch.no_grad()
def evaluate(model: SegDec, items: list[Item], dtype: torch.dtype) -> tuple[float, list[float]]:
    model.eval()
    scores = [float(torch.sigmoid(model(item.image[None].to(dtype))[0])) for item in items]
    model.train()
    labels = np.array([bool(item.seg_mask.max() > 0) for item in items])
    return average_precision(labels, np.array(scores)), scores


def validation_due(epoch: int, cfg: dict) -> bool:
    return epoch % cfg["validate_every"] == 0 or epoch == cfg["epochs"] - 1


# ------------------------------------------------------------------------------------ worker mode
class Worker:
    """The rendition driven step by step from kerasdec's record, in float64."""

    def setup(self, **cfg) -> dict:
        torch.set_default_dtype(torch.float64)
        self.cfg = cfg
        self.train = read_items(cfg, "train")
        self.test = read_items(cfg, "test")
        self.positives = [item for item in self.train if item.positive]
        self.negatives = [item for item in self.train if not item.positive]
        self.model = use_published_feature_norm(SegDec(cfg["channels"], multiplier=0.0).double())
        arrays = dict(np.load(cfg["weights"]))
        if cfg["channels"] == 3:  # kerasdec feeds RGB, the reference BGR: same network, channels swapped
            arrays["b0_kernel"] = arrays["b0_kernel"][:, :, ::-1, :]
        load_weights(self.model, {k: v.astype(np.float64) for k, v in arrays.items()})
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg["lr"])
        self.control = None
        if cfg.get("control"):  # the same loop with torch_segdec's FeatureNorm formula: equal maths,
            # different float64 rounding, so its drift from the main rendition is what rounding alone gets
            self.control = SegDec(cfg["channels"], multiplier=0.0).double()
            self.control.load_state_dict(self.model.state_dict())
            self.control_optimizer = torch.optim.SGD(self.control.parameters(), lr=cfg["lr"])
        self.epoch, self.step_in_epoch, self.notes = -1, 0, []
        self.steps_per_epoch = (2 * len(self.positives)) // cfg["batch_size"]  # shuffle + drop_last
        return {"n_pos": len(self.positives), "n_neg": len(self.negatives),
                "steps_per_epoch": self.steps_per_epoch, "downsize_float32_vs_float64": downsize_gap(cfg)}

    def _identify(self, fingerprints: list[float]) -> list[Item]:
        found = []
        for fp in fingerprints:
            matches = [it for it in self.train if abs(it.fingerprint - fp) <= 1e-9 * max(abs(fp), 1.0)]
            if len(matches) != 1:
                raise ValueError(f"pixel sum {fp!r} matches {len(matches)} training images")
            found.append(matches[0])
        return found

    def _start_epoch(self, epoch: int) -> None:
        expected_next = self.epoch + 1
        if epoch != expected_next or (self.epoch >= 0 and self.step_in_epoch != self.steps_per_epoch):
            self.notes.append(f"kerasdec started epoch {epoch} after {self.step_in_epoch} steps of epoch "
                              f"{self.epoch}; the published loop has {self.steps_per_epoch} steps per epoch")
        self.epoch, self.step_in_epoch = epoch, 0
        self.seg_w, self.cls_w = loss_weights(epoch, self.cfg)
        self.model.multiplier = 0.0 if self.cfg["gradient_adjustment"] else 1.0
        if self.control is not None:
            self.control.multiplier = self.model.multiplier

    def step(self, epoch: int, fingerprints: list[float], out: str) -> dict:
        if epoch != self.epoch:
            self._start_epoch(epoch)
        batch = self._identify(fingerprints)
        losses = training_iteration(self.model, self.optimizer, batch, self.seg_w, self.cls_w, torch.float64)
        self.step_in_epoch += 1
        if self.step_in_epoch > self.steps_per_epoch:
            self.notes.append(f"epoch {epoch} has more than {self.steps_per_epoch} steps in kerasdec")
        arrays = export_weights(self.model)
        control_rel = None
        if self.control is not None:
            training_iteration(self.control, self.control_optimizer, batch, self.seg_w, self.cls_w,
                               torch.float64)
            theirs = export_weights(self.control)
            control_rel = max(float(np.max(np.abs(theirs[k] - v)) / max(float(np.max(np.abs(v))), 1e-300))
                              for k, v in arrays.items())
        if self.cfg["channels"] == 3:
            arrays["b0_kernel"] = arrays["b0_kernel"][:, :, ::-1, :].copy()
        tmp = f"{out}.tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, out)
        return {**losses, "names": [item.name for item in batch],
                "positive": [item.positive for item in batch],
                "seg_w": self.seg_w, "cls_w": self.cls_w, "m": self.model.multiplier, "notes": self.notes,
                "control_rel": control_rel}

    def validate(self, epoch: int) -> dict:
        due = validation_due(epoch, self.cfg)
        ap, scores = evaluate(self.model, self.test, torch.float64) if due else (None, [])
        return {"due": due, "ap": ap, "scores": scores, "names": [item.name for item in self.test]}


# ----------------------------------------------------------------------------------- whole runs
def published_init(model: SegDec) -> None:
    """Xavier-normal convolution kernels (the reference's Conv2d_init); Linear keeps PyTorch's default."""
    for block in model.blocks():
        torch.nn.init.xavier_normal_(block.conv.weight)


def train_run(cfg: dict) -> dict:
    """A whole published run in float32 with its own initialisation and sampler; test AP of the final
    model, validation APs and per-epoch mean losses."""
    start = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    train, test = read_items(cfg, "train", False), read_items(cfg, "test", False)  # float32, as published
    positives = [item for item in train if item.positive]
    negatives = [item for item in train if not item.positive]
    model = SegDec(cfg["channels"], multiplier=0.0)
    published_init(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"])
    sampler = PublishedEpochs(len(positives), len(negatives), cfg["batch_size"], cfg["frequency"],
                              cfg["seed"])
    history = []
    for epoch in range(cfg["epochs"]):
        seg_w, cls_w = loss_weights(epoch, cfg)
        model.multiplier = 0.0 if cfg["gradient_adjustment"] else 1.0
        sums = {"loss": 0.0, "seg_loss": 0.0, "cls_loss": 0.0}
        for batch in sampler.next_epoch():
            items = [positives[i] if pos else negatives[i] for pos, i in batch]
            losses = training_iteration(model, optimizer, items, seg_w, cls_w, torch.float32)
            for key, value in losses.items():
                sums[key] += value
        images = sampler.steps_per_epoch * cfg["batch_size"]
        row = {"epoch": epoch, **{k: v / images for k, v in sums.items()}}
        if validation_due(epoch, cfg):
            row["val_ap"] = evaluate(model, test, torch.float32)[0]
        history.append(row)
        if not all(math.isfinite(v) for v in sums.values()):  # diverged: no meaningful scores
            return {"test_ap": None, "diverged": f"non-finite loss in epoch {epoch}", "history": history,
                    "seconds": time.perf_counter() - start}
    ap, scores = evaluate(model, test, torch.float32)
    return {"test_ap": ap, "history": history, "seconds": time.perf_counter() - start,
            "n_train": [len(positives), len(negatives)], "n_test": len(test), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--train", type=Path, help="run config (JSON) of a whole run")
    parser.add_argument("--out", type=Path, help="result JSON of --train")
    args = parser.parse_args()
    if args.worker:
        serve(Worker())
    elif args.train and args.out:
        result = train_run(json.loads(args.train.read_text()))
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, args.out)
    else:
        parser.error("--worker, or --train CONFIG --out RESULT")


if __name__ == "__main__":
    main()
