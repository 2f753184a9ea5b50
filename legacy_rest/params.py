"""Request parameters the PHP way: query string plus body, names trimmed, arrays as ``a[]``."""

from __future__ import annotations

from urllib.parse import parse_qsl

from python_multipart.exceptions import MultipartParseError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from legacy_rest.responses import LegacyFailure

MAX_FIELDS = 20_000


class LegacyParams:
    """Parameters by trimmed name, as PHP reads them: ``name[]`` and ``name[N]`` collect into
    an array under ``name``; a later plain ``name`` replaces an array, and a later ``name[]``
    replaces a plain value with a new array.

    ``get(name)`` is the plain value (the last one sent, PHP semantics) or ``None``;
    ``values(name)`` the array values, or ``None`` when ``name`` does not hold an array.
    """

    def __init__(self) -> None:
        self._values: dict[str, str | list[str]] = {}

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
            self._values[name] = value

    def update(self, other: LegacyParams) -> None:
        """Let every name of ``other`` replace this one's, whole (PHP's ``$_REQUEST``: the body's
        ``users[]`` replaces the query string's ``users`` or ``users[]``, never extends it)."""
        self._values.update(other._values)

    def get(self, name: str) -> str | None:
        """The plain value of ``name``, or ``None`` when absent or an array."""
        value = self._values.get(name)
        return value if isinstance(value, str) else None

    def values(self, name: str) -> list[str] | None:
        """The array values of ``name`` (``name[]=``), or ``None`` when it holds no array."""
        value = self._values.get(name)
        return value if isinstance(value, list) else None

    def pairs(self) -> list[tuple[str, str]]:
        """Every parameter as ``(name, value)``, arrays as ``name[]`` once per value in the
        order sent (what a signed call's ``sign`` covers, SPEC §8)."""
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
    ``LegacyFailure`` for an oversized, non-UTF-8 or unparseable request.
    """
    params = LegacyParams()
    try:
        query = request.scope.get("query_string", b"").decode("utf-8")
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except (UnicodeDecodeError, ValueError) as error:
        raise LegacyFailure(f"bad query string: {error}") from error
    for name, value in pairs:
        params.add(name, value)
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
        try:
            text = bytes(body).decode("utf-8")
            pairs = parse_qsl(
                text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict"
            )
        except (UnicodeDecodeError, ValueError) as error:
            raise LegacyFailure(f"bad form body: {error}") from error
        for name, value in pairs:
            sent.add(name, value)
    params.update(sent)
    return params


async def _read_multipart(request: Request, body: bytes, params: LegacyParams, limit: int) -> None:
    # File parts are refused, so every byte of an acceptable body is text. Starlette would
    # decode a non-UTF-8 field as Latin-1 and carry on; refuse it as the urlencoded path does.
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise LegacyFailure(f"bad multipart body: {error}") from error
    sent = False

    async def replay() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {key: value for key, value in request.scope.items() if key != "app"}
    replayed = Request(scope, replay)
    try:
        form = await replayed.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limit)
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
            params.add(name, value)
    finally:
        await form.close()
