"""The administrators' ``apps`` connection and the ``auditLog`` (issue 3 items 2 and 8)."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.identity import Role
from tests.factories import create_app, gql, web

APPS = """
query($filter: AppFilter, $first: Int, $after: String) {
  apps(filter: $filter, first: $first, after: $after) {
    edges { cursor node { identifier } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
AUDIT = """
query($filter: AuditFilter, $first: Int, $after: String) {
  auditLog(filter: $filter, first: $first, after: $after) {
    edges { node { action targetType targetId actor { cid uid role } before after at } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}
"""
OWN_APP = {
    "name": "本企业应用",
    "kind": "ENTERPRISE",
    "pc": web("https://own.example.com/"),
    "android": None,
    "ios": None,
}


async def identifiers(http, token: str, **variables: Any) -> list[str]:
    """Identifiers of the first page of ``apps`` (asserts no errors)."""
    body = await gql(http, token, APPS, variables)
    assert "errors" not in body, body
    return [edge["node"]["identifier"] for edge in body["data"]["apps"]["edges"]]


@pytest.fixture
async def catalogue(http, tokens) -> dict[str, dict[str, Any]]:
    """Five apps: PC-only, mobile NATIVE, SYSTEM, hidden from 1002, and 1001's own."""
    admin = tokens.admin()
    return {
        "PcOnly": await create_app(
            http, admin, identifier="PcOnly", name="Pc Tool", android=None, ios=None
        ),
        "Mobile": await create_app(http, admin, identifier="Mobile", name="移动办公", pc=None),
        "System": await create_app(http, admin, identifier="System", kind="SYSTEM"),
        "Hidden": await create_app(
            http,
            admin,
            identifier="Hidden",
            audience={"mode": "ALL", "enterpriseIds": ["1002"]},
        ),
        "Own1001": await create_app(
            http, tokens.enterprise_admin(cid=1001), identifier="Own1001", **OWN_APP
        ),
    }


async def test_platform_admin_lists_every_app_by_id(http, tokens, catalogue):
    """All apps, in creation (id) order, with the total."""
    body = await gql(http, tokens.admin(), APPS)
    apps = body["data"]["apps"]
    assert [e["node"]["identifier"] for e in apps["edges"]] == list(catalogue)
    assert apps["totalCount"] == 5
    assert apps["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"platform": "PC"}, ["PcOnly", "System", "Hidden", "Own1001"]),
        ({"platform": "ANDROID"}, ["Mobile", "System", "Hidden"]),
        ({"kind": "SYSTEM"}, ["System"]),
        ({"kind": "ENTERPRISE"}, ["Own1001"]),
        ({"enterpriseId": "1002"}, ["PcOnly", "Mobile", "System"]),
        ({"enterpriseId": "1001"}, ["PcOnly", "Mobile", "System", "Hidden", "Own1001"]),
        ({"search": "pc"}, ["PcOnly"]),
        ({"search": "移动"}, ["Mobile"]),
        ({"search": "  MOBILE "}, ["Mobile"]),
        ({"search": "%"}, []),
        ({"search": "_"}, []),
        ({"groupId": "1"}, ["PcOnly", "Mobile", "System", "Hidden", "Own1001"]),
        ({"categoryId": "1", "kind": "CUSTOM", "platform": "IOS"}, ["Mobile", "Hidden"]),
        ({"enabled": False}, []),
    ],
)
async def test_filters(http, tokens, catalogue, filter_, expected):
    """Each filter, alone and combined; LIKE wildcards in a search are literal."""
    assert await identifiers(http, tokens.admin(), filter=filter_) == expected


async def test_pages_follow_the_cursor(http, tokens, catalogue):
    """first=2 pages through all five apps; the last page says there is no next one."""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await gql(http, tokens.admin(), APPS, {"first": 2, "after": after})
        apps = body["data"]["apps"]
        seen += [e["node"]["identifier"] for e in apps["edges"]]
        pages += 1
        assert apps["totalCount"] == 5
        assert apps["pageInfo"]["endCursor"] == apps["edges"][-1]["cursor"]
        if not apps["pageInfo"]["hasNextPage"]:
            break
        after = apps["pageInfo"]["endCursor"]
    assert seen == list(catalogue)
    assert pages == 3


async def test_enterprise_admin_lists_only_its_own_apps(http, tokens, catalogue):
    """An enterprise admin's list holds only its apps, whatever the filter asks."""
    assert await identifiers(http, tokens.enterprise_admin(cid=1001)) == ["Own1001"]
    assert await identifiers(http, tokens.enterprise_admin(cid=1002)) == []


@pytest.mark.parametrize(
    ("variables", "field", "code"),
    [
        ({"first": 0}, "first", "PAGE_SIZE"),
        ({"first": 101}, "first", "PAGE_SIZE"),
        ({"first": -1}, "first", "PAGE_SIZE"),
        ({"after": "not a cursor"}, "after", "INVALID_CURSOR"),
        ({"after": "YXVkaXQ6MQ"}, "after", "INVALID_CURSOR"),  # an auditLog cursor
        ({"filter": {"groupId": "x"}}, "filter.groupId", "INVALID_ID"),
        ({"filter": {"enterpriseId": "-3"}}, "filter.enterpriseId", "INVALID_ID"),
        ({"filter": {"search": "x" * 101}}, "filter.search", "TOO_LONG"),
        ({"filter": {"search": "a\u0000"}}, "filter.search", "INVALID_SEARCH"),
        ({"after": "YXBwOjk5OTk5OTk5OTk5OTk5OTk5OTk"}, "after", "INVALID_CURSOR"),  # 19 nines
        ({"after": "YXBwOu-8kQ"}, "after", "INVALID_CURSOR"),  # a fullwidth digit
    ],
)
async def test_bad_arguments(http, tokens, variables, field, code):
    """Bad page sizes, foreign cursors, malformed ids and overlong searches are refused."""
    body = await gql(http, tokens.admin(), APPS, variables)
    assert body["data"] is None
    extensions = body["errors"][0]["extensions"]
    assert extensions["code"] == "INVALID_INPUT"
    assert [(f["field"], f["code"]) for f in extensions["fields"]] == [(field, code)]


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
@pytest.mark.parametrize("document", [APPS, AUDIT])
async def test_users_and_vendors_get_no_list(http, codec, role, document):
    """Users and vendors get FORBIDDEN and no data."""
    token = codec.issue(cid=1001, uid=5, role=role, app_id=1)
    body = await gql(http, token, document)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# --- audit log -----------------------------------------------------------------------------------


async def test_every_app_change_is_audited_with_before_and_after(http, tokens):
    """Create, update, disable, enable, rotate, move and delete each leave one entry, newest
    first, with who did it and the changed fields."""
    # given
    admin = tokens.admin(cid=1, uid=7)
    app = await create_app(http, admin, identifier="Audited", name="审计应用")
    app_id = app["id"]
    mutations = [
        'mutation($id: ID!) { updateApp(appId: $id, input: {name: "新名字"}) { errors { code } } }',
        "mutation($id: ID!) { disableApp(appId: $id) { errors { code } } }",
        "mutation($id: ID!) { enableApp(appId: $id) { errors { code } } }",
        "mutation($id: ID!) { rotateAppKey(appId: $id) { errors { code } } }",
        'mutation($id: ID!) { moveApp(appId: $id, categoryId: "1") { errors { code } } }',
        "mutation($id: ID!) { deleteApp(appId: $id) { errors { code } } }",
    ]
    for document in mutations:
        body = await gql(http, admin, document, {"id": app_id})
        assert next(iter(body["data"].values()))["errors"] == []
    # when
    body = await gql(http, admin, AUDIT, {"filter": {"targetType": "app", "targetId": app_id}})
    # then
    entries = [e["node"] for e in body["data"]["auditLog"]["edges"]]
    assert [e["action"] for e in entries] == [
        "app.delete",
        "app.move",
        "app.rotate_key",
        "app.enable",
        "app.disable",
        "app.update",
        "app.create",
    ]
    assert {(e["actor"]["cid"], e["actor"]["uid"], e["actor"]["role"]) for e in entries} == {
        ("1", "7", "platform_admin")
    }
    delete, _, rotate, enable, disable, update, create = entries
    assert update["before"] == {"name": "审计应用"}
    assert update["after"] == {"name": "新名字"}
    assert (disable["before"], disable["after"]) == ({"enabled": True}, {"enabled": False})
    assert (enable["before"], enable["after"]) == ({"enabled": False}, {"enabled": True})
    assert create["before"] is None
    assert create["after"]["identifier"] == "Audited"
    assert create["after"]["platforms"]["PC"]["webUrl"] == "https://example.com/app"
    assert delete["after"] is None
    assert delete["before"]["name"] == "新名字"
    # secrets never enter the log: only the key's last 4 characters
    assert rotate["before"]["appKey"] == "…" + app["appKey"][-4:]
    assert app["appKey"] not in str(entries)


async def test_group_changes_are_audited(http, tokens):
    """Group and category creation and renaming are audited too."""
    admin = tokens.admin()
    body = await gql(http, admin, 'mutation { createGroup(name: "工具") { group { id } } }')
    group = body["data"]["createGroup"]["group"]["id"]
    await gql(
        http,
        admin,
        'mutation($id: ID!) { renameGroup(id: $id, name: "效率工具") { errors { code } } }',
        {"id": group},
    )
    body = await gql(http, admin, AUDIT, {"filter": {"targetType": "group"}})
    entries = [e["node"] for e in body["data"]["auditLog"]["edges"]]
    assert [(e["action"], e["targetId"]) for e in entries] == [
        ("group.rename", group),
        ("group.create", group),
    ]
    assert (entries[0]["before"], entries[0]["after"]) == (
        {"name": "工具", "position": 1},
        {"name": "效率工具", "position": 1},
    )


async def test_enterprise_admin_reads_its_own_enterprise_entries(http, tokens):
    """An enterprise admin sees the entries of its enterprise's apps only, including a
    platform admin's change to one of them; the platform admin sees all."""
    own = await create_app(
        http, tokens.enterprise_admin(cid=1001), identifier="OwnAudit", **OWN_APP
    )
    await create_app(http, tokens.enterprise_admin(cid=1002), identifier="OtherAudit", **OWN_APP)
    await create_app(http, tokens.admin(), identifier="PlatformAudit")
    await gql(
        http,
        tokens.admin(),
        "mutation($id: ID!) { disableApp(appId: $id) { errors { code } } }",
        {"id": own["id"]},
    )
    body = await gql(http, tokens.enterprise_admin(cid=1001), AUDIT)
    mine = [(e["node"]["action"], e["node"]["targetId"]) for e in body["data"]["auditLog"]["edges"]]
    assert mine == [("app.disable", own["id"]), ("app.create", own["id"])]
    everything = await gql(http, tokens.admin(), AUDIT)
    assert everything["data"]["auditLog"]["totalCount"] == 4


async def test_audit_pages_and_filters(http, tokens):
    """first/after page through the log newest first; action and actor filters apply."""
    for index in range(3):
        await create_app(http, tokens.admin(cid=1, uid=index + 1), identifier=f"Paged{index}")
    first = await gql(http, tokens.admin(), AUDIT, {"first": 2})
    page = first["data"]["auditLog"]
    assert page["pageInfo"]["hasNextPage"] is True
    second = await gql(
        http, tokens.admin(), AUDIT, {"first": 2, "after": page["pageInfo"]["endCursor"]}
    )
    rest = second["data"]["auditLog"]
    assert rest["pageInfo"]["hasNextPage"] is False
    actors = [e["node"]["actor"]["uid"] for e in page["edges"] + rest["edges"]]
    assert actors == ["3", "2", "1"]
    by_actor = await gql(http, tokens.admin(), AUDIT, {"filter": {"actorUid": "2"}})
    assert by_actor["data"]["auditLog"]["totalCount"] == 1
    by_action = await gql(http, tokens.admin(), AUDIT, {"filter": {"action": "app.delete"}})
    assert by_action["data"]["auditLog"]["totalCount"] == 0


async def test_refused_changes_leave_no_entry(http, tokens):
    """An invalid input changes nothing, so nothing is audited."""
    app = await create_app(http, tokens.admin(), identifier="NoTrace")
    await gql(
        http,
        tokens.admin(),
        'mutation($id: ID!) { updateApp(appId: $id, input: {name: "x"}) { errors { code } } }',
        {"id": app["id"]},
    )
    body = await gql(http, tokens.admin(), AUDIT)
    assert [e["node"]["action"] for e in body["data"]["auditLog"]["edges"]] == ["app.create"]
