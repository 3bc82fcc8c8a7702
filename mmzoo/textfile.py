"""Provides UTF-8 decoding of user files that names what is wrong and where, instead of a UnicodeDecodeError."""

from __future__ import annotations

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode(raw: bytes) -> tuple[str | None, int, str]:
    """``(text, 0, "")`` for UTF-8 (a BOM is dropped), else ``(None, line, why)`` with the first bad byte's line."""
    if raw[:2] in UTF16_BOMS:
        return None, 1, "the file is UTF-16; save it as UTF-8"
    try:
        return raw.decode("utf-8-sig"), 0, ""
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, line, (f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file "
                            "as UTF-8")
