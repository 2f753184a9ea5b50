"""The SQLAlchemy ``Table`` of every SQLModel table (``storage.models``), typed, for building
statements in ``storage``: ``from storage import tables as t`` then ``t.app.c.id``.

Each name is the table's SQL name. SQLModel declares no ``__table__`` on its classes, so reading
it there needs a ``type: ignore``; the metadata's registry gives the same objects with their type
(``tests/storage/test_tables.py`` checks that every table is here and is the model's own).
"""

from __future__ import annotations

from sqlalchemy import Table

from storage.models import metadata


def _table(name: str) -> Table:
    return metadata.tables[name]


app = _table("app")
app_group = _table("app_group")
app_category = _table("app_category")
app_platform = _table("app_platform")
app_audience = _table("app_audience")
app_removal = _table("app_removal")
app_badge = _table("app_badge")
user_badge_state = _table("user_badge_state")
icon_image = _table("icon_image")
audit_entry = _table("audit_entry")
sso_ticket = _table("sso_ticket")
legacy_signature = _table("legacy_signature")
idempotency_record = _table("idempotency_record")
vendor_badge_version = _table("vendor_badge_version")
device = _table("device")
push_outbox = _table("push_outbox")
