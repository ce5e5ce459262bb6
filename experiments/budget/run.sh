#!/usr/bin/env bash
# The committed quality-versus-budget report: every method of +experiment=budget on the demo
# prior up to 2000 steps, the authors' sphinx to its full 5000 (the line to reach), then
# sphinx.report into this folder. Each method is its own run dir under RUNS, so a killed run
# resumes where it stopped (finished images are skipped); JOBS methods run at once.
#   bash experiments/budget/run.sh                 # all 7 bundled samples
#   LIMIT=3 bash experiments/budget/run.sh         # the first 3 (data.limit=3)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-outputs/budget}  # outside git (outputs/ is ignored)
JOBS=${JOBS:-2}
LIMIT=${LIMIT:-null}
# method and the steps_scale that caps its source's step count at 2000 (sphinx: its full 5000;
# ilo: its rounds 50, 50, 25, 25 scaled up to 667, 667, 334, 334)
RUNS_OF=(
  "sphinx 1" "sphinx_fast 1" "sphinx_warm 0.4" "ilo 13.34" "wplus 0.4" "wplus_noise 0.25" "w 1" "pti 1"
  "sphinx_ps 0.4" "sphinx_ps_pc 0.4"
)
mkdir -p "$RUNS"
printf '%s\n' "${RUNS_OF[@]}" | xargs -P "$JOBS" -L 1 sh -c 'OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
  python -m sphinx.run +experiment=budget method=$0 steps_scale=$1 data.limit='"$LIMIT"' logger=none \
  hydra.run.dir='"$RUNS"'/$0 >> '"$RUNS"'/log.txt 2>&1'
python -m sphinx.report "$RUNS" --out experiments/budget
mkdir -p experiments/budget/curves
for run in "$RUNS"/*/; do
  [ -f "$run/curves.csv" ] && cp "$run/curves.csv" "experiments/budget/curves/$(basename "$run").csv"
done
python experiments/budget/readme.py  # the headline into README.md
