"""Replace a generated block of README.md: the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``. Scripts that measure something write their numbers there themselves, so
no number in the README is typed by hand."""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def replace_block(name: str, body: str, *, readme: Path = README) -> None:
    """Put ``body`` between the ``name`` markers of ``readme`` (which must be there already)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = readme.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        sys.exit(f"{readme}: the {begin} ... {end} markers are missing")
    head, rest = text.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{body.strip()}\n{end}{rest.split(end, 1)[1]}", encoding="utf-8")
