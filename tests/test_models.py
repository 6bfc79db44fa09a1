import pytest
import torch

from mpts_fast.models import build_model, model_names


@pytest.mark.parametrize("name,shape", [("mlp", (7,)), ("mlp", (1, 4, 4)), ("resnet18", (3, 8, 8)), ("resnet18", (1, 5, 7))])
def test_forward_is_head_of_embed(name, shape):
    torch.manual_seed(0)
    m = build_model(name, shape, 4).eval()
    x = torch.randn(3, *shape)
    z = m.embed(x)
    assert z.shape == (3, m.embedding_dim)
    torch.testing.assert_close(m(x), m.head(z))


def test_batchnorm_model_trains_on_two_items():
    m = build_model("resnet18", (3, 8, 8), 2)
    m(torch.randn(2, 3, 8, 8)).sum().backward()


def test_unknown_model_lists_names():
    with pytest.raises(ValueError, match="mlp"):
        build_model("vgg", (3, 32, 32), 10)
    assert {"mlp", "resnet18", "vit_small"} <= set(model_names())


def test_resnet_needs_images():
    with pytest.raises(ValueError, match="input_shape"):
        build_model("resnet18", (64,), 10)


def test_vit_without_timm_says_what_is_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_timm(name, *a, **k):
        if name == "timm":
            raise ImportError("no timm")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(RuntimeError, match="timm"):
        build_model("vit_small", (3, 84, 84), 100)
