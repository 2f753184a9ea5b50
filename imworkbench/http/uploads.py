"""The GraphQL multipart request (uploads, ``setAppIcon``), read strictly (issue 11 item 11).

The spec (https://github.com/jaydenseric/graphql-multipart-request-spec, v2.1): a
``multipart/form-data`` body whose field ``operations`` is the JSON request with ``null`` where
each file goes, whose field ``map`` is a JSON object from each file part's name to the list of
``operations`` paths it fills (object keys and array indices joined by dots), then the file parts.

Strawberry's own reading let Starlette's form errors out as plain-text 400s, took a missing
``operations`` or ``map`` for ``{}``, answered a map of the wrong shape as an internal 400, and
let a second file mapped to the same path silently replace the first. ``read_operations``
refuses every malformed request with a ``MultipartRefusal``, which the view answers as a
GraphQL error body (``{"errors": [...]}``, JSON) before anything runs:

- the body ends before its closing boundary (truncated): 400, said as such; it is read into
  memory first to see that (capped by ``BodySizeLimitMiddleware``), then parsed from there.
- the body cannot be parsed (no or wrong boundary, bad part headers, a part without a name), or
  breaks Starlette's form limits (1000 files, 1000 fields): 400; a field over Starlette's 1 MiB
  per field: 413 (``PAYLOAD_TOO_LARGE``). Files are spooled by Starlette; the whole body is
  capped before parsing by ``BodySizeLimitMiddleware``.
- two parts of the same name, no ``operations`` or no ``map``, either of them sent as a file,
  not JSON, ``operations`` neither object nor array, ``map`` not an object of arrays of paths,
  a ``map`` key that names no file part, a file part that ``map`` does not name, a path that is
  not a ``null`` in ``operations``, two files mapped to one path: 400.

A file mapped to several paths fills each, as the spec allows. Paths in messages are cut to
``SHOWN_PATH`` characters.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from python_multipart.multipart import parse_options_header
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

SHOWN_PATH = 100
"""Longest path, in characters, repeated in a refusal's message."""

# Starlette's message for a field over its per-field limit (starlette.formparsers).
_FIELD_TOO_LARGE = "Part exceeded maximum size"


class MultipartRefusal(HTTPException):
    """A malformed multipart request, refused before anything runs: ``status_code`` 400 with
    ``code`` ``BAD_REQUEST``, or 413 with ``PAYLOAD_TOO_LARGE``; ``reason`` says what is wrong."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(status_code, reason)
        self.code = "PAYLOAD_TOO_LARGE" if status_code == 413 else "BAD_REQUEST"


async def read_operations(request: AsyncHTTPRequestAdapter) -> Any:
    """The ``operations`` of a multipart request with each mapped file in its place: a dict,
    or a list for a batch (which Strawberry then judges). Raises ``MultipartRefusal`` for every
    malformed request (module docstring)."""
    _, options = parse_options_header(request.content_type or "")
    boundary = options.get(b"boundary")
    if boundary and _truncated(await request.get_body(), boundary):
        # The parser would keep the parts before the cut (leaving a file part it began
        # unclosed) and the refusal would name whatever the cut lost.
        raise MultipartRefusal("The multipart body is malformed or truncated")
    try:
        form = await request.get_form_data()
    except StarletteHTTPException as error:  # Starlette's MultiPartException, as a 400
        status = 413 if error.detail.startswith(_FIELD_TOO_LARGE) else 400
        raise MultipartRefusal(
            f"Unable to parse the multipart body: {error.detail}", status
        ) from error
    parts = _parts(form.form)
    operations = _json_field(parts, "operations")
    if not isinstance(operations, dict | list):
        raise MultipartRefusal("The multipart field 'operations' must be a JSON object or array")
    files_map = _json_field(parts, "map")
    if not isinstance(files_map, dict) or not all(
        isinstance(paths, list) and all(isinstance(path, str) for path in paths)
        for paths in files_map.values()
    ):
        raise MultipartRefusal(
            "The multipart field 'map' must be a JSON object of arrays of 'operations' paths"
        )
    files = {name: part for name, part in parts.items() if isinstance(part, UploadFile)}
    for name in files_map:
        if name not in files:
            raise MultipartRefusal(
                f"The multipart field 'map' names '{_shown(name)}', "
                "which is not a file in the request"
            )
    for name in files:
        if name not in files_map:
            raise MultipartRefusal(
                f"The multipart request has file '{_shown(name)}', "
                "which the field 'map' does not name"
            )
    filled: set[str] = set()
    for name, paths in files_map.items():
        for path in paths:
            if path in filled:
                raise MultipartRefusal(
                    f"The multipart field 'map' maps more than one file to '{_shown(path)}'"
                )
            _fill(operations, name, path, files[name])
            filled.add(path)
    return operations


def _parts(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's parts by name; refuses a name given twice (Starlette's ``FormData`` keeps
    them all, a dict would keep one silently)."""
    items = form.multi_items() if hasattr(form, "multi_items") else list(form.items())
    parts: dict[str, Any] = {}
    for name, value in items:
        if name in parts:
            raise MultipartRefusal(
                f"The multipart request has more than one part named '{_shown(name)}'"
            )
        parts[name] = value
    return parts


def _json_field(parts: dict[str, Any], name: str) -> Any:
    if name not in parts:
        raise MultipartRefusal(f"The multipart request has no '{name}' field")
    value = parts[name]
    if not isinstance(value, str):
        raise MultipartRefusal(f"The multipart field '{name}' must be a form field, not a file")
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as error:
        raise MultipartRefusal(f"The multipart field '{name}' is not valid JSON") from error


def _fill(operations: Any, name: str, path: str, upload: UploadFile) -> None:
    """Put ``upload`` where ``path`` points in ``operations``, which must hold a ``null``."""
    *steps, last = path.split(".")
    target = operations
    for step in [*steps, last]:
        container = target
        if isinstance(container, dict) and step in container:
            target = container[step]
        elif isinstance(container, list) and _index(step, len(container)) is not None:
            target = container[int(step)]
        else:
            target = _NOWHERE
            break
    if target is not None:
        raise MultipartRefusal(
            f"The multipart field 'map' maps file '{_shown(name)}' to '{_shown(path)}', "
            "which is not a null in 'operations'"
        )
    container[int(last) if isinstance(container, list) else last] = upload


_NOWHERE = object()


def _index(step: str, length: int) -> int | None:
    # Decimal digits only (no sign, no spaces), and short: int() of thousands of digits is slow
    # and past Python's digit limit raises.
    if not step.isascii() or not step.isdigit() or len(step) > 9:
        return None
    index = int(step)
    return index if index < length else None


def _shown(text: str) -> str:
    return text if len(text) <= SHOWN_PATH else text[:SHOWN_PATH] + "..."


def _truncated(body: bytes, boundary: bytes) -> bool:
    """Whether a multipart ``body`` that uses ``boundary`` ends before its closing delimiter
    (``--boundary--``): its last delimiter is not the closing one. A body that never uses the
    boundary is left to the parser (``Invalid multipart data``)."""
    delimiter = b"--" + boundary
    last = body.rfind(delimiter)
    return last >= 0 and body[last + len(delimiter) : last + len(delimiter) + 2] != b"--"
