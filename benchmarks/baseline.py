"""The baseline server: what the simplest correct program doing the same work costs (issue 6).

One process, one event loop, uvicorn (the same loop and HTTP parser as the service) serving a
bare Starlette app beside a raw ``websockets`` server:

- ``POST /push``: the legacy form (``users`` a JSON array of ``"cid,uid"``); per recipient the
  single SQL upsert ``INSERT .. ON CONFLICT DO UPDATE SET unread = unread + 1 RETURNING unread``
  in one transaction, then one frame per recipient, encoded once and written with
  ``websockets.broadcast`` (no await) to each of that user's connections. Answers
  ``{"Result":true}``.
- ``POST /fanout``: writes each registered connection its own pre-encoded frame (encoded when
  it connected), with ``broadcast``; answers how many were sent.
- ``POST /graphql``: the ``workbench(platform: PC)`` read of ``benchmarks.scenarios``: checks the
  bearer JWT, runs the service's own statements (``storage.catalogue.workbench_statement`` and
  the user's state row) on a Core connection, returns the same JSON the service returns.
- ``GET /count?cid=&uid=&app_id=``: the counter (``{"unread":N}``); ``GET /ready``.
- WebSocket ``ws://127.0.0.1:<ws-port>/?cid=C&uid=U``: registers the connection for that user
  and sends ``{"ready":true}``; frames then arrive as ``{"unreadTotal":N}``.

Run: ``python -m benchmarks.baseline --database-url URL --http-port P --ws-port Q
[--jwt-secret S]``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import uvicorn
import uvloop
import websockets
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection, serve

from benchmarks.processes import JWT_SECRET
from storage import tables
from storage.catalogue import workbench_statement
from storage.db import Database
from storage.models import Platform

CREATE = text(
    "CREATE TABLE IF NOT EXISTS bench_badge (cid BIGINT NOT NULL, uid BIGINT NOT NULL, "
    "app_id BIGINT NOT NULL, unread INTEGER NOT NULL, PRIMARY KEY (cid, uid, app_id))"
)
UPSERT = text(
    "INSERT INTO bench_badge (cid, uid, app_id, unread) VALUES (:cid, :uid, :app_id, 1) "
    "ON CONFLICT (cid, uid, app_id) DO UPDATE SET unread = bench_badge.unread + 1 "
    "RETURNING unread"
)
COUNT = text("SELECT unread FROM bench_badge WHERE cid = :cid AND uid = :uid AND app_id = :app_id")
OK = b'{"Result":true}'


class Baseline:
    """The baseline's state: the database and the registered WebSocket connections."""

    def __init__(self, database_url: str, jwt_secret: str = JWT_SECRET) -> None:
        self.db = Database(database_url)
        self.jwt_secret = jwt_secret
        self.users: dict[tuple[int, int], set[ServerConnection]] = {}
        self.frames: dict[ServerConnection, str] = {}

    async def setup(self) -> None:
        """Create the upsert's table."""
        async with self.db.write() as session:
            await session.execute(CREATE)

    async def push(self, request: Request) -> Response:
        """The legacy pushappnotice's work, bare (module docstring)."""
        form = await request.form()
        app_id = int(str(form["appid"]))
        users = []
        for value in json.loads(str(form["users"])):
            cid, uid = value.split(",")
            users.append((int(cid), int(uid)))
        async with self.db.write() as session:
            counts = [
                (
                    user,
                    (
                        await session.execute(
                            UPSERT, {"cid": user[0], "uid": user[1], "app_id": app_id}
                        )
                    ).scalar_one(),
                )
                for user in users
            ]
        for user, count in counts:
            connections = self.users.get(user)
            if connections:
                websockets.broadcast(connections, json.dumps({"unreadTotal": count}))
        return Response(OK, media_type="application/json")

    async def fanout(self, request: Request) -> Response:
        """Each registered connection gets its own pre-encoded frame."""
        sent = 0
        for connection, frame in self.frames.items():
            websockets.broadcast((connection,), frame)
            sent += 1
        return Response(json.dumps({"sent": sent}), media_type="application/json")

    async def graphql(self, request: Request) -> Response:
        """The workbench read, bare (module docstring)."""
        header = request.headers.get("authorization", "")
        try:
            claims = jwt.decode(
                header.removeprefix("Bearer "),
                self.jwt_secret,
                algorithms=["HS256"],
                options={"verify_aud": False},
            )
        except jwt.InvalidTokenError:
            return Response(b'{"errors":[{"message":"not authenticated"}]}', status_code=401)
        await request.body()
        cid, uid = int(claims["cid"]), int(claims["uid"])
        async with self.db.engine.connect() as connection, connection.begin():
            rows = (
                await connection.execute(
                    workbench_statement(cid=cid, uid=uid, platform=Platform.PC)
                )
            ).all()
            state = (
                await connection.execute(
                    select(
                        tables.user_badge_state.c.unseen_count, tables.user_badge_state.c.version
                    ).where(
                        tables.user_badge_state.c.cid == cid, tables.user_badge_state.c.uid == uid
                    )
                )
            ).first()
        total = sum(row.unread for row in rows)
        unseen, version = (state.unseen_count, state.version) if state else (0, 0)
        body: dict[str, Any] = {
            "data": {
                "workbench": {
                    "unseenCount": min(unseen, total),
                    "unreadTotal": total,
                    "version": version,
                    "apps": [
                        {
                            "app": {"id": str(row.id), "name": row.name},
                            "unread": row.unread,
                            "removable": row.user_removable,
                        }
                        for row in rows
                    ],
                }
            }
        }
        return Response(
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            media_type="application/json",
        )

    async def count(self, request: Request) -> Response:
        """``GET /count?cid=&uid=&app_id=``: the counter's value (the hot-counter's reads)."""
        query = request.query_params
        async with self.db.read() as session:
            found = (
                await session.execute(
                    COUNT,
                    {
                        "cid": int(query["cid"]),
                        "uid": int(query["uid"]),
                        "app_id": int(query["app_id"]),
                    },
                )
            ).scalar()
        return Response(json.dumps({"unread": found or 0}), media_type="application/json")

    async def ready(self, request: Request) -> Response:
        """Up."""
        return Response(b"ok")

    async def websocket(self, connection: ServerConnection) -> None:
        """Register the connection for its ``?cid=&uid=`` until it closes."""
        assert connection.request is not None
        query = parse_qs(urlsplit(connection.request.path).query)
        user = (int(query["cid"][0]), int(query["uid"][0]))
        self.users.setdefault(user, set()).add(connection)
        self.frames[connection] = json.dumps({"cid": user[0], "uid": user[1], "unreadTotal": 1})
        try:
            await connection.send('{"ready":true}')
            await connection.wait_closed()
        finally:
            self.users[user].discard(connection)
            if not self.users[user]:
                del self.users[user]
            del self.frames[connection]


async def main(database_url: str, http_port: int, ws_port: int, jwt_secret: str) -> None:
    """Serve until SIGTERM."""
    baseline = Baseline(database_url, jwt_secret)
    await baseline.setup()
    app = Starlette(
        routes=[
            Route("/push", baseline.push, methods=["POST"]),
            Route("/fanout", baseline.fanout, methods=["POST"]),
            Route("/graphql", baseline.graphql, methods=["POST"]),
            Route("/count", baseline.count),
            Route("/ready", baseline.ready),
        ]
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=http_port, log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    async with serve(baseline.websocket, "127.0.0.1", ws_port, compression=None, max_queue=None):
        await server.serve()
    await baseline.db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--jwt-secret", default=JWT_SECRET)
    arguments = parser.parse_args()
    # uvloop, as ``uvicorn.run`` picks for the service (``loop="auto"``).
    uvloop.run(
        main(arguments.database_url, arguments.http_port, arguments.ws_port, arguments.jwt_secret)
    )
