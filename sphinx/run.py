"""``python -m sphinx.run``: invert a set of images and report PSNR / SSIM / LPIPS.

Thin: compose (Hydra, ``conf/run``), then :func:`sphinx.entry.run_job`: build and check
(``sphinx.build``), invert (Lightning), write the run's tables. ``python -m sphinx.run --help``
lists the config groups.
"""

from sphinx.entry import hydra_entry, run_job

main = hydra_entry("run", "config", run_job)

if __name__ == "__main__":
    main()
