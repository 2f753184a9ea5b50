"""Icon uploads end to end (issue 3 item 4): ``setAppIcon`` over the GraphQL multipart request
spec against the running server, and the stable, cacheable, sniff-proof icon URLs."""

from __future__ import annotations

import hashlib
import json
from io import BytesIO
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from imworkbench.settings import Settings
from resolvers.identity import Role
from storage.db import Database
from storage.models import IconImage
from tests.factories import (
    apng,
    create_app,
    gif_with_frames,
    gql,
    handmade_gif,
    inflating_to,
    picture,
    png_with,
    ztxt,
)

MiB = 1024 * 1024
SET_ICON = """
mutation($id: ID!, $icon: Upload!) {
  setAppIcon(appId: $id, icon: $icon) {
    app { id icon iconUrl small: iconUrl(size: SIZE_48) }
    errors { field code message }
  }
}
"""
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><script>1</script></svg>'


async def upload(
    http: httpx.AsyncClient,
    token: str | None,
    app_id: str,
    data: bytes,
    filename: str = "icon.png",
    media_type: str = "image/png",
) -> httpx.Response:
    """POST setAppIcon as a multipart request with ``data`` as the file."""
    operations = {"query": SET_ICON, "variables": {"id": app_id, "icon": None}}
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.icon"]})},
        files={"0": (filename, data, media_type)},
        headers=headers,
    )


async def set_icon(http, token: str, app_id: str, data: bytes, **kw: Any) -> dict[str, Any]:
    """The setAppIcon payload (asserts HTTP 200 and no GraphQL errors)."""
    response = await upload(http, token, app_id, data, **kw)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["setAppIcon"]


async def stored_icons(settings: Settings) -> int:
    """How many uploaded icons the database holds."""
    db = Database(settings.database_url)
    try:
        async with db.read() as session:
            stmt = select(func.count()).select_from(IconImage)
            return int((await session.execute(stmt)).scalar_one())
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("PNG", "image/png"), ("GIF", "image/gif"), ("JPEG", "image/jpeg")]
)
async def test_valid_icon_is_stored_and_served(http, tokens, fmt, media_type):
    """A 48x48 PNG, GIF or JPEG is accepted, served as uploaded with a strong ETag, a long
    immutable cache, nosniff, and a 48x48 PNG rendition."""
    # given
    app = await create_app(http, tokens.admin(), identifier="WithIcon")
    data = picture((48, 48), (200, 30, 30), fmt)
    digest = hashlib.sha256(data).hexdigest()
    # when
    payload = await set_icon(http, tokens.admin(), app["id"], data)
    # then
    assert payload["errors"] == []
    assert payload["app"]["icon"] == f"sha256:{digest}"
    assert payload["app"]["iconUrl"].endswith(f"/icons/u/{digest}")
    assert payload["app"]["small"].endswith(f"/icons/u/{digest}/48.png")
    original = await http.get(payload["app"]["iconUrl"])
    assert original.status_code == 200
    assert original.content == data
    assert original.headers["content-type"] == media_type
    assert original.headers["etag"] == f'"{digest}"'
    assert original.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert original.headers["x-content-type-options"] == "nosniff"
    small = await http.get(payload["app"]["small"])
    assert small.headers["content-type"] == "image/png"
    assert Image.open(BytesIO(small.content)).size == (48, 48)
    again = await http.get(payload["app"]["iconUrl"], headers={"If-None-Match": f'"{digest}"'})
    assert (again.status_code, again.content) == (304, b"")


async def test_png_renamed_gif_is_judged_by_content(http, tokens):
    """A PNG sent as icon.gif with image/gif is stored and served as a PNG."""
    app = await create_app(http, tokens.admin(), identifier="Renamed")
    data = picture((48, 48), (0, 0, 200), "PNG")
    payload = await set_icon(
        http, tokens.admin(), app["id"], data, filename="icon.gif", media_type="image/gif"
    )
    served = await http.get(payload["app"]["iconUrl"])
    assert served.headers["content-type"] == "image/png"


BAD_FILES = {
    "1 MiB + 1 byte": (picture((48, 48), (1, 2, 3), "PNG") + bytes(MiB), "ICON_TOO_LARGE"),
    "SVG": (SVG, "ICON_FORMAT"),
    "empty": (b"", "ICON_FORMAT"),
    "GIF declaring 65535x65535": (handmade_gif((65535, 65535), (65535, 65535)), "ICON_DIMENSIONS"),
    "PNG with a huge zTXt chunk": (
        png_with(ztxt(b"Comment", inflating_to(200 * MiB))),
        "ICON_UNREADABLE",
    ),
    "GIF whose second frame is 65535x65535": (
        gif_with_frames((1, 1), [((0, 0), (1, 1)), ((0, 0), (65535, 65535))]),
        "ICON_DIMENSIONS",
    ),
    "APNG declaring 2^31-1 frames": (apng(frames=2**31 - 1), "ICON_FRAMES"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
async def test_bad_files_are_refused_and_nothing_stored(http, tokens, settings, case):
    """Each bad file gets a field error on ``icon``; the app keeps its icon; nothing stored."""
    data, code = BAD_FILES[case]
    app = await create_app(http, tokens.admin(), identifier="Guarded", icon="chat")
    payload = await set_icon(http, tokens.admin(), app["id"], data)
    assert payload["app"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [("icon", code)]
    assert await stored_icons(settings) == 0
    body = await gql(http, tokens.admin(), "query($id: ID!) { app(id: $id) { icon } }", app)
    assert body["data"]["app"]["icon"] == "chat"


async def test_body_far_over_the_limit_is_413(http, tokens, settings):
    """A multipart body past 1 MiB + 64 KiB is refused while streaming, before parsing."""
    app = await create_app(http, tokens.admin(), identifier="HugeBody")
    response = await upload(http, tokens.admin(), app["id"], bytes(2 * MiB))
    assert response.status_code == 413
    assert await stored_icons(settings) == 0


async def test_uploads_need_a_bearer_token(http, tokens, settings):
    """Without a token (a cross-site form post, say) nothing is parsed or stored: 401."""
    app = await create_app(http, tokens.admin(), identifier="NoCsrf")
    response = await upload(http, None, app["id"], picture((48, 48), (9, 9, 9), "PNG"))
    assert response.status_code == 401
    assert await stored_icons(settings) == 0


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
async def test_users_and_vendors_cannot_upload(http, tokens, codec, settings, role):
    """Users and vendors get FORBIDDEN; nothing stored."""
    app = await create_app(http, tokens.admin(), identifier="NotYours")
    token = codec.issue(cid=1001, uid=3, role=role, app_id=int(app["id"]))
    response = await upload(http, token, app["id"], picture((48, 48), (9, 9, 9), "PNG"))
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await stored_icons(settings) == 0


async def test_other_enterprises_app_is_not_found(http, tokens, settings):
    """An enterprise admin cannot set another enterprise's app icon."""
    app = await create_app(
        http,
        tokens.enterprise_admin(cid=1002),
        identifier="TheirIcon",
        kind="ENTERPRISE",
        name="别人的应用",
    )
    response = await upload(
        http, tokens.enterprise_admin(cid=1001), app["id"], picture((48, 48), (9, 9, 9), "PNG")
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    assert await stored_icons(settings) == 0


async def test_a_string_is_not_a_file(http, tokens):
    """An Upload variable sent as JSON text is refused as not a file."""
    app = await create_app(http, tokens.admin(), identifier="NotAFile")
    body = await gql(http, tokens.admin(), SET_ICON, {"id": app["id"], "icon": "iVBORw0KGgo="})
    assert body["data"]["setAppIcon"]["errors"][0]["code"] == "NOT_A_FILE"


async def test_icons_are_shared_and_removed_with_the_last_user(http, tokens, settings):
    """Two apps with the same bytes share one stored icon; another app may reference it by
    id; it goes when the last app using it changes icon or is deleted."""
    # given
    admin = tokens.admin()
    first = await create_app(http, admin, identifier="FirstIcon")
    second = await create_app(http, admin, identifier="SecondIcon")
    data = picture((48, 48), (5, 100, 5), "PNG")
    ref = (await set_icon(http, admin, first["id"], data))["app"]["icon"]
    await set_icon(http, admin, second["id"], data)
    third = await create_app(http, admin, identifier="ThirdIcon", icon=ref)
    assert await stored_icons(settings) == 1
    # when the apps let go of it one by one
    update = (
        "mutation($id: ID!, $i: String) "
        "{ updateApp(appId: $id, input: {icon: $i}) { errors { code } } }"
    )
    body = await gql(http, admin, update, {"id": first["id"], "i": "chat"})
    assert body["data"]["updateApp"]["errors"] == []
    await set_icon(http, admin, second["id"], picture((48, 48), (1, 1, 1), "GIF"))
    assert await stored_icons(settings) == 2
    await gql(http, admin, "mutation($id: ID!) { deleteApp(appId: $id) { deletedAppId } }", third)
    # then
    assert await stored_icons(settings) == 1
    gone = await http.get(f"/icons/u/{ref.removeprefix('sha256:')}")
    assert gone.status_code == 404


async def test_unknown_icon_reference_is_refused(http, tokens):
    """createApp with a well-formed but unknown icon id is a field error."""
    body = await gql(
        http,
        tokens.admin(),
        "mutation($i: AppInput!) { createApp(input: $i) { errors { field code } } }",
        {
            "i": {
                "name": "应用名称",
                "identifier": "UnknownIcon",
                "icon": "sha256:" + "0" * 64,
                "pc": {"launchMode": "WEB", "webUrl": "https://example.com/"},
            }
        },
    )
    assert body["data"]["createApp"]["errors"] == [{"field": "input.icon", "code": "UNKNOWN_ICON"}]


@pytest.mark.parametrize(
    "path", ["/icons/u/xyz", "/icons/u/" + "A" * 64, "/icons/u/" + "0" * 64 + "/48.png"]
)
async def test_unknown_icon_urls_are_404(http, path):
    """Malformed or unknown icon ids are 404, nosniff."""
    response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_builtin_icons_are_listed_and_served(http, tokens):
    """builtinIcons lists the six defaults with URLs that answer PNGs."""
    body = await gql(http, tokens.user(), "{ builtinIcons { name url } }")
    icons = body["data"]["builtinIcons"]
    assert [i["name"] for i in icons] == ["app", "chat", "calendar", "mail", "document", "chart"]
    served = await http.get(icons[1]["url"])
    assert served.headers["content-type"] == "image/png"


@pytest.mark.parametrize("header", ['W/"{id}"', "*", '"other", W/"{id}"'])
async def test_if_none_match_compares_weakly(http, tokens, header):
    """RFC 9110: If-None-Match uses weak comparison, and * matches."""
    app = await create_app(http, tokens.admin(), identifier="Cached")
    payload = await set_icon(http, tokens.admin(), app["id"], picture((8, 8), (3, 3, 3), "PNG"))
    icon_id = payload["app"]["icon"].removeprefix("sha256:")
    response = await http.get(
        payload["app"]["iconUrl"], headers={"If-None-Match": header.format(id=icon_id)}
    )
    assert response.status_code == 304


async def test_map_to_a_missing_list_index_is_400(http, tokens, settings):
    """A multipart map naming a list index the variables do not have is a 400, not a crash."""
    app = await create_app(http, tokens.admin(), identifier="BadMap")
    operations = {"query": SET_ICON, "variables": {"id": app["id"], "icon": [None]}}
    response = await http.post(
        "/graphql",
        data={
            "operations": json.dumps(operations),
            "map": json.dumps({"0": ["variables.icon.99999999999"]}),
        },
        files={"0": ("icon.png", picture((8, 8), (3, 3, 3), "PNG"), "image/png")},
        headers={"Authorization": f"Bearer {tokens.admin()}"},
    )
    assert response.status_code == 400
    assert await stored_icons(settings) == 0
