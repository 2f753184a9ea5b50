"""The one mapping of domain errors on root fields (schema.errors.DomainErrors, declared through
schema.fields): input errors inside a payload, other domain errors as GraphQL errors with
their codes, unexpected errors masked; and the schema-build check that keeps it the only way."""

from __future__ import annotations

import pytest
import strawberry

from resolvers.errors import InvalidInput, PermissionDenied
from resolvers.identity import Role
from schema.errors import UserError
from schema.fields import payload_mutation, root_mutation, root_query
from tests.factories import PROTOCOLS, TRANSPORT_WS, gql, ws_client

ROTATE_APP_KEY = """
mutation Rotate($appId: ID!) {
  rotateAppKey(appId: $appId) { app { id } appSecret errors { field message code } }
}
"""
CREATE_GROUP = """
mutation Create($name: String!) {
  createGroup(name: $name) { group { id name } errors { field message code } }
}
"""
MARK_APP_READ = 'mutation { markAppRead(appId: "x") { version } }'
NOTIFICATIONS = "subscription { notifications { appId text } }"


async def test_invalid_input_becomes_the_payloads_errors(http, tokens):
    """An InvalidInput in a payload mutation is the payload's errors, the other fields null."""
    # when
    body = await gql(http, tokens.admin(), ROTATE_APP_KEY, {"appId": "x"})
    # then
    assert body == {
        "data": {
            "rotateAppKey": {
                "app": None,
                "appSecret": None,
                "errors": [
                    {
                        "field": "appId",
                        "message": "must be a decimal id of 1 to 19 digits",
                        "code": "INVALID_ID",
                    }
                ],
            }
        }
    }


async def test_other_domain_error_in_a_payload_mutation_is_a_graphql_error(http, tokens):
    """AppNotFound in a payload mutation is a GraphQL error with its message and code."""
    # when
    body = await gql(http, tokens.admin(), ROTATE_APP_KEY, {"appId": "999"})
    # then
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "app 999 not found",
                "locations": [{"line": 3, "column": 3}],
                "path": ["rotateAppKey"],
                "extensions": {"code": "APP_NOT_FOUND"},
            }
        ],
    }


async def test_a_refused_role_is_a_graphql_error_not_payload_errors(http, tokens):
    """PermissionDenied in a payload mutation is a FORBIDDEN GraphQL error, not payload errors."""
    # when
    body = await gql(http, tokens.user(), CREATE_GROUP, {"name": "办公"})
    # then
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "only platform administrators manage groups and categories",
                "locations": [{"line": 3, "column": 3}],
                "path": ["createGroup"],
                "extensions": {"code": "FORBIDDEN"},
            }
        ],
    }


async def test_invalid_input_outside_a_payload_lists_its_fields(http, tokens):
    """InvalidInput outside a payload is an INVALID_INPUT error listing extensions.fields."""
    # when
    body = await gql(http, tokens.user(), MARK_APP_READ)
    # then
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "appId: must be a decimal id of 1 to 19 digits",
                "locations": [{"line": 1, "column": 12}],
                "path": ["markAppRead"],
                "extensions": {
                    "code": "INVALID_INPUT",
                    "fields": [
                        {
                            "field": "appId",
                            "message": "must be a decimal id of 1 to 19 digits",
                            "code": "INVALID_ID",
                        }
                    ],
                },
            }
        ],
    }


async def test_unexpected_error_in_a_payload_mutation_stays_masked(http, tokens, monkeypatch):
    """A non-domain exception in a payload mutation stays masked as 'Unexpected error.'."""

    # given
    async def broken(**_kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr("resolvers.groups.create_group", broken)
    # when
    body = await gql(http, tokens.admin(), CREATE_GROUP, {"name": "办公"})
    # then
    assert body == {
        "data": None,
        "errors": [
            {
                "message": "Unexpected error.",
                "locations": [{"line": 3, "column": 3}],
                "path": ["createGroup"],
            }
        ],
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_domain_error_in_a_subscription_is_its_graphql_error(server, codec, protocol):
    """A vendor token's notifications subscription gets a FORBIDDEN error, on both protocols."""
    # given
    vendor = codec.issue(cid=1, uid=1, role=Role.VENDOR, app_id=1)
    async with ws_client(server.ws_url, protocol) as client:
        await client.init(vendor)
        # when
        op_id = await client.subscribe(NOTIFICATIONS)
        message = await client.receive()
    # then
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert message["id"] == op_id
    assert message["type"] == ("next" if protocol == TRANSPORT_WS else "data")
    assert errors == [
        {
            "message": "this field is for workbench users, not vendor tokens",
            "extensions": {"code": "FORBIDDEN"},
        }
    ]


@strawberry.type
class _Payload:
    done: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class _Query:
    ping: bool = True


def test_a_payload_mutation_must_be_declared_as_one():
    """A payload returned without payload_mutation, or promised without a payload, fails."""

    @strawberry.type
    class Undeclared:
        @root_mutation(description="Returns a payload without its mapping.")
        def act(self) -> _Payload:
            raise InvalidInput.single(None, "never reached")

    @strawberry.type
    class NoPayload:
        @payload_mutation(description="Declares a payload it does not return.")
        def act(self) -> bool:
            return True

    with pytest.raises(TypeError, match="use payload_mutation"):
        strawberry.Schema(query=_Query, mutation=Undeclared)
    with pytest.raises(TypeError, match="must return a payload"):
        strawberry.Schema(query=_Query, mutation=NoPayload)


def test_sync_root_fields_are_mapped_the_same_way():
    """Sync resolvers get the same mapping: payload errors, and coded GraphQL errors."""

    # given
    @strawberry.type
    class Query:
        @root_query(description="Always refused.")
        def refused(self) -> bool:
            raise PermissionDenied("not you")

    @strawberry.type
    class Mutation:
        @payload_mutation(description="Always invalid.")
        def act(self) -> _Payload:
            raise InvalidInput.single("input.name", "is empty", "REQUIRED")

    schema = strawberry.Schema(query=Query, mutation=Mutation)
    # when
    refused = schema.execute_sync("{ refused }")
    invalid = schema.execute_sync("mutation { act { done errors { field message code } } }")
    # then
    assert refused.data is None
    assert [(e.message, e.extensions) for e in refused.errors or []] == [
        ("not you", {"code": "FORBIDDEN"})
    ]
    assert invalid.errors is None
    assert invalid.data == {
        "act": {
            "done": False,
            "errors": [{"field": "input.name", "message": "is empty", "code": "REQUIRED"}],
        }
    }
