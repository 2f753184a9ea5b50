"""Multipart refusals (issue 11 item 11): every way a GraphQL multipart request can be malformed
is answered with a GraphQL error body (``{"errors": [...]}``, JSON) and the right status, logs
no ERROR, and changes nothing (imworkbench.http.uploads)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.factories import create_app, gql, picture

SET_ICON = """
mutation($id: ID!, $icon: Upload!) {
  setAppIcon(appId: $id, icon: $icon) { app { icon } errors { field code } }
}
"""
APP_ICON = "query($id: ID!) { app(id: $id) { icon } }"
BOUNDARY = "workbench-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
PNG = picture((8, 8), (1, 2, 3), "PNG")
MAP = {"0": ["variables.icon"]}

Part = tuple[bytes, bytes]
"""A part's header lines (CRLF-separated) and its content."""


def field(name: str, value: str | bytes) -> Part:
    """A form field part."""
    content = value.encode() if isinstance(value, str) else value
    return f'Content-Disposition: form-data; name="{name}"'.encode(), content


def file(name: str, data: bytes = PNG) -> Part:
    """A file part holding ``data``."""
    header = f'Content-Disposition: form-data; name="{name}"; filename="icon.png"'
    return (header + "\r\nContent-Type: image/png").encode(), data


def body(parts: list[Part], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body of ``parts``."""
    delimiter = b"--" + boundary.encode()
    out = b"".join(
        delimiter + b"\r\n" + head + b"\r\n\r\n" + data + b"\r\n" for head, data in parts
    )
    return out + delimiter + b"--\r\n"


def operations(app_id: str, **variables: Any) -> Part:
    """The operations field of setAppIcon on ``app_id``, with ``icon: null`` unless given."""
    return field(
        "operations",
        json.dumps({"query": SET_ICON, "variables": {"id": app_id, "icon": None, **variables}}),
    )


def map_of(value: object) -> Part:
    """The map field holding ``value`` as JSON."""
    return field("map", json.dumps(value))


# Each case: the parts (given the app id) or a whole body, the content type, the status, the
# error code and message.
Case = tuple[Any, str, int, str, str]
PARSE = "Unable to parse the multipart body: "
NOT_A_NULL = "The multipart field 'map' maps file '0' to '{}', which is not a null in 'operations'"
TRUNCATED = "The multipart body is malformed or truncated"
SHAPE = "The multipart field 'map' must be a JSON object of arrays of 'operations' paths"
CASES: dict[str, Case] = {
    "no boundary": (
        lambda app: body([operations(app), map_of(MAP), file("0")]),
        "multipart/form-data",
        400,
        "BAD_REQUEST",
        PARSE + "Missing boundary in multipart.",
    ),
    "wrong boundary": (
        lambda app: body([operations(app), map_of(MAP), file("0")], "other"),
        MULTIPART,
        400,
        "BAD_REQUEST",
        PARSE + "Invalid multipart data.",
    ),
    "not multipart at all": (
        lambda app: b"\x00\x01 not a multipart body" * 10,
        MULTIPART,
        400,
        "BAD_REQUEST",
        PARSE + "Invalid multipart data.",
    ),
    "part header without a colon": (
        lambda app: body([operations(app), map_of(MAP), (b"no colon here", PNG)]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        PARSE + "Invalid multipart data.",
    ),
    "part without a name": (
        lambda app: body([operations(app), map_of(MAP), (b"Content-Type: image/png", PNG)]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        PARSE + 'The Content-Disposition header field "name" must be provided.',
    ),
    "too many fields": (
        lambda app: body([operations(app), map_of(MAP), file("0")] + [field("f", "x")] * 1000),
        MULTIPART,
        400,
        "BAD_REQUEST",
        PARSE + "Too many fields. Maximum number of fields is 1000.",
    ),
    "too many files": (
        lambda app: body([operations(app), map_of(MAP), *[file(str(n)) for n in range(1001)]]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        PARSE + "Too many files. Maximum number of files is 1000.",
    ),
    "field over 1 MiB": (
        lambda app: body([operations(app), map_of(MAP), field("note", bytes(1024 * 1024 + 1))]),
        MULTIPART,
        413,
        "PAYLOAD_TOO_LARGE",
        PARSE + "Part exceeded maximum size of 1024KB.",
    ),
    "truncated inside the file part": (
        lambda app: body([operations(app), map_of(MAP), file("0")])[:-40],
        MULTIPART,
        400,
        "BAD_REQUEST",
        TRUNCATED,
    ),
    "truncated before the closing boundary": (
        lambda app: body([operations(app), map_of(MAP), file("0")])[: -len(BOUNDARY) - 6],
        MULTIPART,
        400,
        "BAD_REQUEST",
        TRUNCATED,
    ),
    "truncated inside the map field": (
        lambda app: body([operations(app), map_of(MAP)]).split(b'"0"')[0],
        MULTIPART,
        400,
        "BAD_REQUEST",
        TRUNCATED,
    ),
    "empty body": (
        lambda app: b"",
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart request has no 'operations' field",
    ),
    "no operations": (
        lambda app: body([map_of(MAP), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart request has no 'operations' field",
    ),
    "no map": (
        lambda app: body([operations(app), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart request has no 'map' field",
    ),
    "operations twice": (
        lambda app: body([operations(app), operations(app), map_of(MAP), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart request has more than one part named 'operations'",
    ),
    "file name twice": (
        lambda app: body([operations(app), map_of(MAP), file("0"), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart request has more than one part named '0'",
    ),
    "operations not JSON": (
        lambda app: body([field("operations", "{nope"), map_of(MAP), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'operations' is not valid JSON",
    ),
    "operations a number": (
        lambda app: body([field("operations", "5"), map_of(MAP), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'operations' must be a JSON object or array",
    ),
    "operations nested too deep": (
        lambda app: body([field("operations", "[" * 100_000), map_of(MAP), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'operations' is not valid JSON",
    ),
    "operations sent as a file": (
        lambda app: body([file("operations", operations(app)[1]), map_of(MAP), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'operations' must be a form field, not a file",
    ),
    "map sent as a file": (
        lambda app: body([operations(app), file("map", json.dumps(MAP).encode()), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'map' must be a form field, not a file",
    ),
    "map not JSON": (
        lambda app: body([operations(app), field("map", "{nope"), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'map' is not valid JSON",
    ),
    "map a list": (
        lambda app: body([operations(app), map_of([["variables.icon"]]), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        SHAPE,
    ),
    "map value a string": (
        lambda app: body([operations(app), map_of({"0": "variables.icon"}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        SHAPE,
    ),
    "map path a number": (
        lambda app: body([operations(app), map_of({"0": [5]}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        SHAPE,
    ),
    "map names a missing file": (
        lambda app: body([operations(app), map_of({"1": ["variables.icon"]}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'map' names '1', which is not a file in the request",
    ),
    "map names a field": (
        lambda app: body([operations(app), map_of({"operations": ["variables.icon"]})]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'map' names 'operations', which is not a file in the request",
    ),
    "map path to nowhere": (
        lambda app: body([operations(app), map_of({"0": ["variables.nope.x"]}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        NOT_A_NULL.format("variables.nope.x"),
    ),
    "map path empty": (
        lambda app: body([operations(app), map_of({"0": [""]}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        NOT_A_NULL.format(""),
    ),
    "map path into a string": (
        lambda app: body([operations(app), map_of({"0": ["query.x"]}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        NOT_A_NULL.format("query.x"),
    ),
    "map path to a value": (
        lambda app: body([operations(app), map_of({"0": ["variables.id"]}), file("0")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        NOT_A_NULL.format("variables.id"),
    ),
    "map index past the list": (
        lambda app: body(
            [operations(app, icon=[None]), map_of({"0": ["variables.icon.1"]}), file("0")]
        ),
        MULTIPART,
        400,
        "BAD_REQUEST",
        NOT_A_NULL.format("variables.icon.1"),
    ),
    "map index of 5000 digits": (
        lambda app: body(
            [
                operations(app, icon=[None]),
                map_of({"0": ["variables.icon." + "9" * 5000]}),
                file("0"),
            ]
        ),
        MULTIPART,
        400,
        "BAD_REQUEST",
        NOT_A_NULL.format(("variables.icon." + "9" * 5000)[:100] + "..."),
    ),
    "two files for one path": (
        lambda app: body(
            [
                operations(app),
                map_of({"0": ["variables.icon"], "1": ["variables.icon"]}),
                file("0"),
                file("1"),
            ]
        ),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart field 'map' maps more than one file to 'variables.icon'",
    ),
    "file not in map": (
        lambda app: body([operations(app), map_of(MAP), file("0"), file("1")]),
        MULTIPART,
        400,
        "BAD_REQUEST",
        "The multipart request has file '1', which the field 'map' does not name",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_multipart_refusals_are_graphql_error_bodies(http, tokens, caplog, case):
    """Each malformed multipart request gets a JSON GraphQL error body with a clear message and
    the right status, no ERROR log line, and the app keeps its icon."""
    # given
    make, content_type, status, code, message = CASES[case]
    admin = tokens.admin()
    app = await create_app(http, admin, identifier="Multipart", icon="chat")
    caplog.set_level(logging.DEBUG)
    # when
    response = await http.post(
        "/graphql",
        content=make(app["id"]),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": content_type},
    )
    # then
    assert (response.status_code, response.headers["content-type"]) == (
        status,
        "application/json",
    ), response.text
    assert response.json() == {
        "errors": [
            {
                "message": message,
                "extensions": {"code": code, "requestId": response.headers["x-request-id"]},
            }
        ]
    }
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert (await gql(http, admin, APP_ICON, app))["data"]["app"]["icon"] == "chat"


SET_TWO_ICONS = """
mutation($a: ID!, $b: ID!, $icon: Upload!) {
  first: setAppIcon(appId: $a, icon: $icon) { app { icon } errors { field code } }
  second: setAppIcon(appId: $b, icon: $icon) { app { icon } errors { field code } }
}
"""


async def test_one_file_mapped_to_two_paths_reaches_both(http, tokens):
    """The multipart spec lets one file fill several variables: each use reads the whole file,
    so two apps given the same upload both get the icon (the second read started at the end)."""
    # given
    admin = tokens.admin()
    first = await create_app(http, admin, identifier="TwinA", icon="chat")
    second = await create_app(http, admin, identifier="TwinB", icon="chat")
    operations_json = json.dumps(
        {
            "query": SET_TWO_ICONS,
            "variables": {"a": first["id"], "b": second["id"], "icon": None},
        }
    )
    parts = [field("operations", operations_json), map_of({"0": ["variables.icon"]}), file("0")]
    # when
    response = await http.post(
        "/graphql",
        content=body(parts),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": MULTIPART},
    )
    # then
    data = response.json()["data"]
    assert (data["first"]["errors"], data["second"]["errors"]) == ([], []), data
    assert data["first"]["app"]["icon"] == data["second"]["app"]["icon"]
    assert data["first"]["app"]["icon"] != "chat"
