"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Every table of SPEC §2 and §4, and the built-in default group and category (id 1).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "app_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "user_badge_state",
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("unseen_count", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("unseen_count >= 0", name="ck_user_badge_state_unseen"),
        sa.PrimaryKeyConstraint("cid", "uid"),
    )
    op.create_table(
        "app_category",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["app_group.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "app",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("identifier", sa.String(length=20), nullable=False),
        sa.Column("identifier_key", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("icon", sa.String(length=128), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_removable", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("audience_mode", sa.String(length=16), nullable=False),
        sa.Column("owner_cid", sa.BigInteger(), nullable=True),
        sa.Column("app_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("audience_mode IN ('ALL', 'SELECTED')", name="ck_app_audience_mode"),
        sa.CheckConstraint("kind IN ('ENTERPRISE', 'SYSTEM', 'CUSTOM')", name="ck_app_kind"),
        sa.ForeignKeyConstraint(["category_id"], ["app_category.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("app_key"),
        sa.UniqueConstraint("identifier_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("app", schema=None) as batch_op:
        batch_op.create_index("ix_app_category_position", ["category_id", "position"], unique=False)

    op.create_table(
        "app_audience",
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "cid"),
    )
    op.create_table(
        "app_badge",
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("unread", sa.Integer(), nullable=False),
        sa.CheckConstraint("unread >= 0", name="ck_app_badge_unread"),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cid", "uid", "app_id"),
    )
    op.create_index("ix_app_badge_app", "app_badge", ["app_id"], unique=False)
    op.create_table(
        "app_platform",
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=8), nullable=False),
        sa.Column("launch_mode", sa.String(length=8), nullable=False),
        sa.Column("web_url", sa.Text(), nullable=True),
        sa.Column("run_path", sa.Text(), nullable=True),
        sa.Column("download_url", sa.Text(), nullable=True),
        sa.Column("embedded_browser", sa.Boolean(), nullable=False),
        sa.Column("auto_login", sa.Boolean(), nullable=False),
        sa.Column("login_params", sa.Text(), nullable=True),
        sa.CheckConstraint("launch_mode IN ('WEB', 'NATIVE')", name="ck_app_platform_launch_mode"),
        sa.CheckConstraint("platform IN ('PC', 'ANDROID', 'IOS')", name="ck_app_platform_platform"),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("app_id", "platform"),
    )
    op.create_table(
        "app_removal",
        sa.Column("cid", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["app.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cid", "uid", "app_id"),
    )
    op.create_index("ix_app_removal_app", "app_removal", ["app_id"], unique=False)
    now = datetime.now(UTC)
    group = sa.table(
        "app_group",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("position", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    category = sa.table(
        "app_category",
        sa.column("id", sa.Integer),
        sa.column("group_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("position", sa.Integer),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(group, [{"id": 1, "name": "默认分组", "position": 0, "created_at": now}])
    op.bulk_insert(
        category,
        [
            {
                "id": 1,
                "group_id": 1,
                "name": "默认分类",
                "position": 0,
                "created_at": now,
            }
        ],
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in ("app_group", "app_category"):
            op.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_app_removal_app", table_name="app_removal")
    op.drop_table("app_removal")
    op.drop_table("app_platform")
    op.drop_index("ix_app_badge_app", table_name="app_badge")
    op.drop_table("app_badge")
    op.drop_table("app_audience")
    with op.batch_alter_table("app", schema=None) as batch_op:
        batch_op.drop_index("ix_app_category_position")

    op.drop_table("app")
    op.drop_table("app_category")
    op.drop_table("user_badge_state")
    op.drop_table("app_group")
