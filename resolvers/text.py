"""Text rules shared by everything administrators name (SPEC §2 name width, the seed's form)."""

from __future__ import annotations

import unicodedata

# Hangul fillers are letters to Unicode but render as nothing.
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


def name_units(name: str) -> int:
    """Display width of a name: ASCII characters 1 unit, any other 2 (SPEC §2, the seed)."""
    return sum(1 if ord(char) < 128 else 2 for char in name)


def has_control(text: str) -> bool:
    """Whether ``text`` holds control or format characters (bidi overrides, zero-width), line or
    paragraph separators, lone surrogates (not encodable as UTF-8) or private-use characters."""
    return any(unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for char in text)


def has_letter_or_digit(text: str) -> bool:
    """Whether ``text`` shows anything: a name of only blanks, fillers (U+3164, U+2800) or
    combining marks does not."""
    return any(
        unicodedata.category(char)[0] in ("L", "N") and char not in INVISIBLE_LETTERS
        for char in text
    )
