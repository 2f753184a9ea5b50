"""The vendor API (SPEC §8): app secrets and access tokens, notices with idempotency keys,
absolute badges, SSO ticket verification; and users' push devices (SPEC §9)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import push as push_resolvers
from resolvers import sso
from resolvers import vendor as vendor_resolvers
from resolvers.errors import InvalidInput, NotAuthenticated, TooManyRecipients
from resolvers.identity import Role, parse_id
from resolvers.streams.notifications import NotificationStream
from schema.apps import App, AppPayload
from schema.context import Context
from schema.enums import Platform
from schema.errors import UserError, domain_errors, user_errors


@strawberry.input(description="A user: enterprise id and user id.")
class UserInput:
    cid: strawberry.ID
    uid: strawberry.ID

    def parsed(self, field: str) -> tuple[int, int]:
        """``(cid, uid)``; raises ``InvalidInput`` naming ``field``."""
        return parse_id(self.cid, f"{field}.cid"), parse_id(self.uid, f"{field}.uid")


@strawberry.type(description="A user as the IM knows them.")
class UserRef:
    cid: strawberry.ID
    uid: strawberry.ID


@strawberry.type(description="An access token for the vendor API, for one app.")
class AppAccessTokenPayload:
    access_token: str | None = None
    expires_in: int | None = strawberry.field(default=None, description="Seconds.")
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="What a notice did for one recipient.")
class RecipientResult:
    user: UserRef
    applied: bool
    reason: str | None = strawberry.field(description="Why it was skipped; null when applied.")


@strawberry.type(description="Result of pushAppNotice: one entry per distinct recipient.")
class PushAppNoticePayload:
    results: list[RecipientResult] = strawberry.field(default_factory=list)
    replayed: bool = strawberry.field(
        default=False, description="The idempotency key was seen: nothing applied again."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="An app's count for one user and the version that set it.")
class VendorBadge:
    user: UserRef
    unread: int
    version: str


@strawberry.type(description="Result of setAppBadge; when stale, current holds the state kept.")
class SetAppBadgePayload:
    badge: VendorBadge | None = None
    current: VendorBadge | None = strawberry.field(
        default=None, description="With a STALE_VERSION error: the count and version in force."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="The user a ticket was issued for.")
class TicketUser:
    cid: strawberry.ID
    uid: strawberry.ID
    account: str


@strawberry.type(description="Result of verifyTicket: the user once, then INVALID_TICKET.")
class VerifyTicketPayload:
    user: TicketUser | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="A registered push device.")
class DevicePayload:
    push_token: str | None = None
    platform: Platform | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="Result of unregisterDevice.")
class UnregisterDevicePayload:
    removed: bool = False
    errors: list[UserError] = strawberry.field(default_factory=list)


def _ref(cid: int, uid: int) -> UserRef:
    return UserRef(cid=strawberry.ID(str(cid)), uid=strawberry.ID(str(uid)))


@strawberry.type
class VendorMutation:
    @strawberry.mutation(
        description=(
            "A new appSecret, returned once; the previous one works for a grace period "
            "(WORKBENCH_APP_SECRET_GRACE_SECONDS). The app's administrators."
        )
    )
    async def rotate_app_secret(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppPayload:
        context = info.context
        with domain_errors():
            try:
                row, secret = await vendor_resolvers.rotate_app_secret(
                    db=context.db,
                    principal=context.caller(),
                    app_id=parse_id(app_id, "appId"),
                    grace_s=context.options.secret_grace_s,
                    sealer=context.sealer,
                )
            except InvalidInput as error:
                return AppPayload(errors=user_errors(error))
        return AppPayload(app=App(row=row), app_secret=secret)

    @strawberry.mutation(
        description=(
            "Exchange an app's id and secret for a vendor access token (2 h). Needs no "
            "Authorization header; a wrong id or secret is one UNAUTHENTICATED error."
        )
    )
    async def app_access_token(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID, app_secret: str
    ) -> AppAccessTokenPayload:
        context = info.context
        with domain_errors():
            try:
                parsed = parse_id(app_id, "appId")
            except InvalidInput as error:
                return AppAccessTokenPayload(errors=user_errors(error))
            try:
                app = await vendor_resolvers.authenticate_app(
                    db=context.db, app_id=parsed, app_secret=app_secret
                )
            except NotAuthenticated as error:
                return AppAccessTokenPayload(
                    errors=[UserError(field=None, message=error.message, code=error.code)]
                )
        assert app.id is not None
        ttl = context.options.vendor_token_ttl_s
        token = context.codec.issue(
            cid=0,
            uid=0,
            role=Role.VENDOR,
            account=f"app{app.id}",
            app_id=app.id,
            ttl_seconds=ttl,
        )
        return AppAccessTokenPayload(access_token=token, expires_in=ttl)

    @strawberry.mutation(
        description=(
            "Vendor token: one notice of the token's app for each recipient, with a result "
            "per recipient; a repeated idempotencyKey within 24 h applies nothing again."
        )
    )
    async def push_app_notice(
        self,
        info: strawberry.Info[Context, None],
        recipients: list[UserInput],
        idempotency_key: str | None = None,
    ) -> PushAppNoticePayload:
        context = info.context
        with domain_errors():
            app_id = vendor_resolvers.vendor_app(context.caller())
            try:
                users = [r.parsed(f"recipients[{i}]") for i, r in enumerate(recipients)]
                outcome = await vendor_resolvers.vendor_push_notice(
                    db=context.db,
                    broker=context.broker,
                    app_id=app_id,
                    recipients=users,
                    idempotency_key=idempotency_key,
                    coalesce_s=context.options.push_coalesce_s,
                )
            except InvalidInput as error:
                return PushAppNoticePayload(errors=user_errors(error))
            except TooManyRecipients as error:
                return PushAppNoticePayload(
                    errors=[UserError(field="recipients", message=error.message, code=error.code)]
                )
        return PushAppNoticePayload(
            results=[
                RecipientResult(user=_ref(r.cid, r.uid), applied=r.applied, reason=r.reason)
                for r in outcome.results
            ],
            replayed=outcome.replayed,
        )

    @strawberry.mutation(
        description=(
            "Vendor token: set the app's unread count for a user (cause SET). version: a "
            "decimal string that must grow; a stale one is refused with the state in force."
        )
    )
    async def set_app_badge(
        self,
        info: strawberry.Info[Context, None],
        user: UserInput,
        unread: int,
        version: str,
    ) -> SetAppBadgePayload:
        context = info.context
        with domain_errors():
            app_id = vendor_resolvers.vendor_app(context.caller())
            try:
                cid, uid = user.parsed("user")
                result = await vendor_resolvers.set_app_badge(
                    db=context.db,
                    broker=context.broker,
                    app_id=app_id,
                    cid=cid,
                    uid=uid,
                    unread=unread,
                    version=vendor_resolvers.parse_version(version),
                )
            except InvalidInput as error:
                return SetAppBadgePayload(errors=user_errors(error))
            except vendor_resolvers.StaleVersion as stale:
                return SetAppBadgePayload(
                    current=VendorBadge(
                        user=_ref(cid, uid),
                        unread=stale.unread,
                        version=str(stale.current_version),
                    ),
                    errors=[UserError(field="version", message=stale.message, code=stale.code)],
                )
        return SetAppBadgePayload(
            badge=VendorBadge(
                user=_ref(result.cid, result.uid),
                unread=result.unread,
                version=str(result.version),
            )
        )

    @strawberry.mutation(
        description=(
            "Vendor token: the user an SSO ticket of the token's app was issued for, once; "
            "used, expired, garbled or another app's tickets all give INVALID_TICKET."
        )
    )
    async def verify_ticket(
        self, info: strawberry.Info[Context, None], ticket: str
    ) -> VerifyTicketPayload:
        context = info.context
        with domain_errors():
            app_id = vendor_resolvers.vendor_app(context.caller())
            try:
                user = await sso.verify_ticket(db=context.db, app_id=app_id, ticket=ticket)
            except sso.InvalidTicket as error:
                return VerifyTicketPayload(
                    errors=[UserError(field="ticket", message=error.message, code=error.code)]
                )
        return VerifyTicketPayload(
            user=TicketUser(
                cid=strawberry.ID(str(user.cid)),
                uid=strawberry.ID(str(user.uid)),
                account=user.account,
            )
        )


@strawberry.type
class DeviceMutation:
    @strawberry.mutation(description="Register the caller's ANDROID or IOS device for push.")
    async def register_device(
        self, info: strawberry.Info[Context, None], platform: Platform, push_token: str
    ) -> DevicePayload:
        context = info.context
        with domain_errors():
            try:
                token = await push_resolvers.register_device(
                    db=context.db,
                    principal=context.user(),
                    platform=platform,
                    push_token=push_token,
                )
            except InvalidInput as error:
                return DevicePayload(errors=user_errors(error))
        return DevicePayload(push_token=token, platform=platform)

    @strawberry.mutation(description="Forget the caller's device and its unsent pushes.")
    async def unregister_device(
        self, info: strawberry.Info[Context, None], push_token: str
    ) -> UnregisterDevicePayload:
        context = info.context
        with domain_errors():
            try:
                removed = await push_resolvers.unregister_device(
                    db=context.db, principal=context.user(), push_token=push_token
                )
            except InvalidInput as error:
                return UnregisterDevicePayload(errors=user_errors(error))
        return UnregisterDevicePayload(removed=removed)


@strawberry.type(description="A notice for the caller, with the text a phone's push shows.")
class Notification:
    app_id: strawberry.ID
    app_name: str
    text: str = strawberry.field(description="您收到一条来自 “<app name>” 的消息。")
    unread: int = strawberry.field(description="The app's unread count after this notice.")
    version: int = strawberry.field(description="The caller's badge version after it.")


@strawberry.type
class NotificationSubscription:
    @strawberry.subscription(
        description="Every notice for the caller as it arrives, with the push text (SPEC §9)."
    )
    async def notifications(
        self, info: strawberry.Info[Context, None]
    ) -> AsyncGenerator[Notification, None]:
        context = info.context
        with domain_errors():
            principal = context.user()
        stream = NotificationStream(
            db=context.db,
            hub=context.hub,
            watch=context.watch,
            cid=principal.cid,
            uid=principal.uid,
        )
        events = stream.events()
        context.meter.subscription_started("notifications")
        try:
            async for event in events:
                yield Notification(
                    app_id=strawberry.ID(str(event.app_id)),
                    app_name=event.app_name,
                    text=event.text,
                    unread=event.unread,
                    version=event.version,
                )
        finally:
            await events.aclose()
            context.meter.subscription_ended("notifications")
