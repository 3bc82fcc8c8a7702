"""Provides UTF-8 decoding of user files that names what is wrong and where, instead of a UnicodeDecodeError."""

from __future__ import annotations

import re

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# The line breaks editors count. str.splitlines() also breaks at U+2028, U+0085, form feeds and more, which
# may sit inside a token or a JSON string: splitting there would cut a row and shift every later line number.
_BREAKS = re.compile(r"\r\n|\r|\n")


def decode(raw: bytes) -> tuple[str | None, int, str]:
    """``(text, 0, "")`` for UTF-8 (a BOM is dropped), else ``(None, line, why)`` with the first bad byte's line."""
    if raw[:2] in UTF16_BOMS:
        return None, 1, "the file is UTF-16; save it as UTF-8"
    try:
        return raw.decode("utf-8-sig"), 0, ""
    except UnicodeDecodeError as exc:
        line = len(_BREAKS.findall(raw[:exc.start].decode("latin-1"))) + 1  # counted as numbered_lines does
        return None, line, (f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file "
                            "as UTF-8")


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of a decoded file, with CRLF, CR and LF line ends only."""
    return list(enumerate(_BREAKS.split(text), start=1))


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of two equal keys, which silently drops the first value (a row's label, say).
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def json_row(line: str) -> tuple[object, str]:
    """``(value, "")`` for one line of a JSONL file, else ``(None, why)``: a message for ``FILE:LINE: why``.

    Beyond malformed JSON this refuses what ``json.loads`` accepts but mmzoo cannot use or would lose:
    a key given twice in one object, nesting too deep to parse, a number too long to convert, and a
    lone surrogate escape (``"\\ud800"``), which is no character and cannot be written as UTF-8.
    """
    import json

    try:
        value = json.loads(line, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        return None, f"bad JSON: {exc.msg} (column {exc.colno})"
    except _DuplicateKey as exc:
        return None, f"key {exc.key!r} appears twice in this row, so one of its values would be lost; keep one"
    except RecursionError:
        return None, "the JSON is nested too deeply; a row is one flat object"
    except ValueError as exc:  # an integer with more digits than Python converts (sys.get_int_max_str_digits)
        why = "a number has too many digits to read" if "digits" in str(exc) else str(exc)
        return None, f"bad JSON: {why}; write long numbers as strings"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start:exc.end]
        return None, (f"the row holds a lone surrogate escape ({char.encode('unicode_escape').decode()}), "
                      "which is not a character; write the character itself, or its full surrogate pair")
    return value, ""


def utf8_problem(text: str) -> str | None:
    """Why ``text`` cannot be written as UTF-8 (a lone surrogate), in words, or None when it can.

    Such strings come from JSON escapes (``"\\ud800"``) or from command-line bytes that are not UTF-8
    (Python keeps them as surrogates); the tokenizers library fails on them with a bare TypeError.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = text[exc.start]
        try:  # a byte Python kept from undecodable input (surrogateescape)
            what = f"byte 0x{char.encode('utf-8', 'surrogateescape').hex()} is not UTF-8"
        except UnicodeEncodeError:
            what = f"{ascii(char)} is a lone surrogate, not a character"
        return f"{what} (character {exc.start + 1})"
    return None


def require_utf8(texts, what: str = "text") -> None:
    """DataError naming the first of ``texts`` that is not a string that UTF-8 can hold."""
    from mmzoo.errors import DataError

    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"{what} {i + 1} is a {type(text).__name__}, not a string")
        problem = utf8_problem(text)
        if problem:
            raise DataError(f"{what} {i + 1} ({ascii(text[:40])}): {problem}", hint="pass text encoded as UTF-8")
