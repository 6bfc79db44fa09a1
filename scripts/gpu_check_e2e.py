#!/usr/bin/env python3
"""gpu-check's end-to-end stage: `mpts-fast run` for two rounds on the embedded digits data set,
MPTS and BADGE, on the device and once more on the CPU, and the two compared.

    python3 scripts/gpu_check_e2e.py --device cuda --work build/gpu-check/e2e
    python3 scripts/gpu_check_e2e.py --device cpu --work /tmp/x --epochs 2   # the CPU rehearsal

Each run is the command a user types (`python -m mpts_fast run ...`, the `mpts-fast` entry point's
module) in its own process. Training on a GPU rounds differently from the CPU, so the runs are not
expected to match bit for bit; the verdict asks that both finish every round, the device run
really ran on the device with mpts_fast's kernels, both start from the same initial labeled set
(drawn from the seed alone), and each round's test accuracy agrees within --tolerance. The overlap
of the picks is reported, not judged. On --device cpu the CPU run is the device run (nothing to
compare; the rehearsal only checks that the commands work).

The last line printed is `GPU_CHECK_RESULT {json}`. Exit status 0 when every comparison holds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STRATEGIES = ("mpts", "badge")


def run_cli(py: str, strategy: str, device: str, out_dir: str, rounds: int, epochs: int | None) -> dict:
    cmd = [py, "-m", "mpts_fast", "run", "-s", strategy, "--dataset", "digits", "--rounds", str(rounds),
           "--device", device, "--seed", "0", "-q", "--overwrite", "-o", out_dir]
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    print("[e2e] $ " + " ".join(cmd), flush=True)
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.monotonic() - t0, 1)
    sys.stdout.write(res.stdout + res.stderr)
    entry: dict = {"command": " ".join(cmd), "exit_code": res.returncode, "seconds": seconds}
    path = os.path.join(out_dir, "results.json")
    if res.returncode != 0 or not os.path.exists(path):
        entry["error"] = (res.stderr.strip().splitlines() or [f"exit {res.returncode}, no results.json"])[-1]
        return entry
    with open(path) as f:
        doc = json.load(f)
    run = doc["runs"][0]
    prov = doc["provenance"][-1]
    entry.update(
        device=doc.get("device"), backend=prov.get("backend"), native_devices=prov.get("native_devices"),
        complete=run.get("complete"), initial=run["initial"],
        accuracy=[r["test_accuracy"] for r in run["rounds"]],
        selected=[r.get("selected", []) for r in run["rounds"]],
        train_seconds=[round(r.get("train_seconds", 0.0), 3) for r in run["rounds"]],
        select_seconds=[round(r.get("select_seconds", 0.0), 4) for r in run["rounds"]],
    )
    return entry


def compare(dev: dict, cpu: dict, device: str, rounds: int, tol: float) -> list[str]:
    """The reasons the device run does not stand next to the CPU run (empty: it does)."""
    problems = []
    for name, e in (("device", dev), ("cpu", cpu)):
        if "error" in e:
            problems.append(f"the {name} run failed: {e['error']}")
        elif len(e["accuracy"]) != rounds:
            problems.append(f"the {name} run has {len(e['accuracy'])} rounds, not {rounds}")
    if problems:
        return problems
    if dev["device"] != device:
        problems.append(f"the device run recorded device {dev['device']!r}, not {device!r}")
    if dev["backend"] != "native" or device not in (dev["native_devices"] or []):
        problems.append(f"the device run did not use mpts_fast's {device} kernels (backend {dev['backend']}, "
                        f"native devices {dev['native_devices']})")
    if dev["initial"] != cpu["initial"]:
        problems.append("the initial labeled sets differ (they depend on the seed alone)")
    for r, (a, b) in enumerate(zip(dev["accuracy"], cpu["accuracy"])):
        if abs(a - b) > tol:
            problems.append(f"round {r}: test accuracy {a:.3f} on {device} against {b:.3f} on cpu (tolerance {tol})")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu"], required=True)
    ap.add_argument("--work", required=True, help="folder for the runs' own outputs")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, help="training epochs per round (default: the data set's)")
    ap.add_argument("--tolerance", type=float, default=0.10, help="largest accepted accuracy gap per round")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    result: dict = {"device": a.device, "rounds": a.rounds, "tolerance": a.tolerance, "strategies": {}}
    failed = False
    for strategy in STRATEGIES:
        dev = run_cli(a.python, strategy, a.device, os.path.join(a.work, f"{strategy}-{a.device}"), a.rounds, a.epochs)
        cpu = dev if a.device == "cpu" else run_cli(a.python, strategy, "cpu", os.path.join(a.work, f"{strategy}-cpu"),
                                                    a.rounds, a.epochs)
        problems = compare(dev, cpu, a.device, a.rounds, a.tolerance)
        entry = {"pass": not problems, "problems": problems,
                 **{f"{k}_{side}": e.get(k) for side, e in (("device", dev), ("cpu", cpu))
                    for k in ("accuracy", "seconds", "train_seconds", "select_seconds", "error")}}
        if not problems and len(dev["selected"]) > 1 and dev["selected"][0]:
            a_set, b_set = set(dev["selected"][0]), set(cpu["selected"][0])
            entry["round0_picks_shared"] = f"{len(a_set & b_set)} of {len(a_set)}"
        result["strategies"][strategy] = entry
        failed |= bool(problems)
        print(f"[e2e] {strategy}: {'agrees' if not problems else 'DIFFERS: ' + '; '.join(problems)}", flush=True)
    print("GPU_CHECK_RESULT " + json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
