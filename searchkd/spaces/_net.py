"""The network interface every space builds and every proxy relies on."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ClassifierNet"]


class ClassifierNet(nn.Module):
    """A CNN whose pre-pooling feature map and classifier are reachable.

    ``forward_features(x)`` returns the B×C×H×W map before global pooling,
    ``forward_head(f)`` pools it and applies ``self.classifier`` (an ``nn.Linear``);
    ``forward(x)`` is their composition and returns logits.
    """

    classifier: nn.Linear

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
