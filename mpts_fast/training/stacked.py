"""Several models of one architecture as one: their parameters stacked along a leading model axis, a forward pass over
(S, B, ...) batches (each model its own rows), and Adam over the stacked parameters with a learning rate per model.

Used by lockstep training (training/lockstep.py). A backbone stacks where its forward is written here for stacked
weights: the MLP's, with baddbmm (nn.Linear's addmm, batched). A model's slice then computes the same floats
whatever else is in the stack (batched GEMMs are per matrix; tests/test_lockstep.py), which keeps a resumed run
(fewer seeds left to stack) equal to an uninterrupted one. It agrees with the unbatched model to float rounding
(a batched GEMM may block a small matrix differently from torch.mm).

torch.func.vmap over functional_call would stack any backbone, but measured on the 1-D CNN its floats depend on
how many models are stacked (its batched convolution becomes one grouped convolution), and it was slower per
model-step on the MLP (0.26 against 0.19 ms): not used.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import stack_module_state

from mpts_fast.models.mlp import MLP

StackedLayer = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def stacking_obstacle(model: nn.Module) -> str | None:
    """Why `model`'s kind cannot train stacked (None: it can). Dropout draws its masks from torch's global generator,
    one stream per sequentially trained model, which a stacked pass cannot reproduce; BatchNorm keeps running
    statistics per model, which the stacked pass does not keep (not built)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return f"dropout (p = {module.p} at {name or 'the model'}) draws its masks from torch's global generator"
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return f"BatchNorm ({name}) keeps running statistics per model"
    if any(True for _ in model.buffers()):
        return "the model has buffers (state besides its parameters)"
    if _written(model) is None:
        return f"no stacked forward is written for {type(model).__name__} (training/stacked.py)"
    return None


def _mlp_embed(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    # MLP.embed: Flatten → Linear → ReLU; baddbmm is nn.Linear's addmm, batched
    return torch.baddbmm(params["encoder.1.bias"].unsqueeze(1), x.flatten(2),
                         params["encoder.1.weight"].transpose(1, 2)).relu()


def _mlp_head(params: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    # MLP.head: dropout (p = 0 here: the identity), Linear
    return torch.baddbmm(params["classifier.bias"].unsqueeze(1), z, params["classifier.weight"].transpose(1, 2))


# backbone class -> (its parameters' names, stacked embed, stacked head)
_WRITTEN: dict[type, tuple[set[str], StackedLayer, StackedLayer]] = {
    MLP: ({"encoder.1.weight", "encoder.1.bias", "classifier.weight", "classifier.bias"}, _mlp_embed, _mlp_head)}


def _written(model: nn.Module) -> tuple[StackedLayer, StackedLayer] | None:
    """(embed, head) written for stacked weights of `model`'s kind, None where there are none (another class, or
    one whose parameters are not the ones they were written for)."""
    entry = _WRITTEN.get(type(model))
    if entry is None or {name for name, _ in model.named_parameters()} != entry[0]:
        return None
    return entry[1], entry[2]


class StackedModels:
    """S models of one architecture (built by the same factory) as stacked leaf tensors `params[name]`: (S, *shape).

    embed(x): x (S, B, *input_shape) → (S, B, D) embeddings; head(z): (S, B, D) → (S, B, C) logits; each model its
    own rows, as the backbone's embed and head.
    """

    def __init__(self, models: list[nn.Module]) -> None:
        if not models:
            raise ValueError("models: expected at least one model to stack")
        self.models = models
        params, _ = stack_module_state(models)
        self.params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        written = _written(models[0])
        if written is None:
            raise ValueError(f"models: no stacked forward for {type(models[0]).__name__} (stacking_obstacle says so)")
        self._embed, self._head = written

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._embed(self.params, x)

    def head(self, z: torch.Tensor) -> torch.Tensor:
        return self._head(self.params, z)

    @torch.no_grad()
    def load_into(self, s: int) -> nn.Module:
        """Model s with its slice of the stacked parameters copied in."""
        model = self.models[s]
        for name, p in model.named_parameters():
            p.copy_(self.params[name][s])
        return model

    @torch.no_grad()
    def unstack(self) -> list[nn.Module]:
        """Each model with its slice of the stacked parameters copied in (the models passed in, updated)."""
        return [self.load_into(s) for s in range(len(self.models))]


class StackedAdam:
    """torch.optim.Adam's single-tensor update (amsgrad off, as the trainer uses it) on stacked parameters, with a
    learning rate per model and a mask of the models still training: each model's slice follows exactly the
    arithmetic of its own torch.optim.Adam (the moments elementwise over the whole stack; the parameter step per model
    where the learning rates differ or some models have stopped). All models in the stack took every step together
    until they stopped, so one step count serves them all."""

    def __init__(self, params: list[torch.Tensor], weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.params, self.weight_decay, self.betas, self.eps = params, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
        self.step_count = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lrs: list[float], active: list[bool]) -> None:
        """lrs: each model's learning rate for this step; active: which models take it (the others are left as they
        are)."""
        beta1, beta2 = self.betas
        self.step_count += 1
        # torch reads its step tensor back as a Python float: the bias corrections are computed in double
        step = float(self.step_count)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        uniform = all(active) and all(lr == lrs[0] for lr in lrs)
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            grad = p.grad
            if self.weight_decay != 0:
                grad = grad.add(p, alpha=self.weight_decay)
            m.lerp_(grad, 1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            if uniform:
                p.addcdiv_(m, denom, value=-(lrs[0] / bias_correction1))
                continue
            for s, (lr, on) in enumerate(zip(lrs, active)):
                if on:
                    p[s].addcdiv_(m[s], denom[s], value=-(lr / bias_correction1))
