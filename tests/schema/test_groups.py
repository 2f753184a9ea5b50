"""Groups and categories: listing, and the platform administrator's changes (seed 二 3-4)."""

from __future__ import annotations

import pytest

from resolvers.demo import load_demo
from resolvers.identity import Role
from storage.db import Database
from tests.factories import CREATE_CATEGORY, CREATE_GROUP, create_app, gql, new_category, new_group

GROUPS = "{ groups { id name position categories { id name position groupId } } }"
RENAME_GROUP = """
mutation($id: ID!, $n: String!) {
  renameGroup(id: $id, name: $n) {
    group { id name } errors { field code } } }
"""
REORDER_GROUPS = (
    "mutation($ids: [ID!]!) { reorderGroups(ids: $ids) { groups { id } errors { field code } } }"
)
DELETE_GROUP = """
mutation($id: ID!, $to: ID) {
  deleteGroup(id: $id, moveCategoriesTo: $to) {
    deletedId errors { field code } } }
"""
RENAME_CATEGORY = """
mutation($id: ID!, $n: String!) {
  renameCategory(id: $id, name: $n) {
    category { name } errors { field code } } }
"""
REORDER_CATEGORIES = """
mutation($g: ID!, $ids: [ID!]!) {
  reorderCategories(groupId: $g, ids: $ids) {
    groups { id categories { id } } errors { field code } } }
"""
DELETE_CATEGORY = """
mutation($id: ID!, $to: ID) {
  deleteCategory(id: $id, moveAppsTo: $to) {
    deletedId errors { field code } } }
"""
REORDER_GROUPS_WITH_POSITIONS = """
mutation($ids: [ID!]!) {
  reorderGroups(ids: $ids) {
    groups { id position categories { id position } } errors { field code } } }
"""
REORDER_CATEGORIES_WITH_POSITIONS = """
mutation($g: ID!, $ids: [ID!]!) {
  reorderCategories(groupId: $g, ids: $ids) {
    groups { id position categories { id position } } errors { field code } } }
"""
WORKBENCH = """
{ workbench(platform: PC) { groups { name categories { name apps { app { identifier } } } } } }
"""


@pytest.mark.parametrize("role", ["platform", "enterprise"])
async def test_default_group_and_category_are_listed(http, tokens, role):
    """Administrators see the built-in default group with its default category."""
    token = tokens.admin() if role == "platform" else tokens.enterprise_admin()
    body = await gql(http, token, GROUPS)
    assert body == {
        "data": {
            "groups": [
                {
                    "id": "1",
                    "name": "默认分组",
                    "position": 0,
                    "categories": [{"id": "1", "name": "默认分类", "position": 0, "groupId": "1"}],
                }
            ]
        }
    }


@pytest.mark.parametrize("role", [Role.USER, Role.VENDOR])
async def test_users_and_vendors_get_no_groups(http, codec, role):
    """The admin query refuses users and vendors with FORBIDDEN and no data."""
    body = await gql(http, codec.issue(cid=1001, uid=2, role=role, app_id=1), GROUPS)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_create_rename_and_order(http, tokens):
    """New groups and categories go last; renames and reorders show on the workbench."""
    # given
    admin = tokens.admin()
    office = await new_group(http, admin, "办公")
    tools = await new_group(http, admin, "Tools")
    approvals = await new_category(http, admin, office, "审批")
    reports = await new_category(http, admin, office, "报表")
    await create_app(http, admin, identifier="InReports", categoryId=reports)
    await create_app(http, admin, identifier="InApprovals", categoryId=approvals)
    # when
    renamed = await gql(http, admin, RENAME_GROUP, {"id": office, "n": "办公协作"})
    groups = await gql(http, admin, REORDER_GROUPS, {"ids": [office, "1", tools]})
    categories = await gql(
        http, admin, REORDER_CATEGORIES, {"g": office, "ids": [reports, approvals]}
    )
    # then
    assert renamed["data"]["renameGroup"] == {
        "group": {"id": office, "name": "办公协作"},
        "errors": [],
    }
    assert [g["id"] for g in groups["data"]["reorderGroups"]["groups"]] == [office, "1", tools]
    assert categories["data"]["reorderCategories"]["groups"][0]["categories"] == [
        {"id": reports},
        {"id": approvals},
    ]
    body = await gql(http, tokens.user(), WORKBENCH)
    assert body["data"]["workbench"]["groups"] == [
        {
            "name": "办公协作",
            "categories": [
                {"name": "报表", "apps": [{"app": {"identifier": "InReports"}}]},
                {"name": "审批", "apps": [{"app": {"identifier": "InApprovals"}}]},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("a", "NAME_LENGTH"),
        ("应" * 21, "NAME_LENGTH"),
        ("x" * 41, "NAME_LENGTH"),
        ("ab\ncd", "INVALID_NAME"),
        ("\u3164\u3164", "INVALID_NAME"),
        ("默认分组", "NAME_TAKEN"),
    ],
)
async def test_bad_group_names(http, tokens, name, code):
    """Group names follow the width rule, show something, and are unique."""
    body = await gql(http, tokens.admin(), CREATE_GROUP, {"n": name})
    assert body["data"]["createGroup"] == {
        "group": None,
        "errors": [{"field": "name", "code": code}],
    }


async def test_names_are_unique_case_insensitively(http, tokens):
    """'Tools' and 'TOOLS' clash among groups; category names clash within one group only."""
    admin = tokens.admin()
    first = await new_group(http, admin, "Tools")
    body = await gql(http, admin, CREATE_GROUP, {"n": "TOOLS"})
    assert body["data"]["createGroup"]["errors"] == [{"field": "name", "code": "NAME_TAKEN"}]
    await new_category(http, admin, first, "Misc")
    clash = await gql(http, admin, CREATE_CATEGORY, {"g": first, "n": "misc"})
    assert clash["data"]["createCategory"]["errors"] == [{"field": "name", "code": "NAME_TAKEN"}]
    assert await new_category(http, admin, "1", "misc")
    renamed = await gql(http, admin, RENAME_GROUP, {"id": first, "n": "默认分组"})
    assert renamed["data"]["renameGroup"]["errors"] == [{"field": "name", "code": "NAME_TAKEN"}]


async def demo_groups(database_url: str, http, admin: str) -> list[dict]:
    """Load the demo catalogue (groups and categories with tied positions); its ``groups``."""
    db = Database(database_url)
    try:
        await load_demo(db)
    finally:
        await db.dispose()
    return (await gql(http, admin, GROUPS))["data"]["groups"]


def positions(groups: list[dict]) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """``(id, position, [(category id, position)])`` per group of a ``groups`` answer."""
    return [
        (g["id"], g["position"], [(c["id"], c["position"]) for c in g["categories"]])
        for g in groups
    ]


async def test_reorder_groups_answers_the_new_positions(database_url, http, tokens):
    """reorderGroups from tied demo positions answers the positions it stored, 0, 1, 2."""
    # given
    admin = tokens.admin()
    before = await demo_groups(database_url, http, admin)
    assert len({g["position"] for g in before}) < len(before)  # the demo starts tied
    order = [g["id"] for g in reversed(before)]
    # when
    body = await gql(http, admin, REORDER_GROUPS_WITH_POSITIONS, {"ids": order})
    # then
    answered = body["data"]["reorderGroups"]
    assert answered["errors"] == []
    stored = (await gql(http, admin, GROUPS))["data"]["groups"]
    assert [(g["id"], g["position"]) for g in answered["groups"]] == [
        (group_id, index) for index, group_id in enumerate(order)
    ]
    assert positions(answered["groups"]) == positions(stored)


async def test_reorder_categories_answers_the_new_positions(database_url, http, tokens):
    """reorderCategories from demo positions answers the positions it stored, 0, 1, ..."""
    # given
    admin = tokens.admin()
    group = next(g for g in await demo_groups(database_url, http, admin) if g["name"] == "业务系统")
    order = [c["id"] for c in reversed(group["categories"])]
    # when
    body = await gql(
        http, admin, REORDER_CATEGORIES_WITH_POSITIONS, {"g": group["id"], "ids": order}
    )
    # then
    answered = body["data"]["reorderCategories"]
    assert answered["errors"] == []
    stored = (await gql(http, admin, GROUPS))["data"]["groups"]
    mine = next(g for g in answered["groups"] if g["id"] == group["id"])
    assert [(c["id"], c["position"]) for c in mine["categories"]] == [
        (category_id, index) for index, category_id in enumerate(order)
    ]
    assert positions(answered["groups"]) == positions(stored)


@pytest.mark.parametrize("ids", [["1"], ["1", "1"], ["1", "999"], ["1", "x"]])
async def test_reorder_needs_every_group_once(http, tokens, ids):
    """A reorder that misses, repeats or invents a group is refused."""
    await new_group(http, tokens.admin(), "Second")
    body = await gql(http, tokens.admin(), REORDER_GROUPS, {"ids": ids})
    errors = body["data"]["reorderGroups"]["errors"]
    assert body["data"]["reorderGroups"]["groups"] is None
    assert errors[0]["code"] in ("NOT_A_PERMUTATION", "INVALID_ID")


@pytest.mark.parametrize("case", ["missing", "repeated", "other group's", "unknown", "not an id"])
async def test_reorder_categories_needs_each_category_once(http, tokens, case):
    """A category reorder that misses, repeats, borrows or invents a category is refused, and
    the order stays as it was."""
    # given
    admin = tokens.admin()
    group = await new_group(http, admin, "Ordered")
    first = await new_category(http, admin, group, "First")
    second = await new_category(http, admin, group, "Second")
    ids = {
        "missing": [first],
        "repeated": [first, first, second],
        "other group's": [second, first, "1"],
        "unknown": [second, first, "999"],
        "not an id": [second, "x"],
    }[case]
    # when
    body = await gql(http, admin, REORDER_CATEGORIES, {"g": group, "ids": ids})
    # then
    assert body["data"]["reorderCategories"]["groups"] is None
    assert body["data"]["reorderCategories"]["errors"][0]["code"] in (
        "NOT_A_PERMUTATION",
        "INVALID_ID",
    )
    groups = (await gql(http, admin, GROUPS))["data"]["groups"]
    assert [c["id"] for c in groups[-1]["categories"]] == [first, second]


async def test_delete_group_with_apps_needs_a_target(http, tokens):
    """A group whose categories hold apps is deleted only by moving its categories elsewhere."""
    # given
    admin = tokens.admin()
    doomed = await new_group(http, admin, "Doomed")
    kept = await new_group(http, admin, "Kept")
    category = await new_category(http, admin, doomed, "Inside")
    await create_app(http, admin, identifier="Survivor", categoryId=category)
    # when / then
    refused = await gql(http, admin, DELETE_GROUP, {"id": doomed, "to": None})
    assert refused["data"]["deleteGroup"] == {
        "deletedId": None,
        "errors": [{"field": "moveCategoriesTo", "code": "GROUP_NOT_EMPTY"}],
    }
    moved = await gql(http, admin, DELETE_GROUP, {"id": doomed, "to": kept})
    assert moved["data"]["deleteGroup"] == {"deletedId": doomed, "errors": []}
    groups = (await gql(http, admin, GROUPS))["data"]["groups"]
    assert [(g["name"], [c["name"] for c in g["categories"]]) for g in groups] == [
        ("默认分组", ["默认分类"]),
        ("Kept", ["Inside"]),
    ]
    body = await gql(http, tokens.user(), WORKBENCH)
    assert body["data"]["workbench"]["groups"][0]["name"] == "Kept"


async def test_empty_group_is_deleted_with_its_categories(http, tokens):
    """A group without apps goes, with its empty categories."""
    admin = tokens.admin()
    empty = await new_group(http, admin, "Empty")
    await new_category(http, admin, empty, "Nothing")
    body = await gql(http, admin, DELETE_GROUP, {"id": empty, "to": None})
    assert body["data"]["deleteGroup"] == {"deletedId": empty, "errors": []}
    assert [g["id"] for g in (await gql(http, admin, GROUPS))["data"]["groups"]] == ["1"]


async def test_delete_category_moves_its_apps_last(http, tokens):
    """Deleting a category with apps needs moveAppsTo; the apps go last in the target."""
    admin = tokens.admin()
    group = await new_group(http, admin, "Work")
    source = await new_category(http, admin, group, "Old")
    await create_app(http, admin, identifier="AlreadyHere")
    await create_app(http, admin, identifier="Moving", categoryId=source)
    refused = await gql(http, admin, DELETE_CATEGORY, {"id": source, "to": None})
    assert refused["data"]["deleteCategory"]["errors"] == [
        {"field": "moveAppsTo", "code": "CATEGORY_NOT_EMPTY"}
    ]
    moved = await gql(http, admin, DELETE_CATEGORY, {"id": source, "to": "1"})
    assert moved["data"]["deleteCategory"] == {"deletedId": source, "errors": []}
    body = await gql(http, tokens.user(), WORKBENCH)
    assert body["data"]["workbench"]["groups"] == [
        {
            "name": "默认分组",
            "categories": [
                {
                    "name": "默认分类",
                    "apps": [
                        {"app": {"identifier": "AlreadyHere"}},
                        {"app": {"identifier": "Moving"}},
                    ],
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("document", "variables", "field", "code"),
    [
        (DELETE_GROUP, {"id": "1", "to": None}, "id", "DEFAULT_GROUP"),
        (DELETE_CATEGORY, {"id": "1", "to": None}, "id", "DEFAULT_CATEGORY"),
        (DELETE_GROUP, {"id": "999", "to": None}, "id", "UNKNOWN_GROUP"),
        (DELETE_CATEGORY, {"id": "999", "to": None}, "id", "UNKNOWN_CATEGORY"),
        (DELETE_CATEGORY, {"id": "1", "to": "99999999999"}, "id", "DEFAULT_CATEGORY"),
        (RENAME_CATEGORY, {"id": "999", "n": "Fine"}, "id", "UNKNOWN_CATEGORY"),
        (CREATE_CATEGORY, {"g": "999", "n": "Fine"}, "groupId", "UNKNOWN_GROUP"),
        (CREATE_CATEGORY, {"g": "x", "n": "Fine"}, "groupId", "INVALID_ID"),
    ],
)
async def test_bad_targets(http, tokens, document, variables, field, code):
    """Default, unknown and malformed ids are field errors; nothing changes."""
    body = await gql(http, tokens.admin(), document, variables)
    (payload,) = body["data"].values()
    assert payload["errors"] == [{"field": field, "code": code}]
    assert len((await gql(http, tokens.admin(), GROUPS))["data"]["groups"]) == 1


@pytest.mark.parametrize("role", [Role.USER, Role.ENTERPRISE_ADMIN, Role.VENDOR])
async def test_only_platform_admins_change_groups(http, codec, role):
    """Users, enterprise admins and vendors get FORBIDDEN for every change."""
    token = codec.issue(cid=1001, uid=5, role=role, app_id=1 if role is Role.VENDOR else None)
    for document, variables in (
        (CREATE_GROUP, {"n": "Mine"}),
        (RENAME_GROUP, {"id": "1", "n": "Mine"}),
        (REORDER_GROUPS, {"ids": ["1"]}),
        (DELETE_GROUP, {"id": "1", "to": None}),
        (CREATE_CATEGORY, {"g": "1", "n": "Mine"}),
        (DELETE_CATEGORY, {"id": "1", "to": None}),
    ):
        body = await gql(http, token, document, variables)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
