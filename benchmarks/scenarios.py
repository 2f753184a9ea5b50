"""The six scenarios of issue 6, each measuring the service and its baseline in the same run.

A scenario starts each system in turn on the server core (never both at once), drives it from
a load generator process on another core, and returns table rows and the issue's target checks.
Every system starts on a fresh database (a copy of a migrated SQLite file, or the recreated
PostgreSQL benchmark database); the workbench-query baseline reads the catalogue the service
was seeded with.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from benchmarks import processes
from benchmarks.processes import Running, generate, holding, rss_mib
from benchmarks.stats import Check, Row, ratio
from imworkbench.settings import Settings
from resolvers.identity import Role
from resolvers.tokens import TokenCodec

PUSH_PATH = "/OpenPlatform/integrate/pushappnotice.php"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OK = '"Result":true'
CID = 2001
CREATE_APP = (
    "mutation Create($input: AppInput!) { createApp(input: $input) "
    "{ app { id } errors { message } } }"
)
WORKBENCH_QUERY = (
    "{ workbench(platform: PC) { unseenCount unreadTotal version "
    "apps { app { id name } unread removable } } }"
)
TOTAL_QUERY = "{ workbench(platform: PC) { unreadTotal } }"


@dataclass
class Context:
    """What every scenario needs: run length, where to write, which databases."""

    quick: bool
    workdir: Path
    databases: tuple[str, ...]
    template: Path | None = None

    def seconds(self, full: float, quick: float) -> float:
        """A duration for this run's length."""
        return quick if self.quick else full


@dataclass
class Outcome:
    """A scenario's rows and checks."""

    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


@dataclass(frozen=True)
class System:
    """One system under test: the service (with its broker) or the baseline, on a database."""

    name: str  # "workbench" or "baseline"
    database: str  # "sqlite" or "postgresql"
    broker: str = "memory"

    @property
    def label(self) -> str:
        """``workbench``, ``workbench+redis`` or ``baseline``."""
        return self.name if self.broker == "memory" else f"{self.name}+{self.broker}"

    @property
    def is_service(self) -> bool:
        """Whether this is the service (not the baseline)."""
        return self.name == "workbench"


def systems(context: Context, *, postgres: bool) -> list[System]:
    """The systems a scenario compares: on SQLite the service and the baseline; on PostgreSQL
    (when the scenario runs there) also the service with the Redis broker."""
    chosen = [System("workbench", "sqlite"), System("baseline", "sqlite")]
    chosen = [s for s in chosen if s.database in context.databases]
    if postgres and "postgresql" in context.databases:
        chosen += [
            System("workbench", "postgresql"),
            System("workbench", "postgresql", "redis"),
            System("baseline", "postgresql"),
        ]
    return chosen


async def fresh_database(context: Context, database: str) -> str:
    """A fresh, migrated database's URL."""
    if database == "postgresql":
        url = await processes.fresh_postgres()
        processes.migrate(url)
        return url
    if context.template is None:
        context.template = context.workdir / "template.db"
        processes.migrate(f"sqlite+aiosqlite:///{context.template}")
    url = processes.sqlite_url(context.workdir, "bench")
    shutil.copy(context.template, url.removeprefix("sqlite+aiosqlite:///"))
    return url


@asynccontextmanager
async def started(
    context: Context, system: System, database_url: str | None = None
) -> AsyncIterator[Running]:
    """``system`` running on a fresh database (or on ``database_url``)."""
    url = database_url or await fresh_database(context, system.database)
    if system.is_service:
        broker = processes.redis_broker_url() if system.broker == "redis" else "memory://"
        async with processes.workbench(url, broker, context.workdir) as running:
            yield running
    else:
        async with processes.baseline(url, context.workdir) as running:
            yield running


def token(cid: int, uid: int, role: Role = Role.USER) -> str:
    """A token the benchmark servers accept."""
    return TokenCodec(processes.JWT_SECRET).issue(cid=cid, uid=uid, role=role)


async def create_apps(running: Running, count: int) -> list[str]:
    """Create ``count`` WEB apps on every platform, audience everyone (16 requests at a time);
    their ids, in creation order."""
    admin = {"Authorization": f"Bearer {token(1, 1, Role.PLATFORM_ADMIN)}"}
    web = {"launchMode": "WEB", "webUrl": "https://example.com/app"}
    gate = asyncio.Semaphore(16)

    async def one(http: httpx.AsyncClient, index: int) -> tuple[int, str]:
        app_input = {
            "name": f"应用 {index:03d}",
            "identifier": f"Bench{index:03d}",
            "pc": web,
            "android": web,
            "ios": web,
        }
        async with gate:
            response = await http.post(
                "/graphql",
                json={"query": CREATE_APP, "variables": {"input": app_input}},
                headers=admin,
            )
        payload = response.json()["data"]["createApp"]
        if payload["errors"]:
            raise RuntimeError(f"createApp failed: {payload['errors']}")
        return int(payload["app"]["id"]), payload["app"]["id"]

    async with httpx.AsyncClient(base_url=running.http_url, timeout=30) as http:
        created = await asyncio.gather(*(one(http, index) for index in range(count)))
    return [app_id for _, app_id in sorted(created)]


def notice_request(system: System, app_id: str, uids: list[int]) -> dict[str, Any]:
    """A pushappnotice (the service) or its bare equivalent (the baseline) to ``uids``."""
    body = urlencode(
        {
            "fromcid": str(CID),
            "fromuid": "1",
            "appid": app_id,
            "users": json.dumps([f"{CID},{uid}" for uid in uids]),
        }
    )
    path = PUSH_PATH if system.is_service else "/push"
    return {"path": path, "body": body, "headers": FORM, "expect": OK}


def graphql_request(query: str, uid: int) -> dict[str, Any]:
    """A GraphQL POST by user ``(CID, uid)``."""
    return {
        "path": "/graphql",
        "body": json.dumps({"query": query}),
        "headers": {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token(CID, uid)}",
        },
        "expect": '"data"',
    }


def ws_url(system: System, running: Running) -> str:
    """Where its clients subscribe."""
    if system.is_service:
        return f"ws://127.0.0.1:{running.http_port}/graphql"
    return f"ws://127.0.0.1:{running.ws_port}"


async def service_app(system: System, running: Running) -> str:
    """The app the notices are for: created on the service; any id on the baseline."""
    return (await create_apps(running, 1))[0] if system.is_service else "1"


def _row(scenario: str, system: System, load: str, result: dict[str, Any], running: Running) -> Row:
    row = Row(scenario, system.label, system.database, load)
    row.with_latencies(result.get("latencies_ms", []))
    row.throughput = result.get("throughput")
    row.rss_mib = rss_mib(running.pid)
    row.extra = {k: v for k, v in result.items() if not k.endswith("latencies_ms")}
    return row


def _find(rows: list[Row], system: str, database: str, load: str | None = None) -> Row | None:
    for row in rows:
        if row.system == system and row.database == database and (load is None or row.load == load):
            return row
    return None


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


# push-latency ---------------------------------------------------------------------------------


async def push_latency(context: Context) -> Outcome:
    """One user's notices at 200/s, PC and phone subscribed: push-to-badge latency."""
    outcome = Outcome()
    rate, duration = 200, context.seconds(20, 3)
    for system in systems(context, postgres=True):
        async with started(context, system) as running:
            app_id = await service_app(system, running)
            spec = {
                "system": "service" if system.is_service else "baseline",
                "http_url": running.http_url,
                "ws_url": ws_url(system, running),
                "rate": rate,
                "duration": context.seconds(1.0, 0.5),
                "user": {"cid": CID, "first_uid": 9999},
                "request": notice_request(system, app_id, [9999]),
            }
            await generate("push", spec, context.workdir)  # warm-up, another user
            spec.update(
                duration=duration,
                user={"cid": CID, "first_uid": 1},
                request=notice_request(system, app_id, [1]),
            )
            result = await generate("push", spec, context.workdir)
            outcome.rows.append(_row("push-latency", system, f"{rate}/s", result, running))
    for database in context.databases:
        service = _find(outcome.rows, "workbench", database)
        base = _find(outcome.rows, "baseline", database)
        if service is None or base is None:
            continue
        r = ratio(service.p99_ms, base.p99_ms)
        outcome.checks.append(
            Check(
                "push-latency",
                f"{database}: p99 <= 2x baseline p99",
                f"{_fmt(service.p99_ms, ' ms')} vs {_fmt(base.p99_ms, ' ms')} = {_fmt(r, 'x')}",
                r is not None and r <= 2.0,
            )
        )
        if database == "sqlite":
            outcome.checks.append(
                Check(
                    "push-latency",
                    "sqlite: p99 <= 50 ms at 200 notices/s",
                    _fmt(service.p99_ms, " ms"),
                    service.p99_ms is not None and service.p99_ms <= 50,
                )
            )
        outcome.checks.append(
            Check(
                "push-latency",
                f"{database}: every notice reached both devices",
                f"{service.extra.get('missed_events')} missed, "
                f"{service.extra.get('failures')} failed calls",
                service.extra.get("missed_events") == 0 and service.extra.get("failures") == 0,
            )
        )
    return outcome


# fan-out --------------------------------------------------------------------------------------


async def fan_out(context: Context) -> Outcome:
    """One notice to 1k (and 10k) recipients, one subscribed client each."""
    outcome = Outcome()
    sizes = [1000] if context.quick else [1000, 10_000]
    for size in sizes:
        for system in systems(context, postgres=True):
            async with started(context, system) as running:
                app_id = await service_app(system, running)
                request = (
                    notice_request(system, app_id, list(range(1, size + 1)))
                    if system.is_service
                    else {"path": "/fanout", "body": "", "expect": "sent"}
                )
                spec = {
                    "system": "service" if system.is_service else "baseline",
                    "http_url": running.http_url,
                    "ws_url": ws_url(system, running),
                    "users": {"cid": CID, "first_uid": 1, "count": size},
                    "request": request,
                    "rounds": 1 if context.quick else 3,
                }
                result = await generate("fanout", spec, context.workdir)
                row = _row("fan-out", system, f"{size:,} recipients", result, running)
                row.extra["last_ms"] = result["last_ms"]
                outcome.rows.append(row)
    for database in context.databases:
        for size in sizes:
            load = f"{size:,} recipients"
            service = _find(outcome.rows, "workbench", database, load)
            base = _find(outcome.rows, "baseline", database, load)
            if service is None or base is None:
                continue
            r = ratio(service.throughput, base.throughput)
            outcome.checks.append(
                Check(
                    "fan-out",
                    f"{database}, {load}: deliveries/s >= 0.5x baseline",
                    f"{_fmt(service.throughput)}/s vs {_fmt(base.throughput)}/s = {_fmt(r, 'x')}",
                    r is not None and r >= 0.5,
                )
            )
            delivered = service.extra.get("delivered") == size
            if database == "sqlite" and size == 10_000:
                last = service.extra.get("last_ms")
                outcome.checks.append(
                    Check(
                        "fan-out",
                        "sqlite: 10k recipients all delivered within 1.0 s",
                        f"{service.extra.get('delivered')} delivered, last at {_fmt(last, ' ms')}",
                        delivered and last is not None and last <= 1000,
                    )
                )
            else:
                outcome.checks.append(
                    Check(
                        "fan-out",
                        f"{database}, {load}: every recipient's client got its event",
                        f"{service.extra.get('delivered')} of {size}",
                        delivered,
                    )
                )
    return outcome


# idle-connections -----------------------------------------------------------------------------


async def idle_connections(context: Context) -> Outcome:
    """RSS per idle subscribed connection, 1k (and 10k) connections in one process."""
    outcome = Outcome()
    sizes = [1000] if context.quick else [1000, 10_000]
    for size in sizes:
        for system in systems(context, postgres=False):
            async with started(context, system) as running:
                await service_app(system, running)
                spec = {
                    "system": "service" if system.is_service else "baseline",
                    "ws_url": ws_url(system, running),
                    "users": {"cid": CID, "first_uid": 50_001, "count": 100},
                }
                async with holding(spec, context.workdir):  # warm every code path once
                    pass
                await asyncio.sleep(0.5)
                before = rss_mib(running.pid)
                spec["users"] = {"cid": CID, "first_uid": 1, "count": size}
                async with holding(spec, context.workdir) as ready:
                    await asyncio.sleep(1.0)
                    after = rss_mib(running.pid)
                row = Row("idle-connections", system.label, system.database, f"{size:,} conns")
                row.count = ready["ready"]
                row.rss_mib = after
                row.extra = {
                    "rss_before_mib": before,
                    "kib_per_connection": (after - before) * 1024 / size,
                }
                outcome.rows.append(row)
    for database in context.databases:
        for size in sizes:
            load = f"{size:,} conns"
            service = _find(outcome.rows, "workbench", database, load)
            base = _find(outcome.rows, "baseline", database, load)
            if service is None or base is None:
                continue
            ours = service.extra["kib_per_connection"]
            theirs = base.extra["kib_per_connection"]
            r = ratio(ours, theirs)
            outcome.checks.append(
                Check(
                    "idle-connections",
                    f"{database}, {load}: RSS per connection <= 2x baseline",
                    f"{ours:.1f} KiB vs {theirs:.1f} KiB = {_fmt(r, 'x')}",
                    r is not None and r <= 2.0,
                )
            )
        if not context.quick and database == "sqlite":
            service = _find(outcome.rows, "workbench", database, "10,000 conns")
            outcome.checks.append(
                Check(
                    "idle-connections",
                    f"{database}: 10k subscribed connections in one process",
                    f"{service.count if service else 0} subscribed",
                    service is not None and service.count == 10_000,
                )
            )
    return outcome


# workbench-query ------------------------------------------------------------------------------


async def workbench_query(context: Context) -> Outcome:
    """``workbench(platform: PC)`` of a 200-app catalogue: saturating requests/s, then latency
    at half that rate."""
    outcome = Outcome()
    if "sqlite" not in context.databases:
        return outcome
    url = await fresh_database(context, "sqlite")
    bodies: dict[str, Any] = {}
    saturated: dict[str, float] = {}
    for system in (System("workbench", "sqlite"), System("baseline", "sqlite")):
        async with started(context, system, url) as running:
            if system.is_service:
                app_ids = await create_apps(running, 200)
                for app_id in app_ids[:20]:  # some badges to count
                    notice = notice_request(system, app_id, [1])
                    async with httpx.AsyncClient(base_url=running.http_url) as http:
                        await http.post(PUSH_PATH, content=notice["body"], headers=FORM)
            request = graphql_request(WORKBENCH_QUERY, 1)
            async with httpx.AsyncClient(base_url=running.http_url) as http:
                response = await http.post(
                    "/graphql", content=request["body"], headers=request["headers"]
                )
                bodies[system.name] = response.json()
            spec = {
                "url": running.http_url,
                "requests": [request],
                "concurrency": 16,
                "warmup": context.seconds(1.0, 0.5),
                "duration": context.seconds(10, 1.5),
            }
            result = await generate("closed", spec, context.workdir)
            outcome.rows.append(_row("workbench-query", system, "saturating", result, running))
            saturated[system.name] = result["throughput"]
            spec = {
                "url": running.http_url,
                "requests": [request],
                "rate": max(1.0, result["throughput"] / 2),
                "duration": context.seconds(10, 1.5),
            }
            result = await generate("open", spec, context.workdir)
            outcome.rows.append(_row("workbench-query", system, "half rate", result, running))
    service = _find(outcome.rows, "workbench", "sqlite", "half rate")
    r = ratio(saturated.get("workbench"), saturated.get("baseline"))
    outcome.checks += [
        Check(
            "workbench-query",
            "the baseline returns the same JSON as the service",
            "equal" if bodies["workbench"] == bodies["baseline"] else "different",
            bodies["workbench"] == bodies["baseline"],
        ),
        Check(
            "workbench-query",
            "throughput >= 0.5x baseline",
            f"{_fmt(saturated.get('workbench'))}/s vs {_fmt(saturated.get('baseline'))}/s "
            f"= {_fmt(r, 'x')}",
            r is not None and r >= 0.5,
        ),
        Check(
            "workbench-query",
            "p99 <= 20 ms at half the saturating rate",
            _fmt(service.p99_ms if service else None, " ms"),
            service is not None and service.p99_ms is not None and service.p99_ms <= 20,
        ),
    ]
    apps = len(bodies["workbench"].get("data", {}).get("workbench", {}).get("apps", []))
    outcome.checks.append(
        Check("workbench-query", "the user sees the 200-app catalogue", f"{apps} apps", apps == 200)
    )
    return outcome


# hot-counter ----------------------------------------------------------------------------------


async def final_count(system: System, running: Running) -> int:
    """The user's counter as the system reports it after the run."""
    async with httpx.AsyncClient(base_url=running.http_url) as http:
        if system.is_service:
            request = graphql_request(TOTAL_QUERY, 1)
            response = await http.post(
                "/graphql", content=request["body"], headers=request["headers"]
            )
            return int(response.json()["data"]["workbench"]["unreadTotal"])
        response = await http.get("/count", params={"cid": CID, "uid": 1, "app_id": 1})
        return int(response.json()["unread"])


async def hot_counter(context: Context) -> Outcome:
    """64 concurrent writers on one user's counter, a quarter of them reads: ops/s and the final
    value against the accepted notices."""
    outcome = Outcome()
    for system in systems(context, postgres=True):
        async with started(context, system) as running:
            app_id = await service_app(system, running)
            read = (
                graphql_request(TOTAL_QUERY, 1)
                if system.is_service
                else {
                    "path": f"/count?cid={CID}&uid=1&app_id=1",
                    "method": "GET",
                    "expect": "unread",
                }
            )
            spec = {
                "url": running.http_url,
                "write": notice_request(system, app_id, [1]),
                "read": read,
                "read_share": 0.25,
                "writers": 64,
                "duration": context.seconds(15, 2),
            }
            result = await generate("mixed", spec, context.workdir)
            row = _row("hot-counter", system, "64 writers", result, running)
            row.extra["final"] = await final_count(system, running)
            outcome.rows.append(row)
    for row in outcome.rows:
        lost = row.extra["writes"] - row.extra["final"]
        outcome.checks.append(
            Check(
                "hot-counter",
                f"{row.system}, {row.database}: zero lost updates",
                f"{row.extra['writes']} accepted, counter {row.extra['final']}, "
                f"{row.extra['failed_writes']} refused",
                lost == 0,
            )
        )
        if row.system == "workbench" and row.database == "sqlite":
            outcome.checks.append(
                Check(
                    "hot-counter",
                    "sqlite: >= 1,000 ops/s",
                    f"{_fmt(row.throughput)} ops/s",
                    (row.throughput or 0) >= 1000,
                )
            )
    return outcome


# legacy-throughput ----------------------------------------------------------------------------


async def legacy_throughput(context: Context) -> Outcome:
    """pushappnotice requests/s, one recipient each (rotating over 1,000 users)."""
    outcome = Outcome()
    if "sqlite" not in context.databases:
        return outcome
    for system in (System("workbench", "sqlite"), System("baseline", "sqlite")):
        async with started(context, system) as running:
            app_id = await service_app(system, running)
            spec = {
                "url": running.http_url,
                "requests": [notice_request(system, app_id, [uid]) for uid in range(1, 1001)],
                "concurrency": 32,
                "warmup": context.seconds(1.0, 0.5),
                "duration": context.seconds(10, 2),
            }
            result = await generate("closed", spec, context.workdir)
            outcome.rows.append(_row("legacy-throughput", system, "32 conns", result, running))
    service = _find(outcome.rows, "workbench", "sqlite")
    base = _find(outcome.rows, "baseline", "sqlite")
    r = ratio(service.throughput if service else None, base.throughput if base else None)
    outcome.checks.append(
        Check(
            "legacy-throughput",
            "requests/s >= 0.5x baseline",
            f"{_fmt(service.throughput if service else None)}/s vs "
            f"{_fmt(base.throughput if base else None)}/s = {_fmt(r, 'x')}",
            r is not None and r >= 0.5,
        )
    )
    return outcome


# websocket-flood ------------------------------------------------------------------------------

# The message rate switched off (issue 11 item 2's "before"): far past any flood.
NO_RATE_LIMIT = {
    "WORKBENCH_WS_MESSAGES_PER_SECOND": "100000",
    "WORKBENCH_WS_MESSAGE_BURST": "100000",
}


async def websocket_flood(context: Context) -> Outcome:
    """/healthz p99 while 8 graphql-ws connections flood over-cap ``start`` frames (32 KiB),
    with the per-connection message rate off and at its defaults, against the same server idle.

    Each flooder subscribes up to the cap (20), then sends starts the cap refuses as fast as
    it can. Closed (4429, past the rate), it gives up, as graphql-ws clients do, or reconnects
    at once and starts over (a reconnect storm, which no per-connection limit bounds). Health
    is probed at 50/s by the generator process; its latencies include that process's own
    scheduling."""
    outcome = Outcome()
    if "sqlite" not in context.databases:
        return outcome
    system = System("workbench", "sqlite")
    loads: tuple[tuple[str, dict[str, str], bool], ...] = (
        ("rate limit off", NO_RATE_LIMIT, True),
        ("rate limit on, flooders give up", {}, False),
        ("rate limit on, flooders reconnect", {}, True),
    )
    for label, settings, reconnect in loads:
        url = await fresh_database(context, system.database)
        async with processes.workbench(url, "memory://", context.workdir, settings) as running:
            spec = {
                "url": running.http_url,
                "ws_url": ws_url(system, running),
                "users": {"cid": CID, "first_uid": 1, "count": 8},
                "cap": 20,
                "frame_bytes": 32 * 1024,
                "health_rate": 50,
                "idle": context.seconds(5, 2),
                "ramp": 1.0,
                "duration": context.seconds(10, 3),
                "reconnect": reconnect,
            }
            result = await generate("flood", spec, context.workdir)
            idle = Row("websocket-flood", system.label, system.database, f"idle; {label}")
            idle.with_latencies(result.pop("idle_latencies_ms"))
            outcome.rows.append(idle)
            flooded = _row("websocket-flood", system, f"flood; {label}", result, running)
            outcome.rows.append(flooded)
            flood_p99, idle_p99 = flooded.p99_ms, idle.p99_ms
            outcome.checks.append(
                Check(
                    "websocket-flood",
                    f"{label}: /healthz p99 under the flood <= 50 ms",
                    f"{_fmt(flood_p99, ' ms')} (idle {_fmt(idle_p99, ' ms')}); "
                    f"{result['frames_per_s']:.0f} frames/s sent, "
                    f"{result['connections']} connections",
                    flood_p99 is not None and flood_p99 <= 50,
                )
            )
    return outcome


# legacy-flood ---------------------------------------------------------------------------------

GETAPPID_PATH = "/OpenPlatform/integrate/getappid.php"
HEALTH = {"method": "GET", "path": "/healthz", "expect": "ok"}


def hostile_legacy_requests(app_id: str, cap: int) -> list[dict[str, Any]]:
    """Unauthenticated legacy bodies just under the body cap ``cap`` (bytes), built to cost
    the server (issue 11 item 4): a ``users`` list of distinct short entries for a real app
    and for an unknown one, a body of percent-escapes, and a multipart body of empty parts."""

    def users_body(target: str) -> str:
        head = f"fromcid=1&fromuid=1&appid={target}&users=["
        entries: list[str] = []
        size = len(head) + 1
        uid = 0
        while size + len(f'"1,{uid}",') <= cap:
            entries.append(f'"1,{uid}"')
            size += len(entries[-1]) + 1
            uid += 1
        return head + ",".join(entries) + "]"

    escapes = "appkey=x&pad="
    escapes += "%41" * ((cap - len(escapes)) // 3)
    part = '--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n\r\n'
    parts = part * ((cap - 7) // len(part)) + "--B--\r\n"
    multipart = {"Content-Type": "multipart/form-data; boundary=B"}
    expect = '"Result":false'
    return [
        {"path": PUSH_PATH, "body": users_body(app_id), "headers": FORM, "expect": expect},
        {"path": PUSH_PATH, "body": users_body("999999"), "headers": FORM, "expect": expect},
        {"path": GETAPPID_PATH, "body": escapes, "headers": FORM, "expect": expect},
        {"path": GETAPPID_PATH, "body": parts, "headers": multipart, "expect": expect},
    ]


async def legacy_flood(context: Context) -> Outcome:
    """``/healthz`` latency (20 requests/s) idle, then while four senders each send 8 hostile
    legacy bodies/s (issue 11 item 4: 350 ms p99 before the fix)."""
    outcome = Outcome()
    if "sqlite" not in context.databases:
        return outcome
    system = System("workbench", "sqlite")
    duration = context.seconds(15, 4)
    cap = Settings.model_fields["legacy_max_body_bytes"].default
    async with started(context, system) as running:
        app_id = await service_app(system, running)
        health = {"url": running.http_url, "requests": [HEALTH], "rate": 20, "duration": duration}
        idle = await generate("open", health, context.workdir)
        outcome.rows.append(_row("legacy-flood", system, "healthz idle", idle, running))
        flood = {
            "url": running.http_url,
            "requests": hostile_legacy_requests(app_id, cap),
            "rate": 8,
            "duration": duration + 1,
        }
        results = await asyncio.gather(
            generate("open", health, context.workdir),
            *(generate("open", flood, context.workdir) for _ in range(4)),
        )
        outcome.rows.append(
            _row("legacy-flood", system, "healthz, 4x8/s flood", results[0], running)
        )
        senders = {
            "latencies_ms": [ms for result in results[1:] for ms in result["latencies_ms"]],
            "throughput": sum(result["throughput"] for result in results[1:]),
            "failures": sum(result["failures"] for result in results[1:]),
            "body_bytes": cap,
        }
        outcome.rows.append(_row("legacy-flood", system, "flood requests", senders, running))
    loaded = _find(outcome.rows, "workbench", "sqlite", "healthz, 4x8/s flood")
    p99 = loaded.p99_ms if loaded else None
    outcome.checks.append(
        Check(
            "legacy-flood",
            "/healthz p99 during the flood < 50 ms",
            _fmt(p99, " ms"),
            p99 is not None and p99 < 50,
        )
    )
    return outcome


SCENARIOS: dict[str, Callable[[Context], Awaitable[Outcome]]] = {
    "push-latency": push_latency,
    "fan-out": fan_out,
    "idle-connections": idle_connections,
    "workbench-query": workbench_query,
    "hot-counter": hot_counter,
    "legacy-throughput": legacy_throughput,
    "websocket-flood": websocket_flood,
    "legacy-flood": legacy_flood,
}
