"""GraphQL types of the app catalogue and the ``createApp`` mutation (SPEC §2, §7)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.file_uploads import Upload

from resolvers import apps as app_resolvers
from resolvers.identity import parse_id
from resolvers.pagination import Page
from schema.context import Context
from schema.enums import AppKind, AudienceMode, LaunchMode, Platform
from schema.errors import UserError
from schema.fields import payload_mutation, root_query
from storage import catalogue, models


def aware(value: datetime) -> datetime:
    """``value`` with its UTC offset (SQLite returns stored UTC times without one)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@strawberry.enum(description="Which image of an app's icon.")
class IconSize(enum.Enum):
    ORIGINAL = "ORIGINAL"
    SIZE_48 = "SIZE_48"


@strawberry.type(description="How one platform launches an app.")
class PlatformSettings:
    launch_mode: LaunchMode
    web_url: str | None
    run_path: str | None
    download_url: str | None
    embedded_browser: bool = strawberry.field(
        description="ANDROID/IOS WEB apps: open in the IM's in-app browser. Kept as given on PC "
        "and for NATIVE, where launches do not use it."
    )
    auto_login: bool
    login_params: str | None

    @classmethod
    def from_row(cls, row: models.AppPlatform) -> PlatformSettings:
        """Adapt a stored platform row."""
        return cls(
            launch_mode=LaunchMode(row.launch_mode),
            web_url=row.web_url,
            run_path=row.run_path,
            download_url=row.download_url,
            embedded_browser=row.embedded_browser,
            auto_login=row.auto_login,
            login_params=row.login_params,
        )


@strawberry.type(description="Which enterprises see an app.")
class Audience:
    mode: AudienceMode
    enterprise_ids: list[strawberry.ID] = strawberry.field(
        description="ALL: the hidden enterprises; SELECTED: the enterprises shown."
    )


@strawberry.type(description="A workbench group (应用分组).")
class AppGroupRef:
    id: strawberry.ID
    name: str


@strawberry.type(description="A category (应用分类) inside a group.")
class AppCategoryRef:
    id: strawberry.ID
    name: str


@strawberry.type(description="An integrated app (集成应用).")
class App:
    row: strawberry.Private[models.App]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.row.id))

    @strawberry.field(description="Shown on the workbench.")
    def name(self) -> str:
        return self.row.name

    @strawberry.field(description="Program identifier (应用标识, appname); not the name.")
    def identifier(self) -> str:
        return self.row.identifier

    @strawberry.field
    def kind(self) -> AppKind:
        return AppKind(self.row.kind)

    @strawberry.field(
        description="Absolute URL of the app's icon: as uploaded, or its 48x48 PNG rendition."
    )
    def icon_url(
        self, info: strawberry.Info[Context, None], size: IconSize = IconSize.ORIGINAL
    ) -> str:
        return info.context.icon_url(self.row.icon, rendition_48=size is IconSize.SIZE_48)

    @strawberry.field(
        description="The icon as AppInput.icon takes it: a built-in name or sha256:<id>."
    )
    def icon(self) -> str:
        return self.row.icon

    @strawberry.field(description="The legacy appkey; administrators of this app only, else null.")
    def app_key(self, info: strawberry.Info[Context, None]) -> str | None:
        return (
            self.row.app_key
            if app_resolvers.administers(info.context.principal, self.row)
            else None
        )

    @strawberry.field(description="Whether a user may remove the app from their workbench.")
    def user_removable(self) -> bool:
        return self.row.user_removable

    @strawberry.field(
        description="Legacy endpoints need timestamp + sign (SPEC §8). Administrators only."
    )
    def legacy_signed(self, info: strawberry.Info[Context, None]) -> bool | None:
        if not app_resolvers.administers(info.context.principal, self.row):
            return None
        return self.row.legacy_signed

    @strawberry.field(
        description="Addresses allowed to call for this app; null: any. Administrators only."
    )
    def ip_allowlist(self, info: strawberry.Info[Context, None]) -> list[str] | None:
        allowlist = self.row.ip_allowlist
        if not app_resolvers.administers(info.context.principal, self.row) or not allowlist:
            return None
        return allowlist.split(",")

    @strawberry.field
    def enabled(self) -> bool:
        return self.row.enabled

    @strawberry.field
    def created_at(self) -> datetime:
        return aware(self.row.created_at)

    @strawberry.field
    async def group(self, info: strawberry.Info[Context, None]) -> AppGroupRef:
        _, group = await self._category(info)
        return AppGroupRef(id=strawberry.ID(str(group.id)), name=group.name)

    @strawberry.field
    async def category(self, info: strawberry.Info[Context, None]) -> AppCategoryRef:
        category, _ = await self._category(info)
        return AppCategoryRef(id=strawberry.ID(str(category.id)), name=category.name)

    async def _category(
        self, info: strawberry.Info[Context, None]
    ) -> tuple[models.AppCategory, models.AppGroup]:
        found = await info.context.loaders.category.load(self.row.category_id)
        assert found is not None  # the foreign key guarantees it
        return found

    @strawberry.field(description="Administrators of this app only, else null.")
    async def audience(self, info: strawberry.Info[Context, None]) -> Audience | None:
        if not app_resolvers.administers(info.context.principal, self.row):
            return None
        assert self.row.id is not None
        ids = await info.context.loaders.audience.load(self.row.id)
        return Audience(
            mode=AudienceMode(self.row.audience_mode),
            enterprise_ids=[strawberry.ID(str(cid)) for cid in ids],
        )

    @strawberry.field(description="Platforms the app is on, in PC, ANDROID, IOS order.")
    async def platforms(self, info: strawberry.Info[Context, None]) -> list[Platform]:
        found = await self._platforms(info)
        return [p for p in Platform if p in found]

    @strawberry.field
    async def pc(self, info: strawberry.Info[Context, None]) -> PlatformSettings | None:
        return await self._settings(info, Platform.PC)

    @strawberry.field
    async def android(self, info: strawberry.Info[Context, None]) -> PlatformSettings | None:
        return await self._settings(info, Platform.ANDROID)

    @strawberry.field
    async def ios(self, info: strawberry.Info[Context, None]) -> PlatformSettings | None:
        return await self._settings(info, Platform.IOS)

    async def _platforms(
        self, info: strawberry.Info[Context, None]
    ) -> dict[Platform, models.AppPlatform]:
        assert self.row.id is not None
        return await info.context.loaders.platforms.load(self.row.id)

    async def _settings(
        self, info: strawberry.Info[Context, None], platform: Platform
    ) -> PlatformSettings | None:
        row = (await self._platforms(info)).get(platform)
        return None if row is None else PlatformSettings.from_row(row)


@strawberry.input(description="One platform's launch settings.")
class PlatformSettingsInput:
    launch_mode: LaunchMode
    web_url: str | None = None
    run_path: str | None = None
    download_url: str | None = None
    embedded_browser: bool = strawberry.field(
        default=True,
        description="ANDROID/IOS WEB apps: open in the IM's in-app browser. Stored as given "
        "everywhere; launches on PC and of NATIVE apps do not use it.",
    )
    auto_login: bool = False
    login_params: str | None = None

    def to_draft(self) -> app_resolvers.PlatformDraft:
        """The resolver-level draft."""
        return app_resolvers.PlatformDraft(
            launch_mode=self.launch_mode,
            web_url=self.web_url,
            run_path=self.run_path,
            download_url=self.download_url,
            embedded_browser=self.embedded_browser,
            auto_login=self.auto_login,
            login_params=self.login_params,
        )


@strawberry.input(description="ALL: enterpriseIds are hidden; SELECTED: only they see the app.")
class AudienceInput:
    mode: AudienceMode
    enterprise_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input(description="A new app.")
class AppInput:
    name: str
    identifier: str
    kind: AppKind = AppKind.CUSTOM
    category_id: strawberry.ID | None = strawberry.field(
        default=None, description="Absent: the built-in default category."
    )
    user_removable: bool = True
    audience: AudienceInput = strawberry.field(
        default_factory=lambda: AudienceInput(mode=AudienceMode.ALL, enterprise_ids=[])
    )
    icon: str | None = strawberry.field(
        default=None,
        description="A built-in icon: "
        + ", ".join(app_resolvers.BUILTIN_ICONS)
        + " (default app).",
    )
    pc: PlatformSettingsInput | None = None
    android: PlatformSettingsInput | None = None
    ios: PlatformSettingsInput | None = None
    legacy_signed: bool = strawberry.field(
        default=False, description="Legacy endpoints need timestamp + sign (SPEC §8)."
    )
    ip_allowlist: str | None = strawberry.field(
        default=None,
        description="IP addresses or CIDR networks allowed to call for this app, comma-separated.",
    )

    def to_draft(self) -> app_resolvers.AppDraft:
        """The resolver-level draft."""
        platforms = {
            platform: settings.to_draft()
            for platform, settings in (
                (Platform.PC, self.pc),
                (Platform.ANDROID, self.android),
                (Platform.IOS, self.ios),
            )
            if settings is not None
        }
        return app_resolvers.AppDraft(
            name=self.name,
            identifier=self.identifier,
            kind=self.kind,
            category_id=None if self.category_id is None else str(self.category_id),
            user_removable=self.user_removable,
            audience_mode=self.audience.mode,
            audience_ids=[str(cid) for cid in self.audience.enterprise_ids],
            platforms=platforms,
            icon=self.icon,
            legacy_signed=self.legacy_signed,
            ip_allowlist=self.ip_allowlist,
        )


@strawberry.type(description="Result of a mutation on an app.")
class AppPayload:
    app: App | None = None
    app_secret: str | None = strawberry.field(
        default=None, description="Only when just created or rotated (SPEC §8)."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class AppMutation:
    @payload_mutation(
        description="Create an app: platform_admin; enterprise_admin for own ENTERPRISE apps."
    )
    async def create_app(self, info: strawberry.Info[Context, None], input: AppInput) -> AppPayload:
        context = info.context
        created = await app_resolvers.create_app(
            db=context.db,
            principal=context.caller(),
            draft=input.to_draft(),
            broker=context.broker,
            sealer=context.sealer,
        )
        return AppPayload(app=App(row=created.app), app_secret=created.app_secret)


@strawberry.type
class AppQuery:
    @root_query(
        description="One app by id, for its administrators; null when absent or not theirs."
    )
    async def app(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> App | None:
        context = info.context
        row = await app_resolvers.find_administered_app(
            db=context.db, principal=context.caller(), app_id=parse_id(id, "id")
        )
        return None if row is None else App(row=row)


@strawberry.type
class AppAdminMutation:
    @payload_mutation(
        description="Give an app a new appKey; the old one stops working at once. Its admins."
    )
    async def rotate_app_key(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppPayload:
        context = info.context
        row = await app_resolvers.rotate_app_key(
            db=context.db, principal=context.caller(), app_id=parse_id(app_id, "appId")
        )
        return AppPayload(app=App(row=row))

    @payload_mutation(
        description="Move an app to a category, at a 0-based position (absent: last). Its admins."
    )
    async def move_app(
        self,
        info: strawberry.Info[Context, None],
        app_id: strawberry.ID,
        category_id: strawberry.ID,
        position: int | None = None,
    ) -> AppPayload:
        context = info.context
        row = await app_resolvers.move_app(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            app_id=parse_id(app_id, "appId"),
            category_id=parse_id(category_id, "categoryId"),
            position=position,
        )
        return AppPayload(app=App(row=row))


def _unset_or(value: Any) -> Any:
    return None if value is strawberry.UNSET else value


@strawberry.input(
    description=(
        "A partial change of an app: a field absent or null stays as it is, except pc, "
        "android and ios, where null takes the app off that platform."
    )
)
class AppPatchInput:
    name: str | None = strawberry.UNSET
    identifier: str | None = strawberry.UNSET
    kind: AppKind | None = strawberry.UNSET
    category_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="Moves the app, last in that category."
    )
    user_removable: bool | None = strawberry.UNSET
    audience: AudienceInput | None = strawberry.UNSET
    icon: str | None = strawberry.field(
        default=strawberry.UNSET,
        description="A built-in icon name, or an uploaded icon's id (sha256:...).",
    )
    pc: PlatformSettingsInput | None = strawberry.UNSET
    android: PlatformSettingsInput | None = strawberry.UNSET
    ios: PlatformSettingsInput | None = strawberry.UNSET
    legacy_signed: bool | None = strawberry.UNSET
    ip_allowlist: str | None = strawberry.field(
        default=strawberry.UNSET, description='"" allows every address again.'
    )

    def to_patch(self) -> app_resolvers.AppPatch:
        """The resolver-level patch."""
        audience = _unset_or(self.audience)
        platforms: dict[Platform, app_resolvers.PlatformDraft | None] = {}
        for platform, settings in (
            (Platform.PC, self.pc),
            (Platform.ANDROID, self.android),
            (Platform.IOS, self.ios),
        ):
            if settings is not strawberry.UNSET:
                platforms[platform] = None if settings is None else settings.to_draft()
        category = _unset_or(self.category_id)
        return app_resolvers.AppPatch(
            name=_unset_or(self.name),
            identifier=_unset_or(self.identifier),
            kind=_unset_or(self.kind),
            category_id=None if category is None else str(category),
            user_removable=_unset_or(self.user_removable),
            audience_mode=None if audience is None else audience.mode,
            audience_ids=[] if audience is None else [str(c) for c in audience.enterprise_ids],
            platforms=platforms,
            icon=_unset_or(self.icon),
            legacy_signed=_unset_or(self.legacy_signed),
            ip_allowlist=_unset_or(self.ip_allowlist),
        )


@strawberry.type(description="Result of deleting an app.")
class DeleteAppPayload:
    deleted_app_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input(description="Conditions of the apps list; each absent one matches any app.")
class AppFilter:
    platform: Platform | None = None
    kind: AppKind | None = None
    group_id: strawberry.ID | None = None
    category_id: strawberry.ID | None = None
    enterprise_id: strawberry.ID | None = strawberry.field(
        default=None, description="Apps whose audience admits this enterprise."
    )
    search: str | None = strawberry.field(
        default=None, description="Part of the name or identifier, case-insensitive."
    )
    enabled: bool | None = None

    def to_filter(self) -> catalogue.AppFilter:
        """The storage-level filter; raises ``InvalidInput`` for a malformed id."""

        def parsed(value: strawberry.ID | None, name: str) -> int | None:
            return None if value is None else parse_id(value, f"filter.{name}")

        return catalogue.AppFilter(
            platform=self.platform,
            kind=None if self.kind is None else self.kind.value,
            group_id=parsed(self.group_id, "groupId"),
            category_id=parsed(self.category_id, "categoryId"),
            enterprise_id=parsed(self.enterprise_id, "enterpriseId"),
            search=self.search,
            enabled=self.enabled,
        )


@strawberry.type(description="Pagination state of a connection.")
class PageInfo:
    has_next_page: bool
    end_cursor: str | None

    @classmethod
    def of(cls, page: Page[Any]) -> PageInfo:
        """The pagination state of a resolver page: its last cursor, null when empty."""
        return cls(
            has_next_page=page.has_next_page,
            end_cursor=page.cursors[-1] if page.cursors else None,
        )


@strawberry.type(description="An app in the apps connection.")
class AppEdge:
    cursor: str
    node: App


@strawberry.type(description="A page of apps, by id.")
class AppConnection:
    edges: list[AppEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Apps matching the filter, on all pages.")

    @classmethod
    def from_page(cls, page: Page[models.App]) -> AppConnection:
        """Adapt a resolver page of apps."""
        return cls(
            edges=[
                AppEdge(cursor=cursor, node=App(row=row))
                for cursor, row in zip(page.cursors, page.rows, strict=True)
            ],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type
class AppListQuery:
    @root_query(
        description=(
            "The apps the caller administers (platform_admin: all; enterprise_admin: their "
            "own), by id. first: 1..100, default 20; after: a cursor of the previous page."
        )
    )
    async def apps(
        self,
        info: strawberry.Info[Context, None],
        filter: AppFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AppConnection:
        context = info.context
        page = await app_resolvers.list_apps(
            db=context.db,
            principal=context.caller(),
            where=(filter or AppFilter()).to_filter(),
            first=first,
            after=after,
        )
        return AppConnection.from_page(page)


@strawberry.type
class AppLifecycleMutation:
    @payload_mutation(
        description="Change some fields of an app; the others stay. The app's administrators."
    )
    async def update_app(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID, input: AppPatchInput
    ) -> AppPayload:
        context = info.context
        row = await app_resolvers.update_app(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            app_id=parse_id(app_id, "appId"),
            patch=input.to_patch(),
        )
        return AppPayload(app=App(row=row))

    @payload_mutation(
        description="Take an app off every workbench, keeping its data. Its administrators."
    )
    async def disable_app(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppPayload:
        return await _set_enabled(info.context, app_id, enabled=False)

    @payload_mutation(description="Bring a disabled app back. Its administrators.")
    async def enable_app(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppPayload:
        return await _set_enabled(info.context, app_id, enabled=True)

    @payload_mutation(
        description=(
            "Delete an app for good, with its badges, users' removals and unshared uploaded "
            "icon. Its administrators."
        )
    )
    async def delete_app(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> DeleteAppPayload:
        context = info.context
        row = await app_resolvers.delete_app(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            app_id=parse_id(app_id, "appId"),
        )
        return DeleteAppPayload(deleted_app_id=strawberry.ID(str(row.id)))


async def _set_enabled(context: Context, app_id: strawberry.ID, *, enabled: bool) -> AppPayload:
    # Shared by disableApp and enableApp, whose DomainErrors map what this raises.
    row = await app_resolvers.set_app_enabled(
        db=context.db,
        broker=context.broker,
        principal=context.caller(),
        app_id=parse_id(app_id, "appId"),
        enabled=enabled,
    )
    return AppPayload(app=App(row=row))


@strawberry.type(description="A built-in icon an app may use (AppInput.icon).")
class BuiltinIcon:
    name: str
    url: str


@strawberry.type
class IconQuery:
    @root_query(description="The built-in icons, 48x48 PNG.")
    def builtin_icons(self, info: strawberry.Info[Context, None]) -> list[BuiltinIcon]:
        info.context.caller()
        return [
            BuiltinIcon(name=name, url=info.context.icon_url(name))
            for name in app_resolvers.BUILTIN_ICONS
        ]


@strawberry.type
class IconMutation:
    @payload_mutation(
        description=(
            "Upload an app's icon (GraphQL multipart request): GIF, JPEG or PNG by content, "
            "at most 1 MiB and 2048x2048. The app's administrators."
        )
    )
    async def set_app_icon(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID, icon: Upload
    ) -> AppPayload:
        context = info.context
        row = await app_resolvers.upload_app_icon(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            app_id=parse_id(app_id, "appId"),
            upload=icon,
        )
        return AppPayload(app=App(row=row))
