"""Feature Mixing (ALFA-Mix, Parvaneh et al. 2022), as the authors' code runs it
(`query_strategies/alpha_mix_sampling.py` of the ALFA-Mix repository): mix each unlabeled embedding z with every class anchor z* (the mean labeled embedding of
the class; the mean of all labeled embeddings for a class with no labels), (1 − α) z + α z*; an item whose predicted
class changes for some anchor is a candidate; k-means over the normalised candidate embeddings, the candidate nearest
each centre is picked; too few candidates are topped up at random.

The cap on α grows as in the reference, cap = step, 2·step, … while the previous cap is below 1, until more than
`budget` items are candidates. Two ways to choose α (`alpha`):

- "learned" (default; the authors' headline variant, `--alpha_opt`, cap step 1/32): α ∈ ℝ^D per item and anchor starts
  at clamp(N(cap/2, (cap/2)²), 1e-8, cap) and takes 5 steps on −CE(head(mix), ŷ) + 0.01‖α‖ (maximise the loss, keep α
  small), clamped to [1e-8, cap] after each. The reference builds a fresh Adam optimiser (lr 0.1, lr/10 from the 4th
  step on) for every step, so each step is Adam's first: α ← α − lr·g/(|g| + 1e-8); we apply that step directly. The
  prediction is checked at the α of each of the 5 iterations, before its step (as the reference; the α after the last
  step is never checked).
- "closed_form" (`--alpha_closed_form_approx`; cap step 0.2 as the authors recommend): with ∇ the gradient of
  CE(head(z), ŷ) at z, ε = cap/√D and d = z* − z, α = ε‖d‖ ∇/(‖∇‖ (d + 1e-8)) element-wise. We apply the mix as
  z + α⊙d = z + ε‖d‖ ∇̂ ⊙ d/(d + 1e-8), the same quantity without forming α, which is huge where d is tiny.

Random numbers: the initial α of one cap step is one normal draw of shape (C, b, D) from the round's generator for each
block of b = `block` not-yet-candidate items (in pool order). An item that is already a candidate is not mixed again
at a larger cap (it stays a candidate either way); the reference redraws α for it and discards the result, so the set
of candidates has the same law, drawn from another stream.

Deviations from the reference: the random top-up is without replacement (the reference's np.random.choice may pick an
item twice); `kmeans="faiss"`/`"torch"`/`"auto"` are faster stand-ins for the reference's scikit-learn KMeans (the
default, "sklearn").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch.nn import functional as F

from mpts_fast._checks import choice, number_option, positive_float, positive_int
from mpts_fast.strategies._access import embed_head_model, fill_randomly, require_classes, seed_from
from mpts_fast.strategies.base import SelectionContext, Strategy
from mpts_fast.strategies.kmeans import BACKENDS, kmeans_nearest
from mpts_fast.strategies.registry import register

Head = Callable[[torch.Tensor], torch.Tensor]
ALPHAS = ("learned", "closed_form")
DEFAULT_CAP = {"learned": 1 / 32, "closed_form": 0.2}  # the reference's default step; the authors' advice


@dataclass
class Candidates:
    """mask: (n,) bool on the CPU, the candidates among the n unlabeled rows; caps: the caps tried, in order; counts:
    the number of candidates after each."""

    mask: torch.Tensor
    caps: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def record(self) -> dict:
        return {"candidates": int(self.mask.sum()), "alpha_cap": self.caps[-1] if self.caps else None,
                "candidates_per_cap": list(self.counts)}


def cap_schedule(step: float) -> Iterator[float]:
    """The reference's caps: step, 2·step, … (summed, as it does) while the previous one is below 1."""
    cap = 0.0
    while cap < 1.0:
        cap += step
        yield cap


def class_anchors(z_labeled: torch.Tensor, y_labeled: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(n_L, D), (n_L,) → (C, D) class means; a class without labels gets the mean of all labeled embeddings."""
    y = y_labeled.to(z_labeled.device)
    sums = torch.zeros(num_classes, z_labeled.shape[1], dtype=z_labeled.dtype, device=z_labeled.device)
    sums.index_add_(0, y, z_labeled)
    counts = torch.bincount(y, minlength=num_classes).to(z_labeled.dtype)
    anchors = sums / counts.clamp_min(1).unsqueeze(1)
    anchors[counts == 0] = z_labeled.mean(0)
    return anchors


def loss_gradients(head: Head, z: torch.Tensor, pred: torch.Tensor, block: int) -> torch.Tensor:
    """(n, D) rows of ∂CE(head(z_i), ŷ_i)/∂z_i (each item's own loss, so a summed loss gives them all at once)."""
    out = []
    for zb, pb in zip(torch.split(z, block), torch.split(pred, block)):
        zb = zb.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(head(zb).float(), pb, reduction="sum")
            out.append(torch.autograd.grad(loss, zb)[0])
    return torch.cat(out) if out else torch.zeros_like(z)


def _flipped(head: Head, mixed: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """mixed (b, C, D) → (b,) bool: does any anchor's mix change the prediction?"""
    b, c, d = mixed.shape
    return (head(mixed.reshape(-1, d)).argmax(1).view(b, c) != pred.unsqueeze(1)).any(1)


@torch.no_grad()
def closed_form_flips(head: Head, z: torch.Tensor, unit_grad: torch.Tensor, pred: torch.Tensor,
                      anchors: torch.Tensor, eps: float, block: int = 512) -> torch.Tensor:
    """(n,) bool: does z + ε‖d‖ ∇̂ ⊙ d/(d + 1e-8), d = z* − z, change the prediction ŷ for at least one anchor z*?
    z, unit_grad: (n, D); pred: (n,); anchors: (C, D). Blocks of `block` items × C anchors."""
    flips = []
    for zb, gb, pb in zip(torch.split(z, block), torch.split(unit_grad, block), torch.split(pred, block)):
        d = anchors.unsqueeze(0) - zb.unsqueeze(1)  # (b, C, D)
        scale = eps * torch.linalg.vector_norm(d, dim=2, keepdim=True)
        flips.append(_flipped(head, zb.unsqueeze(1) + scale * gb.unsqueeze(1) * (d / (d + 1e-8)), pb))
    return torch.cat(flips) if flips else torch.zeros(0, dtype=torch.bool, device=z.device)


def initial_alpha(shape: tuple[int, ...], cap: float, generator: torch.Generator | None) -> torch.Tensor:
    """The reference's starting α: clamp(N(cap/2, (cap/2)²), 1e-8, cap), float32 on the CPU."""
    alpha = torch.normal(cap / 2.0, cap / 2.0, size=shape, generator=generator)
    return alpha.clamp_(1e-8, cap)


def learned_flips(head: Head, z: torch.Tensor, pred: torch.Tensor, anchors: torch.Tensor, cap: float,
                  generator: torch.Generator | None, *, learning_rate: float = 0.1, iters: int = 5,
                  clf_coef: float = 1.0, l2_coef: float = 0.01, block: int = 512) -> torch.Tensor:
    """(n,) bool: does the prediction ŷ change at any of the `iters` α iterates, for at least one anchor? z: (n, D);
    pred: (n,); anchors: (C, D). See the module docstring for the steps and the random draws."""
    c, d = anchors.shape
    flips = []
    for zb, pb in zip(torch.split(z, block), torch.split(pred, block)):
        b = zb.shape[0]
        alpha = initial_alpha((c, b, d), cap, generator).to(z.device, z.dtype).transpose(0, 1)  # (b, C, D)
        diff = anchors.unsqueeze(0) - zb.unsqueeze(1)  # z* − z: the mix is z + α ⊙ (z* − z), linear in α
        target = pb.repeat_interleave(c)
        flip = torch.zeros(b, dtype=torch.bool, device=z.device)
        for it in range(iters):
            lr = learning_rate / (1.0 if it < iters * 2 / 3 else 10.0)
            mixed = torch.addcmul(zb.unsqueeze(1), alpha, diff).reshape(-1, d).requires_grad_(True)
            with torch.enable_grad():
                out = head(mixed)
                g_mix = torch.autograd.grad(F.cross_entropy(out, target, reduction="sum"), mixed)[0]
            flip |= (out.detach().argmax(1).view(b, c) != pb.unsqueeze(1)).any(1)
            # ∂/∂α of −clf·CE + l2·‖α‖: the chain rule through the mix by hand (cheaper than autograd through it)
            g = -clf_coef * g_mix.view(b, c, d) * diff + l2_coef * alpha / torch.linalg.vector_norm(alpha, dim=2,
                                                                                                    keepdim=True)
            alpha = (alpha - lr * g / (g.abs() + 1e-8)).clamp_(1e-8, cap)  # a fresh Adam's first step
        flips.append(flip)
    return torch.cat(flips) if flips else torch.zeros(0, dtype=torch.bool, device=z.device)


def alfa_mix_candidates(head: Head, z_u: torch.Tensor, z_l: torch.Tensor, y_l: torch.Tensor, num_classes: int,
                        budget: int, *, alpha: str = "learned", alpha_cap: float | None = None,
                        generator: torch.Generator | None = None, learning_rate: float = 0.1, iters: int = 5,
                        clf_coef: float = 1.0, l2_coef: float = 0.01, block: int = 512) -> Candidates:
    """ALFA-Mix's candidate rule. head: embeddings (m, D) → logits (m, C), in eval mode; z_u (n, D) unlabeled and z_l
    (n_L, D) labeled embeddings with labels y_l (n_L,); caps grow until more than `budget` candidates. alpha_cap: the
    cap step (None: 1/32 learned, 0.2 closed form). Returns the candidates and, per cap tried, their number."""
    choice(alpha, "alpha", ALPHAS)
    step = DEFAULT_CAP[alpha] if alpha_cap is None else alpha_cap
    z_u, z_l = z_u.detach(), z_l.detach().to(z_u.dtype)
    n, dim = z_u.shape
    result = Candidates(torch.zeros(n, dtype=torch.bool))
    if n == 0:
        return result
    with torch.no_grad():
        pred = torch.cat([head(zb).argmax(1) for zb in torch.split(z_u, block)])
    anchors = class_anchors(z_l, y_l, num_classes)
    if alpha == "closed_form":
        grads = loss_gradients(head, z_u, pred, block)
        # a zero gradient (saturated softmax) means no direction to move: the unit vector stays 0
        unit = grads / torch.linalg.vector_norm(grads, dim=1, keepdim=True).clamp_min(torch.finfo(grads.dtype).tiny)
    candidate = torch.zeros(n, dtype=torch.bool, device=z_u.device)
    for cap in cap_schedule(step):
        todo = (~candidate).nonzero().squeeze(1)  # once a candidate, always one
        if alpha == "closed_form":
            new = closed_form_flips(head, z_u[todo], unit[todo], pred[todo], anchors, cap / math.sqrt(dim), block)
        else:
            new = learned_flips(head, z_u[todo], pred[todo], anchors, cap, generator, learning_rate=learning_rate,
                                iters=iters, clf_coef=clf_coef, l2_coef=l2_coef, block=block)
        candidate[todo] = new
        result.caps.append(cap)
        result.counts.append(int(candidate.sum()))
        if result.counts[-1] > budget:
            break
    result.mask = candidate.cpu()
    return result


@register
class AlfaMixStrategy(Strategy):
    """Options: alpha ("learned" or "closed_form"), alpha_cap (the cap step; None: 1/32 learned, 0.2 closed form),
    learning_rate (0.1), iters (5), clf_coef (1.0), l2_coef (0.01) for the learned α; kmeans ("sklearn" as the
    reference; "auto", "faiss", "torch" are faster), kmeans_iters (50, faiss/torch only), block (512 items per batched
    head call × C anchors). Each round records the number of candidates in the round's "selection" entry."""

    name = "alfa_mix"
    description = "feature mixing towards class anchors (learned alpha), k-means over items whose prediction flips"

    def __init__(self, alpha: str = "learned", alpha_cap: float | None = None, learning_rate: float = 0.1,
                 iters: int = 5, clf_coef: float = 1.0, l2_coef: float = 0.01, kmeans: str = "sklearn",
                 kmeans_iters: int = 50, block: int = 512) -> None:
        choice(alpha, "alpha", ALPHAS)
        self.alpha = alpha
        if alpha_cap is not None:
            alpha_cap = positive_float(alpha_cap, "alpha_cap")
            if alpha_cap > 1:
                raise ValueError(f"alpha_cap: expected a step in (0, 1], got {alpha_cap!r}")
        self.alpha_cap = alpha_cap
        self.learning_rate = positive_float(learning_rate, "learning_rate")
        self.iters = positive_int(iters, "iters")
        self.clf_coef = positive_float(clf_coef, "clf_coef")
        self.l2_coef = number_option(l2_coef, "l2_coef", at_least=0, below=math.inf, what="a non-negative number")
        choice(kmeans, "kmeans", BACKENDS)
        self.kmeans = kmeans
        self.kmeans_iters = positive_int(kmeans_iters, "kmeans_iters")
        self.block = positive_int(block, "block")

    def candidates(self, ctx: SelectionContext, budget: int) -> tuple[Candidates, torch.Tensor]:
        """→ (the candidates among ctx.unlabeled, (n_U, D) their embeddings on the model's device)."""
        model = embed_head_model(ctx, self.name)
        require_classes(ctx, self.name)
        z_u = ctx.trained.embeddings(ctx.x_unlabeled).float()
        z_l = ctx.trained.embeddings(ctx.x_pool[ctx.labeled.to(ctx.x_pool.device)]).float()
        found = alfa_mix_candidates(model.head, z_u, z_l, ctx.y_labeled, ctx.num_classes, budget, alpha=self.alpha,
                                    alpha_cap=self.alpha_cap, generator=ctx.generator,
                                    learning_rate=self.learning_rate, iters=self.iters, clf_coef=self.clf_coef,
                                    l2_coef=self.l2_coef, block=self.block)
        return found, z_u

    def select(self, ctx: SelectionContext, budget: int) -> torch.Tensor:
        found, z_u = self.candidates(ctx, budget)
        ctx.extras["selection"] = found.record()
        pos = found.mask.nonzero().squeeze(1)
        if pos.numel() > budget:
            z = z_u[pos.to(z_u.device)]
            pos = pos[kmeans_nearest(F.normalize(z, dim=1), budget, seed=seed_from(ctx.generator),
                                     niter=self.kmeans_iters, backend=self.kmeans)]
        picks = ctx.unlabeled[pos.to(ctx.unlabeled.device)]
        return fill_randomly(picks, ctx.unlabeled, budget, ctx.generator)
