"""A document is parsed once per process, whichever path answers it: the compiled plans and
Strawberry's executor share one parse cache (``schema.plain_documents.parse_document``). The
check of a request without credentials parses on its own, capped, outside that cache."""

from __future__ import annotations

import pytest
import strawberry.extensions.parser_cache as strawberry_parser_cache
import strawberry.schema.schema as strawberry_schema

import schema.plain_documents as plain_documents
from tests.factories import gql

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


async def test_anonymous_documents_stay_out_of_the_shared_cache(http, parses):
    """A request without credentials is checked with a parse of its own, capped at 200 tokens:
    a longer anonymous document is refused with 401 and never enters the shared cache; an
    accepted token exchange is parsed through the cache once, by the executor."""
    # given
    long = TOKEN_EXCHANGE.replace("errors { code }", "errors { " + "code " * 200 + "}")
    # when
    refused = await http.post("/graphql", json={"query": long})
    accepted = await http.post("/graphql", json={"query": TOKEN_EXCHANGE})
    # then
    assert refused.status_code == 401
    assert accepted.status_code == 200
    assert accepted.json()["data"]["appAccessToken"]["errors"] == [{"code": "UNAUTHENTICATED"}]
    assert parses == [TOKEN_EXCHANGE]
