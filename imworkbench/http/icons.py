"""HTTP serving of app icons (SPEC §2 ``icon``; issue 3 item 4).

- ``/icons/<name>.png``: the built-in icons (static files, 48x48).
- ``/icons/u/<sha256>``: an uploaded icon exactly as uploaded (GIF, JPEG or PNG), and
  ``/icons/u/<sha256>/48.png`` its 48x48 PNG rendition.

Uploaded icons are content-addressed, so their URLs never change meaning: responses carry a
strong ``ETag``, a one-year ``immutable`` cache lifetime, ``X-Content-Type-Options: nosniff``
and a CSP that lets nothing run, so an icon can never be served as anything but an image.
``If-None-Match`` is answered with 304.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from storage import icons as icon_store
from storage.db import Database

_ID = re.compile(r"[0-9a-f]{64}")
IMMUTABLE = "public, max-age=31536000, immutable"
SAFETY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


def _not_found() -> Response:
    return Response(
        "no such icon", status_code=404, media_type="text/plain", headers=SAFETY_HEADERS
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    # RFC 9110 §13.1.2: "*" matches any current representation; tags compare weakly.
    if not if_none_match:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


async def _serve(request: Request, *, rendition_48: bool) -> Response:
    icon_id = request.path_params["icon_id"]
    if not _ID.fullmatch(icon_id):
        return _not_found()
    etag = f'"{icon_id}-48"' if rendition_48 else f'"{icon_id}"'
    headers = {**SAFETY_HEADERS, "ETag": etag, "Cache-Control": IMMUTABLE}
    db: Database = request.state.db
    async with db.read() as session:
        icon = await icon_store.get_icon(session, icon_id)
    if icon is None:
        return _not_found()
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if rendition_48:
        return Response(icon.rendition_48, media_type="image/png", headers=headers)
    return Response(icon.original, media_type=icon.media_type, headers=headers)


async def original(request: Request) -> Response:
    """An uploaded icon as uploaded; 404 for an unknown or malformed id."""
    return await _serve(request, rendition_48=False)


async def rendition(request: Request) -> Response:
    """An uploaded icon's 48x48 PNG rendition; 404 for an unknown or malformed id."""
    return await _serve(request, rendition_48=True)


def icon_routes() -> list[Route]:
    """The routes of uploaded icons (mount them before the static ``/icons`` files)."""
    return [
        Route("/icons/u/{icon_id}", original, methods=["GET", "HEAD"]),
        Route("/icons/u/{icon_id}/48.png", rendition, methods=["GET", "HEAD"]),
    ]
