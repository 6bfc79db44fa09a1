"""ViT-Small (patch 16, 224²) through `timm`, pre-trained weights from the local timm / Hugging Face cache.

Mini-ImageNet's 84×84 images are resized to the model's input size inside `embed`. timm is optional and imported lazily.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

TIMM_NAME = "vit_small_patch16_224"


class ViTSmall(nn.Module):
    """x: (n, 3, h, w) float32 → logits (n, num_classes); embed(x) → (n, 384) pre-logits features."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, pretrained: bool = True, dropout: float = 0.3) -> None:
        super().__init__()
        try:
            import timm
        except ImportError as e:
            raise RuntimeError("model 'vit_small' needs the optional package timm (pip install timm) and, for pretrained "
                               "weights, the vit_small_patch16_224 weights in the local timm/Hugging Face cache") from e
        try:
            self.backbone = timm.create_model(TIMM_NAME, pretrained=pretrained, num_classes=0)
        except Exception as e:  # offline with an empty cache: say what is missing rather than a hub traceback
            raise RuntimeError(f"could not create timm model {TIMM_NAME!r} (pretrained={pretrained}): {e}. Offline, place "
                               "its weights in the Hugging Face cache (HF_HOME) first, or pass pretrained=False") from e
        self.image_size = self.backbone.default_cfg.get("input_size", (3, 224, 224))[-2:]
        self.embedding_dim = self.backbone.num_features
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != tuple(self.image_size):
            x = F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False)
        return self.backbone(x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
