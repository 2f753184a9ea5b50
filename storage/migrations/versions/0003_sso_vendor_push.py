"""SSO tickets, vendor credentials and signed legacy mode, devices and the push outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Issue 4: ``sso_ticket``, ``legacy_signature``, ``idempotency_record``,
``vendor_badge_version``, ``device``, ``push_outbox``, and per-app secret rotation, signed
mode and IP allowlist columns on ``app``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Plain ADD COLUMN (no batch copy): SQLite keeps the table's AUTOINCREMENT, so app ids are
    # still never reused.
    op.add_column("app", sa.Column("app_secret_sealed", sa.Text(), nullable=True))
    op.add_column("app", sa.Column("previous_secret_hash", sa.String(length=64), nullable=True))
    op.add_column("app", sa.Column("previous_secret_sealed", sa.Text(), nullable=True))
    op.add_column(
        "app", sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "app",
        sa.Column("legacy_signed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("app", sa.Column("ip_allowlist", sa.Text(), nullable=True))
    op.create_table(
        "sso_ticket",
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ticket_hash"),
    )
    op.create_index("ix_sso_ticket_expires", "sso_ticket", ["expires_at"], unique=False)
    op.create_table(
        "legacy_signature",
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("sign", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "sign"),
    )
    op.create_index("ix_legacy_signature_expires", "legacy_signature", ["expires_at"], unique=False)
    op.create_table(
        "idempotency_record",
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "key"),
    )
    op.create_index(
        "ix_idempotency_record_created", "idempotency_record", ["created_at"], unique=False
    )
    op.create_table(
        "vendor_badge_version",
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "cid", "uid"),
    )
    op.create_table(
        "device",
        sa.Column("push_token", sa.String(length=512), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("platform IN ('PC', 'ANDROID', 'IOS')", name="ck_device_platform"),
        sa.PrimaryKeyConstraint("push_token"),
    )
    op.create_index("ix_device_user", "device", ["cid", "uid"], unique=False)
    op.create_table(
        "push_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("push_token", sa.String(length=512), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('PENDING', 'SENT', 'DROPPED', 'DEAD')", name="ck_push_outbox_state"
        ),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_push_outbox_due", "push_outbox", ["state", "next_attempt_at"], unique=False)
    op.create_index(
        "ix_push_outbox_device_app",
        "push_outbox",
        ["push_token", "app_id", "state"],
        unique=False,
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_push_outbox_device_app", table_name="push_outbox")
    op.drop_index("ix_push_outbox_due", table_name="push_outbox")
    op.drop_table("push_outbox")
    op.drop_index("ix_device_user", table_name="device")
    op.drop_table("device")
    op.drop_table("vendor_badge_version")
    op.drop_index("ix_idempotency_record_created", table_name="idempotency_record")
    op.drop_table("idempotency_record")
    op.drop_index("ix_legacy_signature_expires", table_name="legacy_signature")
    op.drop_table("legacy_signature")
    op.drop_index("ix_sso_ticket_expires", table_name="sso_ticket")
    op.drop_table("sso_ticket")
    with op.batch_alter_table("app", table_kwargs={"sqlite_autoincrement": True}) as batch_op:
        batch_op.drop_column("ip_allowlist")
        batch_op.drop_column("legacy_signed")
        batch_op.drop_column("previous_secret_expires_at")
        batch_op.drop_column("previous_secret_sealed")
        batch_op.drop_column("previous_secret_hash")
        batch_op.drop_column("app_secret_sealed")
