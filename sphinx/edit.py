"""``python -m sphinx.edit``: learn attributes, morph, or move inversions along latent directions.

Thin, like ``sphinx.run``: compose (Hydra: ``conf/edit``, which reuses sphinx.run's groups and
adds ``edit``), then :func:`sphinx.entry.run_job` with the edit: the same checks before any
compute, stop signals, in-batch checkpoints, resume and config fingerprint as ``sphinx.run``.
``python -m sphinx.edit --help`` lists the config groups.
"""

import functools

from sphinx.entry import hydra_entry, run_job

main = hydra_entry("edit", "editing", functools.partial(run_job, edit=True))

if __name__ == "__main__":
    main()
