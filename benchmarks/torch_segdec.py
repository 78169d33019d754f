"""An independent PyTorch rendition of SegDecNet (docs/method.md#network), used ONLY in benchmarks.

Run inside the PyTorch venv made by ``benchmarks/setup_torch.sh``; it never imports kerasdec or
TensorFlow. ``python torch_segdec.py --worker`` answers JSON commands on stdin, one per line, so that
``compare_torch.py`` (in kerasdec's environment) can alternate between the two frameworks in one run:

* ``{"cmd": "setup", "arrays": "in.npz", "lr": 0.1}`` — build the network, load the weights and the
  batch (x, seg, decision) from the .npz written by compare_torch.py (kerasdec's weights, converted
  to PyTorch layouts here).
* ``{"cmd": "check", "out": "out.npz"}`` — forward outputs, losses and the weight change of one SGD
  step, written to ``out`` (the weights are restored afterwards).
* ``{"cmd": "train", "steps": n}`` / ``{"cmd": "forward", "steps": n}`` — seconds per step (mean of n).

The network is PyTorch eager in NCHW, float32, default threads: what a user of the published code
runs. Gradient adjustment is on (m = 0): the decision loss does not reach the segmentation stage
(``detach``), as in kerasdec's default.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# (filters, kernel) per block; "pool" = MaxPool2 (docs/method.md#network).
SEGMENTATION = ((32, 5), "pool", (64, 5), (64, 5), (64, 5), "pool",
                (64, 5), (64, 5), (64, 5), (64, 5), "pool", (1024, 15))
DECISION = ((8, 5), (16, 5), (32, 5))


class FeatureNorm(nn.Module):
    """y = scale·(x − mean)/sqrt(std + eps) + bias per sample and channel; std unbiased, n − 1 >= 1."""

    def __init__(self, channels: int, eps: float = 0.001) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3]
        mean = x.mean(dim=(2, 3), keepdim=True)
        centred = x - mean
        std = (centred.square().sum(dim=(2, 3), keepdim=True) / max(n - 1, 1)).sqrt()
        return self.scale * centred / (std + self.eps).sqrt() + self.bias


class Block(nn.Module):
    """Conv2d (no bias, same padding) → FeatureNorm → optional ReLU."""

    def __init__(self, cin: int, cout: int, k: int, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.norm = FeatureNorm(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return F.relu(y) if self.relu else y


class GradientMultiply(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by m (the published mechanism)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, m: float) -> torch.Tensor:
        ctx.m = m
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.m, None


class SegDec(nn.Module):
    """Images (B, C, H, W) → (decision logit (B, 1), seg logits (B, 1, H/8, W/8)).

    ``multiplier`` None: the decision stage's inputs are detached (m = 0 without the wasted backward
    pass; the speed comparison). A number m: the gradient into the decision stage is multiplied by m,
    as the published code does (``benchmarks/fidelity``); ``model.multiplier`` may be changed later.
    """

    def __init__(self, channels: int = 1, multiplier: float | None = None) -> None:
        super().__init__()
        self.multiplier = multiplier
        layers, cin = [], channels
        for stage in SEGMENTATION:
            if stage == "pool":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(Block(cin, *stage))
                cin = stage[0]
        self.segmentation = nn.Sequential(*layers)
        self.seg_head = Block(1024, 1, 1, relu=False)
        layers, cin = [], 1025
        for filters, k in DECISION:
            layers += [nn.MaxPool2d(2), Block(cin, filters, k)]
            cin = filters
        self.decision = nn.Sequential(*layers)
        self.dense = nn.Linear(66, 1)

    def blocks(self) -> list[Block]:
        """Every Block in kerasdec's order: segmentation blocks, seg head, decision blocks."""
        seg = [m for m in self.segmentation if isinstance(m, Block)]
        return seg + [self.seg_head] + [m for m in self.decision if isinstance(m, Block)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        volume = self.segmentation(x)  # (B, 1024, H/8, W/8)
        seg = self.seg_head(volume)  # (B, 1, H/8, W/8)
        if self.multiplier is None:  # gradient adjustment m = 0
            d = self.decision(torch.cat([volume, seg], dim=1).detach())
            pooled = [seg.detach().amax(dim=(2, 3)), seg.detach().mean(dim=(2, 3))]
        else:
            d = self.decision(GradientMultiply.apply(torch.cat([volume, seg], dim=1), self.multiplier))
            pooled = [GradientMultiply.apply(seg.amax(dim=(2, 3)), self.multiplier),
                      GradientMultiply.apply(seg.mean(dim=(2, 3)), self.multiplier)]
        features = [d.amax(dim=(2, 3)), d.mean(dim=(2, 3)), *pooled]
        return self.dense(torch.cat(features, dim=1)), seg


def load_weights(model: SegDec, arrays: dict[str, np.ndarray]) -> None:
    """kerasdec's weights (kernels HWIO, dense (66, 1)) → PyTorch layouts (OIHW, (1, 66))."""
    with torch.no_grad():
        for i, block in enumerate(model.blocks()):
            block.conv.weight.copy_(torch.from_numpy(arrays[f"b{i}_kernel"].transpose(3, 2, 0, 1).copy()))
            block.norm.scale.copy_(torch.from_numpy(arrays[f"b{i}_scale"]).reshape(1, -1, 1, 1))
            block.norm.bias.copy_(torch.from_numpy(arrays[f"b{i}_bias"]).reshape(1, -1, 1, 1))
        model.dense.weight.copy_(torch.from_numpy(arrays["dense_kernel"].T.copy()))
        model.dense.bias.copy_(torch.from_numpy(arrays["dense_bias"]))


def export_weights(model: SegDec) -> dict[str, np.ndarray]:
    """The inverse of load_weights: PyTorch layouts → kerasdec's names and layouts."""
    out = {}
    for i, block in enumerate(model.blocks()):
        out[f"b{i}_kernel"] = block.conv.weight.detach().numpy().transpose(2, 3, 1, 0).copy()
        out[f"b{i}_scale"] = block.norm.scale.detach().numpy().ravel().copy()
        out[f"b{i}_bias"] = block.norm.bias.detach().numpy().ravel().copy()
    out["dense_kernel"] = model.dense.weight.detach().numpy().T.copy()
    out["dense_bias"] = model.dense.bias.detach().numpy().copy()
    return out


class Worker:
    """State of one benchmark configuration: model, optimizer and batch."""

    def setup(self, arrays: str, lr: float) -> dict:
        data = dict(np.load(arrays))
        x = data["x"]  # (B, H, W, C) as kerasdec feeds it
        self.model = SegDec(x.shape[-1])
        load_weights(self.model, data)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        self.seg = torch.from_numpy(data["seg"].transpose(0, 3, 1, 2).copy())
        self.decision = torch.from_numpy(data["decision"])
        return {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def losses(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        decision, seg = self.model(self.x)
        seg_ce = F.binary_cross_entropy_with_logits(seg, self.seg, reduction="none")
        seg_loss = seg_ce.mean(dim=(1, 2, 3)).sum()  # per-sample pixel mean, summed over the batch
        cls_loss = F.binary_cross_entropy_with_logits(decision, self.decision, reduction="sum")
        return decision, seg, seg_loss, cls_loss

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        _, _, seg_loss, cls_loss = self.losses()
        loss = seg_loss + cls_loss  # seg weight 1, cls weight 1 (kerasdec's initial values)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def check(self, out: str) -> dict:
        before = export_weights(self.model)
        with torch.no_grad():
            decision, seg, seg_loss, cls_loss = self.losses()
        loss = self.step()
        after = export_weights(self.model)
        result = {"decision": decision.numpy(), "seg": seg.numpy().transpose(0, 2, 3, 1),
                  "seg_loss": np.float32(seg_loss), "cls_loss": np.float32(cls_loss),
                  "loss": np.float32(loss)}
        result.update({f"delta_{k}": after[k] - before[k] for k in before})
        load_weights(self.model, before)
        result.update(self.float64_deltas(before))
        np.savez(out, **result)
        return {"written": out}

    def float64_deltas(self, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One SGD step of the same network in float64: the reference both float32 versions approach."""
        model = SegDec(self.x.shape[1]).double()
        load_weights(model, {k: v.astype(np.float64) for k, v in weights.items()})
        decision, seg = model(self.x.double())
        seg_loss = F.binary_cross_entropy_with_logits(seg, self.seg.double(), reduction="none")
        cls_loss = F.binary_cross_entropy_with_logits(decision, self.decision.double(), reduction="sum")
        (seg_loss.mean(dim=(1, 2, 3)).sum() + cls_loss).backward()
        lr = self.optimizer.param_groups[0]["lr"]
        grads = {}
        for i, block in enumerate(model.blocks()):
            grads[f"b{i}_kernel"] = block.conv.weight.grad.numpy().transpose(2, 3, 1, 0)
            grads[f"b{i}_scale"] = block.norm.scale.grad.numpy().ravel()
            grads[f"b{i}_bias"] = block.norm.bias.grad.numpy().ravel()
        grads["dense_kernel"] = model.dense.weight.grad.numpy().T
        grads["dense_bias"] = model.dense.bias.grad.numpy()
        return {f"delta64_{k}": -lr * g for k, g in grads.items()}

    def train(self, steps: int) -> dict:
        self.model.train()
        start = time.perf_counter()
        for _ in range(steps):
            loss = self.step()
        return {"seconds": (time.perf_counter() - start) / steps, "loss": loss}

    def forward(self, steps: int) -> dict:
        start = time.perf_counter()
        with torch.inference_mode():
            for _ in range(steps):
                decision, seg = self.model(self.x)
                float(decision[0, 0])
        return {"seconds": (time.perf_counter() - start) / steps}


def serve(worker: object | None = None) -> None:
    """Answer one JSON command per stdin line with one JSON line on stdout, by calling the method of
    ``worker`` (default: this module's Worker) that the command names; fidelity/published_loop.py
    serves its own worker through this loop."""
    worker = Worker() if worker is None else worker
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            break
        try:
            reply = getattr(worker, cmd)(**request)
        except Exception as err:  # reported to the coordinator (compare_torch.TorchWorker), which stops
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] != ["--worker"]:
        sys.exit("usage: python torch_segdec.py --worker  (driven by compare_torch.py)")
    serve()
