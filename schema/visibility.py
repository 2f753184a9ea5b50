"""The ``appVisibility`` admin query: why an app is or is not on a workbench (SPEC §3)."""

from __future__ import annotations

import strawberry

from resolvers.identity import parse_id
from resolvers.visibility import Visibility, explain_visibility
from schema.context import Context
from schema.enums import Platform, VisibilityReason
from schema.fields import root_query


@strawberry.type(description="Whether an app is on a workbench, and every rule that hides it.")
class AppVisibility:
    app_id: strawberry.ID
    enterprise_id: strawberry.ID
    user_id: strawberry.ID | None
    platform: Platform
    visible: bool
    reasons: list[VisibilityReason] = strawberry.field(description="Empty when visible.")
    explanation: str

    @classmethod
    def from_data(cls, data: Visibility) -> AppVisibility:
        """Adapt a resolver verdict."""
        return cls(
            app_id=strawberry.ID(str(data.app_id)),
            enterprise_id=strawberry.ID(str(data.cid)),
            user_id=None if data.uid is None else strawberry.ID(str(data.uid)),
            platform=data.platform,
            visible=data.visible,
            reasons=list(data.reasons),
            explanation=data.explanation,
        )


@strawberry.type
class VisibilityQuery:
    @root_query(
        description=(
            "Why app appId is (not) on enterprise cid's workbench for a platform; with uid, that "
            "user's removals count too. platform_admin; enterprise_admin for its own enterprise."
        )
    )
    async def app_visibility(
        self,
        info: strawberry.Info[Context, None],
        app_id: strawberry.ID,
        cid: strawberry.ID,
        platform: Platform,
        uid: strawberry.ID | None = None,
    ) -> AppVisibility:
        context = info.context
        verdict = await explain_visibility(
            db=context.db,
            principal=context.caller(),
            app_id=parse_id(app_id, "appId"),
            cid=parse_id(cid, "cid"),
            uid=None if uid is None else parse_id(uid, "uid"),
            platform=platform,
        )
        return AppVisibility.from_data(verdict)
