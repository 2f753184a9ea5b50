"""The exact legacy response bodies (SPEC §6), encoded explicitly, never via a JSON library."""

from __future__ import annotations

import json
import logging

from starlette.responses import Response

logger = logging.getLogger("workbench.legacy")

MEDIA_TYPE = "application/json"
SUCCESS = b'{"Result":true}'


class LegacyFailure(Exception):
    """A refused legacy request; ``reason`` goes to the log and ``X-Error-Reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def success(body: bytes = SUCCESS) -> Response:
    """HTTP 200 with an exact success body."""
    return Response(body, media_type=MEDIA_TYPE)


def app_id_body(app_id: int) -> bytes:
    """``{"Result":true,"MsgNo":{"app_id":"77"}}``: getappid's success, id as a string."""
    return b'{"Result":true,"MsgNo":{"app_id":"%d"}}' % app_id


def ticket_body(cid: int, uid: int, account: str) -> bytes:
    """checkticket's success (SPEC §8): ids as strings, the account JSON-escaped as PHP's
    ``json_encode`` does by default (non-ASCII as ``\\uXXXX``)."""
    return b'{"Result":true,"MsgNo":{"cid":"%d","uid":"%d","account":%s}}' % (
        cid,
        uid,
        json.dumps(account).encode(),
    )


def failure(endpoint: str, code: int, reason: str) -> Response:
    """HTTP 200 with ``{"Result":false,"MsgNo":<code>}``; the reason is logged and sent in the
    ``X-Error-Reason`` header (ASCII, one line, at most 200 characters)."""
    logger.info("legacy %s refused: %s", endpoint, reason)
    header = reason.encode("ascii", "backslashreplace").decode("ascii")
    header = " ".join(header.split())[:200]
    body = b'{"Result":false,"MsgNo":%d}' % code
    return Response(body, media_type=MEDIA_TYPE, headers={"X-Error-Reason": header})
