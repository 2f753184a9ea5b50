"""Health, readiness and Prometheus metrics (issue 5 item 4).

- ``/healthz``: the process is alive (200, no dependencies checked).
- ``/readyz``: the database answers ``SELECT 1`` and the broker is connected (200), else 503
  with the failing part named, so a load balancer stops sending traffic here.
- ``/metrics``: Prometheus text format (prometheus-client), one registry per application:
  HTTP requests by route and status, GraphQL operations by type and outcome, WebSocket
  connections and live subscriptions, subscription cleanups, broker reconnects and publish
  latency, push outbox depth by state and push failures.

Metrics are per process: with ``workbench serve --workers N`` each scrape sees one worker, so
production deployments run one process per container or port (docs/deploy.md).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storage.db import Database
from storage.push import outbox_counts

LEGACY_PATHS = tuple(
    f"/OpenPlatform/integrate/{name}.php"
    for name in ("getappid", "pushappnotice", "setnum", "checkticket")
)
KNOWN_ROUTES = ("/graphql", "/healthz", "/readyz", "/metrics", "/", *LEGACY_PATHS)
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def route_label(path: str) -> str:
    """A bounded route label for ``path``: one of the service's routes (the legacy paths
    after their stray spaces are dropped), ``/icons``, ``/graphiql``, or ``other``."""
    if path in KNOWN_ROUTES:
        return path
    cleaned = "/".join(segment.strip(" ") for segment in path.split("/"))
    if cleaned in LEGACY_PATHS:
        return cleaned
    if path.startswith("/icons/"):
        return "/icons"
    if path.startswith("/graphiql/"):
        return "/graphiql"
    return "other"


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "workbench_http_requests",
            "HTTP requests by route, method and status.",
            ("route", "method", "status"),
            registry=r,
        )
        self.http_seconds = Histogram(
            "workbench_http_request_seconds",
            "HTTP request duration by route.",
            ("route",),
            registry=r,
        )
        self.graphql_operations = Counter(
            "workbench_graphql_operations",
            "GraphQL operations by type and outcome.",
            ("type", "outcome"),
            registry=r,
        )
        self.websocket_connections = Gauge(
            "workbench_websocket_connections", "Open WebSocket connections.", registry=r
        )
        self.subscriptions = Gauge(
            "workbench_subscriptions", "Live subscriptions by field.", ("field",), registry=r
        )
        self.subscription_cleanups = Counter(
            "workbench_subscription_cleanups",
            "Subscriptions whose cleanup ran (client left, completed, or shutdown).",
            ("field",),
            registry=r,
        )
        self.broker_reconnects = Gauge(
            "workbench_broker_reconnects", "Broker reconnects since start.", registry=r
        )
        self.broker_channels = Gauge(
            "workbench_broker_channels",
            "Channels (users) this process listens to; with Redis, its subscriptions there.",
            registry=r,
        )
        self.broker_dropped = Gauge(
            "workbench_broker_dropped_publishes",
            "Messages dropped because the broker was unreachable.",
            registry=r,
        )
        self.broker_pending = Gauge(
            "workbench_broker_pending_publishes",
            "Messages handed to the broker and not yet taken by it (Redis: its publish queue).",
            registry=r,
        )
        self.publish_seconds = Histogram(
            "workbench_broker_publish_seconds",
            "Time to hand one batch of messages to the broker.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.push_outbox = Gauge(
            "workbench_push_outbox", "Push outbox rows by state.", ("state",), registry=r
        )
        self.push_failures = Gauge(
            "workbench_push_failures",
            "Failed push attempts by this process since start.",
            registry=r,
        )
        self.push_sent = Gauge(
            "workbench_push_sent", "Pushes delivered by this process since start.", registry=r
        )


class Meter:
    """What the GraphQL layer reports (``schema.context.Meter``), into ``Metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.started = 0
        self.ended = 0

    @property
    def live(self) -> int:
        """Subscriptions started and not yet cleaned up."""
        return self.started - self.ended

    def operation(self, kind: str, outcome: str) -> None:
        """Count one GraphQL operation."""
        self._metrics.graphql_operations.labels(kind, outcome).inc()

    def subscription_started(self, field: str) -> None:
        """A subscription began."""
        self.started += 1
        self._metrics.subscriptions.labels(field).inc()

    def subscription_ended(self, field: str) -> None:
        """A subscription's cleanup ran."""
        self.ended += 1
        self._metrics.subscriptions.labels(field).dec()
        self._metrics.subscription_cleanups.labels(field).inc()

    def websocket_opened(self) -> None:
        """A WebSocket connection opened."""
        self._metrics.websocket_connections.inc()

    def websocket_closed(self) -> None:
        """A WebSocket connection closed."""
        self._metrics.websocket_connections.dec()


class MetricsMiddleware:
    """Counts and times HTTP requests by bounded route label (``route_label``)."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        status = 500
        started = time.perf_counter()

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_seconds.labels(route).observe(time.perf_counter() - started)


async def healthz(_request: Request) -> Response:
    """The process is alive."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database and the broker are reachable: 200, else 503 naming what is not."""
    db: Database = request.state.db
    problems: dict[str, str] = {}
    try:
        await db.ping()
    except Exception as error:
        problems["database"] = type(error).__name__
    broker: Any = request.state.broker
    inner = getattr(broker, "inner", broker)
    if getattr(inner, "connected", True) is False:
        problems["broker"] = "disconnected"
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text format; gauges read from their sources at scrape time."""
    metrics: Metrics = request.app.state.metrics
    inner: Any = getattr(request.state.broker, "inner", request.state.broker)
    metrics.broker_reconnects.set(getattr(inner, "reconnects", 0))
    metrics.broker_dropped.set(getattr(inner, "dropped_publishes", 0))
    metrics.broker_pending.set(getattr(inner, "pending_publishes", 0))
    channel_count = getattr(inner, "channel_count", None)
    metrics.broker_channels.set(channel_count() if callable(channel_count) else 0)
    dispatcher = request.app.state.dispatcher
    metrics.push_failures.set(dispatcher.failures)
    metrics.push_sent.set(dispatcher.sent)
    try:
        async with request.state.db.read() as session:
            for state, count in (await outbox_counts(session)).items():
                metrics.push_outbox.labels(state.value).set(count)
    except Exception:
        pass
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def observability_routes() -> list[Route]:
    """``/healthz``, ``/readyz`` and ``/metrics``."""
    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
