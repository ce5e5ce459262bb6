"""``python -m sphinx.report``: see :mod:`sphinx.report.cli`."""

from sphinx.report.cli import main

raise SystemExit(main())
