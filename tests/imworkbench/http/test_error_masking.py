"""Unexpected errors are masked for clients and logged once with their traceback; client errors
are neither masked nor logged as errors (schema.errors, schema.WorkbenchSchema)."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.factories import create_app, gql, holding_write_lock, running

WORKBENCH = "{ workbench(platform: PC) { version } }"
MARK_READ = 'markAppRead(appId: "%s") { version }'


async def test_unexpected_error_is_masked_and_logged(http, tokens, monkeypatch, caplog):
    """A bug inside a resolver reaches the client as 'Unexpected error.' and the log in full,
    once, whether the plain query's compiled path or Strawberry's met it first."""

    # given
    async def broken(**_kwargs):
        raise RuntimeError("secret detail: SELECT * FROM app")

    monkeypatch.setattr("schema.workbench.load_workbench", broken)
    monkeypatch.setattr("schema.compiled.load_workbench", broken)  # the compiled path
    caplog.set_level(logging.DEBUG)
    # when
    body = await gql(http, tokens.user(), WORKBENCH)
    # then
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Unexpected error."
    assert "secret" not in str(body)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "workbench.graphql"
    assert errors[0].exc_info is not None
    assert "secret detail" in str(errors[0].exc_info[1])


@pytest.mark.parametrize(
    "query",
    [
        '{ workbench(platform: "PC") { version } }',
        'mutation { markAppRead(appId: "999") { version } }',
        'mutation { markAppRead(appId: "x") { version } }',
    ],
    ids=["validation", "not found", "bad id"],
)
async def test_client_errors_are_not_logged_as_errors(http, tokens, caplog, query):
    """Validation and domain errors are returned to the client and never logged at ERROR."""
    caplog.set_level(logging.DEBUG)
    body = await gql(http, tokens.user(), query)
    assert body["errors"][0]["message"] != "Unexpected error."
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not any("markAppRead" in r.getMessage() for r in caplog.records)


async def test_a_write_past_the_busy_timeout_is_a_clear_error(settings, tokens, caplog):
    """A mutation whose write waits for another writer's lock past the busy timeout answers
    DATABASE_BUSY, not "Unexpected error.", and logs no ERROR (issue 11 item 9)."""
    # given
    settings = settings.model_copy(update={"db_busy_timeout_ms": 200})
    caplog.set_level(logging.DEBUG)
    async with running(settings) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        app = await create_app(http, tokens.admin(), identifier="BusyRead")
        # when
        async with holding_write_lock(settings.database_url):
            body = await gql(http, tokens.user(), f"mutation {{ {MARK_READ % app['id']} }}")
    # then
    assert body["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("database busy: another write held the lock too long; try again", "DATABASE_BUSY")
    ]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
