"""A document is parsed once per process, whichever path answers it: the compiled plans, the
anonymous-request check and Strawberry's executor share one parse cache
(``schema.plain_documents.parse_document``)."""

from __future__ import annotations

import pytest
import strawberry.extensions.parser_cache as strawberry_parser_cache
import strawberry.schema.schema as strawberry_schema

import schema.plain_documents as plain_documents
from tests.helpers import gql

# Not plain (an inline fragment), so the compiled plan looks at it and the executor runs it.
THROUGH_BOTH = "{ workbench(platform: PC) { ... on Workbench { version unreadTotal } } }"
TOKEN_EXCHANGE = 'mutation { appAccessToken(appId: "1", appSecret: "x") { errors { code } } }'


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """Every document text graphql-core parses for the service, in order: through the shared
    cache or wherever Strawberry would parse by itself."""
    seen: list[str] = []
    parse = plain_documents.parse

    def counting(query, **kwargs):
        seen.append(query)
        return parse(query, **kwargs)

    for module in (plain_documents, strawberry_schema, strawberry_parser_cache):
        monkeypatch.setattr(module, "parse", counting)
    plain_documents.parse_document.cache_clear()
    return seen


async def test_a_document_falling_back_to_the_executor_is_parsed_once(http, tokens, parses):
    """The compiled plan's look and the executor's run share one parse, also when sent
    again."""
    # when
    first = await gql(http, tokens.user(), THROUGH_BOTH)
    second = await gql(http, tokens.user(), THROUGH_BOTH)
    # then
    assert first == second == {"data": {"workbench": {"version": 0, "unreadTotal": 0}}}
    assert parses == [THROUGH_BOTH]


async def test_an_anonymous_token_exchange_is_parsed_once(http, parses):
    """The check that a request without credentials may run its document, and the executor
    running it, parse it once."""
    # when
    response = await http.post("/graphql", json={"query": TOKEN_EXCHANGE})
    # then
    assert response.status_code == 200
    assert response.json()["data"]["appAccessToken"]["errors"] == [{"code": "UNAUTHENTICATED"}]
    assert parses == [TOKEN_EXCHANGE]
