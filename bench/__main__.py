"""One entry point for everything in bench/: `python -m bench <command> [options]` from the repository root.

    python -m bench                      # the commands, one line each
    python -m bench ops --quick          # the op registry, small sizes
    python -m bench <command> --help     # a command's options

Each command is one file of bench/ run as a script (the file still runs on its own: `python bench/run.py` is
`python -m bench ops`). Timing commands share bench/harness.py's timer (`time_calls`: warm-up, then best and median of
k, the CPU share other processes used during each call) and two options: `--out DIR` (default bench/results/<kind>/)
and `--quick` (small sizes that check the pipeline; written under build/bench/<kind>/ unless --out is given).
bench/README.md says what each command measures and how each committed result was made.
"""
from __future__ import annotations

import os
import sys
from typing import NamedTuple

HERE = os.path.dirname(os.path.abspath(__file__))


class Command(NamedTuple):
    file: str
    group: str
    what: str


COMMANDS: dict[str, Command] = {
    "ops": Command("run.py", "timings",
                   "every op of the registry (cases.py) next to the plain PyTorch it replaces: ratios, floors, "
                   "peak memory; results/cpu/ or results/gpu/"),
    "contended": Command("contended_cpu.py", "timings",
                         "the registry's ops quiet / one core held / every core held, against torch.mm's slowdown; "
                         "results/contended/"),
    "al-overhead": Command("al_overhead.py", "timings",
                           "MPTS training (CE + MMD², snapshots) against plain CE per epoch; results/al-overhead/"),
    "training": Command("training_speed.py", "timings",
                        "one AL round's training of 5 seeds (our Trainer stacked and one by one, recipes paper and fit) "
                        "against the plain PyTorch loop per model-step, 1 and default threads, quiet and one core held; "
                        "results/training/"),
    "training-compile": Command("training_compile.py", "timings",
                                "the small MLP's training step eager against torch.compile, alone and stacked, and "
                                "what compiling costs; results/training-compile/"),
    "selection-time": Command("selection_time.py", "timings",
                              "one select(ctx, 100) per strategy of the MPTS line-up on one pool; "
                              "results/selection-time/"),
    "integrations": Command("integrations.py", "timings",
                            "our kernels inside baal and scikit-activeml against the libraries' own code; "
                            "results/integrations/"),
    "distributed-scale": Command("distributed_scale.py", "timings",
                                 "1 vs 2 gloo processes: sharded scoring and distributed k-center; "
                                 "results/distributed-scale/"),
    "memory": Command("mem_probe.py", "timings",
                      "peak extra host memory of one call of one case's implementation in a fresh process "
                      "(ops uses it)"),
    "compare": Command("compare.py", "tools",
                       "two pytest-benchmark runs compared by ratio plain / ours (make bench-compare)"),
    "contended-summary": Command("contended_summary.py", "tools",
                                 "several `contended` results side by side: in how many runs each target held"),
    "synthetic-pool": Command("make_synthetic_pool.py", "tools",
                              "write the synthetic 50-class pool (.npz) the studies use"),
    "mpts-protocol": Command("mpts_protocol.py", "studies",
                             "AUBC of the MPTS line-up under the task / selection protocol and the λ sweep; "
                             "results/mpts-protocol/"),
    "mpts-aubc": Command("mpts_aubc.py", "studies",
                         "AUBC of MPTS, the uncertainty baselines and the MPTS ablation; results/mpts-aubc/"),
    "mpts-trajectory": Command("mpts_trajectory.py", "studies",
                               "posterior diversity of the trajectory snapshots per cyclic schedule; "
                               "results/mpts-trajectory/"),
}


def usage() -> str:
    lines = ["usage: python -m bench <command> [options]   (python -m bench <command> --help for its options)", ""]
    width = max(map(len, COMMANDS))
    for group in ("timings", "tools", "studies"):
        lines.append(f"{group}:")
        lines += [f"  {name:<{width}}  {c.what}" for name, c in COMMANDS.items() if c.group == group]
    lines += ["", "pytest-benchmark suite: make bench / make bench-compare (bench/README.md)"]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"python -m bench: unknown command {name!r}; expected one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    script = os.path.join(HERE, COMMANDS[name].file)
    sys.stdout.flush()
    # a fresh interpreter on the file, as `python bench/<file>` would start it: the scripts put bench/ on sys.path
    # themselves, and multiprocessing children (distributed-scale) re-import the script by its path
    os.execv(sys.executable, [sys.executable, script, *rest])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
