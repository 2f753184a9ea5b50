"""Per-request (HTTP) or per-connection (WebSocket) GraphQL context.

A WebSocket context lives as long as the connection: it holds the principal and shared
resources only. DataLoaders here do not cache (``cache=False``), so a loader reused by several
operations on one connection never serves stale rows; they still batch within one operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from strawberry.dataloader import DataLoader

from resolvers import loaders
from resolvers.broker import Broker
from resolvers.errors import NotAuthenticated, PermissionDenied
from resolvers.identity import Principal, Role
from resolvers.options import ServiceOptions
from resolvers.sealing import SecretSealer
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.streams.hub import Hub
from resolvers.tokens import TokenCodec
from storage import icons as icon_store
from storage.db import Database
from storage.models import AppCategory, AppGroup, AppPlatform, Platform

USER_ROLES = (Role.USER, Role.ENTERPRISE_ADMIN, Role.PLATFORM_ADMIN)


class Meter(Protocol):
    """Where the GraphQL layer reports operations and subscriptions (metrics, issue 5)."""

    def operation(self, kind: str, outcome: str) -> None:
        """One operation of ``kind`` (query, mutation, subscription) ended with ``outcome``."""

    def subscription_started(self, field: str) -> None:
        """A subscription to ``field`` began."""

    def subscription_ended(self, field: str) -> None:
        """A subscription to ``field`` ended and its cleanup ran."""


class NoMeter:
    """A ``Meter`` that records nothing."""

    def operation(self, kind: str, outcome: str) -> None:
        """Nothing."""

    def subscription_started(self, field: str) -> None:
        """Nothing."""

    def subscription_ended(self, field: str) -> None:
        """Nothing."""


class Loaders:
    """Per-request DataLoaders over ``resolvers.loaders``' batch functions; each batch opens
    its own short read transaction."""

    def __init__(self, db: Database) -> None:
        self.platforms: DataLoader[int, dict[Platform, AppPlatform]] = DataLoader(
            partial(loaders.platform_settings, db), cache=False
        )
        self.audience: DataLoader[int, list[int]] = DataLoader(
            partial(loaders.audience_ids, db), cache=False
        )
        self.category: DataLoader[int, tuple[AppCategory, AppGroup] | None] = DataLoader(
            partial(loaders.categories_with_groups, db), cache=False
        )


@dataclass
class Context:
    """What every resolver may use. ``principal`` is ``None`` until authenticated."""

    db: Database
    broker: Broker
    hub: Hub
    watch: CatalogueWatch
    options: ServiceOptions
    sealer: SecretSealer
    codec: TokenCodec
    base_url: str
    loaders: Loaders
    principal: Principal | None = None
    request: Any = None
    response: Any = None
    connection_params: dict[str, Any] | None = None
    meter: Meter = field(default_factory=NoMeter)
    extra: dict[str, Any] = field(default_factory=dict)

    def caller(self) -> Principal:
        """The authenticated principal; raises ``NotAuthenticated`` when there is none."""
        if self.principal is None:
            raise NotAuthenticated("authentication required")
        return self.principal

    def user(self) -> Principal:
        """The caller acting as a workbench user; vendors are refused (``PermissionDenied``)."""
        principal = self.caller()
        if principal.role not in USER_ROLES:
            raise PermissionDenied("this field is for workbench users, not vendor tokens")
        return principal

    def connection_principal(self) -> Principal:
        """Who opened this WebSocket (SPEC §7): the bearer token of the ``connection_init``
        payload's ``Authorization`` (or ``authorization``), else of the handshake's
        ``Authorization`` header. Raises ``NotAuthenticated`` (no token, a bad one, or a
        payload ``Authorization`` that is not a string)."""
        value = None
        if self.connection_params:
            value = self.connection_params.get("Authorization") or self.connection_params.get(
                "authorization"
            )
            if value is not None and not isinstance(value, str):
                raise NotAuthenticated("Authorization in connection_init must be a string")
        if value is None:
            value = self.request.headers.get("authorization")
        return self.codec.from_header(value)

    def icon_url(self, icon: str, *, rendition_48: bool = False) -> str:
        """Absolute URL of icon ``icon`` (a built-in name or an uploaded icon's reference)
        served by this service; ``rendition_48``: its 48x48 PNG (built-ins are 48x48)."""
        uploaded = icon_store.uploaded_icon_id(icon)
        if uploaded is None:
            return f"{self.base_url}/icons/{icon}.png"
        suffix = "/48.png" if rendition_48 else ""
        return f"{self.base_url}/icons/u/{uploaded}{suffix}"
