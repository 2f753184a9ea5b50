"""``/graphql`` over HTTP (SPEC §3, §4, §5, §7): authentication, GraphiQL, media types, protocol
limits, the workbench query and the badge and launch mutations, against the real server."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from unittest.mock import ANY

import httpx
import jwt
import pytest
from sqlalchemy import update

from imworkbench.settings import Settings
from resolvers.identity import Role
from resolvers.tokens import TokenCodec
from storage.db import Database
from storage.models import App, AppCategory, AppGroup, AppRemoval
from tests.factories import JWT_SECRET, create_app, gql, push, web, without_request_ids

GRAPHQL_RESPONSE = "application/graphql-response+json"

WORKBENCH_VERSION = "{ workbench(platform: PC) { version } }"

WORKBENCH_APP_IDS = """
query Ids($platform: Platform!) {
  workbench(platform: $platform) { apps { app { id } } }
}
"""

WORKBENCH_LAYOUT = """
query Layout($platform: Platform!) {
  workbench(platform: $platform) {
    groups { id name categories { id name apps { app { id name } } } }
    apps { app { id name } }
  }
}
"""

WORKBENCH_BADGES = """
query Badges($platform: Platform!) {
  workbench(platform: $platform) {
    platform unseenCount unreadTotal version
    apps { app { id } unread removable }
  }
}
"""

WORKBENCH_ICONS_AND_KEYS = """
{ workbench(platform: PC) { apps { app { id iconUrl appKey } } } }
"""

OPEN_WORKBENCH = """
mutation { openWorkbench { cause badges { appId unread } unseenCount unreadTotal version } }
"""

MARK_APP_READ = """
mutation Read($appId: ID!, $count: Int! = 1) {
  markAppRead(appId: $appId, count: $count) {
    cause badges { appId unread } unseenCount unreadTotal version
  }
}
"""

OPEN_APP = """
mutation Open($appId: ID!, $platform: Platform!) {
  openApp(appId: $appId, platform: $platform) { mode url embeddedBrowser downloadUrl }
}
"""


def nested(levels: int) -> str:
    """A document whose fields nest ``levels`` deep (``{ f0 { f1 { ... { id } } } }``)."""
    inner = "id"
    for level in range(levels - 1):
        inner = f"f{level} {{ {inner} }}"
    return "{ " + inner + " }"


# Depth counts nesting below the root field: 13 nested fields are depth 12, the limit.
DEPTH_AT_LIMIT = nested(13)
DEPTH_OVER_LIMIT = nested(14)
# Introspection fields are exempt from the depth limit; list fields nested inside each other are
# caught by graphql-core's introspection depth rule instead.
INTROSPECTION_TOO_DEEP = (
    "{ __schema { types { fields { type { ofType { fields { type { ofType { fields { name } }"
    " } } } } } } } }"
)
INTROSPECTION_DEEP_OF_TYPE = (
    "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType"
    " { ofType { name } } } } } } } } } } } }"
)
ALIASES_AT_LIMIT = "{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }"
ALIASES_OVER_LIMIT = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
# 2 braces + 249 * 8 tokens + 6 = 2000 tokens.
TOKENS_AT_LIMIT = "{ " + "__typename @skip(if: false) " * 249 + "__typename " * 6 + "}"
TOKENS_OVER_LIMIT = "{ " + "__typename @skip(if: false) " * 249 + "__typename " * 7 + "}"

NATIVE = {
    "launchMode": "NATIVE",
    "runPath": "com.example.crm://open",
    "downloadUrl": "https://example.com/crm.apk",
}


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def graphql_error(code: str, path: str, **extensions: Any) -> dict[str, Any]:
    """A GraphQL error of a root field ``path`` with ``extensions.code`` ``code`` (and
    ``extensions``)."""
    return {
        "message": ANY,
        "locations": ANY,
        "path": [path],
        "extensions": {"code": code, **extensions},
    }


def invalid_input(path: str, field: str, code: str) -> dict[str, Any]:
    """The INVALID_INPUT error of root field ``path`` for one bad argument ``field``."""
    return graphql_error(
        "INVALID_INPUT", path, fields=[{"field": field, "message": ANY, "code": code}]
    )


def signed_claims(**changes: Any) -> str:
    """A token signed with the server's secret whose claims are the valid ones with
    ``changes`` applied (a ``None`` value removes the claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "workbench",
        "iat": now,
        "exp": now + 3600,
        "cid": "1001",
        "uid": "1034",
        "account": "zhang.san",
        "role": "user",
    }
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The test server's database, for arranging what the API cannot (yet) set."""
    db = Database(settings.database_url)
    try:
        yield db
    finally:
        await db.dispose()


async def add_group(settings: Settings, name: str, position: int) -> int:
    """A new group at ``position``; returns its id."""
    async with database(settings) as db, db.write() as session:
        group = AppGroup(name=name, position=position)
        session.add(group)
        await session.flush()
        assert group.id is not None
        return group.id


async def add_category(settings: Settings, group_id: int, name: str, position: int) -> int:
    """A new category of group ``group_id`` at ``position``; returns its id."""
    async with database(settings) as db, db.write() as session:
        category = AppCategory(group_id=group_id, name=name, position=position)
        session.add(category)
        await session.flush()
        assert category.id is not None
        return category.id


async def set_app(settings: Settings, app_id: str, **values: Any) -> None:
    """Update columns of app ``app_id`` directly."""
    async with database(settings) as db, db.write() as session:
        await session.execute(update(App).where(App.id == int(app_id)).values(**values))


async def remove_app(settings: Settings, app_id: str, cid: int, uid: int) -> None:
    """Record that user ``(cid, uid)`` removed app ``app_id`` from their workbench."""
    async with database(settings) as db, db.write() as session:
        session.add(AppRemoval(cid=cid, uid=uid, app_id=int(app_id)))


async def app_ids(http: httpx.AsyncClient, token: str, platform: str) -> list[str]:
    """The ids of the apps on the caller's workbench for ``platform``, in order."""
    body = await gql(http, token, WORKBENCH_APP_IDS, {"platform": platform})
    return [item["app"]["id"] for item in body["data"]["workbench"]["apps"]]


async def notify(http: httpx.AsyncClient, app_id: str, times: int = 1, user: str = "1001,1034"):
    """``times`` legacy notices of app ``app_id`` for ``user``."""
    for _ in range(times):
        response = await push(http, app_id, [user])
        assert response.content == b'{"Result":true}', response.headers


# --- authentication ----------------------------------------------------------------------------


def _no_header(_codec: TokenCodec) -> dict[str, str]:
    return {}


def _other_scheme(_codec: TokenCodec) -> dict[str, str]:
    return {"Authorization": "Token x"}


def _bearer_alone(_codec: TokenCodec) -> dict[str, str]:
    return {"Authorization": "Bearer"}


def _basic(_codec: TokenCodec) -> dict[str, str]:
    return {"Authorization": "Basic dXNlcjpwYXNz"}


def _two_tokens(codec: TokenCodec) -> dict[str, str]:
    token = codec.issue(cid=1001, uid=1034)
    return {"Authorization": f"Bearer {token} {token}"}


def _not_a_jwt(_codec: TokenCodec) -> dict[str, str]:
    return bearer("not.a.jwt")


def _other_secret(_codec: TokenCodec) -> dict[str, str]:
    return bearer(TokenCodec("x" * 40).issue(cid=1001, uid=1034))


def _expired(codec: TokenCodec) -> dict[str, str]:
    return bearer(codec.issue(cid=1001, uid=1034, ttl_seconds=-100))


def _unsigned(_codec: TokenCodec) -> dict[str, str]:
    claims = {"iss": "workbench", "exp": int(time.time()) + 3600, "cid": "1", "uid": "1"}
    return bearer(jwt.encode({**claims, "role": "platform_admin"}, None, algorithm="none"))


def _other_issuer(_codec: TokenCodec) -> dict[str, str]:
    return bearer(signed_claims(iss="someone-else"))


def _without(claim: str) -> Callable[[TokenCodec], dict[str, str]]:
    return lambda _codec: bearer(signed_claims(**{claim: None}))


def _unknown_role(_codec: TokenCodec) -> dict[str, str]:
    return bearer(signed_claims(role="superuser"))


def _cid_with_letters(_codec: TokenCodec) -> dict[str, str]:
    return bearer(signed_claims(cid="10a1"))


def _uid_negative(_codec: TokenCodec) -> dict[str, str]:
    return bearer(signed_claims(uid="-4"))


def _vendor_without_app(codec: TokenCodec) -> dict[str, str]:
    return bearer(codec.issue(cid=1, uid=1, role=Role.VENDOR))


BAD_CREDENTIALS: dict[str, Callable[[TokenCodec], dict[str, str]]] = {
    "no header": _no_header,
    "Token scheme": _other_scheme,
    "Bearer alone": _bearer_alone,
    "Basic scheme": _basic,
    "two tokens": _two_tokens,
    "not a JWT": _not_a_jwt,
    "other secret": _other_secret,
    "expired": _expired,
    "alg none": _unsigned,
    "other issuer": _other_issuer,
    "no exp": _without("exp"),
    "no cid": _without("cid"),
    "no uid": _without("uid"),
    "no role": _without("role"),
    "unknown role": _unknown_role,
    "cid with letters": _cid_with_letters,
    "negative uid": _uid_negative,
    "vendor without app_id": _vendor_without_app,
}


async def test_bad_credentials_get_401(http, codec):
    """A request without a valid bearer token is answered 401 with a Bearer challenge and an
    UNAUTHENTICATED error (no data), before anything executes."""
    # when
    answers = {}
    for case, headers in BAD_CREDENTIALS.items():
        response = await http.post(
            "/graphql", json={"query": WORKBENCH_VERSION}, headers=headers(codec)
        )
        answers[case] = (
            response.status_code,
            response.headers.get("www-authenticate", "").split(" ")[0],
            response.headers.get("content-type"),
            without_request_ids(response.json(), response.headers["x-request-id"]),
        )

    # then
    assert answers == {
        case: (
            401,
            "Bearer",
            "application/json",
            {"errors": [{"message": ANY, "extensions": {"code": "UNAUTHENTICATED"}}]},
        )
        for case in BAD_CREDENTIALS
    }


async def test_hand_signed_token_with_every_claim_is_accepted(http):
    """The hand-made token the 401 cases alter is itself valid, so each case fails only for
    its own change."""
    # when
    response = await http.post(
        "/graphql", json={"query": WORKBENCH_VERSION}, headers=bearer(signed_claims())
    )

    # then
    assert response.status_code == 200
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": {"workbench": {"version": 0}}
    }


async def test_get_without_token_gets_401(http):
    """A GET operation without a token is refused like a POST."""
    # when
    response = await http.get("/graphql", params={"query": WORKBENCH_VERSION})

    # then
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "errors": [{"message": ANY, "extensions": {"code": "UNAUTHENTICATED"}}]
    }


async def test_401_speaks_the_accepted_media_type(http):
    """A client that accepts application/graphql-response+json gets its 401 in that type."""
    # when
    response = await http.post(
        "/graphql", json={"query": WORKBENCH_VERSION}, headers={"Accept": GRAPHQL_RESPONSE}
    )

    # then
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "errors": [{"message": ANY, "extensions": {"code": "UNAUTHENTICATED"}}]
    }


async def test_lowercase_bearer_scheme_is_accepted(http, tokens):
    """The scheme name is case-insensitive (RFC 7235 §2.1)."""
    # when
    response = await http.post(
        "/graphql",
        json={"query": WORKBENCH_VERSION},
        headers={"Authorization": f"bearer {tokens.user()}"},
    )

    # then
    assert response.status_code == 200
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": {"workbench": {"version": 0}}
    }


async def test_vendor_token_cannot_read_a_workbench(http, codec):
    """A vendor token is authenticated but the workbench is FORBIDDEN to it."""
    # given
    token = codec.issue(cid=1, uid=1, role=Role.VENDOR, app_id=1)

    # when
    body = await gql(http, token, WORKBENCH_VERSION)

    # then
    assert body == {"data": None, "errors": [graphql_error("FORBIDDEN", "workbench")]}


@pytest.mark.parametrize("mutation", [OPEN_WORKBENCH, MARK_APP_READ, OPEN_APP])
async def test_vendor_token_cannot_use_user_mutations(http, codec, mutation):
    """Badge and launch mutations are FORBIDDEN to vendor tokens."""
    # given
    token = codec.issue(cid=1, uid=1, role=Role.VENDOR, app_id=1)
    field = re.search(r"\b(openWorkbench|markAppRead|openApp)\b", mutation)
    assert field is not None

    # when
    body = await gql(http, token, mutation, {"appId": "1", "platform": "PC"})

    # then
    assert body == {"data": None, "errors": [graphql_error("FORBIDDEN", field.group(1))]}


# --- GraphiQL ----------------------------------------------------------------------------------


async def test_graphiql_page_uses_only_local_assets(http):
    """GET /graphql for HTML serves GraphiQL without a token, with every asset local."""
    # when
    response = await http.get("/graphql", headers={"Accept": "text/html"})

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "GraphiQL" in html
    assert "unpkg" not in html
    assert "cdn" not in html.lower()
    assets = re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", html)
    assert assets
    assert all(asset.startswith("/graphiql/") for asset in assets), assets


async def test_graphiql_assets_are_served_with_caching(http):
    """Every asset the GraphiQL page references is served, with Cache-Control."""
    # given
    html = (await http.get("/graphql", headers={"Accept": "text/html"})).text
    assets = re.findall(r"<(?:script|link)\b[^>]*\b(?:src|href)=\"([^\"]+)\"", html)

    for asset in assets:
        # when
        response = await http.get(asset)

        # then
        assert response.status_code == 200, asset
        assert "max-age" in response.headers["cache-control"], asset
        assert response.content, asset


# --- media types -------------------------------------------------------------------------------


async def test_graphql_response_media_type_for_a_valid_query(http, tokens):
    """A client accepting application/graphql-response+json gets it, 200, for a result."""
    # when
    response = await http.post(
        "/graphql",
        json={"query": WORKBENCH_VERSION},
        headers={**bearer(tokens.user()), "Accept": GRAPHQL_RESPONSE},
    )

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": {"workbench": {"version": 0}}
    }


async def test_application_json_syntax_error_is_200_with_errors(http, tokens):
    """A plain application/json client gets a syntax error as 200 with data null (Strawberry's
    legacy behaviour)."""
    # when
    response = await http.post(
        "/graphql",
        json={"query": "{ workbench("},
        headers={**bearer(tokens.user()), "Accept": "application/json"},
    )

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": None,
        "errors": [
            {"message": "Syntax Error: Expected Name, found <EOF>.", "locations": ANY},
        ],
    }


@pytest.mark.parametrize(
    "query",
    [pytest.param("{ workbench(", id="syntax"), pytest.param("{ nope }", id="validation")],
)
async def test_graphql_response_request_error_is_400(http, tokens, query):
    """A request error (syntax, validation) with application/graphql-response+json is 400 in
    that media type, without data (GraphQL over HTTP, request errors)."""
    # when
    response = await http.post(
        "/graphql",
        json={"query": query},
        headers={**bearer(tokens.user()), "Accept": GRAPHQL_RESPONSE},
    )

    # then
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.status_code == 400
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {"errors": ANY}


async def test_graphql_response_field_error_keeps_200(http, codec):
    """A field error during execution is a result with data, 200 also for
    application/graphql-response+json."""
    # given
    token = codec.issue(cid=1, uid=1, role=Role.VENDOR, app_id=1)

    # when
    response = await http.post(
        "/graphql",
        json={"query": WORKBENCH_VERSION},
        headers={**bearer(token), "Accept": GRAPHQL_RESPONSE},
    )

    # then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert without_request_ids(response.json(), response.headers["x-request-id"]) == {
        "data": None,
        "errors": [graphql_error("FORBIDDEN", "workbench")],
    }


# --- protocol limits ---------------------------------------------------------------------------


async def test_query_deeper_than_12_is_refused(http, tokens):
    """A document nested deeper than 12 levels is refused before execution."""
    # when
    body = await gql(http, tokens.user(), DEPTH_OVER_LIMIT)

    # then
    assert body["data"] is None
    assert {"message": "'anonymous' exceeds maximum operation depth of 12", "locations": ANY} in (
        body["errors"]
    )


async def test_query_at_depth_12_is_not_refused_for_depth(http, tokens):
    """Depth 12 itself is allowed (the document fails only for its unknown fields)."""
    # when
    body = await gql(http, tokens.user(), DEPTH_AT_LIMIT)

    # then
    assert body == {
        "data": None,
        "errors": [{"message": "Cannot query field 'f11' on type 'Query'.", "locations": ANY}],
    }


async def test_deeply_nested_introspection_is_refused(http, tokens):
    """Introspection lists nested in each other (the costly shape) are refused."""
    # when
    body = await gql(http, tokens.user(), INTROSPECTION_TOO_DEEP)

    # then
    assert body == {
        "data": None,
        "errors": [{"message": "Maximum introspection depth exceeded", "locations": ANY}],
    }


async def test_introspection_of_type_chain_is_answered(http, tokens):
    """A long ofType chain is cheap (one type each) and is answered: introspection fields do
    not count toward the depth limit."""
    # when
    body = await gql(http, tokens.user(), INTROSPECTION_DEEP_OF_TYPE)

    # then
    assert "errors" not in body
    assert body["data"]["__schema"]["types"]


async def test_more_than_30_aliases_are_refused(http, tokens):
    """31 aliases in one document are refused with a message and no data."""
    # when
    body = await gql(http, tokens.user(), ALIASES_OVER_LIMIT)

    # then
    assert body == {"data": None, "errors": [{"message": "31 aliases found. Allowed: 30"}]}


async def test_30_aliases_are_allowed(http, tokens):
    """30 aliases, the limit, are answered."""
    # when
    body = await gql(http, tokens.user(), ALIASES_AT_LIMIT)

    # then
    assert body == {"data": {f"a{i}": "Query" for i in range(30)}}


async def test_more_than_2000_tokens_are_refused(http, tokens):
    """A document of 2001 tokens is refused while parsing, with no data."""
    # when
    body = await gql(http, tokens.user(), TOKENS_OVER_LIMIT)

    # then
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "Syntax Error: Document contains more than 2000 tokens. "
                "Parsing aborted.",
                "locations": ANY,
            }
        ],
    }


async def test_2000_tokens_are_allowed(http, tokens):
    """A document of exactly 2000 tokens is answered."""
    # when
    body = await gql(http, tokens.user(), TOKENS_AT_LIMIT)

    # then
    assert body == {"data": {"__typename": "Query"}}


# --- workbench visibility (SPEC §3) ------------------------------------------------------------


async def test_app_appears_only_on_its_platforms(http, tokens):
    """An app with PC settings only is on the PC workbench and absent on ANDROID and IOS."""
    # given
    admin = tokens.admin()
    pc_only = await create_app(http, admin, identifier="PcOnly", android=None, ios=None)
    everywhere = await create_app(http, admin, identifier="Everywhere")

    # when
    seen = {p: await app_ids(http, tokens.user(), p) for p in ("PC", "ANDROID", "IOS")}

    # then
    assert seen == {
        "PC": [pc_only["id"], everywhere["id"]],
        "ANDROID": [everywhere["id"]],
        "IOS": [everywhere["id"]],
    }


async def test_audience_all_hides_listed_enterprises(http, tokens):
    """Audience ALL with 1002 hidden: users of 1001 see the app, users of 1002 do not."""
    # given
    app = await create_app(
        http,
        tokens.admin(),
        identifier="HiddenFrom1002",
        audience={"mode": "ALL", "enterpriseIds": ["1002"]},
    )

    # when
    seen_by_1001 = await app_ids(http, tokens.user(1001, 7), "PC")
    seen_by_1002 = await app_ids(http, tokens.user(1002, 7), "PC")

    # then
    assert seen_by_1001 == [app["id"]]
    assert seen_by_1002 == []


async def test_audience_selected_shows_listed_enterprises_only(http, tokens):
    """Audience SELECTED [1001]: users of 1001 see the app, users of 1003 do not."""
    # given
    app = await create_app(
        http,
        tokens.admin(),
        identifier="Only1001",
        audience={"mode": "SELECTED", "enterpriseIds": ["1001"]},
    )

    # when
    seen_by_1001 = await app_ids(http, tokens.user(1001, 7), "ANDROID")
    seen_by_1003 = await app_ids(http, tokens.user(1003, 7), "ANDROID")

    # then
    assert seen_by_1001 == [app["id"]]
    assert seen_by_1003 == []


async def test_disabled_app_is_absent(http, tokens, settings):
    """A disabled app is on no workbench."""
    # given
    disabled = await create_app(http, tokens.admin(), identifier="Disabled")
    kept = await create_app(http, tokens.admin(), identifier="Kept")
    await set_app(settings, disabled["id"], enabled=False)

    # when
    seen = await app_ids(http, tokens.user(), "PC")

    # then
    assert seen == [kept["id"]]


async def test_removed_app_is_absent_only_while_user_removable(http, tokens, settings):
    """A removal hides a user-removable app from that user only; once the app is no longer
    user-removable it is back."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Removable")
    await remove_app(settings, app["id"], 1001, 1034)

    # when
    seen_by_remover = await app_ids(http, tokens.user(1001, 1034), "PC")
    seen_by_colleague = await app_ids(http, tokens.user(1001, 1035), "PC")
    await set_app(settings, app["id"], user_removable=False)
    seen_after = await app_ids(http, tokens.user(1001, 1034), "PC")

    # then
    assert seen_by_remover == []
    assert seen_by_colleague == [app["id"]]
    assert seen_after == [app["id"]]


async def test_removal_of_a_non_removable_app_is_ignored(http, tokens, settings):
    """An app created with userRemovable false stays on the workbench despite a removal row."""
    # given
    app = await create_app(http, tokens.admin(), identifier="Pinned", userRemovable=False)
    await remove_app(settings, app["id"], 1001, 1034)

    # when
    body = await gql(http, tokens.user(), WORKBENCH_BADGES, {"platform": "PC"})

    # then
    assert body["data"]["workbench"]["apps"] == [
        {"app": {"id": app["id"]}, "unread": 0, "removable": False}
    ]


async def test_workbench_is_ordered_by_group_category_and_app(http, tokens, settings):
    """Apps come in group order, then category order, then app order, both nested and flat."""
    # given
    later = await add_group(settings, "Later", position=5)
    first = await add_group(settings, "First", position=2)
    first_b = await add_category(settings, first, "First B", position=9)
    first_a = await add_category(settings, first, "First A", position=3)
    later_a = await add_category(settings, later, "Later A", position=0)
    admin = tokens.admin()
    names = [
        ("LaterApp", later_a),
        ("FirstBApp", first_b),
        ("FirstAOne", first_a),
        ("DefaultApp", None),
        ("FirstATwo", first_a),
    ]
    ids = {}
    for identifier, category in names:
        extra = {} if category is None else {"categoryId": str(category)}
        app = await create_app(http, admin, identifier=identifier, name=identifier, **extra)
        ids[identifier] = app["id"]

    def item(identifier: str) -> dict[str, Any]:
        return {"app": {"id": ids[identifier], "name": identifier}}

    # when
    body = await gql(http, tokens.user(), WORKBENCH_LAYOUT, {"platform": "IOS"})

    # then
    assert body == {
        "data": {
            "workbench": {
                "groups": [
                    {
                        "id": "1",
                        "name": ANY,
                        "categories": [
                            {"id": "1", "name": ANY, "apps": [item("DefaultApp")]},
                        ],
                    },
                    {
                        "id": str(first),
                        "name": "First",
                        "categories": [
                            {
                                "id": str(first_a),
                                "name": "First A",
                                "apps": [item("FirstAOne"), item("FirstATwo")],
                            },
                            {"id": str(first_b), "name": "First B", "apps": [item("FirstBApp")]},
                        ],
                    },
                    {
                        "id": str(later),
                        "name": "Later",
                        "categories": [
                            {"id": str(later_a), "name": "Later A", "apps": [item("LaterApp")]},
                        ],
                    },
                ],
                "apps": [
                    item("DefaultApp"),
                    item("FirstAOne"),
                    item("FirstATwo"),
                    item("FirstBApp"),
                    item("LaterApp"),
                ],
            }
        }
    }


async def test_icon_url_is_absolute_and_served(http, tokens, server):
    """iconUrl is an absolute URL of this server that answers with the PNG."""
    # given
    await create_app(http, tokens.admin(), identifier="WithIcon", icon="calendar")
    body = await gql(http, tokens.user(), WORKBENCH_ICONS_AND_KEYS)
    [item] = body["data"]["workbench"]["apps"]

    # when
    response = await http.get(item["app"]["iconUrl"])

    # then
    assert item["app"]["iconUrl"] == f"{server.http_url}/icons/calendar.png"
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert "max-age" in response.headers["cache-control"]


async def test_app_key_is_for_administrators_only(http, tokens):
    """appKey is null for a user and for another enterprise's administrator, set for a
    platform administrator."""
    # given
    created = await create_app(http, tokens.admin(), identifier="Keyed")

    # when
    as_user = await gql(http, tokens.user(), WORKBENCH_ICONS_AND_KEYS)
    as_enterprise_admin = await gql(http, tokens.enterprise_admin(1001), WORKBENCH_ICONS_AND_KEYS)
    as_admin = await gql(http, tokens.admin(), WORKBENCH_ICONS_AND_KEYS)

    # then
    assert as_user["data"]["workbench"]["apps"][0]["app"]["appKey"] is None
    assert as_enterprise_admin["data"]["workbench"]["apps"][0]["app"]["appKey"] is None
    assert as_admin["data"]["workbench"]["apps"][0]["app"]["appKey"] == created["appKey"]
    assert re.fullmatch(r"[0-9a-f]{32}", created["appKey"])


# --- badges (SPEC §4) --------------------------------------------------------------------------


async def test_workbench_shows_notices(http, tokens):
    """Notices raise each app's unread, the workbench badge, the total and the version."""
    # given
    mail = await create_app(http, tokens.admin(), identifier="Mail")
    chat = await create_app(http, tokens.admin(), identifier="Chat")
    await notify(http, mail["id"], times=2)
    await notify(http, chat["id"])

    # when
    body = await gql(http, tokens.user(), WORKBENCH_BADGES, {"platform": "ANDROID"})

    # then
    assert body == {
        "data": {
            "workbench": {
                "platform": "ANDROID",
                "unseenCount": 3,
                "unreadTotal": 3,
                "version": 3,
                "apps": [
                    {"app": {"id": mail["id"]}, "unread": 2, "removable": True},
                    {"app": {"id": chat["id"]}, "unread": 1, "removable": True},
                ],
            }
        }
    }


async def test_open_workbench_clears_the_workbench_badge_only(http, tokens):
    """openWorkbench sets unseenCount to 0, keeps app badges, and a second call changes
    nothing (same version)."""
    # given
    mail = await create_app(http, tokens.admin(), identifier="Mail")
    chat = await create_app(http, tokens.admin(), identifier="Chat")
    await notify(http, mail["id"], times=2)
    await notify(http, chat["id"])
    user = tokens.user()

    # when
    first = await gql(http, user, OPEN_WORKBENCH)
    second = await gql(http, user, OPEN_WORKBENCH)
    workbench = await gql(http, user, WORKBENCH_BADGES, {"platform": "PC"})

    # then
    event = {
        "cause": "OPEN_WORKBENCH",
        "badges": [],
        "unseenCount": 0,
        "unreadTotal": 3,
        "version": 4,
    }
    assert first == {"data": {"openWorkbench": event}}
    assert second == {"data": {"openWorkbench": event}}
    assert workbench == {
        "data": {
            "workbench": {
                "platform": "PC",
                "unseenCount": 0,
                "unreadTotal": 3,
                "version": 4,
                "apps": [
                    {"app": {"id": mail["id"]}, "unread": 2, "removable": True},
                    {"app": {"id": chat["id"]}, "unread": 1, "removable": True},
                ],
            }
        }
    }


async def test_open_workbench_without_badges(http, tokens):
    """openWorkbench for a user who never had a badge answers zeros at version 0."""
    # when
    body = await gql(http, tokens.user(), OPEN_WORKBENCH)

    # then
    assert body == {
        "data": {
            "openWorkbench": {
                "cause": "OPEN_WORKBENCH",
                "badges": [],
                "unseenCount": 0,
                "unreadTotal": 0,
                "version": 0,
            }
        }
    }


async def test_mark_app_read_decrements_never_below_zero(http, tokens):
    """markAppRead lowers the app's unread by count (default 1), never below 0, and caps the
    workbench badge at the remaining total; reading nothing keeps the version."""
    # given
    mail = await create_app(http, tokens.admin(), identifier="Mail")
    chat = await create_app(http, tokens.admin(), identifier="Chat")
    await notify(http, mail["id"], times=3)
    await notify(http, chat["id"])
    user = tokens.user()

    # when
    by_default = await gql(http, user, MARK_APP_READ, {"appId": mail["id"]})
    by_five = await gql(http, user, MARK_APP_READ, {"appId": mail["id"], "count": 5})
    again = await gql(http, user, MARK_APP_READ, {"appId": mail["id"], "count": 5})
    by_zero = await gql(http, user, MARK_APP_READ, {"appId": chat["id"], "count": 0})

    # then
    assert by_default == {
        "data": {
            "markAppRead": {
                "cause": "READ",
                "badges": [{"appId": mail["id"], "unread": 2}],
                "unseenCount": 3,
                "unreadTotal": 3,
                "version": 5,
            }
        }
    }
    settled = {
        "cause": "READ",
        "badges": [{"appId": mail["id"], "unread": 0}],
        "unseenCount": 1,
        "unreadTotal": 1,
        "version": 6,
    }
    assert by_five == {"data": {"markAppRead": settled}}
    assert again == {"data": {"markAppRead": settled}}
    assert by_zero == {
        "data": {
            "markAppRead": {
                "cause": "READ",
                "badges": [{"appId": chat["id"], "unread": 1}],
                "unseenCount": 1,
                "unreadTotal": 1,
                "version": 6,
            }
        }
    }


async def test_mark_app_read_keeps_a_lower_workbench_badge(http, tokens):
    """After openWorkbench, reading keeps unseenCount at 0 (min(unseen, total))."""
    # given
    mail = await create_app(http, tokens.admin(), identifier="Mail")
    await notify(http, mail["id"], times=3)
    user = tokens.user()
    await gql(http, user, OPEN_WORKBENCH)

    # when
    body = await gql(http, user, MARK_APP_READ, {"appId": mail["id"], "count": 2})

    # then
    assert body == {
        "data": {
            "markAppRead": {
                "cause": "READ",
                "badges": [{"appId": mail["id"], "unread": 1}],
                "unseenCount": 0,
                "unreadTotal": 1,
                "version": 5,
            }
        }
    }


async def test_mark_app_read_with_negative_count_is_refused(http, tokens):
    """A negative count is an INVALID_INPUT error and changes nothing."""
    # given
    mail = await create_app(http, tokens.admin(), identifier="Mail")
    await notify(http, mail["id"], times=2)

    # when
    body = await gql(http, tokens.user(), MARK_APP_READ, {"appId": mail["id"], "count": -1})
    after = await gql(http, tokens.user(), WORKBENCH_BADGES, {"platform": "PC"})

    # then
    assert body == {
        "data": None,
        "errors": [invalid_input("markAppRead", "count", "NEGATIVE_COUNT")],
    }
    assert after["data"]["workbench"]["unreadTotal"] == 2
    assert after["data"]["workbench"]["version"] == 2


async def test_mark_app_read_of_an_app_off_the_workbench_is_app_not_found(http, tokens, settings):
    """markAppRead of an app outside the user's audience, disabled or unknown is
    APP_NOT_FOUND; of one the user removed, APP_REMOVED (restoreApp brings it back)."""
    # given
    admin = tokens.admin()
    elsewhere = await create_app(
        http, admin, identifier="Elsewhere", audience={"mode": "SELECTED", "enterpriseIds": ["9"]}
    )
    removed = await create_app(http, admin, identifier="Removed")
    await remove_app(settings, removed["id"], 1001, 1034)
    disabled = await create_app(http, admin, identifier="Disabled")
    await set_app(settings, disabled["id"], enabled=False)

    for app_id, code in (
        (elsewhere["id"], "APP_NOT_FOUND"),
        (removed["id"], "APP_REMOVED"),
        (disabled["id"], "APP_NOT_FOUND"),
        ("424242", "APP_NOT_FOUND"),
    ):
        # when
        body = await gql(http, tokens.user(), MARK_APP_READ, {"appId": app_id})

        # then
        assert body == {"data": None, "errors": [graphql_error(code, "markAppRead")]}


async def test_mark_app_read_with_a_non_numeric_id_is_invalid_input(http, tokens):
    """An appId that is not a decimal id is INVALID_INPUT."""
    # when
    body = await gql(http, tokens.user(), MARK_APP_READ, {"appId": "abc"})

    # then
    assert body == {
        "data": None,
        "errors": [invalid_input("markAppRead", "appId", "INVALID_ID")],
    }


async def test_pc_only_notice_does_not_light_the_phone(http, tokens):
    """A notice of a PC-only app counts on the PC workbench, not on ANDROID's (SPEC §4)."""
    # given
    pc_only = await create_app(http, tokens.admin(), identifier="PcOnly", android=None, ios=None)
    await notify(http, pc_only["id"])
    user = tokens.user()

    # when
    android = await gql(http, user, WORKBENCH_BADGES, {"platform": "ANDROID"})
    pc = await gql(http, user, WORKBENCH_BADGES, {"platform": "PC"})

    # then
    assert android == {
        "data": {
            "workbench": {
                "platform": "ANDROID",
                "unseenCount": 0,
                "unreadTotal": 0,
                "version": 1,
                "apps": [],
            }
        }
    }
    assert pc == {
        "data": {
            "workbench": {
                "platform": "PC",
                "unseenCount": 1,
                "unreadTotal": 1,
                "version": 1,
                "apps": [{"app": {"id": pc_only["id"]}, "unread": 1, "removable": True}],
            }
        }
    }


async def test_phone_badge_is_capped_by_its_own_total(http, tokens):
    """With a PC-only and an everywhere notice, ANDROID shows min(unseen 2, its total 1)."""
    # given
    pc_only = await create_app(http, tokens.admin(), identifier="PcOnly", android=None, ios=None)
    everywhere = await create_app(http, tokens.admin(), identifier="Everywhere")
    await notify(http, pc_only["id"])
    await notify(http, everywhere["id"])

    # when
    body = await gql(http, tokens.user(), WORKBENCH_BADGES, {"platform": "ANDROID"})

    # then
    assert body == {
        "data": {
            "workbench": {
                "platform": "ANDROID",
                "unseenCount": 1,
                "unreadTotal": 1,
                "version": 2,
                "apps": [{"app": {"id": everywhere["id"]}, "unread": 1, "removable": True}],
            }
        }
    }


# --- launching (SPEC §5) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "embedded"), [("ANDROID", True), ("IOS", True), ("PC", False)]
)
async def test_open_web_app(http, tokens, platform, embedded):
    """A WEB app opens its URL, in the embedded browser by default on phones, never on PC."""
    # given
    app = await create_app(http, tokens.admin(), identifier="WebApp")

    # when
    body = await gql(http, tokens.user(), OPEN_APP, {"appId": app["id"], "platform": platform})

    # then
    assert body == {
        "data": {
            "openApp": {
                "mode": "WEB",
                "url": "https://example.com/app",
                "embeddedBrowser": embedded,
                "downloadUrl": None,
            }
        }
    }


async def test_open_web_app_outside_the_embedded_browser(http, tokens):
    """embeddedBrowser false on ANDROID opens the system browser."""
    # given
    app = await create_app(
        http,
        tokens.admin(),
        identifier="External",
        android={**web("https://example.com/ext"), "embeddedBrowser": False},
    )

    # when
    body = await gql(http, tokens.user(), OPEN_APP, {"appId": app["id"], "platform": "ANDROID"})

    # then
    assert body == {
        "data": {
            "openApp": {
                "mode": "WEB",
                "url": "https://example.com/ext",
                "embeddedBrowser": False,
                "downloadUrl": None,
            }
        }
    }


@pytest.mark.parametrize("platform", ["PC", "ANDROID"])
async def test_open_native_app(http, tokens, platform):
    """A NATIVE app gives its run path and download URL, never the embedded browser."""
    # given
    app = await create_app(
        http, tokens.admin(), identifier="NativeApp", pc=NATIVE, android=NATIVE, ios=None
    )

    # when
    body = await gql(http, tokens.user(), OPEN_APP, {"appId": app["id"], "platform": platform})

    # then
    assert body == {
        "data": {
            "openApp": {
                "mode": "NATIVE",
                "url": "com.example.crm://open",
                "embeddedBrowser": False,
                "downloadUrl": "https://example.com/crm.apk",
            }
        }
    }


async def test_open_app_clears_its_unread(http, tokens):
    """openApp sets that app's unread to 0 and caps the workbench badge; others keep theirs."""
    # given
    mail = await create_app(http, tokens.admin(), identifier="Mail")
    chat = await create_app(http, tokens.admin(), identifier="Chat")
    await notify(http, mail["id"], times=2)
    await notify(http, chat["id"])
    user = tokens.user()

    # when
    await gql(http, user, OPEN_APP, {"appId": mail["id"], "platform": "IOS"})
    body = await gql(http, user, WORKBENCH_BADGES, {"platform": "PC"})

    # then
    assert body == {
        "data": {
            "workbench": {
                "platform": "PC",
                "unseenCount": 1,
                "unreadTotal": 1,
                "version": 4,
                "apps": [
                    {"app": {"id": mail["id"]}, "unread": 0, "removable": True},
                    {"app": {"id": chat["id"]}, "unread": 1, "removable": True},
                ],
            }
        }
    }


async def test_open_app_not_on_that_platform_is_app_not_found(http, tokens):
    """openApp of a PC-only app on ANDROID is APP_NOT_FOUND and leaves its badge alone."""
    # given
    pc_only = await create_app(http, tokens.admin(), identifier="PcOnly", android=None, ios=None)
    await notify(http, pc_only["id"])

    # when
    body = await gql(http, tokens.user(), OPEN_APP, {"appId": pc_only["id"], "platform": "ANDROID"})
    after = await gql(http, tokens.user(), WORKBENCH_BADGES, {"platform": "PC"})

    # then
    assert body == {"data": None, "errors": [graphql_error("APP_NOT_FOUND", "openApp")]}
    assert after["data"]["workbench"]["unreadTotal"] == 1


@pytest.mark.parametrize("app_id", ["424242", "0"])
async def test_open_unknown_app_is_app_not_found(http, tokens, app_id):
    """openApp of an id that names no app is APP_NOT_FOUND."""
    # when
    body = await gql(http, tokens.user(), OPEN_APP, {"appId": app_id, "platform": "PC"})

    # then
    assert body == {"data": None, "errors": [graphql_error("APP_NOT_FOUND", "openApp")]}


@pytest.mark.parametrize("app_id", ["abc", "-1", "1.5", "", "12345678901234567890"])
async def test_open_app_with_a_malformed_id_is_invalid_input(http, tokens, app_id):
    """openApp with an appId that is not a decimal 64-bit id is INVALID_INPUT."""
    # when
    body = await gql(http, tokens.user(), OPEN_APP, {"appId": app_id, "platform": "PC"})

    # then
    assert body == {"data": None, "errors": [invalid_input("openApp", "appId", "INVALID_ID")]}
