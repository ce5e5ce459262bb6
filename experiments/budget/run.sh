#!/usr/bin/env bash
# The committed quality-versus-budget report: every method of +experiment=budget on the demo
# prior, then sphinx.report into this folder. Each method is its own run dir under RUNS, so a
# killed run resumes where it stopped (finished images are skipped); JOBS methods run at once.
#   bash experiments/budget/run.sh                 # all 7 bundled samples
#   LIMIT=3 bash experiments/budget/run.sh         # the first 3 (data.limit=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-outputs/budget}  # outside git (outputs/ is ignored)
JOBS=${JOBS:-2}
LIMIT=${LIMIT:-null}
METHODS=(sphinx_warm wplus sphinx wplus_noise w pti sphinx_ps sphinx_ps_pc)
mkdir -p "$RUNS"
printf '%s\n' "${METHODS[@]}" | xargs -P "$JOBS" -I{} env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
  python -m sphinx.run +experiment=budget method={} data.limit="$LIMIT" logger=none \
  hydra.run.dir="$RUNS/{}" > "$RUNS/log.txt" 2>&1
python -m sphinx.report "$RUNS" --out experiments/budget
python experiments/budget/readme.py  # the headline into README.md
