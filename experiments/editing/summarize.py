"""Print the model card's tables from the results.csv files that run_all.sh copied.

Usage: python experiments/editing/summarize.py experiments/editing
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

COLUMNS = {
    "rotate": ["alphas", "psnr@0", "psnr@22.5", "psnr@45", "psnr_heldout@30", "psnr_identity@30"],
    "brightness": ["alphas", "psnr@1", "psnr@1.3", "psnr@1.6", "psnr_heldout@1.45", "psnr_identity@1.45"],
    "zoom": ["alphas", "psnr@1", "psnr@1.25", "psnr@1.5", "psnr_heldout@1.375", "psnr_identity@1.375"],
    "morph": ["endpoint_error", "step_mean", "smoothness"],
    "direction": ["psnr", "change"],
}


def main(root: Path) -> None:
    for name, columns in COLUMNS.items():
        path = root / name / "results.csv"
        if not path.is_file():
            continue
        with open(path, newline="") as stream:
            rows = list(csv.DictReader(stream))
        print(f"\n{name}: {rows[0]['method']} on {rows[0]['generator']}, {len(rows)} rows")
        print("| image | " + " | ".join(columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for row in rows:
            cells = [row[c] if c == "alphas" else f"{float(row[c]):.3g}" for c in columns]
            print(f"| {row['image']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/editing"))
