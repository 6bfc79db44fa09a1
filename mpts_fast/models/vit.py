"""ViT-Small for Mini-ImageNet, the protocol of the ALFA-Mix code (`models/vision_transformer.py`, after DINO's linear
evaluation): DINO ViT-S/16 weights, frozen except the final LayerNorm and the LayerNorms of the last `fine_tune_blocks`
blocks (1); the feature is the CLS tokens of the last `n_last_blocks` (4) blocks, each through the final LayerNorm,
concatenated (4 × 384 = 1536-d); a linear projection to `projection` (256) dims is the embedding, then a linear head
(weights N(0, 0.01²), bias 0). Images go in at their own size (84 × 84: a 5 × 5 patch grid, the position embedding
resampled), as the reference does; nothing is resized to 224.

Through timm (optional, imported lazily): `vit_small_patch16_224.dino`, the DINO weights timm serves. Differences from
the reference: timm resamples the position embedding with its own bicubic routine (DINO's adds 0.1 to the scale
factor); our `dropout` sits before the head, where MC dropout needs it (the reference's optional dropout, off by
default, sits before the projection).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from mpts_fast.models.mlp import DEFAULT_DROPOUT, check_dropout

TIMM_NAME = "vit_small_patch16_224.dino"
DINO_FILE = "dino_deitsmall16_pretrain.pth"  # DINO's own release of the same weights, accepted as `weights=`


def hub_cache_dir() -> Path:
    """Where huggingface_hub (timm's downloader) keeps its files: HF_HUB_CACHE, else HF_HOME/hub, else
    ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _import_timm():
    try:
        import timm
    except Exception as e:  # ImportError, or a broken torchvision underneath
        raise RuntimeError(f"model 'vit_small' needs the optional package timm (pip install timm), which could not be "
                           f"imported: {e}") from e
    return timm


def _load_weights_file(backbone: nn.Module, path: str | os.PathLike) -> None:
    """A DINO checkpoint (its 'teacher' entry, 'module.'/'backbone.' prefixes) or a plain timm state dict."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RuntimeError(f"weights: no file at {path} (expected DINO's {DINO_FILE} or a timm state dict of "
                           f"{TIMM_NAME})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "teacher" in state:
        state = state["teacher"]
    state = {k.replace("module.", "").replace("backbone.", ""): v for k, v in state.items()}
    missing, _ = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head")]
    if missing:
        raise RuntimeError(f"weights: {path} lacks {len(missing)} ViT-S/16 tensors (first: {missing[0]}); expected "
                           f"DINO's {DINO_FILE} or a timm state dict of {TIMM_NAME}")


def create_backbone(pretrained: bool = True, weights: str | os.PathLike | None = None) -> nn.Module:
    """The timm ViT-S/16 (no classifier, any input size). weights: a local file (then `pretrained` is not used);
    pretrained: timm's DINO weights from the Hugging Face cache (downloaded when online); else random initialisation."""
    timm = _import_timm()
    kwargs = dict(num_classes=0, dynamic_img_size=True)
    if weights is not None:
        backbone = timm.create_model(TIMM_NAME, pretrained=False, **kwargs)
        _load_weights_file(backbone, weights)
        return backbone
    try:
        return timm.create_model(TIMM_NAME, pretrained=pretrained, **kwargs)
    except Exception as e:  # offline with an empty cache: say what is missing and where it was looked for
        folder = hub_cache_dir() / ("models--timm--" + TIMM_NAME)
        raise RuntimeError(
            f"model 'vit_small': the pretrained DINO weights of timm model {TIMM_NAME!r} could not be loaded ({e}). "
            f"They are looked for in the Hugging Face cache at {folder} (set HF_HUB_CACHE or HF_HOME to move it) and "
            f"downloaded from the hub when online. Offline: copy that folder from a machine that has it, or pass "
            f"weights=<path to DINO's {DINO_FILE}>, or pretrained=False for random weights") from e


def freeze_except_layernorms(backbone: nn.Module, fine_tune_blocks: int) -> None:
    """All backbone parameters frozen except the final norm and the LayerNorms that are direct children of the last
    `fine_tune_blocks` blocks (the reference's `fine_tune`)."""
    for p in backbone.parameters():
        p.requires_grad_(False)
    if fine_tune_blocks <= 0:
        return
    for p in backbone.norm.parameters():
        p.requires_grad_(True)
    for block in list(backbone.blocks)[-fine_tune_blocks:]:
        for child in block.children():
            if isinstance(child, nn.LayerNorm):
                for p in child.parameters():
                    p.requires_grad_(True)


class ViTSmall(nn.Module):
    """x: (n, 3, h, w) float32 → logits (n, num_classes); embed(x) → (n, projection), or (n, 384·n_last_blocks) with
    projection=None. backbone: a ready timm-style ViT (tests); otherwise built by create_backbone."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, pretrained: bool = True,
                 dropout: float = DEFAULT_DROPOUT, n_last_blocks: int = 4, fine_tune_blocks: int = 1,
                 projection: int | None = 256, weights: str | os.PathLike | None = None,
                 backbone: nn.Module | None = None) -> None:
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(f"input_shape: ViTSmall needs images (c, h, w), got {tuple(input_shape)}")
        self.backbone = backbone if backbone is not None else create_backbone(pretrained, weights)
        depth = len(self.backbone.blocks)
        if not 1 <= n_last_blocks <= depth:
            raise ValueError(f"n_last_blocks: expected 1..{depth}, got {n_last_blocks}")
        if not 0 <= fine_tune_blocks <= depth:
            raise ValueError(f"fine_tune_blocks: expected 0..{depth}, got {fine_tune_blocks}")
        freeze_except_layernorms(self.backbone, fine_tune_blocks)
        self.n_last_blocks = n_last_blocks
        features = self.backbone.embed_dim * n_last_blocks
        self.projection = nn.Linear(features, projection) if projection else nn.Identity()
        self.embedding_dim = projection or features
        self.dropout = nn.Dropout(check_dropout(dropout))
        self.classifier = nn.Linear(self.embedding_dim, num_classes)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def cls_features(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, h, w) → (n, embed_dim · n_last_blocks): the final-norm CLS token of each of the last blocks."""
        b = self.backbone
        t = b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))
        first = len(b.blocks) - self.n_last_blocks
        out = []
        for i, blk in enumerate(b.blocks):
            t = blk(t)
            if i >= first:
                out.append(b.norm(t)[:, 0])
        return torch.cat(out, dim=1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.cls_features(x))

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))
