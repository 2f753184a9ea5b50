"""Operating the service (issue 5 items 4 and 7): health and readiness, Prometheus metrics,
request ids in responses, errors and logs."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import httpx
import pytest

from imworkbench.logs import configure_logging, request_id_var
from imworkbench.settings import Settings
from tests.factories import PUSH, TIMEOUT, create_app, push, running


async def test_healthz_and_readyz(http):
    """Both answer 200 while the database and the broker are there."""
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}


async def test_readyz_is_503_without_the_broker(settings: Settings):
    """A process whose Redis is unreachable is alive but not ready."""
    unreachable = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    async with running(unreachable) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "problems": {"broker": "disconnected"}}


async def test_metrics_count_requests_operations_and_outbox(http, tokens):
    """/metrics is Prometheus text with the service's series."""
    app = await create_app(http, tokens.admin(), identifier="Measured")
    await push(http, app["id"], ["1001,1034"])
    await http.post(PUSH, data={"appid": "x"})
    response = await http.get("/metrics")
    text = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'workbench_http_requests_total{method="POST",route="/OpenPlatform/integrate/'
        'pushappnotice.php",status="200"} 2.0'
    ) in text
    assert 'workbench_graphql_operations_total{outcome="ok",type="mutation"} 1.0' in text
    assert "workbench_websocket_connections 0.0" in text
    assert 'workbench_push_outbox{state="PENDING"} 0.0' in text
    assert "workbench_broker_publish_seconds_count" in text


async def test_metrics_show_messages_redis_has_not_taken(settings: Settings, tokens):
    """While Redis is unreachable, accepted notices wait in the publish queue, and /metrics
    says how many (workbench_broker_pending_publishes); before, it reads 0."""
    unreachable = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    async with running(unreachable) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        before = (await http.get("/metrics")).text
        app = await create_app(http, tokens.admin(), identifier="Queued")
        await push(http, app["id"], ["1001,1034", "1001,1035"])
        after = (await http.get("/metrics")).text
    assert "workbench_broker_pending_publishes 0.0" in before
    pending = next(
        float(line.split()[1])
        for line in after.splitlines()
        if line.startswith("workbench_broker_pending_publishes ")
    )
    assert pending >= 2


async def test_unknown_paths_and_methods_share_one_label(http):
    """Arbitrary paths (also under the legacy prefix) and methods cannot create new series;
    the legacy paths with stray spaces count under their route."""
    for index in range(5):
        await http.get(f"/nothing/{index}")
        await http.get(f"/OpenPlatform/integrate/made-up-{index}.php")
    await http.request("PROPFIND", "/healthz")
    await http.post("/%20OpenPlatform/integrate/setnum.php%20", data={"appid": "x"})
    text = (await http.get("/metrics")).text
    assert 'method="GET",route="other",status="404"} 10.0' in text
    assert 'method="other",route="/healthz"' in text
    assert 'route="/OpenPlatform/integrate/setnum.php",status="200"} 1.0' in text
    assert "/nothing/" not in text
    assert "made-up" not in text


async def test_every_response_has_a_request_id(http):
    """A sane client id is kept; a missing or odd one is replaced by a fresh one."""
    kept = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    fresh = await http.get("/healthz")
    odd = await http.get("/healthz", headers={"X-Request-Id": "x" * 65})
    assert kept.headers["x-request-id"] == "abc-123"
    assert len(fresh.headers["x-request-id"]) == 32
    assert odd.headers["x-request-id"] != "x" * 65


async def test_legacy_failures_carry_the_request_id(http):
    """The legacy body stays exact; the id is in the header."""
    response = await http.post(PUSH, data={"appid": "x"}, headers={"X-Request-Id": "vendor-1"})
    assert response.content == b'{"Result":false,"MsgNo":-51007}'
    assert response.headers["x-request-id"] == "vendor-1"


@pytest.mark.parametrize("accept", ["application/json", "application/graphql-response+json"])
async def test_graphql_errors_carry_the_request_id(http, tokens, accept):
    """Every GraphQL error names the request, for both media types and for 401s."""
    headers = {"Authorization": f"Bearer {tokens.user()}", "Accept": accept, "X-Request-Id": "r-1"}
    field_error = await http.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    unauthorised = await http.post(
        "/graphql", json={"query": "{ nope }"}, headers={"X-Request-Id": "r-2"}
    )
    assert field_error.json()["errors"][0]["extensions"]["requestId"] == "r-1"
    assert unauthorised.status_code == 401
    assert unauthorised.json()["errors"][0]["extensions"]["requestId"] == "r-2"


def test_json_logs_carry_the_request_id():
    """With WORKBENCH_LOG_FORMAT=json every line is one JSON object with the request id."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    token = request_id_var.set("req-7")
    try:
        logging.getLogger("workbench.test").info("notice for %s", "1001,1034")
    finally:
        request_id_var.reset(token)
        root.handlers[:], level = saved
        root.setLevel(level)
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["event"] == "notice for 1001,1034"
    assert record["request_id"] == "req-7"
    assert record["level"] == "info"
    assert record["logger"] == "workbench.test"


def test_broker_urls_are_logged_without_passwords():
    """A Redis password never reaches the logs."""
    from imworkbench.brokers.redis import safe_url

    assert safe_url("redis://:s3cret@db1:6379/0") == "redis://:***@db1:6379/0"
    assert safe_url("redis://user:s3cret@db1/0?namespace=x") == "redis://user:***@db1/0?namespace=x"
    assert safe_url("redis://db1:6379/0") == "redis://db1:6379/0"


def test_a_serving_process_freezes_startup_objects_and_collects_in_larger_batches():
    """tune_garbage_collector (called once a served app has started): everything allocated at
    startup is frozen out of collections, and the young generation is collected every
    GC_THRESHOLDS[0] allocations."""
    # given
    script = (
        "import gc; from imworkbench import serving; serving.tune_garbage_collector(); "
        "print(gc.get_threshold() == serving.GC_THRESHOLDS, gc.get_freeze_count() > 10_000)"
    )
    # when
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT * 4
    )
    # then
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
