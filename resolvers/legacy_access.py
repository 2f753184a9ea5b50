"""The gate in front of every legacy endpoint (SPEC §6, §8): may this call act for this app?"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager, suppress

from resolvers.errors import AppNotFound, WorkbenchError
from resolvers.sealing import SecretSealer
from resolvers.streams.catalogue import CatalogueWatch
from resolvers.vendor import check_legacy_access, release_replay_record
from storage import catalogue
from storage.db import Database, DatabaseBusy


@asynccontextmanager
async def admit_legacy_call(
    *,
    db: Database,
    watch: CatalogueWatch,
    sealer: SecretSealer | None,
    app_id: int,
    params: Sequence[tuple[str, str]],
    client_ip: str | None,
    repeated: Collection[str] = (),
    refusals: tuple[type[Exception], ...] = (),
) -> AsyncIterator[None]:
    """Apply app ``app_id``'s access rules to one legacy call before it does anything, then
    run the block: the call's work.

    ``params`` are the call's ``(name, value)`` pairs as received (what ``sign`` covers);
    ``repeated`` the names sent more than once as plain values (only the last is in ``params``);
    ``client_ip`` the caller's address, ``None`` when unknown. Raises ``AppNotFound`` for an
    unknown or disabled app (the seed's failure) and ``resolvers.vendor.AccessRefused`` when
    the allowlist, the signature or its freshness refuses the call.

    If the block raises a refusal that changed nothing (``WorkbenchError``, ``DatabaseBusy``,
    or one of ``refusals``, the caller's own input errors), the ``sign`` or ``nonce`` recorded
    against replays is forgotten again before the error goes on, so the same call, or the
    corrected one with the same nonce, is judged afresh rather than refused as a replay. Any
    other exception (a cancelled request among them) keeps the record: the work may have
    been applied, and a retry must not apply it twice.

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
    recorded = None
    if not access.open:
        async with db.read() as session:
            app = await catalogue.get_app(session, app_id)
        if app is None or not app.enabled:
            raise AppNotFound(app_id)
        recorded = await check_legacy_access(
            db=db, app=app, params=params, client_ip=client_ip, sealer=sealer, repeated=repeated
        )
    releasing: tuple[type[Exception], ...] = (WorkbenchError, DatabaseBusy, *refusals)
    try:
        yield
    except releasing:
        if recorded is not None:
            # Best effort: if the database is too busy to forget it, the record expires with
            # the window and the caller sees the refusal it earned, not this one.
            with suppress(DatabaseBusy):
                await release_replay_record(db=db, app_id=app_id, recorded=recorded)
        raise
