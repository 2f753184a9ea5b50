"""Request parameters the PHP way: query string plus body, names trimmed, arrays as ``a[]``.

Bodies are decoded here rather than by ``urllib.parse.parse_qsl``: that decoder builds an object
per percent-escape (a 1 MiB body of ``%41`` cost ~180 ms and ~80 MB), while ``decode_form``
works on whole fields in C (``codecs.escape_decode``), a few ms and a few times the body's
size, and lets the event loop run every ``YIELD_EVERY`` fields.

Bytes that are not UTF-8 (GBK from an old PHP page) never fail a whole call: every name and
value is kept as sent, such bytes as lone surrogates (``surrogateescape``). A parameter the
endpoint reads (``LegacyParams.get``/``values``) is refused by name when it holds any; the
others are ignored, and a signed call's ``sign`` covers them byte for byte.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Iterator

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from legacy_rest.responses import LegacyFailure

MAX_FIELDS = 20_000
# Multipart fields are parsed by pure Python at ~10 µs each; a cap-sized body of empty parts
# holds ~13,000. A legacy call needs a dozen (a long ``users[]`` list is sent urlencoded or as
# one JSON field), so the parser stops after 2,000.
MAX_MULTIPART_FIELDS = 2_000
# The legacy body cap's default: what the largest legitimate call needs, 10,000 recipients
# (SPEC §6) with 19-digit ids (SPEC §2) in the longest usual encoding, jQuery's
# ``&users%5B%5D=<cid>%2C<uid>`` (13 + 19 + 3 + 19 = 54 bytes), with 10 bytes of room per
# recipient for spaces (``%20`` after the comma), and 16 KiB for every other parameter
# (ids, timestamp, sign, nonce, and a JSON ``users`` in multipart framing, which needs less).
# 10,000 x 64 + 16,384 = 656,384 bytes (641 KiB), where 1 MiB let a sender pad ~60% more.
MAX_BODY_BYTES = 10_000 * 64 + 16 * 1024
YIELD_EVERY = 2_000
MULTIPART_CHUNK = 64 * 1024
# A ``%`` not followed by two hex digits stays as sent (as ``parse_qsl`` and PHP leave it).
_LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _unquote(raw: bytes) -> str:
    """``raw`` form-decoded (``+`` a space, ``%XX`` a byte), then read as UTF-8 with bytes
    that are not UTF-8 kept as lone surrogates (``surrogateescape``), so nothing is lost."""
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        # %XX -> \xXX for the C escape decoder; existing backslashes are doubled first, so
        # the decoder's only escapes are ours.
        escaped = _LONE_PERCENT.sub(b"%25", raw.replace(b"\\", b"\\\\"))
        raw = codecs.escape_decode(escaped.replace(b"%", b"\\x"))[0]
    return raw.decode("utf-8", "surrogateescape")


def decode_form(data: bytes) -> Iterator[tuple[str, str]]:
    """The ``(name, value)`` pairs of a form-urlencoded ``data``, as ``parse_qsl(...,
    keep_blank_values=True)`` gives them, except that bytes which are not UTF-8 are kept as
    lone surrogates (``surrogateescape``) instead of failing the whole form. Raises
    ``LegacyFailure`` past ``MAX_FIELDS`` fields, before decoding any."""
    if data.count(b"&") + 1 > MAX_FIELDS:
        raise LegacyFailure(f"more than {MAX_FIELDS} fields")
    for field in data.split(b"&"):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        yield _unquote(name), _unquote(value)


def from_latin1(text: str) -> str:
    """A field Starlette decoded as Latin-1 (every byte kept), read as ``_unquote`` reads."""
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


def _readable(name: str, value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise LegacyFailure(f"{name} is not valid UTF-8") from error
    return value


class LegacyParams:
    """Parameters by trimmed name, as PHP reads them: ``name[]`` and ``name[N]`` collect into
    an array under ``name``; a later plain ``name`` replaces an array, and a later ``name[]``
    replaces a plain value with a new array.

    ``get(name)`` is the plain value (the last one sent, PHP semantics) or ``None``;
    ``values(name)`` the array values, or ``None`` when ``name`` does not hold an array. Both
    raise ``LegacyFailure`` naming ``name`` when the value holds bytes that are not UTF-8.
    """

    def __init__(self) -> None:
        self._values: dict[str, str | list[str]] = {}
        self._repeated: set[str] = set()

    def add(self, raw_name: str, value: str) -> None:
        """Record one ``name=value`` pair as sent."""
        name = raw_name.strip()
        if name.endswith("]") and "[" in name:
            base = name[: name.index("[")].strip()
            current = self._values.get(base)
            if isinstance(current, list):
                current.append(value)
            else:
                self._values[base] = [value]
        else:
            if name in self._values:
                self._repeated.add(name)
            self._values[name] = value

    def update(self, other: LegacyParams) -> None:
        """Let every name of ``other`` replace this one's, whole (PHP's ``$_REQUEST``: the body's
        ``users[]`` replaces the query string's ``users`` or ``users[]``, never extends it)."""
        self._repeated |= other._repeated
        self._repeated |= {
            name for name, value in other._values.items() if isinstance(value, str)
        } & self._values.keys()
        self._values.update(other._values)

    def repeated(self) -> frozenset[str]:
        """The names sent more than once as plain values (in the query string, the body, or
        both), of which ``get`` and ``pairs`` keep the last: signed legacy mode refuses a
        repeated ``timestamp``, ``sign`` or ``nonce`` (``resolvers.vendor``)."""
        return frozenset(self._repeated)

    def get(self, name: str) -> str | None:
        """The plain value of ``name``, or ``None`` when absent or an array."""
        value = self._values.get(name)
        return _readable(name, value) if isinstance(value, str) else None

    def values(self, name: str) -> list[str] | None:
        """The array values of ``name`` (``name[]=``), or ``None`` when it holds no array."""
        value = self._values.get(name)
        return [_readable(name, item) for item in value] if isinstance(value, list) else None

    def pairs(self) -> list[tuple[str, str]]:
        """Every parameter as ``(name, value)``, arrays as ``name[]`` once per value in the
        order sent (what a signed call's ``sign`` covers, SPEC §8); bytes that are not UTF-8
        as lone surrogates (``surrogateescape`` gives the bytes back)."""
        found: list[tuple[str, str]] = []
        for name, value in self._values.items():
            if isinstance(value, list):
                found += [(f"{name}[]", item) for item in value]
            else:
                found.append((name, value))
        return found


async def read_params(request: Request, *, max_body_bytes: int) -> LegacyParams:
    """Collect the parameters of a GET or POST request; a name sent in the body replaces the
    same name from the query string (PHP's ``$_REQUEST``).

    The body is read only up to ``max_body_bytes`` (``Content-Length`` is checked first, then
    the bytes actually received), so an oversized body is refused before any parsing. Raises
    ``LegacyFailure`` for an oversized or unparseable request.
    """
    params = LegacyParams()
    await _add_form(params, request.scope.get("query_string", b""))
    if request.method != "POST":
        return params
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
        raise LegacyFailure(f"body larger than {max_body_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise LegacyFailure(f"body larger than {max_body_bytes} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    sent = LegacyParams()
    if content_type == "multipart/form-data":
        await _read_multipart(request, bytes(body), sent, max_body_bytes)
    elif body:
        # Form-urlencoded, or a bare body sent without a content type (as PHP's $_POST would
        # ignore, but jQuery sends urlencoded data by default, and some callers omit the header).
        if content_type not in ("", "application/x-www-form-urlencoded", "text/plain"):
            raise LegacyFailure(f"unsupported content type {content_type!r}")
        await _add_form(sent, bytes(body))
    params.update(sent)
    return params


async def _add_form(params: LegacyParams, data: bytes) -> None:
    for index, (name, value) in enumerate(decode_form(data), start=1):
        params.add(name, value)
        if index % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a long form never holds the event loop for long


async def _read_multipart(request: Request, body: bytes, params: LegacyParams, limit: int) -> None:
    # Counting delimiters costs a C scan; parsing the parts ~10 µs each.
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if boundary and body.count(b"--" + boundary) > MAX_MULTIPART_FIELDS + 1:
        raise LegacyFailure(f"bad multipart body: more than {MAX_MULTIPART_FIELDS} fields")
    if boundary and _truncated(body, boundary):
        # The parser keeps the parts before the cut and drops the rest silently, which would
        # surface as a missing parameter; a refusal for the cut itself is the true one.
        raise LegacyFailure("the multipart body is malformed or truncated")
    # File parts are refused, so every byte of an acceptable body is text. Starlette decodes
    # fields in the declared charset, falling back to Latin-1 field by field; declared as
    # Latin-1, every field keeps its bytes, read afterwards as the urlencoded path reads them.
    offset = 0

    async def replay() -> dict[str, object]:
        # In chunks, letting the event loop run between them: the multipart parser is pure
        # Python and would otherwise take the whole body in one go.
        nonlocal offset
        if offset < 0:
            return {"type": "http.disconnect"}
        if offset:
            await asyncio.sleep(0)
        chunk = body[offset : offset + MULTIPART_CHUNK]
        offset += MULTIPART_CHUNK
        more = offset < len(body)
        offset = offset if more else -1
        return {"type": "http.request", "body": chunk, "more_body": more}

    scope = {key: value for key, value in request.scope.items() if key != "app"}
    scope["headers"] = [
        (name, value + b"; charset=latin-1" if name == b"content-type" else value)
        for name, value in request.scope["headers"]
    ]
    replayed = Request(scope, replay)
    try:
        form = await replayed.form(
            max_files=0, max_fields=MAX_MULTIPART_FIELDS, max_part_size=limit
        )
    except (
        MultiPartException,
        HTTPException,
        MultipartParseError,
        UnicodeDecodeError,
    ) as error:
        raise LegacyFailure(f"bad multipart body: {getattr(error, 'message', error)}") from error
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                raise LegacyFailure("file parts are not accepted")
            params.add(from_latin1(name), from_latin1(value))
    finally:
        await form.close()


def _truncated(body: bytes, boundary: bytes) -> bool:
    """Whether a multipart ``body`` that uses ``boundary`` ends before its closing delimiter
    (``--boundary--``): its last delimiter is not the closing one. A body that never uses the
    boundary is left to the parser, which refuses it as unparseable."""
    delimiter = b"--" + boundary
    last = body.rfind(delimiter)
    return last >= 0 and body[last + len(delimiter) : last + len(delimiter) + 2] != b"--"
