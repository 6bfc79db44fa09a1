"""Does torch.compile pay for the small models' training step on the CPU? One optimiser step of the OpenML-6-shaped MLP
(16 -> 256 -> 26, batch 64, Adam), eager against torch.compile (inductor), alone and as a stack of 5 models (the
lockstep form, training/stacked.py), per model-step; and what the compilation costs (its first call), so the steps
it would need to pay back. One intra-op thread, as the trainer runs these models.

    python -m bench training-compile            # ~2-4 min on 2 cores (mostly compiling); results/training-compile/
    python -m bench training-compile --quick    # fewer steps
    python -m bench training-compile --device cuda   # on a GPU, also mode="reduce-overhead" (CUDA graphs)

The answer decides whether the trainer compiles its step: it does not (docs/benchmarks.md, "Training").
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import mpts_fast  # noqa: F401  isort: skip
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from contention import load_average  # noqa: E402

from mpts_fast.models import build_model  # noqa: E402
from mpts_fast.training.stacked import StackedAdam, StackedModels  # noqa: E402

D, C, B, S = 16, 26, 64, 5


def single_step(device: str):
    """One model's step as the sequential trainer takes it: forward, cross-entropy, backward, Adam."""
    model = build_model("mlp", (D,), C, dropout=0.0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(B, D, device=device), torch.randint(C, (B,), device=device)

    def loss_fn():
        return F.cross_entropy(model(x), y)

    def step(compute):
        opt.zero_grad(set_to_none=True)
        compute().backward()
        opt.step()

    return loss_fn, step


def stacked_step(device: str):
    """S models' step as lockstep takes it: stacked forward, per-model mean cross-entropy summed, backward, Adam."""
    stack = StackedModels([build_model("mlp", (D,), C, dropout=0.0).to(device) for _ in range(S)])
    opt = StackedAdam(list(stack.params.values()))
    x, y = torch.randn(S, B, D, device=device), torch.randint(C, (S, B), device=device)

    def loss_fn():
        logits = stack.head(stack.embed(x))
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(S, -1).mean(1).sum()

    def step(compute):
        opt.zero_grad()
        compute().backward()
        opt.step([1e-3] * S, [True] * S)

    return loss_fn, step


def measure(build, models: int, steps: int, device: str) -> dict:
    out = {}
    # on a GPU also CUDA graphs (inductor's "reduce-overhead"): a small model's step is launch-bound there
    modes = ("eager", "compiled") + (("cuda-graphs",) if device.startswith("cuda") else ())
    for mode in modes:
        loss_fn, step = build(device)
        compute = (loss_fn if mode == "eager" else
                   torch.compile(loss_fn, mode="reduce-overhead" if mode == "cuda-graphs" else "default"))
        t0 = time.perf_counter()
        step(compute)  # the compiled one compiles here
        harness.sync(device)
        first = time.perf_counter() - t0
        for _ in range(20):
            step(compute)
        timed = harness.time_calls(lambda: [step(compute) for _ in range(steps)], device=device, warmup=0, reps=5)
        out[mode] = {"first_call_s": first, "ms_per_model_step": 1e3 * timed["median_s"] / steps / models}
    gain = out["eager"]["ms_per_model_step"] - out["compiled"]["ms_per_model_step"]
    cost = out["compiled"]["first_call_s"] - out["eager"]["first_call_s"]
    out["compiled_over_eager"] = out["compiled"]["ms_per_model_step"] / out["eager"]["ms_per_model_step"]
    out["model_steps_to_pay_back"] = cost / (gain / 1e3) if gain > 0 else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_common_options(ap, "training-compile", "fewer steps per timing")
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    ap.add_argument("--device", default="cpu", help="cpu (one intra-op thread, as the trainer runs these models) or "
                                                     "cuda")
    args = ap.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    steps = 20 if args.quick else 200
    result = {"date": dt.date.today().isoformat(), "versions": harness.versions(),
              "machine": harness.machine_name("cuda" if args.device.startswith("cuda") else "cpu"),
              "device": args.device, "threads": torch.get_num_threads(), "load_average_before": load_average(),
              "what": f"MLP {D}->256->{C}, batch {B}, Adam; forward+loss compiled (inductor), backward and the "
                      f"optimiser eager", "rows": {}}
    for name, build, models in (("single", single_step, 1), (f"stack of {S}", stacked_step, S)):
        r = measure(build, models, steps, args.device)
        result["rows"][name] = r
        graphs = (f", CUDA graphs {r['cuda-graphs']['ms_per_model_step']:.3f}" if "cuda-graphs" in r else "")
        print(f"{name:<11} eager {r['eager']['ms_per_model_step']:.3f} ms/model-step, compiled "
              f"{r['compiled']['ms_per_model_step']:.3f} ({r['compiled_over_eager']:.2f}x the eager time){graphs}, "
              f"compiling took {r['compiled']['first_call_s']:.1f} s; pays back after "
              f"{r['model_steps_to_pay_back'] and round(r['model_steps_to_pay_back'])} model-steps", flush=True)
    result["load_average_after"] = load_average()
    path = harness.out_dir(args, "training-compile") / f"{result['date']}-training-compile-{result['machine']}{args.tag}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
