"""What a run dir holds, written and read back: per-image records and run tables, their column
schema, the configuration fingerprint that guards a resume, the lock that keeps a second job out,
stop signals, progress lines and the labelled pictures. No Lightning, no Hydra: the report and the Lightning layer both use it."""
