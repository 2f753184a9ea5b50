"""Announcing administrators' catalogue changes to every process (issue 3 items 2 and 6).

Resolvers that change apps, their audiences, platforms or places call ``publish_change`` after
their transaction commits; each process's ``resolvers.streams.catalogue.CatalogueWatch`` takes
the ``resolvers.messages.CatalogueChange`` and updates its live streams.
"""

from __future__ import annotations

from collections.abc import Iterable

from resolvers.broker import Broker
from resolvers.messages import CATALOGUE_CHANNEL, CatalogueChange


async def publish_change(broker: Broker, app_ids: Iterable[int]) -> None:
    """Tell every process that the given apps changed; call after the change committed.
    Nothing is sent for an empty set."""
    ids = set(app_ids)
    if ids:
        await broker.publish(((CATALOGUE_CHANNEL, CatalogueChange.of(ids).encode()),))
