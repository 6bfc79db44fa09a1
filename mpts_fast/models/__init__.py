"""Backbones. Every classifier returns logits from `forward(x)` and exposes its penultimate embedding
through `embed(x) -> (n, D)` and `head(z) -> logits`, so strategies and the MMD term can use the same layer."""
