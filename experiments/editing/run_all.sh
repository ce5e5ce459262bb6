#!/usr/bin/env bash
# Runs the editing experiments on the demo prior (CPU, one thread each) and copies what the model
# card shows into experiments/editing/<experiment>/: results.csv, overview.png (every strip) and
# each image's walk.gif. Every edit starts from the main job's inversions (sphinx_warm, 500 steps):
# the attributes keep them and learn only their direction and alphas (edit.fit_inversion=false),
# each with its control run (the direction frozen at its random start); the authors' joint fit of
# inversion and direction runs beside each, from the same states, into <name>_joint.
# Usage: bash experiments/editing/run_all.sh [scratch dir]
set -euo pipefail
cd "$(dirname "$0")/../.."
scratch="${1:-outputs/editing_card}"
export OMP_NUM_THREADS=1
main="$scratch/main"
python -m sphinx.run +experiment=ood_faces logger=none hydra.run.dir="$main"
from_main=(logger=none edit.states_from="$main")
for name in rotate brightness zoom; do
  python -m sphinx.edit +experiment=edit_$name "${from_main[@]}" edit.fit_inversion=false hydra.run.dir="$scratch/$name" &
  kept=$!
  # the authors' way for comparison: the inversion fitted again together with the direction
  python -m sphinx.edit +experiment=edit_$name "${from_main[@]}" edit.fit_inversion=true hydra.run.dir="$scratch/${name}_joint"
  wait "$kept"
done
for name in morph direction; do
  python -m sphinx.edit +experiment=edit_$name "${from_main[@]}" hydra.run.dir="$scratch/$name"
done
for name in rotate brightness zoom rotate_joint brightness_joint zoom_joint morph direction; do
  dest="experiments/editing/$name"
  mkdir -p "$dest"
  cp "$scratch/$name/results.csv" "$scratch/$name/overview.png" "$dest/"
  [[ $name == *_joint ]] && continue  # the comparison runs: their tables and overview are enough
  for gif in "$scratch/$name"/images/*/walk.gif "$scratch/$name"/morphs/*/walk.gif; do
    [ -f "$gif" ] && cp "$gif" "$dest/$(basename "$(dirname "$gif")").gif"
  done
done
python -m sphinx.report "$scratch"/{rotate,brightness,zoom,morph,direction} --out experiments/editing
python -m sphinx.report "$scratch"/{rotate,brightness,zoom}_joint --out experiments/editing/joint
python experiments/editing/readme_block.py "$scratch"
