"""The ``auditLog`` query (issue 3 item 8): administrative changes, newest first."""

from __future__ import annotations

import json
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from resolvers import audit as audit_resolvers
from resolvers.identity import parse_id
from resolvers.pagination import Page
from schema.apps import PageInfo, aware
from schema.context import Context
from schema.fields import root_query
from storage import models


@strawberry.type(description="Who made a change.")
class AuditActor:
    cid: strawberry.ID
    uid: strawberry.ID
    role: str


@strawberry.type(description="One administrative change, with the values before and after.")
class AuditEntry:
    row: strawberry.Private[models.AuditEntry]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field(description="When the change committed (UTC).")
    def at(self) -> datetime:
        return aware(self.row.at)

    @strawberry.field
    def actor(self) -> AuditActor:
        return AuditActor(
            cid=strawberry.ID(str(self.row.actor_cid)),
            uid=strawberry.ID(str(self.row.actor_uid)),
            role=self.row.actor_role,
        )

    @strawberry.field(description="What was done, e.g. app.update, group.delete.")
    def action(self) -> str:
        return self.row.action

    @strawberry.field(description="app, group, category or catalogue.")
    def target_type(self) -> str:
        return self.row.target_type

    @strawberry.field
    def target_id(self) -> strawberry.ID | None:
        return None if self.row.target_id is None else strawberry.ID(str(self.row.target_id))

    @strawberry.field(description="The changed fields before (null for a creation).")
    def before(self) -> JSON | None:
        return None if self.row.before is None else json.loads(self.row.before)

    @strawberry.field(description="The changed fields after (null for a deletion).")
    def after(self) -> JSON | None:
        return None if self.row.after is None else json.loads(self.row.after)


@strawberry.input(description="Conditions of the audit log; each absent one matches any entry.")
class AuditFilter:
    action: str | None = None
    target_type: str | None = None
    target_id: strawberry.ID | None = None
    actor_cid: strawberry.ID | None = None
    actor_uid: strawberry.ID | None = None

    def to_filter(self) -> audit_resolvers.AuditFilter:
        """The resolver-level filter; raises ``InvalidInput`` for a malformed id."""

        def parsed(value: strawberry.ID | None, name: str) -> int | None:
            return None if value is None else parse_id(value, f"filter.{name}")

        return audit_resolvers.AuditFilter(
            action=self.action,
            target_type=self.target_type,
            target_id=parsed(self.target_id, "targetId"),
            actor_cid=parsed(self.actor_cid, "actorCid"),
            actor_uid=parsed(self.actor_uid, "actorUid"),
        )


@strawberry.type(description="An entry in the audit log connection.")
class AuditEdge:
    cursor: str
    node: AuditEntry


@strawberry.type(description="A page of audit entries, newest first.")
class AuditConnection:
    edges: list[AuditEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_page(cls, page: Page[models.AuditEntry]) -> AuditConnection:
        """Adapt a resolver page of audit entries."""
        return cls(
            edges=[
                AuditEdge(cursor=cursor, node=AuditEntry(row=row))
                for cursor, row in zip(page.cursors, page.rows, strict=True)
            ],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type
class AuditQuery:
    @root_query(
        description=(
            "Administrative changes, newest first: platform_admin all, enterprise_admin their "
            "enterprise's. first: 1..100, default 20."
        )
    )
    async def audit_log(
        self,
        info: strawberry.Info[Context, None],
        filter: AuditFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AuditConnection:
        context = info.context
        page = await audit_resolvers.list_entries(
            db=context.db,
            principal=context.caller(),
            where=(filter or AuditFilter()).to_filter(),
            first=first,
            after=after,
        )
        return AuditConnection.from_page(page)
