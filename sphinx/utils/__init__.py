"""Small utilities every layer uses: atomic files, per-image seeds, batch-invariant arithmetic,
downloads, and file names as one-line text."""
