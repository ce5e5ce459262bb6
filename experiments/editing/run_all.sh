#!/usr/bin/env bash
# Runs the five editing experiments on the demo prior (CPU, one thread) and copies what the model
# card shows into experiments/editing/<experiment>/: results.csv, overview.png (every strip) and
# each image's walk.gif. Usage: bash experiments/editing/run_all.sh [scratch dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch="${1:-outputs/editing_card}"
export OMP_NUM_THREADS=1
for name in rotate brightness zoom morph; do
  python -m sphinx.edit +experiment=edit_$name logger=none hydra.run.dir="$scratch/$name"
done
# The direction experiment edits the morph run's SPHInX inversions instead of inverting again.
python -m sphinx.edit +experiment=edit_direction logger=none edit.states_from="$scratch/morph" \
  hydra.run.dir="$scratch/direction"
for name in rotate brightness zoom morph direction; do
  dest="experiments/editing/$name"
  mkdir -p "$dest"
  cp "$scratch/$name/results.csv" "$scratch/$name/overview.png" "$dest/"
  for gif in "$scratch/$name"/images/*/walk.gif "$scratch/$name"/morphs/*/walk.gif; do
    [ -f "$gif" ] && cp "$gif" "$dest/$(basename "$(dirname "$gif")").gif"
  done
done
python experiments/editing/summarize.py experiments/editing
