"""Persistence: every SQL statement of the service, in modules named for their tables, and
the tables, the engine and the migrations they run on.

- ``models``: the SQLModel tables; ``tables``: their typed ``Table`` objects for statements;
  ``dialect``: what differs between SQLite and PostgreSQL (the upsert ``INSERT``, ``least``).
- ``db``: the engine and transactions (``Database.write()``, ``read()``, ``ping()``);
  ``migrate`` and ``migrations/``: Alembic.
- Statements, as functions taking the session first: ``catalogue`` (apps,
  platforms, audience, removals, visibility), ``groups`` (groups and categories), ``badges``,
  ``push`` (devices and outbox), ``icons``, ``audit``, ``sso_tickets``, ``idempotency``,
  ``vendor_badge_versions``, ``legacy_signatures``, ``transfer`` (whole-table export and
  import), ``housekeeping`` (expired rows).

Callers keep the transaction boundaries and pass the session in. Only this package builds
SQL: ruff's banned-api (TID251, ``pyproject.toml``) and ``tests/test_architecture.py`` keep it
so. Imports neither strawberry, starlette nor settings.
"""
