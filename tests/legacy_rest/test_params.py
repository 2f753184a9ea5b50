"""The legacy form decoder (legacy_rest/params.py): the pairs ``parse_qsl`` gives, decoded in C
(``codecs.escape_decode``) rather than one object per percent-escape."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from legacy_rest.params import MAX_FIELDS, decode_form
from legacy_rest.responses import LegacyFailure

FORMS = [
    b"",
    b"a=1&b=2",
    b"a=1&&b=&=c&d",
    b"users=%5B%221001%2C1034%22%5D&x=+a+b+",
    b"users%5B%5D=1%2C2&users%5B%5D=3%2C4",
    b"lone=%&short=%4&bad=%zz&end=%4g&pct=%%41&tail=%",
    b"back=\\x41&bs=%5C&mixed=\\%41\\\\%5c",
    b"zh=%E4%BD%A0%E5%A5%BD&raw=\xe4\xbd\xa0",
    b"semi=a;b=c",
    b"x=%00%0a%0D%7f",
]


@pytest.mark.parametrize("form", FORMS)
def test_decode_form_gives_what_parse_qsl_gives(form: bytes) -> None:
    """Every tricky form (lone or short escapes, backslashes, ``+``, UTF-8) decodes alike."""
    expected = parse_qsl(form.decode(), keep_blank_values=True, errors="strict")
    assert list(decode_form(form)) == expected


def test_decode_form_refuses_too_many_fields_before_decoding() -> None:
    """Past ``MAX_FIELDS`` fields the form is refused, as ``parse_qsl`` would."""
    with pytest.raises(LegacyFailure, match="more than 20000 fields"):
        list(decode_form(b"&".join([b"a=%41"] * (MAX_FIELDS + 1))))
    assert len(list(decode_form(b"&".join([b"a=%41"] * MAX_FIELDS)))) == MAX_FIELDS


@pytest.mark.parametrize(
    ("form", "pairs"),
    [
        (b"a=%FF", [("a", "\udcff")]),
        (b"a=\xff", [("a", "\udcff")]),
        (b"%C3=1", [("\udcc3", "1")]),
        (b"a=%C4%E3%BA%C3&b=%E4%BD%A0", [("a", "\udcc4\udce3\udcba\udcc3"), ("b", "你")]),
    ],
)
def test_decode_form_keeps_bytes_that_are_not_utf8(
    form: bytes, pairs: list[tuple[str, str]]
) -> None:
    """A byte that is not UTF-8, escaped or not, is kept as a lone surrogate, never an error."""
    assert list(decode_form(form)) == pairs
