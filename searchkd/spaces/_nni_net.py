"""The proxies' network interface around a fixed NNI model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from searchkd.errors import SearchKDError

__all__ = ["NNIClassifier", "as_classifier"]


class NNIClassifier(nn.Module):
    """A fixed NNI model whose last ``nn.Linear`` is the classifier.

    ``forward`` is the model's own; ``forward_features(x)`` is the classifier's input in
    that forward (captured by a hook: for most CNNs the pooled B×C features, not a
    B×C×H×W map); ``forward_head(f)`` applies the classifier. The classifier is looked
    up by its path in the model, so copies of the wrapper stay consistent.
    """

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model = model
        self.head = head

    @property
    def classifier(self) -> nn.Linear:
        return self.model.get_submodule(self.head)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = self.classifier.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        if not captured:
            raise SearchKDError(f"the NNI model never calls its last nn.Linear ({self.head!r}), "
                                "which searchkd takes as the classifier")
        return captured[0]

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)


def as_classifier(model: nn.Module, num_classes: int | None, name: str) -> nn.Module:
    """``model`` itself when it already offers the interface, else wrapped; checks the class count."""
    if (isinstance(getattr(model, "classifier", None), nn.Linear) and callable(getattr(model, "forward_features", None))
            and callable(getattr(model, "forward_head", None))):
        net, head = model, model.classifier
    else:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise SearchKDError(f"{name}: the network has no nn.Linear; proxies need a linear classifier")
        net = NNIClassifier(model, linears[-1])
        head = net.classifier
    if num_classes is not None and head.out_features != num_classes:
        raise SearchKDError(f"{name}: the network has {head.out_features} classes (its last nn.Linear), the data "
                            f"{num_classes}; give the space's constructor a num_classes argument to adapt it")
    return net
