"""Backbones. Every classifier returns logits from `forward(x)` and exposes its penultimate embedding
through `embed(x) -> (n, D)` and `head(z) -> logits`, so strategies and the MMD term use the same layer."""
from __future__ import annotations

from typing import Callable

from torch import nn

from mpts_fast.models.cnn1d import CNN1D
from mpts_fast.models.mlp import MLP
from mpts_fast.models.resnet import ResNet18


def _vit(input_shape, num_classes, **kw):
    from mpts_fast.models.vit import ViTSmall

    return ViTSmall(input_shape, num_classes, **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "resnet18": ResNet18, "vit_small": _vit, "cnn1d": CNN1D}


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs) -> nn.Module:
    """A fresh backbone (seed torch before calling for reproducible weights). kwargs go to its constructor; every
    backbone takes `dropout`, the probability of the dropout before its head (default 0.3 when not given; the
    active-learning loop passes each strategy's value, see mpts_fast.strategies.registry.model_dropout)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"model: unknown backbone {name!r}; expected one of {', '.join(model_names())}") from None
    return factory(tuple(input_shape), num_classes, **kwargs)


__all__ = ["CNN1D", "MLP", "ResNet18", "MODELS", "model_names", "build_model"]
