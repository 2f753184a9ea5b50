"""Odd integers are ordinary client errors (issue 11 item 6): Int literals past Python's
int-string limit, and ids past the int32 row-id columns on PostgreSQL (SPEC §2)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from resolvers.identity import Role
from tests.factories import (
    PROTOCOLS,
    TRANSPORT_WS,
    create_app,
    gql,
    new_category,
    new_group,
    picture,
    without_request_ids,
    ws_client,
)

# Past Python's default int-string limit (4300 digits), which graphql-core hits in int().
HUGE = "1" * 5000
HUGE_LITERALS = {
    "Int argument": f"{{ apps(first: {HUGE}) {{ totalCount }} }}",
    "negative Int argument": f"{{ apps(first: -{HUGE}) {{ totalCount }} }}",
    "Int of a mutation": f'mutation {{ markAppRead(appId: "1", count: {HUGE}) {{ version }} }}',
    "variable default": f"query($n: Int = {HUGE}) {{ apps(first: $n) {{ totalCount }} }}",
    "ID argument": f"{{ app(id: {HUGE}) {{ id }} }}",
}

# Every ID argument that names a row of an int32 column (app, app_group, app_category ids):
# (document, the principal that sends it). $id is the id under test.
ID_ARGUMENTS = {
    "app(id)": ("query($id: ID!) { app(id: $id) { id } }", "admin"),
    "apps(filter.groupId)": (
        "query($id: ID!) { apps(filter: {groupId: $id}) { totalCount edges { cursor } } }",
        "admin",
    ),
    "apps(filter.categoryId)": (
        "query($id: ID!) { apps(filter: {categoryId: $id}) { totalCount edges { cursor } } }",
        "admin",
    ),
    "appVisibility(appId)": (
        'query($id: ID!) { appVisibility(appId: $id, cid: "1001", platform: PC) { visible } }',
        "admin",
    ),
    "createApp(input.categoryId)": (
        'mutation($id: ID!) { createApp(input: {name: "新的应用", identifier: "NewApp",'
        ' categoryId: $id, pc: {launchMode: WEB, webUrl: "https://x.example.com/"}})'
        " { app { id } errors { field code } } }",
        "admin",
    ),
    "updateApp(appId)": (
        'mutation($id: ID!) { updateApp(appId: $id, input: {name: "改名应用"})'
        " { app { id } errors { field code } } }",
        "admin",
    ),
    "updateApp(input.categoryId)": (
        'mutation($id: ID!) { updateApp(appId: "1", input: {categoryId: $id})'
        " { app { id } errors { field code } } }",
        "admin",
    ),
    "moveApp(appId)": (
        'mutation($id: ID!) { moveApp(appId: $id, categoryId: "1")'
        " { app { id } errors { code } } }",
        "admin",
    ),
    "moveApp(categoryId)": (
        'mutation($id: ID!) { moveApp(appId: "1", categoryId: $id)'
        " { app { id } errors { code } } }",
        "admin",
    ),
    "disableApp(appId)": (
        "mutation($id: ID!) { disableApp(appId: $id) { app { id } errors { code } } }",
        "admin",
    ),
    "enableApp(appId)": (
        "mutation($id: ID!) { enableApp(appId: $id) { app { id } errors { code } } }",
        "admin",
    ),
    "deleteApp(appId)": ("mutation($id: ID!) { deleteApp(appId: $id) { deletedAppId } }", "admin"),
    "rotateAppKey(appId)": (
        "mutation($id: ID!) { rotateAppKey(appId: $id) { app { id } errors { code } } }",
        "admin",
    ),
    "rotateAppSecret(appId)": (
        "mutation($id: ID!) { rotateAppSecret(appId: $id) { app { id } errors { code } } }",
        "admin",
    ),
    "renameGroup(id)": (
        'mutation($id: ID!) { renameGroup(id: $id, name: "新的分组") { errors { field code } } }',
        "admin",
    ),
    "reorderGroups(ids)": (
        'mutation($id: ID!) { reorderGroups(ids: ["1", $id]) { errors { field code } } }',
        "admin",
    ),
    "deleteGroup(id)": (
        "mutation($id: ID!) { deleteGroup(id: $id) { deletedId errors { field code } } }",
        "admin",
    ),
    "deleteGroup(moveCategoriesTo)": (
        'mutation($id: ID!) { deleteGroup(id: "2", moveCategoriesTo: $id)'
        " { deletedId errors { field code } } }",
        "admin",
    ),
    "createCategory(groupId)": (
        'mutation($id: ID!) { createCategory(groupId: $id, name: "新的分类")'
        " { errors { field code } } }",
        "admin",
    ),
    "renameCategory(id)": (
        'mutation($id: ID!) { renameCategory(id: $id, name: "新的分类")'
        " { errors { field code } } }",
        "admin",
    ),
    "reorderCategories(groupId)": (
        'mutation($id: ID!) { reorderCategories(groupId: $id, ids: ["1"])'
        " { errors { field code } } }",
        "admin",
    ),
    "reorderCategories(ids)": (
        'mutation($id: ID!) { reorderCategories(groupId: "1", ids: ["1", $id])'
        " { errors { field code } } }",
        "admin",
    ),
    "deleteCategory(id)": (
        "mutation($id: ID!) { deleteCategory(id: $id) { deletedId errors { field code } } }",
        "admin",
    ),
    "deleteCategory(moveAppsTo)": (
        'mutation($id: ID!) { deleteCategory(id: "2", moveAppsTo: $id)'
        " { deletedId errors { field code } } }",
        "admin",
    ),
    "auditLog(filter.targetId)": (
        "query($id: ID!) { auditLog(filter: {targetId: $id}) { totalCount } }",
        "admin",
    ),
    "markAppRead(appId)": (
        "mutation($id: ID!) { markAppRead(appId: $id) { version unreadTotal } }",
        "user",
    ),
    "removeApp(appId)": (
        "mutation($id: ID!) { removeApp(appId: $id) { errors { code } } }",
        "user",
    ),
    "restoreApp(appId)": (
        "mutation($id: ID!) { restoreApp(appId: $id) { errors { code } } }",
        "user",
    ),
    "openApp(appId)": (
        "mutation($id: ID!) { openApp(appId: $id, platform: PC) { mode url } }",
        "user",
    ),
    "appAccessToken(appId)": (
        'mutation($id: ID!) { appAccessToken(appId: $id, appSecret: "not-the-secret")'
        " { accessToken errors { field code } } }",
        None,
    ),
}
# A well-formed id that names no row, inside the int32 range: what the others must answer.
ABSENT = "2147483647"
OUT_OF_INT32 = ["2147483648", "9223372036854775807"]


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("query", HUGE_LITERALS.values(), ids=HUGE_LITERALS.keys())
async def test_huge_int_literal_is_a_validation_error(http, tokens, caplog, query):
    """An integer literal past Python's int-string limit is refused like any bad literal:
    a GraphQL error naming its location, not 'Unexpected error.' with a traceback."""
    caplog.set_level(logging.DEBUG)
    # when
    body = await gql(http, tokens.admin(), query)
    # then
    assert body["data"] is None
    [error] = body["errors"]
    assert error["message"] == "Integer literal of 5000 digits is out of range."
    assert error["locations"]
    _no_errors_logged(caplog)


async def test_huge_int_variable_over_http_is_a_request_error(http, tokens, caplog):
    """A variable value past the int-string limit is a 400 about the body, not a crash."""
    caplog.set_level(logging.DEBUG)
    body = '{"query": "query($n: Int) { apps(first: $n) { totalCount } }", "variables": {"n": %s}}'
    response = await http.post(
        "/graphql",
        content=body % HUGE,
        headers={"Authorization": f"Bearer {tokens.admin()}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "errors": [
            {"message": "Unable to parse the request body", "extensions": {"code": "BAD_REQUEST"}}
        ]
    }
    _no_errors_logged(caplog)


@pytest.fixture
async def rows(http, tokens) -> None:
    """App 1, a second group (2) and a second category (2), so that every document above
    reaches the id under test."""
    admin = tokens.admin()
    app = await create_app(http, admin, identifier="FirstApp")
    assert app["id"] == "1"
    assert await new_group(http, admin, "第二分组") == "2"
    assert await new_category(http, admin, "1", "第二分类") == "2"


async def _answer(http: httpx.AsyncClient, token: str | None, query: str, value: str) -> Any:
    body = await gql(http, token, query, {"id": value})
    return json.loads(json.dumps(body).replace(value, "<id>"))


@pytest.mark.usefixtures("rows")
@pytest.mark.parametrize("value", OUT_OF_INT32)
@pytest.mark.parametrize("name", ID_ARGUMENTS.keys())
async def test_id_past_the_int32_columns_answers_as_an_absent_id(
    http, tokens, codec, caplog, name, value
):
    """An id past 2**31-1 is a well-formed id (SPEC §2: up to 19 digits) that names no row:
    it is answered exactly as an absent id inside the range, on SQLite and PostgreSQL alike,
    instead of an int32 overflow in the driver ('Unexpected error.')."""
    caplog.set_level(logging.DEBUG)
    query, who = ID_ARGUMENTS[name]
    token = {
        "admin": tokens.admin(),
        "user": tokens.user(),
        None: None,
    }[who]
    # when
    expected = await _answer(http, token, query, ABSENT)
    answer = await _answer(http, token, query, value)
    # then: the document itself is valid (an error, if any, is the field's)
    assert all(error.get("path") for error in expected.get("errors", [])), expected
    assert answer == expected
    assert "Unexpected error." not in json.dumps(answer)
    _no_errors_logged(caplog)


@pytest.mark.usefixtures("rows")
@pytest.mark.parametrize("value", OUT_OF_INT32)
async def test_set_app_icon_on_an_id_past_int32(http, tokens, caplog, value):
    """setAppIcon (multipart) on an id past 2**31-1 answers as on an absent app."""
    caplog.set_level(logging.DEBUG)
    query = (
        "mutation($id: ID!, $icon: Upload!) { setAppIcon(appId: $id, icon: $icon)"
        " { app { id } errors { code } } }"
    )
    answers = []
    for app_id in (ABSENT, value):
        operations = {"query": query, "variables": {"id": app_id, "icon": None}}
        response = await http.post(
            "/graphql",
            data={
                "operations": json.dumps(operations),
                "map": json.dumps({"0": ["variables.icon"]}),
            },
            files={"0": ("icon.png", picture((8, 8), (0, 128, 0), "PNG"), "image/png")},
            headers={"Authorization": f"Bearer {tokens.admin()}"},
        )
        assert response.status_code == 200
        body = without_request_ids(response.json(), response.headers["x-request-id"])
        answers.append(json.loads(json.dumps(body).replace(app_id, "<id>")))
    assert answers[0] == answers[1]
    assert "Unexpected error." not in json.dumps(answers[1])
    _no_errors_logged(caplog)


async def test_vendor_token_of_an_id_past_int32(http, codec, caplog):
    """A (validly signed) vendor token naming an app id past 2**31-1 is refused as for an
    absent app, not with an overflow."""
    caplog.set_level(logging.DEBUG)
    query = (
        'mutation { pushAppNotice(recipients: [{cid: "1001", uid: "1034"}])'
        " { results { applied reason } errors { field code } } }"
    )
    answers = []
    for app_id in (int(ABSENT), 2**31):
        token = codec.issue(cid=1001, uid=1, role=Role.VENDOR, app_id=app_id)
        body = await gql(http, token, query)
        answers.append(json.loads(json.dumps(body).replace(str(app_id), "<id>")))
    assert answers[0] == answers[1]
    assert "Unexpected error." not in json.dumps(answers[1])
    _no_errors_logged(caplog)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_huge_int_variable_over_websockets(server, tokens, caplog, protocol):
    """A frame whose variable value is past the int-string limit is not JSON Python can
    read: graphql-transport-ws closes as for any malformed frame (4400); graphql-ws answers
    ``connection_error`` as for every non-JSON frame, and the connection goes on. No ERROR
    is logged."""
    caplog.set_level(logging.DEBUG)
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    query = "subscription($p: Platform) { badges(platform: $p) { version } }"
    payload = {"query": query, "variables": {"p": "PC", "n": 0}}
    frame = json.dumps({"id": "1", "type": kind, "payload": payload})
    frame = frame.replace('"n": 0', f'"n": {HUGE}')
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(tokens.user())
        await client.socket.send(frame)
        if protocol == TRANSPORT_WS:
            assert await client.closed_code() == 4400
        else:
            assert (await client.receive())["type"] == "connection_error"
            await client.subscribe("subscription { badges(platform: PC) { version } }")
            assert (await client.next_data())["badges"]["version"] == 0
    _no_errors_logged(caplog)
