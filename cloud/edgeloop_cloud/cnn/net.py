"""A small translation-robust classifier: three 3x3 convolutions, global pooling, an embedding.

Input ``[N, C, H, W]`` float; outputs logits ``[N, classes]`` and the embedding ``[N, D]`` (the
penultimate layer, which the filter's novelty strategies compare). Global average pooling
makes the class score depend little on where the object sits in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetShape:
    """The network's sizes; they travel with the exported model so training can continue."""

    channels_in: int
    classes: int
    widths: tuple[int, int, int] = (16, 32, 64)
    embedding: int = 32


class SmallConvNet(nn.Module):
    """conv-norm-relu-pool twice, conv-norm-relu, global average pool, linear-relu (embedding), linear."""

    def __init__(self, shape: NetShape) -> None:
        super().__init__()
        w1, w2, w3 = shape.widths
        self.shape = shape
        self.conv1 = nn.Conv2d(shape.channels_in, w1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(w1)
        self.conv2 = nn.Conv2d(w1, w2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(w2)
        self.conv3 = nn.Conv2d(w2, w3, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(w3)
        self.embed = nn.Linear(w3, shape.embedding)
        self.head = nn.Linear(shape.embedding, shape.classes)
        self.pool = nn.MaxPool2d(2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        x = torch.relu(self.bn3(self.conv3(x)))
        return torch.relu(self.embed(x.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.features(x)
        return self.head(embedding), embedding
