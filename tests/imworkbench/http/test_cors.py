"""CORS preflights from the browser frameworks vendors and pages use (SPEC §6, issue 11)."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.factories import TIMEOUT, running

ORIGIN = "https://vendor.example.com"
PATHS = ("/graphql", "/OpenPlatform/integrate/pushappnotice.php")
# What common browser libraries add to a cross-origin request on their own.
FRAMEWORK_HEADERS = {
    "jquery": "x-requested-with",
    "jquery-no-cache": "x-requested-with, cache-control, pragma",
    "apollo-client": "content-type, apollographql-client-name, apollographql-client-version",
    "apollo-csrf": "content-type, apollo-require-preflight",
    "graphql-client": "authorization, content-type, accept",
    "request-id": "x-request-id",
    "mixed-case": "X-Requested-With, Content-Type",
}


def preflight(requested: str, origin: str = ORIGIN) -> dict[str, str]:
    """The headers of a browser's preflight for a cross-origin POST asking for ``requested``."""
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": requested,
    }


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("framework", sorted(FRAMEWORK_HEADERS))
async def test_preflight_for_framework_headers_is_allowed(http, path, framework):
    """A preflight asking for the headers jQuery, Apollo and others add gets 200 allowing them."""
    # given
    requested = FRAMEWORK_HEADERS[framework]
    # when
    response = await http.options(path, headers=preflight(requested))
    # then
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] in ("*", ORIGIN)
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {h.strip().lower() for h in requested.split(",")} <= {h.lower() for h in allowed}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "requested", ["x-api-secret", "x-requested-with, cookie", "x-forwarded-for"]
)
async def test_preflight_for_other_headers_is_refused(http, path, requested, caplog):
    """A preflight asking for a header no framework adds on its own is refused (400), and
    the header is not among those allowed."""
    response = await http.options(path, headers=preflight(requested))
    assert response.status_code == 400
    allowed = response.headers["access-control-allow-headers"].lower().replace(" ", "")
    assert requested.split(",")[-1].strip() not in allowed.split(",")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_preflight_from_an_origin_not_configured_is_refused(settings):
    """With WORKBENCH_CORS_ORIGINS set, another origin's preflight is refused even for
    X-Requested-With; a configured origin's is allowed."""
    # given
    configured = settings.model_copy(update={"cors_origins": [ORIGIN]})
    async with (
        running(configured) as server,
        httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as http,
    ):
        # when
        other = await http.options(
            PATHS[1], headers=preflight("x-requested-with", "https://evil.example.net")
        )
        mine = await http.options(PATHS[1], headers=preflight("x-requested-with"))
    # then
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert mine.status_code == 200
    assert mine.headers["access-control-allow-origin"] == ORIGIN
