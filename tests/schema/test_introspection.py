"""Who may introspect the schema (``WORKBENCH_INTROSPECTION``, issue 11 item 3): ``__schema`` and
``__type`` for those the setting allows, over HTTP and both WebSocket protocols, and no
"Did you mean ..." suggestions for anyone else, the anonymous ``appAccessToken`` path included.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from imworkbench.settings import Settings
from resolvers.identity import Role
from resolvers.tokens import TokenCodec
from tests.factories import (
    PROTOCOLS,
    TRANSPORT_WS,
    RunningServer,
    Tokens,
    running,
    without_request_ids,
    ws_client,
)

SCHEMA = "{ __schema { queryType { name } } }"
TYPE = '{ __type(name: "Platform") { enumValues { name } } }'
TYPENAME = "{ __typename }"
DISABLED = "Introspection is not allowed for this caller: the document selects '%s'."
POLICIES = ("everyone", "authenticated", "administrators", "nobody")
PRINCIPALS = ("anonymous", "user", "vendor", "enterprise_admin", "platform_admin")
ALLOWED = {
    "everyone": set(PRINCIPALS),
    "authenticated": set(PRINCIPALS) - {"anonymous"},
    "administrators": {"enterprise_admin", "platform_admin"},
    "nobody": set(),
}
# Client mistakes whose errors graphql-core words with suggestions: (document, variables).
TYPOS = {
    "field": ("{ workbench(platform: PC) { versoin } }", None),
    "root field": ("{ workbnch(platform: PC) { version } }", None),
    "argument": ("{ workbench(platfrm: PC) { version } }", None),
    "enum literal": ("{ workbench(platform: ANDRID) { version } }", None),
    "variable type": ("query($p: Platfrm) { workbench(platform: $p) { version } }", None),
    "enum variable": (
        "query($p: Platform!) { workbench(platform: $p) { version } }",
        {"p": "ANDRID"},
    ),
    "input field literal": ('{ apps(filter: {grupId: "1"}) { totalCount } }', None),
    "input field variable": (
        "query($f: AppFilter) { apps(filter: $f) { totalCount } }",
        {"f": {"grupId": "1"}},
    ),
    "directive argument": ("{ __typename @skip(iff: true) }", None),
}
# The same kinds of mistakes in documents that run without credentials (SPEC §8).
PUBLIC_TYPOS = {
    "argument": ('mutation { appAccessToken(appId: "1", appSecrt: "x") { accessToken } }', None),
    "field": ('mutation { appAccessToken(appId: "1", appSecret: "x") { accesToken } }', None),
    "nested field": (
        'mutation { appAccessToken(appId: "1", appSecret: "x") { errors { cod } } }',
        None,
    ),
    "variable type": (
        'mutation($s: Strin!) { appAccessToken(appId: "1", appSecret: $s) { accessToken } }',
        {"s": "x"},
    ),
}


def _token(tokens: Tokens, codec: TokenCodec, principal: str) -> str | None:
    return {
        "anonymous": lambda: None,
        "user": tokens.user,
        "vendor": lambda: codec.issue(cid=1001, uid=1, role=Role.VENDOR, app_id=1),
        "enterprise_admin": tokens.enterprise_admin,
        "platform_admin": tokens.admin,
    }[principal]()


@asynccontextmanager
async def serving(settings: Settings, policy: str) -> AsyncIterator[tuple[RunningServer, Any]]:
    """A server whose ``introspection`` setting is ``policy``, and an HTTP client for it."""
    async with (
        running(settings.model_copy(update={"introspection": policy})) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        yield server, http


async def post(
    http: httpx.AsyncClient,
    token: str | None,
    query: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
) -> tuple[int, Any]:
    """POST a GraphQL request; the status and the body without request ids."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    document: dict[str, Any] = {"query": query, "variables": variables}
    if operation_name is not None:
        document["operationName"] = operation_name
    response = await http.post("/graphql", json=document, headers=headers)
    return response.status_code, without_request_ids(
        response.json(), response.headers["x-request-id"]
    )


@pytest.mark.parametrize("policy", POLICIES)
async def test_introspection_follows_the_setting_over_http(settings, tokens, codec, policy):
    """__schema and __type answer for the principals the setting allows; others get a
    validation error naming the field (with a token) or 401 (without); __typename is never
    introspection."""
    async with serving(settings, policy) as (_, http):
        for principal in PRINCIPALS:
            token = _token(tokens, codec, principal)
            for query, field, data in (
                (SCHEMA, "__schema", {"__schema": {"queryType": {"name": "Query"}}}),
                (
                    TYPE,
                    "__type",
                    {"__type": {"enumValues": [{"name": p} for p in ("PC", "ANDROID", "IOS")]}},
                ),
            ):
                status, body = await post(http, token, query)
                if principal in ALLOWED[policy]:
                    assert (status, body) == (200, {"data": data}), (principal, query)
                elif token is None:
                    assert status == 401, (principal, query)
                else:
                    assert status == 200, (principal, query)
                    assert body["data"] is None
                    assert [e["message"] for e in body["errors"]] == [DISABLED % field]
            if token is not None:
                assert await post(http, token, TYPENAME) == (200, {"data": {"__typename": "Query"}})


@pytest.mark.parametrize("policy", POLICIES)
async def test_suggestions_only_for_those_who_may_introspect(settings, tokens, codec, policy):
    """A typo's error suggests names ("Did you mean ...") only to callers who may introspect;
    the others get the same refusal without them. Anonymous callers reach only the token
    exchange (SPEC §8), whose typos are checked the same way; a variable of another type than
    the argument's is beyond its plain shape for those who may not introspect (401,
    ``schema.anonymous``)."""
    async with serving(settings, policy) as (_, http):
        for principal in PRINCIPALS:
            token = _token(tokens, codec, principal)
            documents = PUBLIC_TYPOS if token is None else {**TYPOS, **PUBLIC_TYPOS}
            for name, (query, variables) in documents.items():
                status, body = await post(http, token, query, variables)
                if token is None and name == "variable type" and policy != "everyone":
                    assert status == 401, body
                    continue
                assert status == 200, (principal, name, body)
                messages = " ".join(e["message"] for e in body["errors"])
                assert messages, (principal, name)
                assert ("Did you mean" in messages) == (principal in ALLOWED[policy]), (
                    principal,
                    name,
                    messages,
                )


@pytest.mark.parametrize("policy", ["administrators", "nobody"])
async def test_introspection_over_graphql_transport_ws(settings, tokens, policy):
    """Over graphql-transport-ws the setting holds as over HTTP: a user's __schema query is an
    error without data; an administrator's is answered when administrators may introspect."""
    async with serving(settings, policy) as (server, _):
        for token, allowed in (
            (tokens.user(), False),
            (tokens.admin(), policy == "administrators"),
        ):
            async with ws_client(server.ws_url, TRANSPORT_WS) as client:
                await client.init(token)
                op_id = await client.subscribe(SCHEMA)
                message = await client.receive()
                if allowed:
                    assert message == {
                        "id": op_id,
                        "type": "next",
                        "payload": {"data": {"__schema": {"queryType": {"name": "Query"}}}},
                    }
                else:
                    assert message["type"] in ("error", "next"), message
                    assert DISABLED % "__schema" in json.dumps(message["payload"])
                    assert "data" not in message["payload"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_no_suggestions_over_websockets(settings, tokens, protocol):
    """A subscription typo over either protocol is refused without suggestions when the
    caller may not introspect, and with them when it may."""
    query = "subscription { badges(platform: PC) { versoin } }"
    for policy, suggested in (("nobody", False), ("everyone", True)):
        async with (
            serving(settings, policy) as (server, _),
            ws_client(server.ws_url, protocol) as client,
        ):
            await client.init(tokens.user())
            await client.subscribe(query)
            message = await client.receive()
        assert message["type"] == "error", message
        assert "versoin" in json.dumps(message["payload"])
        assert ("Did you mean" in json.dumps(message["payload"])) == suggested, (policy, message)


async def test_graphiql_loads_the_schema_with_its_headers(http, tokens):
    """GraphiQL's own introspection query (graphql-js's, as its bundle sends it), with the
    Authorization header from its Headers tab, loads the schema under the default setting;
    the page itself needs no token."""
    # given
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "getIntrospectionQuery" in (await http.get("/graphiql/graphiql.min.js")).text
    # when
    status, body = await post(
        http, tokens.user(), get_introspection_query(), operation_name="IntrospectionQuery"
    )
    # then
    assert status == 200
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    status, _ = await post(http, None, get_introspection_query())
    assert status == 401


async def test_graphiql_needs_no_token_when_everyone_may_introspect(settings):
    """With ``everyone``, GraphiQL loads the schema without a token; other queries still need
    one."""
    async with serving(settings, "everyone") as (_, http):
        status, body = await post(
            http, None, get_introspection_query(), operation_name="IntrospectionQuery"
        )
        assert status == 200
        assert body["data"]["__schema"]["queryType"]["name"] == "Query"
        status, _ = await post(http, None, "{ __typename workbench(platform: PC) { version } }")
        assert status == 401
