"""`mpts-fast demo`: the three scoring ops on scikit-learn's bundled digits (runs offline).

1. MMD^2 between class groups vs between random halves (what the MPTS regulariser measures),
   native kernel against the plain-PyTorch reference.
2. Snapshots along an optimisation trajectory (cyclic learning rate, one snapshot per cycle),
   streamed through SnapshotAccumulator, scored by entropy / BALD / margin over the pool.
3. Engelbrecht output sensitivity of a one-hidden-layer sigmoid network and the share of
   patterns SASLA keeps at beta = 0.9.
"""
from __future__ import annotations

import os
import time

import click
import torch
from torch import nn


def _digits(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (1797, 64) in [0, 1], y (1797,) and `rows`: the row of scikit-learn's `load_digits()` behind each
    shuffled item."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    rows = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    return x[rows], y[rows], rows


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _with_backend(name: str, fn):
    old = os.environ.get("MPTS_FAST_BACKEND")
    os.environ["MPTS_FAST_BACKEND"] = name
    try:
        return fn()
    finally:
        if old is None:
            del os.environ["MPTS_FAST_BACKEND"]
        else:
            os.environ["MPTS_FAST_BACKEND"] = old


def _mmd_section(x: torch.Tensor, y: torch.Tensor) -> None:
    from mpts_fast import ops

    low, high = x[y < 5], x[y >= 5]
    half = len(x) // 2
    click.echo("1. RBF-MMD^2 (5-bandwidth ladder, biased estimator)")
    for label, a, b in (("digits 0-4 vs 5-9", low, high), ("random half vs half", x[:half], x[half:])):
        native, t_native = _timed(lambda: ops.rbf_mmd2(a, b))
        ref, t_ref = _timed(lambda: _with_backend("reference", lambda: ops.rbf_mmd2(a, b)))
        click.echo(
            f"   {label:<22} MMD^2 = {float(native):.5f}  (reference {float(ref):.5f}; "
            f"{t_native * 1e3:.1f} ms native vs {t_ref * 1e3:.1f} ms plain)"
        )


def _snapshot_section(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, seed: int, epochs: int) -> None:
    from mpts_fast import ops

    torch.manual_seed(seed)
    labeled, pool = slice(0, 100), slice(100, None)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    acc = ops.SnapshotAccumulator(len(x) - 100, 10)
    xl, yl = x[labeled], y[labeled]
    first_cycle = (epochs + 1) // 2
    for epoch in range(epochs):
        for step, idx in enumerate(torch.randperm(100).split(64)):
            if epoch >= first_cycle:  # one linear lr cycle per epoch, lr down to lr / 10
                frac = step / max(1, (100 + 63) // 64 - 1)
                for group in opt.param_groups:
                    group["lr"] = 1e-3 * (1 - 0.9 * frac)
            opt.zero_grad()
            nn.functional.cross_entropy(model(xl[idx]), yl[idx]).backward()
            opt.step()
        if epoch >= first_cycle:
            with torch.no_grad():
                acc.update(model(x[pool]))
    scores = acc.scores()
    top = scores.entropy.topk(5).indices
    click.echo(f"2. Trajectory snapshots: {acc.count} snapshots of an MLP trained on 100 labels")
    click.echo(f"   pool of {len(x) - 100}: mean entropy {scores.entropy.mean():.3f}, mean BALD {scores.bald.mean():.4f}")
    click.echo("   top-5 by entropy (pool position, row of load_digits(): entropy / BALD / margin (p1 - p2, small = "
               "uncertain) / true label):")
    for i in top.tolist():
        click.echo(
            f"     {i:5d}, row {int(rows[100 + i]):4d}: {scores.entropy[i]:.3f} / {scores.bald[i]:.4f} / "
            f"{scores.margin[i]:.3f} / {int(y[100 + i])}"
        )


def _sensitivity_section(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> None:
    from mpts_fast import ops

    torch.manual_seed(seed)
    xs = x * 2 - 1  # features in [-1, 1]
    hidden, out = nn.Linear(64, 32), nn.Linear(32, 10)
    target = torch.full((len(y), 10), 0.1).scatter_(1, y[:, None], 0.9)
    opt = torch.optim.SGD([*hidden.parameters(), *out.parameters()], lr=0.5, momentum=0.9)
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(32):
            opt.zero_grad()
            pred = torch.sigmoid(out(torch.sigmoid(hidden(xs[idx]))))
            nn.functional.mse_loss(pred, target[idx]).backward()
            opt.step()
    with torch.no_grad():
        phi = ops.sensitivity(xs, hidden.weight, hidden.bias, out.weight, out.bias)
    keep = phi > 0.1 * phi.mean()
    click.echo("3. Output sensitivity (SASLA, sum-norm) of a 64-32-10 sigmoid network")
    click.echo(
        f"   phi over {len(y)} patterns: median {phi.median():.4f}, max {phi.max():.4f}; "
        f"beta = 0.9 keeps {int(keep.sum())} ({keep.float().mean():.0%})"
    )


@click.command()
@click.option("--seed", default=0, show_default=True, help="Random seed.")
@click.option("--epochs", default=100, show_default=True,
              help="Training epochs of the snapshot demo (the MPTS paper trains 100 per round).")
def demo(seed: int, epochs: int) -> None:
    """Run the scoring ops on the bundled digits data set (offline, a few seconds)."""
    from mpts_fast.cli.info import check_backend

    check_backend()
    x, y, rows = _digits(seed)
    click.echo(f"digits: {len(y)} images of 8x8, 10 classes (bundled with scikit-learn)\n")
    _mmd_section(x, y)
    _snapshot_section(x, y, rows, seed, epochs)
    _sensitivity_section(x, y, seed, epochs=10)
