r"""File names and image ids as text that fits on one line of a UTF-8 table, caption or log.

A file name on Linux may hold any byte but ``/`` and NUL: newlines, carriage returns, other control
characters, and bytes that are not UTF-8, which ``os.listdir`` hands over as lone surrogates
(U+DC80..U+DCFF, Python's ``surrogateescape``). An image id is such a name, kept as it is; none of
those characters can be written as they are into a UTF-8 CSV row or drawn in a one-line caption.
Here they become backslash escapes:

- a newline, carriage return and tab ``\n``, ``\r``, ``\t``; any other ASCII control ``\xNN``;
- a byte that is not UTF-8 (a lone surrogate U+DC80..U+DCFF) ``\xNN``, the byte itself, as
  ``ls -b`` shows it: ``caf\xe9.png`` is a Latin-1 "café.png";
- any other character that ends a line or has no UTF-8 form (C1 controls, U+2028, U+2029, other
  lone surrogates) ``\uNNNN``.

Every other character, ``é`` and ``猫`` included, stays as it is. :func:`image_id_to_text` also
doubles each backslash, so that distinct ids get distinct texts and :func:`image_id_from_text`
reads the id back exactly; :func:`one_line` leaves backslashes alone (a message or a Windows path
reads as it was) and is not meant to be read back.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NAMED_BACK = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\"}
# the characters escaped, backslash aside: controls (Cc), line and paragraph separators, surrogates
_SPECIAL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|(.?))", re.DOTALL)
_BYTES = range(0xDC80, 0xDD00)  # surrogateescape: byte b (>= 0x80) is U+DC00 + b


def one_line(text: str) -> str:
    """``text`` with every character that cannot stand on one UTF-8 line escaped (module docstring).

    For messages and paths: backslashes are kept, so the result is not meant to be read back.
    Applying it twice changes nothing.
    """
    return _SPECIAL.sub(lambda match: _escape(match.group()), text)


def image_id_to_text(image_id: str) -> str:
    r"""The text form of an image id, as every table, caption and log line of a run writes it.

    One printable UTF-8 line whatever the id holds (module docstring): ``astronaut`` and
    ``sub/café.png`` stay as they are, a name with a newline between ``a`` and ``b.png`` becomes
    ``a\nb.png`` (a backslash and an ``n``), one holding the byte 0xE9 ``caf\xe9.png``, and
    ``a\b.png`` becomes ``a\\b.png``. Distinct ids get distinct texts, and
    :func:`image_id_from_text` reads an id back from its text.

    Args:
        image_id: an image id (e.g. a file name as ``os.listdir`` gives it).

    Returns:
        Its text form.
    """
    return one_line(image_id.replace("\\", "\\\\"))


def image_id_from_text(text: str) -> str:
    """The image id whose text form is ``text``: the inverse of :func:`image_id_to_text`.

    Args:
        text: an id as a run's tables write it (e.g. a ``results.csv`` ``image`` cell).

    Returns:
        The id, with the bytes of a non-UTF-8 file name as the lone surrogates that ``open``
        and ``os.listdir`` use, so ``Path(folder) / id`` opens the file.

    Raises:
        ValueError: ``text`` holds a backslash that starts no escape of :func:`image_id_to_text`.
    """

    def unescape(match: re.Match) -> str:
        byte, code, named = match.groups()
        if byte is not None:
            value = int(byte, 16)
            return chr(value) if value < 0x80 else chr(0xDC00 + value)
        if code is not None:
            return chr(int(code, 16))
        if named in _NAMED_BACK:
            return _NAMED_BACK[named]
        raise ValueError(f"{text!r} is not the text form of an image id: a backslash starts no escape")

    return _ESCAPE.sub(unescape, text)


def _escape(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    if code < 0x80:
        return f"\\x{code:02x}"
    if code in _BYTES:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"
