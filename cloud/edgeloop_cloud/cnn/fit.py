"""Train the small network: seeded, class-balanced, every newly labelled sample used.

Each step draws a minibatch from base and new examples by weight: new examples (the world as
the devices see it now) get ``new_share`` of the draws once there are any, and inside each part
every class gets the same share, so a rare class is not drowned. Draws are perturbed by
``augment``. Training can start from a champion's weights (``init``): far fewer steps then
reach a better model than starting from scratch, because the champion already knows the base.
Everything random comes from one ``torch.Generator`` seeded from ``seed``, with one thread, so
the same inputs and seed give the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgeloop_cloud.cnn.augment import Augmentation, perturb
from edgeloop_cloud.cnn.net import NetShape, SmallConvNet


@dataclass(frozen=True)
class FitPlan:
    """How long and how fast to train."""

    steps: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    new_share: float
    label_smoothing: float
    augmentation: Augmentation


@dataclass
class FitResult:
    net: SmallConvNet
    steps: int
    final_loss: float


def draw_weights(labels: np.ndarray, is_new: np.ndarray, new_share: float) -> np.ndarray:
    """Per-example draw probabilities: ``new_share`` to the new part (when it has examples),
    the rest to the base part, each part's share split equally between its classes."""
    weights = np.zeros(len(labels), dtype=np.float64)
    parts = [(is_new, new_share), (~is_new, 1.0 - new_share)] if is_new.any() else [(~is_new, 1.0)]
    if not (~is_new).any():
        parts = [(is_new, 1.0)]
    for mask, share in parts:
        classes = np.unique(labels[mask])
        for c in classes:
            members = mask & (labels == c)
            weights[members] = share / len(classes) / members.sum()
    return weights / weights.sum()


def fit(
    *,
    x: np.ndarray,
    y: np.ndarray,
    is_new: np.ndarray,
    shape: NetShape,
    plan: FitPlan,
    seed: int,
    init: dict[str, torch.Tensor] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> FitResult:
    """Train on ``x`` (``[N, C, H, W]`` float32) with labels ``y`` (class indices)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = SmallConvNet(shape)
    if init is not None:
        net.load_state_dict(init, strict=False)  # exported models carry no batch-norm step counters
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    probs = torch.from_numpy(draw_weights(np.asarray(y), np.asarray(is_new, bool), plan.new_share))
    optimizer = torch.optim.AdamW(net.parameters(), lr=plan.learning_rate, weight_decay=plan.weight_decay)
    net.train()
    loss_value = float("nan")
    for step in range(plan.steps):
        lr = plan.learning_rate * 0.5 * (1.0 + math.cos(math.pi * step / plan.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.multinomial(probs, plan.batch_size, replacement=True, generator=gen)
        batch = perturb(xt[idx], plan.augmentation, gen)
        logits, _ = net(batch)
        loss = F.cross_entropy(logits, yt[idx], label_smoothing=plan.label_smoothing)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        if progress is not None and (step + 1) % 50 == 0:
            progress(step + 1, plan.steps, loss_value)
    net.eval()
    return FitResult(net=net, steps=plan.steps, final_loss=loss_value)
