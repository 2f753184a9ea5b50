"""Live streams: the state machines behind the subscriptions (SPEC §4, §7, §9).

Each stream follows one user's channel through the process's ``hub.Hub`` (decoded
``resolvers.messages``, one broker listener per channel) and, where the catalogue matters,
the process's ``catalogue.CatalogueWatch``; it keeps bounded state and merges what a slow client
has not yet taken. The commands that publish the messages (notices, reads, opens, sets,
removals, administrators' changes) live in their own modules of ``resolvers``.

- ``badges.BadgeStream``: the ``badges`` subscription (Strawberry and compiled paths);
- ``workbench.WorkbenchChangeStream``: ``workbenchChanged``;
- ``notifications.NotificationStream``: ``notifications``;
- ``catalogue.CatalogueWatch``: the one listener of the catalogue channel per process;
- ``hub.Hub``: decode once per process, fan out to local listeners.
"""
