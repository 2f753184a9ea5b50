"""The compiled ``workbench`` query (``schema.compiled``): a plain document gets exactly the
data Strawberry's executor builds (the same selection wrapped in an inline fragment still runs
through Strawberry, so the two are compared), leaf by leaf as generated from the compiled
tables and for hand-picked documents, over HTTP and graphql-transport-ws; anything else falls
back."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from benchmarks.scenarios import WORKBENCH_QUERY
from resolvers.identity import Role
from schema import WorkbenchSchema
from schema.compiled import WORKBENCH_QUERY as COMPILED_WORKBENCH
from schema.compiled import Limits, workbench_plan
from storage.db import Database
from tests.factories import (
    TRANSPORT_WS,
    create_app,
    gql,
    leaf_documents,
    new_category,
    new_group,
    push,
    ws_client,
)

FULL = """
query Full($p: Platform! = PC) {
  wb: workbench(platform: $p) {
    __typename platform unseenCount total: unreadTotal version
    apps {
      __typename unread removable
      app { __typename id name identifier kind icon userRemovable }
    }
    groups {
      __typename id name
      categories { id label: name apps { unread app { id name } } }
    }
  }
}
"""
LITERAL = "{ workbench(platform: ANDROID) { unreadTotal apps { app { id } unread } } }"
PLAIN = [(FULL, {}), (FULL, {"p": "IOS"}), (LITERAL, {}), (WORKBENCH_QUERY, {})]

LIMITS = WorkbenchSchema.limits  # the defaults the test servers use
LEAVES = leaf_documents(COMPILED_WORKBENCH, "(platform: PC)")


def through_strawberry(document: str) -> str:
    """The same selection inside an inline fragment: not plain, so the executor runs it."""
    head, _, rest = document.partition("{")
    opening, _, body = rest.partition("{")
    inner, _, tail = body.rpartition("}")
    return f"{head}{{{opening}{{ ... on Workbench {{ {inner} }} }}{tail}"


@pytest.fixture
async def catalogue(http, tokens) -> None:
    """Three apps in two groups and three categories, badges on two of them."""
    admin = tokens.admin()
    group = await new_group(http, admin, "办公")
    first = await new_category(http, admin, group, "审批")
    second = await new_category(http, admin, group, "报表")
    apps = [
        await create_app(http, admin, identifier="CompiledA", categoryId=first),
        await create_app(
            http, admin, identifier="CompiledB", categoryId=second, userRemovable=False
        ),
        await create_app(http, admin, identifier="CompiledC", android=None),
    ]
    for app in apps[:2]:
        await push(http, app["id"], ["1001,1034"])
    await push(http, apps[0]["id"], ["1001,1034"])


@pytest.mark.parametrize(("document", "variables"), PLAIN)
async def test_compiled_workbench_equals_strawberrys(http, tokens, catalogue, document, variables):
    """Aliases, __typename, enums, ids, groups and categories: the compiled answer and the
    executor's are equal."""
    # given
    assert workbench_plan(document, variables, None, LIMITS) is not None
    slow = through_strawberry(document)
    assert workbench_plan(slow, variables, None, LIMITS) is None
    # when
    compiled = await gql(http, tokens.user(), document, variables)
    executed = await gql(http, tokens.user(), slow, variables)
    # then
    assert "errors" not in compiled
    assert compiled == executed
    apps = next(iter(compiled["data"].values()))["apps"]
    assert len(apps) in (2, 3)


@pytest.mark.parametrize(
    ("compiled", "executed"),
    [pytest.param(plain, executed, id=leaf) for leaf, plain, executed in LEAVES],
)
async def test_every_compiled_leaf_equals_strawberrys(http, tokens, catalogue, compiled, executed):
    """Generated from the compiled tables: each leaf of each type, as itself and aliased, with
    __typename at every level, is what the executor answers."""
    # given
    assert workbench_plan(compiled, {}, None, LIMITS) is not None
    assert workbench_plan(executed, {}, None, LIMITS) is None
    # when
    fast = await gql(http, tokens.user(), compiled)
    slow = await gql(http, tokens.user(), executed)
    # then
    assert "errors" not in fast
    assert fast == slow
    assert fast["data"]["r"]["__typename"] == "Workbench"


async def test_queries_over_graphql_transport_ws_are_compiled_too(server, http, tokens, catalogue):
    """Over graphql-transport-ws a plain workbench query gets the executor's data as well."""
    # given
    async with ws_client(server.ws_url, TRANSPORT_WS) as client:
        await client.init(tokens.user())
        # when
        fast = await client.subscribe(FULL)
        compiled = await client.next_data()
        assert await client.receive() == {"id": fast, "type": "complete"}
        await client.subscribe(through_strawberry(FULL))
        executed = await client.next_data()
    # then
    assert compiled == executed
    assert compiled == (await gql(http, tokens.user(), FULL))["data"]


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        ("query ($p: Platform) { workbench(platform: $p) { version } }", {"p": "PC"}),
        ("query ($p: Platform!) { workbench(platform: $p) { version } }", {}),
        ("{ workbench { version } }", {}),
        ("{ workbench(platform: null) { version } }", {}),
        ("{ workbench(platform: PC) { apps { app { iconUrl } } } }", {}),
        ("{ workbench(platform: PC) { apps { app { launch(platform: PC) { url } } } } }", {}),
        ("{ workbench(platform: PC) { version } groups { id } }", {}),
        ("mutation { workbench(platform: PC) { version } }", {}),
        ("{ workbench(platform: PC) { version @skip(if: false) } }", {}),
    ],
)
def test_anything_but_a_plain_workbench_query_falls_back(document, variables):
    """Nullable or missing platforms, fields the compiled App lacks, other roots, mutations
    and directives get no plan."""
    assert workbench_plan(document, variables, None, LIMITS) is None


async def test_a_vendor_token_still_gets_strawberrys_refusal(http, tokens, codec, catalogue):
    """A vendor asking for a workbench is refused as before (the compiled path is for
    workbench users only)."""
    # given
    app = await create_app(http, tokens.admin(), identifier="VendorAsks")
    # when
    vendor = codec.issue(cid=1001, uid=2, role=Role.VENDOR, app_id=int(app["id"]))
    body = await gql(http, vendor, LITERAL)
    # then
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_failing_read_falls_back_to_strawberrys_masked_error(http, tokens, database_url):
    """When the read fails (a table is gone), the answer is Strawberry's: data null and the
    masked "Unexpected error."."""
    # given
    db = Database(database_url)
    try:
        async with db.write() as session:
            await session.execute(text("ALTER TABLE user_badge_state RENAME TO hidden_state"))
        try:
            # when
            body = await gql(http, tokens.user(), LITERAL)
        finally:
            async with db.write() as session:
                await session.execute(text("ALTER TABLE hidden_state RENAME TO user_badge_state"))
        again = await gql(http, tokens.user(), LITERAL)
    finally:
        await db.dispose()
    # then
    assert body["data"] is None
    assert [error["message"] for error in body["errors"]] == ["Unexpected error."]
    assert again == {"data": {"workbench": {"unreadTotal": 0, "apps": []}}}


ALIASES = "{ workbench(platform: PC) { " + " ".join(f"a{i}: version" for i in range(35)) + " } }"


async def test_the_alias_limit_holds_on_the_compiled_path(http, tokens):
    """35 aliased fields (the limit is 30) get Strawberry's refusal, not data; a root alias
    counts too."""
    # when
    body = await gql(http, tokens.user(), ALIASES)
    rooted = await gql(
        http,
        tokens.user(),
        "{ w: workbench(platform: PC) { " + " ".join(f"a{i}: version" for i in range(30)) + " } }",
    )
    # then
    assert body == {"data": None, "errors": [{"message": "35 aliases found. Allowed: 30"}]}
    assert rooted["errors"][0]["message"] == "31 aliases found. Allowed: 30"


@pytest.mark.parametrize(
    ("document", "limits"),
    [
        (
            "{ workbench(platform: PC) { groups { categories { apps { app { id } } } } } }",
            Limits(max_depth=2, max_aliases=30, max_tokens=2000),
        ),
        ("{ workbench(platform: PC) { a: version b: unseenCount } }", Limits(12, 1, 2000)),
        ("{ workbench(platform: PC) { version unseenCount } }", Limits(12, 30, 50)),
    ],
)
def test_documents_over_configured_limits_get_no_plan(document, limits):
    """Below-default depth, alias and token limits are honoured: the document falls back and
    Strawberry refuses it."""
    assert workbench_plan(document, {}, None, limits) is None
    assert workbench_plan(document, {}, None, LIMITS) is not None


@pytest.mark.parametrize("name", [["x"], {"a": 1}, 7])
async def test_a_malformed_operation_name_is_a_400_not_a_crash(http, tokens, name):
    """A non-string operationName is refused as a bad request, on the compiled path's document
    too (it crashed the plan cache with a 500)."""
    # when
    response = await http.post(
        "/graphql",
        json={"query": LITERAL, "operationName": name},
        headers={"Authorization": f"Bearer {tokens.user()}"},
    )
    # then
    assert response.status_code == 400
    assert workbench_plan(LITERAL, {}, name, LIMITS) is None
