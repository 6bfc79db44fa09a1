"""Compare two pytest-benchmark runs of the bench/ suite by ratio (plain / ours), not by time.

    python bench/compare.py --current bench/results/pytest-benchmark/current.json \\
        --storage bench/results/pytest-benchmark [--tol 0.25] [--baselines 3]
    python bench/compare.py --current NEW.json --baseline OLD.json

For every benchmark group (one case of bench/cases.py) and every plain version in it, the ratio
plain time / our time is computed in each run from the best (min) round, each time multiplied by its
extra_info full_work_scale (slow baselines that time a prefix of their work). A ratio that fell
by more than --tol (a fraction: 0.25 = the current ratio is below 75% of the saved one) is a
regression. Absolute times are shown but never judged: a busy machine slows ours and plain alike
and leaves their ratio alone, so the comparison holds on noisy machines.

Without --baseline the baseline comes from the last --baselines (default 3) runs saved in --storage
(pytest-benchmark's --benchmark-save files, NNNN_name.json, in any machine folder below it) with the
same size tier (quick / full) as the current run: per case and plain version, the run whose ratio is
the median (the lower middle one for an even count). One saved run whose plain version happened to be
slow (a microsecond-scale einsum moved 208-309 us between runs here) then cannot fail every later run.

--recheck (what `make bench-compare` uses): the cases that regressed are run once more and only a
regression that shows again fails: on a shared machine a load that came and went between our
rounds and the plain ones can move one run's ratio.

Exit status: 0 no ratio fell beyond the tolerance; 1 at least one did (the table marks it);
2 nothing to compare (no baseline, or no case in common).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TOL = 0.25


@dataclass(frozen=True)
class Ratio:
    """plain / ours for one (case, plain version) of one run. Times in seconds (best round, scaled)."""

    key: tuple[str, str, str, str]  # (case, device, tier, plain impl)
    group: str
    ours_s: float
    plain_s: float

    @property
    def value(self) -> float:
        return self.plain_s / self.ours_s


@dataclass(frozen=True)
class Row:
    key: tuple[str, str, str, str]
    status: str  # "ok", "REGRESSED", "improved", "new", "missing"
    before: Ratio | None
    after: Ratio | None

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after.value / self.before.value - 1.0


def load(path: str | os.PathLike) -> dict:
    with open(path) as f:
        return json.load(f)


def tier_of(run: dict) -> str | None:
    tiers = {b.get("extra_info", {}).get("tier") for b in run.get("benchmarks", [])} - {None}
    return tiers.pop() if len(tiers) == 1 else None


def ratios(run: dict) -> dict[tuple, Ratio]:
    """Every (case, plain version) ratio of a run; benchmarks without the suite's extra_info are ignored."""
    ours: dict[tuple, float] = {}
    plains: dict[tuple, list[tuple[str, float, str]]] = {}
    for b in run.get("benchmarks", []):
        info = b.get("extra_info", {})
        if not {"case", "impl", "role"} <= info.keys():
            continue
        best = b["stats"]["min"] * float(info.get("full_work_scale", 1.0))
        case_key = (info["case"], info.get("device", "cpu"), info.get("tier", "?"))
        if info["role"] == "ours":
            ours[case_key] = best
        elif info["role"] == "plain":
            plains.setdefault(case_key, []).append((info["impl"], best, b.get("group") or ""))
    out = {}
    for case_key, entries in plains.items():
        if case_key not in ours or ours[case_key] <= 0:
            continue
        for impl, best, group in entries:
            key = (*case_key, impl)
            out[key] = Ratio(key, group, ours[case_key], best)
    return out


def median_ratios(runs: list[dict]) -> dict[tuple, Ratio]:
    """Per (case, plain version), the Ratio of the run with the median ratio among the runs that
    have it (the lower middle one for an even count, so a high outlier never sets the bar)."""
    by_key: dict[tuple, list[Ratio]] = {}
    for run in runs:
        for key, r in ratios(run).items():
            by_key.setdefault(key, []).append(r)
    return {key: sorted(rs, key=lambda r: r.value)[(len(rs) - 1) // 2] for key, rs in by_key.items()}


def compare(baseline: dict | list[dict], current: dict, tol: float = DEFAULT_TOL) -> list[Row]:
    """One row per (case, plain version) in either side; REGRESSED where the ratio fell by more than
    tol. baseline: one run, or several (their median ratio per case and plain version)."""
    if not 0 <= tol < 1:
        raise ValueError(f"tol: expected a fraction in [0, 1), got {tol}")
    before = median_ratios(baseline if isinstance(baseline, list) else [baseline])
    after = ratios(current)
    rows = []
    for key in sorted(before.keys() | after.keys()):
        b, a = before.get(key), after.get(key)
        if b is None:
            status = "new"
        elif a is None:
            status = "missing"
        elif a.value < b.value * (1.0 - tol):
            status = "REGRESSED"
        elif a.value > b.value * (1.0 + tol):
            status = "improved"
        else:
            status = "ok"
        rows.append(Row(key, status, b, a))
    return rows


def failed(rows: list[Row]) -> bool:
    return any(r.status == "REGRESSED" for r in rows)


def regressed_cases(rows: list[Row]) -> list[str]:
    return sorted({r.key[0] for r in rows if r.status == "REGRESSED"})


def confirm(first: list[Row], recheck: list[Row]) -> list[Row]:
    """A regression counts only if the re-run of its case shows it too: the first run's rows, with
    each REGRESSED row replaced by the re-run's verdict ("ok on re-run" when the re-run is within
    the tolerance; the re-run's ratio is shown)."""
    again = {r.key: r for r in recheck}
    out = []
    for r in first:
        if r.status != "REGRESSED":
            out.append(r)
            continue
        second = again.get(r.key)
        if second is not None and second.status == "REGRESSED":
            out.append(Row(r.key, "REGRESSED", r.before, second.after))
        else:
            out.append(Row(r.key, "ok on re-run", r.before, second.after if second else r.after))
    return out


def rerun(cases: list[str], json_out: str, tier: str | None) -> dict:
    """Run the pytest-benchmark suite again for these cases only, at the current run's tier."""
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, "-m", "pytest", bench_dir, "--benchmark-only", "-q", "-k", " or ".join(cases),
           f"--benchmark-json={json_out}"]
    env = dict(os.environ)
    if tier is not None:
        env["MPTS_BENCH_QUICK"] = "1" if tier == "quick" else "0"
    print("re-running the regressed cases once: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, env=env)
    return load(json_out)


def _ms(t: float) -> str:
    return f"{t * 1e6:.0f} µs" if t < 1e-3 else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")


def table(rows: list[Row], tol: float) -> str:
    lines = [
        f"plain / ours per case and plain version; a ratio that fell by more than {tol:.0%} is a regression",
        "",
        "| case | plain version | saved ratio | current ratio | change | ours saved → now | plain saved → now | status |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        case, device, tier, impl = r.key
        b, a = r.before, r.after
        lines.append(
            f"| {case} ({device}, {tier}) | {impl} | {f'{b.value:.2f}' if b else '-'} | {f'{a.value:.2f}' if a else '-'} | "
            f"{f'{r.change:+.0%}' if r.change is not None else '-'} | "
            f"{_ms(b.ours_s) if b else '-'} → {_ms(a.ours_s) if a else '-'} | "
            f"{_ms(b.plain_s) if b else '-'} → {_ms(a.plain_s) if a else '-'} | {r.status} |"
        )
    n_bad = sum(r.status == "REGRESSED" for r in rows)
    lines += ["", f"{n_bad} regression(s) beyond {tol:.0%}" if n_bad else f"no ratio fell by more than {tol:.0%}"]
    return "\n".join(lines)


_COUNTER = re.compile(r"^(\d+)_")


def saved_runs(storage: str | os.PathLike) -> list[Path]:
    """pytest-benchmark's saved runs below storage, newest first (its NNNN counter, then mtime)."""
    files = []
    for p in Path(storage).rglob("*.json"):
        m = _COUNTER.match(p.name)
        if m:
            files.append((int(m.group(1)), p.stat().st_mtime, p))
    return [p for _, _, p in sorted(files, reverse=True)]


def find_baselines(storage: str | os.PathLike, tier: str | None, exclude: Path | None = None,
                   count: int = 3) -> list[Path]:
    """The newest `count` saved runs of this tier (newest first)."""
    found = []
    for p in saved_runs(storage):
        if len(found) == count:
            break
        if exclude is not None and p.resolve() == exclude.resolve():
            continue
        try:
            if tier is None or tier_of(load(p)) == tier:
                found.append(p)
        except (OSError, ValueError):
            continue
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--current", required=True, help="pytest-benchmark JSON of the run to judge (--benchmark-json)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--baseline", help="pytest-benchmark JSON to compare with")
    src.add_argument("--storage", help="folder of saved runs (--benchmark-storage): the last one of the same tier")
    ap.add_argument("--recheck", action="store_true",
                    help="re-run the suite for the regressed cases once; fail only where the re-run regresses too")
    ap.add_argument("--tol", type=float, default=float(os.environ.get("TOL", DEFAULT_TOL)),
                    help=f"allowed fall of a ratio, as a fraction (default {DEFAULT_TOL}, or $TOL)")
    ap.add_argument("--baselines", type=int, default=3,
                    help="with --storage: the median ratio of the last this many saved runs of the tier (default 3)")
    a = ap.parse_args(argv)
    if a.baselines < 1:
        ap.error(f"--baselines: expected a positive number of saved runs, got {a.baselines}")
    current = load(a.current)
    if a.baseline:
        base_paths = [Path(a.baseline)]
    else:
        base_paths = find_baselines(a.storage, tier_of(current), exclude=Path(a.current), count=a.baselines)
        if not base_paths:
            print(f"compare: no saved run of the {tier_of(current)} tier in {a.storage}; run `make bench` first",
                  file=sys.stderr)
            return 2
    baseline = [load(p) for p in base_paths]
    rows = compare(baseline, current, a.tol)
    what = "baseline" if len(base_paths) == 1 else f"baseline (median of {len(base_paths)} saved runs)"
    print(f"{what}: {', '.join(str(p) for p in base_paths)}\ncurrent:  {a.current}\n")
    if a.recheck and failed(rows):
        print(table(rows, a.tol) + "\n")
        again = rerun(regressed_cases(rows), str(Path(a.current).with_suffix(".recheck.json")), tier_of(current))
        rows = confirm(rows, compare(baseline, again, a.tol))
        print("\nafter the re-run (a regression must show in both runs):\n")
    print(table(rows, a.tol))
    if not any(r.before and r.after for r in rows):
        print("compare: no case in common between the two runs (different tiers or devices?)", file=sys.stderr)
        return 2
    return 1 if failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
