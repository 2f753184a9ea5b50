"""uploaded icons and the audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Issue 3: ``icon_image`` holds uploaded icons (original and 48x48 rendition), ``audit_entry``
every administrative change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "icon_image",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("original", sa.LargeBinary(), nullable=False),
        sa.Column("rendition_48", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_cid", sa.BigInteger(), nullable=False),
        sa.Column("actor_uid", sa.BigInteger(), nullable=False),
        sa.Column("actor_role", sa.String(length=24), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=True),
        sa.Column("scope_cid", sa.BigInteger(), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_entry_scope", "audit_entry", ["scope_cid", "id"], unique=False)
    op.create_index(
        "ix_audit_entry_target", "audit_entry", ["target_type", "target_id", "id"], unique=False
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_audit_entry_target", table_name="audit_entry")
    op.drop_index("ix_audit_entry_scope", table_name="audit_entry")
    op.drop_table("audit_entry")
    op.drop_table("icon_image")
