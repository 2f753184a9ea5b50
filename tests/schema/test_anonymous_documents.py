"""What a caller without credentials may send (SPEC §8, issue 11 item 3, finding F4): only the
plain token exchange. When it may not introspect, any other shape is refused before validation
with the answer of any document without credentials (401), and a wrong name inside the shape is
answered with one fixed message, so no answer depends on which names the schema holds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from imworkbench.settings import Settings
from tests.factories import create_app, running, without_request_ids

HIDDEN = ("authenticated", "administrators", "nobody")
# A document needing credentials: its anonymous answer is what every refused shape must get.
NEEDS_TOKEN = "{ workbench(platform: PC) { version } }"
EXCHANGE = 'appAccessToken(appId: "1", appSecret: "x")'
# Probes of the hostile tester: (a name that exists, one that does not), outside the shape.
SHAPE_PROBES = {
    "fragment type": (
        f"mutation {{ {EXCHANGE} {{ ... on App {{ __typename }} }} }}",
        f"mutation {{ {EXCHANGE} {{ ... on Nope {{ __typename }} }} }}",
    ),
    "input field": (
        f"mutation($x: AppFilter = {{platform: PC}}) {{ {EXCHANGE} {{ accessToken }} }}",
        f"mutation($x: AppFilter = {{platfrm: PC}}) {{ {EXCHANGE} {{ accessToken }} }}",
    ),
    "enum value": (
        f"mutation($p: Platform = PC) {{ {EXCHANGE} {{ accessToken }} }}",
        f"mutation($p: Platform = PCC) {{ {EXCHANGE} {{ accessToken }} }}",
    ),
    "variable type": (
        f"mutation($x: AppFilter) {{ {EXCHANGE} {{ accessToken }} }}",
        f"mutation($x: AppFiltre) {{ {EXCHANGE} {{ accessToken }} }}",
    ),
    "enum argument": (
        'mutation { appAccessToken(appId: "1", appSecret: PC) { accessToken } }',
        'mutation { appAccessToken(appId: "1", appSecret: PCC) { accessToken } }',
    ),
    "root field": (
        f"mutation {{ {EXCHANGE} {{ accessToken }} createApp {{ appSecret }} }}",
        f"mutation {{ {EXCHANGE} {{ accessToken }} createAp {{ appSecret }} }}",
    ),
    "alias": (
        f"mutation {{ {EXCHANGE} {{ t: accessToken }} }}",
        f"mutation {{ {EXCHANGE} {{ t: accessTokn }} }}",
    ),
    "directive": (
        f"mutation {{ {EXCHANGE} {{ accessToken @skip(if: false) }} }}",
        f"mutation {{ {EXCHANGE} {{ accessToken @skp(if: false) }} }}",
    ),
}
# Wrong names inside the shape: (a name the schema has elsewhere, one it has nowhere).
NAME_PROBES = {
    "nested field": (
        f"mutation {{ {EXCHANGE} {{ errors {{ name }} }} }}",
        f"mutation {{ {EXCHANGE} {{ errors {{ cod }} }} }}",
    ),
    "payload field": (
        f"mutation {{ {EXCHANGE} {{ appSecret }} }}",
        f"mutation {{ {EXCHANGE} {{ appSecrt }} }}",
    ),
    "argument": (
        'mutation { appAccessToken(appId: "1", appSecret: "x", first: 1) { accessToken } }',
        'mutation { appAccessToken(appId: "1", appSecret: "x", frist: 1) { accessToken } }',
    ),
}
MISNAMED = (
    "A token exchange selects only appAccessToken(appId, appSecret) "
    "{ accessToken expiresIn errors { field message code } } and __typename (SPEC §8)."
)
# The README's example and the vendor tests' document (SPEC §8), as vendors send them.
README_EXCHANGE = (
    'mutation { appAccessToken(appId: "%s", appSecret: "%s") '
    "{ accessToken expiresIn errors { code } } }"
)
VARIABLES_EXCHANGE = """
mutation($id: ID!, $secret: String!) {
  appAccessToken(appId: $id, appSecret: $secret) { accessToken expiresIn errors { code } }
}
"""


@asynccontextmanager
async def serving(settings: Settings, policy: str) -> AsyncIterator[httpx.AsyncClient]:
    """A server whose ``introspection`` setting is ``policy``; an HTTP client for it."""
    async with (
        running(settings.model_copy(update={"introspection": policy})) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        yield http


async def anonymous(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """POST without credentials; the status and the body without request ids."""
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    return response.status_code, without_request_ids(
        response.json(), response.headers["x-request-id"]
    )


def _no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("policy", HIDDEN)
async def test_shape_probes_get_the_answer_without_credentials(settings, caplog, policy):
    """A probe beyond the plain token exchange answers 401 exactly as a document needing a
    token does, whether the name it probes exists or not."""
    caplog.set_level(logging.DEBUG)
    async with serving(settings, policy) as http:
        refused = await anonymous(http, NEEDS_TOKEN)
        assert refused[0] == 401
        for name, (existing, missing) in SHAPE_PROBES.items():
            assert await anonymous(http, existing) == refused, name
            assert await anonymous(http, missing) == refused, name
    _no_errors_logged(caplog)


@pytest.mark.parametrize("policy", HIDDEN)
async def test_wrong_names_inside_the_shape_get_one_fixed_message(settings, caplog, policy):
    """A wrong field or argument name inside the token exchange is answered with one fixed
    message naming no type, the same for a name the schema has elsewhere and one it lacks."""
    caplog.set_level(logging.DEBUG)
    async with serving(settings, policy) as http:
        for name, (existing, missing) in NAME_PROBES.items():
            status, body = await anonymous(http, existing)
            assert (status, body) == await anonymous(http, missing), name
            assert status == 200, (name, body)
            assert body["data"] is None, (name, body)
            assert [e["message"] for e in body["errors"]] == [MISNAMED], (name, body)
    _no_errors_logged(caplog)


@pytest.mark.parametrize("policy", HIDDEN)
async def test_typename_and_scalar_literals_stay_inside_the_shape(settings, policy):
    """__typename at every level of the exchange and an integer app id are part of the plain
    shape: answered as before, naming only the exchange's own (SPEC) types."""
    async with serving(settings, policy) as http:
        assert await anonymous(http, "mutation { __typename }") == (
            200,
            {"data": {"__typename": "Mutation"}},
        )
        query = (
            'mutation Token { appAccessToken(appId: 1, appSecret: "x") '
            "{ __typename errors { __typename code } } }"
        )
        assert await anonymous(http, query) == (
            200,
            {
                "data": {
                    "appAccessToken": {
                        "__typename": "AppAccessTokenPayload",
                        "errors": [{"__typename": "UserError", "code": "UNAUTHENTICATED"}],
                    }
                }
            },
        )


@pytest.mark.parametrize("policy", [*HIDDEN, "everyone"])
async def test_token_exchange_examples_work_as_before(settings, tokens, policy):
    """The README's literal example and the variables form issue a token for the right
    secret and refuse a wrong one in the payload, as before, whatever the policy."""
    async with serving(settings, policy) as http:
        app = await create_app(http, tokens.admin())
        secret = await _secret(http, tokens.admin(), app["id"])
        for query, variables in (
            (README_EXCHANGE % (app["id"], secret), None),
            (VARIABLES_EXCHANGE, {"id": app["id"], "secret": secret}),
        ):
            status, body = await anonymous(http, query, variables)
            assert status == 200, body
            payload = body["data"]["appAccessToken"]
            assert payload["errors"] == []
            assert payload["accessToken"]
            assert payload["expiresIn"] == 7200
        for query, variables in (
            (README_EXCHANGE % (app["id"], "wrong"), None),
            (VARIABLES_EXCHANGE, {"id": app["id"], "secret": "wrong"}),
        ):
            assert await anonymous(http, query, variables) == (
                200,
                {
                    "data": {
                        "appAccessToken": {
                            "accessToken": None,
                            "expiresIn": None,
                            "errors": [{"code": "UNAUTHENTICATED"}],
                        }
                    }
                },
            )


async def test_everyone_policy_answers_as_before(settings):
    """With ``everyone`` the token exchange is validated as any document: a fragment on an
    existing type and on a missing one get graphql-core's own (different) errors."""
    async with serving(settings, "everyone") as http:
        existing, missing = SHAPE_PROBES["fragment type"]
        status, body = await anonymous(http, existing)
        assert status == 200
        assert "can never be of type 'App'" in body["errors"][0]["message"]
        status, body = await anonymous(http, missing)
        assert status == 200
        assert body["errors"][0]["message"].startswith("Unknown type 'Nope'.")


ROTATE = "mutation($id: ID!) { rotateAppSecret(appId: $id) { appSecret errors { code } } }"


async def _secret(http: httpx.AsyncClient, token: str, app_id: str) -> str:
    response = await http.post(
        "/graphql",
        json={"query": ROTATE, "variables": {"id": app_id}},
        headers={"Authorization": f"Bearer {token}"},
    )
    payload = response.json()["data"]["rotateAppSecret"]
    assert payload["errors"] == [], payload
    return str(payload["appSecret"])
