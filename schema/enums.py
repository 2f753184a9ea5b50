"""GraphQL enums: the domain's own enums, registered with Strawberry (one definition each).

``strawberry.enum`` marks the class in place and returns it, so annotations use the domain
classes themselves and resolvers receive their members unchanged.
"""

from __future__ import annotations

import strawberry

from resolvers.messages import BadgeCause
from resolvers.streams.workbench import WorkbenchChangeKind
from resolvers.visibility import VisibilityReason
from storage.models import AppKind, AudienceMode, LaunchMode, Platform

strawberry.enum(Platform, description="Client platform.")
strawberry.enum(LaunchMode, description="WEB page or NATIVE program.")
strawberry.enum(AppKind, description="The seed's 应用类型.")
strawberry.enum(
    AudienceMode, description="ALL enterprises minus hidden ones, or SELECTED ones only."
)
strawberry.enum(BadgeCause, description="Why a badge event happened.")
strawberry.enum(
    WorkbenchChangeKind,
    description="SNAPSHOT: every app shown; ADDED, CHANGED or REMOVED: those apps.",
)
strawberry.enum(
    VisibilityReason, description="A rule of SPEC §3 that keeps an app off a workbench."
)

__all__ = [
    "AppKind",
    "AudienceMode",
    "BadgeCause",
    "LaunchMode",
    "Platform",
    "VisibilityReason",
    "WorkbenchChangeKind",
]
