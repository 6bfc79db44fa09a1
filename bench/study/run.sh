#!/usr/bin/env bash
# The 50-trial studies of docs/study.md (long runs; not part of the tests).
# Usage: bench/study/run.sh [iris wine sine ...]   (default: iris wine)
# Grid results are cached in bench/results/study/grid (committed), so the studies reuse them; delete a
# grid-*.json there to search again. Full outputs (figures, per-trial records) go to runs/study/<dataset>;
# the small summaries (study.json, report.md) are copied to bench/results/study/<dataset>/.
# Timings for docs/study.md are taken on a quiet machine: on the shared 2-core box wrap the study in
# `flock -x /tmp/mpts-cpu.lock`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
for ds in "${@:-iris wine}"; do
  for d in $ds; do
    out=runs/study/$d
    extra=()
    # sine: 400 training patterns are 25 batches an epoch, so its grid and passive/SASLA runs use 300 epochs
    [ "$d" = sine ] && extra=(--epochs 300)
    "$PY" -m mpts_fast.cli.main study --dataset "$d" --trials 50 --grid --grid-cache bench/results/study/grid \
      --out "$out" --overwrite --no-progress "${extra[@]}"
    mkdir -p bench/results/study/$d
    cp "$out/study.json" "$out/report.md" bench/results/study/$d/
  done
done
