"""getappid, pushappnotice and setnum (SPEC §6; the seed's chapter 三), and checkticket
(SPEC §8).

Every endpoint first has the app's access rules applied (``resolvers.legacy_access``): its IP
allowlist and, for apps switched to signed mode, ``timestamp`` + ``sign``. Apps left open keep
the seed's behaviour unchanged.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from legacy_rest.params import LegacyParams, read_params
from legacy_rest.responses import (
    LegacyFailure,
    app_id_body,
    failure,
    logger,
    success,
    ticket_body,
)
from resolvers.apps import resolve_app_key
from resolvers.badges import MAX_RECIPIENTS, record_read
from resolvers.errors import DatabaseBusy, InvalidInput, WorkbenchError
from resolvers.identity import MAX_ID, parse_id
from resolvers.legacy_access import admit_legacy_call
from resolvers.sso import verify_ticket

PREFIX = "/OpenPlatform/integrate/"
GETAPPID = PREFIX + "getappid.php"
PUSHAPPNOTICE = PREFIX + "pushappnotice.php"
SETNUM = PREFIX + "setnum.php"
CHECKTICKET = PREFIX + "checkticket.php"
PATHS = (GETAPPID, PUSHAPPNOTICE, SETNUM, CHECKTICKET)
MAX_TICKET_LENGTH = 128
# Unread counts are 32-bit (``storage.models.AppBadge.unread``): a larger ``num`` exceeds every
# count and clears it, without ever reaching the database as an out-of-range parameter.
MAX_COUNT = 2**31 - 1
MAX_APP_KEY_LENGTH = 128
# The common shape of a recipient, read without ``parse_id``'s per-call cost; anything else
# goes through ``_recipient`` for its exact error.
_RECIPIENT = re.compile(r"\s*([0-9]{1,19})\s*,\s*([0-9]{1,19})\s*")
YIELD_EVERY = 2_000
# Entries ``users`` may list: duplicates count once toward SPEC §6's 10,000 recipients, but
# past twice that a list is refused before any entry is read (as jQuery's ``users[]`` is by
# the form's field limit, ``params.MAX_FIELDS``).
MAX_LISTED = 2 * MAX_RECIPIENTS

Handler = Callable[[Request, LegacyParams], Awaitable[Response]]


def normalise_legacy_path(path: str) -> str | None:
    """The legacy path ``path`` means once spaces around its segments are dropped, or ``None``.

    ``path`` is the request's path as the server decoded it, once: ``"/ OpenPlatform/integrate/
    setnum.php "`` gives ``SETNUM``; anything else (other case, tabs, a second level of
    percent-encoding) gives ``None``.
    """
    cleaned = "/".join(segment.strip(" ") for segment in path.split("/"))
    return cleaned if cleaned in PATHS else None


def _required(params: LegacyParams, name: str) -> str:
    value = params.get(name)
    if value is None or not value.strip():
        raise LegacyFailure(f"missing parameter {name}")
    return value.strip()


def _id(params: LegacyParams, name: str) -> int:
    try:
        return parse_id(_required(params, name), name)
    except InvalidInput as error:
        raise LegacyFailure(f"{name} {error.errors[0].message}") from error


def _recipient(value: object, index: int) -> tuple[int, int]:
    if not isinstance(value, str):
        raise LegacyFailure(f'users[{index}] must be a "cid,uid" string')
    parts = value.split(",")
    if len(parts) != 2:
        raise LegacyFailure(f'users[{index}] must be "cid,uid"')
    try:
        return parse_id(parts[0].strip(), "cid"), parse_id(parts[1].strip(), "uid")
    except InvalidInput as error:
        raise LegacyFailure(f"users[{index}]: {error.errors[0].message}") from error


async def _recipients(params: LegacyParams) -> list[tuple[int, int]]:
    """``users`` as ``(cid, uid)`` pairs, in the order sent. The number of entries is checked
    before any entry is read: more than ``MAX_LISTED`` are refused whole; the cap on distinct
    recipients (SPEC §6) applies later, in ``resolvers.badges.distinct_recipients``."""
    listed = params.values("users")
    if listed is None:
        raw = _required(params, "users")
        # Each entry holds one comma and entries are separated by one: a list of valid entries
        # has 2n - 1 commas. Counting them is a C scan; decoding the JSON is not.
        if raw.count(",") > 2 * MAX_LISTED - 1:
            raise LegacyFailure(f"users lists more than {MAX_LISTED} entries (or malformed ones)")
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError) as error:  # RecursionError: "[[[[..." too deep
            raise LegacyFailure("users is not a JSON array") from error
        if not isinstance(decoded, list):
            raise LegacyFailure("users is not a JSON array")
        listed = decoded
    if not listed:
        raise LegacyFailure("users is empty")
    if len(listed) > MAX_LISTED:
        raise LegacyFailure(f"users lists {len(listed)} entries, more than {MAX_LISTED}")
    found: list[tuple[int, int]] = []
    for index, value in enumerate(listed):
        match = _RECIPIENT.fullmatch(value) if isinstance(value, str) else None
        cid, uid = (int(match[1]), int(match[2])) if match else (-1, -1)
        if not (0 <= cid <= MAX_ID and 0 <= uid <= MAX_ID):
            cid, uid = _recipient(value, index)
        found.append((cid, uid))
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # 10,000 entries never hold the event loop in one go
    return found


def _admitted(
    request: Request, params: LegacyParams, app_id: int
) -> AbstractAsyncContextManager[None]:
    # The app's access rules, around the call's work: a refusal inside (the call's own bad
    # input among them) changes nothing, so its sign or nonce stays free
    # (resolvers.legacy_access).
    return admit_legacy_call(
        db=request.state.db,
        watch=request.state.watch,
        sealer=request.state.sealer,
        app_id=app_id,
        params=params.pairs(),
        client_ip=request.client.host if request.client else None,
        repeated=params.repeated(),
        refusals=(LegacyFailure,),
    )


async def getappid(request: Request, params: LegacyParams) -> Response:
    """``appkey`` -> ``{"Result":true,"MsgNo":{"app_id":"77"}}``; failure ``-51001``."""
    app_key = _required(params, "appkey")
    if len(app_key) > MAX_APP_KEY_LENGTH:
        raise LegacyFailure("appkey too long")
    app_id = await resolve_app_key(db=request.state.db, app_key=app_key)
    async with _admitted(request, params, app_id):
        pass  # admitted is all getappid needs: it changes nothing
    return success(app_id_body(app_id))


async def pushappnotice(request: Request, params: LegacyParams) -> Response:
    """``fromcid``, ``fromuid``, ``appid``, ``users`` -> ``{"Result":true}``; failure ``-51007``.

    Every recipient in the app's audience gets one notice; others are skipped (SPEC §6).
    """
    _id(params, "fromcid")
    _id(params, "fromuid")
    app_id = _id(params, "appid")
    # The app and its access rules first: they are cheap (a cached lookup for open apps), and
    # no one makes the server read a list of recipients for an app that refuses the call.
    async with _admitted(request, params, app_id):
        recipients = await _recipients(params)
        await request.state.notices.push(app_id=app_id, recipients=recipients)
    return success()


async def setnum(request: Request, params: LegacyParams) -> Response:
    """``appid``, ``cid``, ``uid``, ``num`` (default 1) -> ``{"Result":true}``; failure ``-51004``.

    ``num`` empty or absent means 1; a ``num`` above any possible count clears the count.
    """
    app_id = _id(params, "appid")
    cid = _id(params, "cid")
    uid = _id(params, "uid")
    raw = (params.get("num") or "").strip()
    count: int | None
    if not raw:
        count = 1
    elif not (raw.isascii() and raw.isdigit()):
        raise LegacyFailure("num must be a non-negative integer")
    elif len(digits := raw.lstrip("0") or "0") > len(str(MAX_COUNT)) or int(digits) > MAX_COUNT:
        count = None  # larger than any count: clears it
    else:
        count = int(digits)
    async with _admitted(request, params, app_id):
        await record_read(
            db=request.state.db,
            broker=request.state.broker,
            cid=cid,
            uid=uid,
            app_id=app_id,
            count=count,
        )
    return success()


async def checkticket(request: Request, params: LegacyParams) -> Response:
    """``appid``, ``ticket`` -> ``{"Result":true,"MsgNo":{"cid":"1001","uid":"187",
    "account":"zhang.san"}}`` once per ticket; failure ``-51010`` (SPEC §8)."""
    app_id = _id(params, "appid")
    ticket = _required(params, "ticket")
    if len(ticket) > MAX_TICKET_LENGTH:
        raise LegacyFailure("ticket too long")
    async with _admitted(request, params, app_id):
        user = await verify_ticket(db=request.state.db, app_id=app_id, ticket=ticket)
    return success(ticket_body(user.cid, user.uid, user.account))


def _endpoint(name: str, code: int, handler: Handler, max_body_bytes: int):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        if request.method == "HEAD":
            # Starlette answers HEAD on GET routes; these GETs change state, so HEAD must not.
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        try:
            params = await read_params(request, max_body_bytes=max_body_bytes)
            return await handler(request, params)
        except LegacyFailure as error:
            return failure(name, code, error.reason)
        except WorkbenchError as error:
            return failure(name, code, error.message)
        except DatabaseBusy:
            logger.warning("legacy %s: the database stayed locked past the busy timeout", name)
            return failure(name, code, "database busy")
        except ClientDisconnect:
            logger.info("legacy %s: the client went away before its request was read", name)
            return failure(name, code, "client disconnected")
        except Exception:  # the request was not applied; vendors still get the legacy body
            logger.exception("legacy %s failed", name)
            return failure(name, code, "internal error")

    endpoint.__name__ = name
    endpoint.__doc__ = handler.__doc__
    return endpoint


def legacy_routes(*, max_body_bytes: int) -> list[Route]:
    """Starlette routes of the three endpoints; each reads at most ``max_body_bytes`` of body.

    The handlers find the database and broker in ``request.state.db`` / ``.broker`` (lifespan
    state).
    """
    table = (
        (GETAPPID, "getappid", -51001, getappid),
        (PUSHAPPNOTICE, "pushappnotice", -51007, pushappnotice),
        (SETNUM, "setnum", -51004, setnum),
        (CHECKTICKET, "checkticket", -51010, checkticket),
    )
    return [
        Route(
            path,
            _endpoint(name, code, handler, max_body_bytes),
            methods=["GET", "POST"],
        )
        for path, name, code, handler in table
    ]
