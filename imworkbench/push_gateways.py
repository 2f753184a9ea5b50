"""Push gateways (SPEC §9): where the dispatcher (``resolvers.push``) hands notifications.

- ``log`` (default): records each push in the log and reports it delivered; for sites without
  a push service, and for development.
- ``webhook``: an HTTP POST of the JSON body ``{"platform", "pushToken", "cid", "uid",
  "appId", "text", "badge"}`` (ids as decimal strings, ``badge`` a number) to
  ``WORKBENCH_PUSH_WEBHOOK_URL``, signed with ``X-Workbench-Signature: sha256=<hex
  HMAC-SHA256 of the exact body bytes keyed with WORKBENCH_PUSH_WEBHOOK_SECRET>``. Any 2xx
  answer is a delivery; anything else, a timeout or a connection error is a failure to retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import httpx

from imworkbench.settings import Settings
from resolvers.push import PushFailed, PushGateway, PushMessage

logger = logging.getLogger("workbench.push")
TIMEOUT_S = 10.0


def webhook_body(message: PushMessage) -> bytes:
    """The exact JSON body the webhook gateway sends for ``message``."""
    return json.dumps(
        {
            "platform": message.platform.value,
            "pushToken": message.push_token,
            "cid": str(message.cid),
            "uid": str(message.uid),
            "appId": str(message.app_id),
            "text": message.text,
            "badge": message.badge,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def signature(body: bytes, secret: str) -> str:
    """The ``X-Workbench-Signature`` header value of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class LogGateway:
    """Records pushes in the log only."""

    async def send(self, message: PushMessage) -> None:
        """Log the push (without the device token) and report it delivered."""
        logger.info(
            "push (log gateway) to %s,%s on %s: %s (badge %d)",
            message.cid,
            message.uid,
            message.platform.value,
            message.text,
            message.badge,
        )

    async def close(self) -> None:
        """Nothing to release."""


class WebhookGateway:
    """POSTs signed JSON to a push service (module docstring)."""

    def __init__(self, url: str, secret: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def send(self, message: PushMessage) -> None:
        """POST the push; raises ``PushFailed`` unless the service answers 2xx."""
        body = webhook_body(message)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Workbench-Signature": signature(body, self._secret),
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise PushFailed(f"{type(error).__name__}: {error}"[:300]) from error
        if not 200 <= response.status_code < 300:
            raise PushFailed(f"HTTP {response.status_code}")

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()


def create_gateway(settings: Settings) -> PushGateway:
    """The gateway ``settings`` name (validated there: webhook has its URL and secret)."""
    if settings.push_gateway == "webhook":
        assert settings.push_webhook_url is not None
        assert settings.push_webhook_secret is not None
        return WebhookGateway(
            settings.push_webhook_url, settings.push_webhook_secret.get_secret_value()
        )
    return LogGateway()
