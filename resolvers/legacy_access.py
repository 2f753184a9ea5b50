"""The gate in front of every legacy endpoint (SPEC §6, §8): may this call act for this app?"""

from __future__ import annotations

from collections.abc import Sequence

from resolvers.errors import AppNotFound
from resolvers.sealing import SecretSealer
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.vendor import check_legacy_access
from storage import catalogue
from storage.db import Database


async def admit_legacy_call(
    *,
    db: Database,
    watch: CatalogueWatch,
    sealer: SecretSealer | None,
    app_id: int,
    params: Sequence[tuple[str, str]],
    client_ip: str | None,
) -> None:
    """Apply app ``app_id``'s access rules to one legacy call, before it does anything.

    ``params`` are the call's ``(name, value)`` pairs as received (what ``sign`` covers);
    ``client_ip`` the caller's address, ``None`` when unknown. Raises ``AppNotFound`` for an
    unknown or disabled app (the seed's failure) and ``resolvers.vendor.AccessRefused`` when
    the allowlist, the signature or its freshness refuses the call.

    Which check is authoritative for what:

    - The process's cached access rules (``CatalogueWatch.app_access``: dropped when a change
      of the app is announced, at most ``ACCESS_TTL_S`` old otherwise) decide alone only
      for apps that are open (enabled, unsigned, no allowlist), the seed's behaviour, so the
      hot path reads nothing; and they refuse an app they know as unknown or disabled.
    - For every other app the row read here from the database is authoritative for the
      allowlist and signed mode, and ``check_legacy_access`` (SPEC §8) for the signature,
      its time window and replays (the signatures table).
    - Whether the app exists and is enabled when the call writes is decided again by the
      command's own transaction (``resolvers.notices``, ``resolvers.badges``, ``resolvers.sso``),
      which is authoritative for that: a call admitted here may still fail there.
    """
    access = await watch.app_access(app_id)
    if access is None or not access.enabled:
        raise AppNotFound(app_id)
    if access.open:
        return
    async with db.read() as session:
        app = await catalogue.get_app(session, app_id)
    if app is None or not app.enabled:
        raise AppNotFound(app_id)
    await check_legacy_access(db=db, app=app, params=params, client_ip=client_ip, sealer=sealer)
