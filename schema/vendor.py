"""The vendor API (SPEC §8): app secrets and access tokens, notices with idempotency keys,
absolute badges, SSO ticket verification; and users' push devices (SPEC §9)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from resolvers import push as push_resolvers
from resolvers import sso
from resolvers import vendor as vendor_resolvers
from resolvers.errors import NotAuthenticated, TooManyRecipients
from resolvers.identity import parse_id
from resolvers.streams.notifications import NotificationStream
from schema.apps import App, AppPayload
from schema.context import Context
from schema.enums import Platform
from schema.errors import UserError
from schema.fields import payload_mutation, root_subscription


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

    @classmethod
    def from_outcome(cls, outcome: vendor_resolvers.VendorNoticeOutcome) -> PushAppNoticePayload:
        """Adapt a resolver outcome: one result per distinct recipient."""
        return cls(
            results=[
                RecipientResult(user=_ref(r.cid, r.uid), applied=r.applied, reason=r.reason)
                for r in outcome.results
            ],
            replayed=outcome.replayed,
        )


@strawberry.type(description="An app's count for one user and the version that set it.")
class VendorBadge:
    user: UserRef
    unread: int
    version: str

    @classmethod
    def from_set(cls, data: vendor_resolvers.BadgeSet) -> VendorBadge:
        """Adapt an applied ``setAppBadge``."""
        return cls(user=_ref(data.cid, data.uid), unread=data.unread, version=str(data.version))


@strawberry.type(description="Result of setAppBadge; when stale, current holds the state kept.")
class SetAppBadgePayload:
    badge: VendorBadge | None = None
    current: VendorBadge | None = strawberry.field(
        default=None, description="With a STALE_VERSION error: the count and version in force."
    )
    errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def stale(cls, error: vendor_resolvers.StaleVersion) -> SetAppBadgePayload:
        """A refused version: the error on ``version``, and the count and version in force."""
        return cls(
            current=VendorBadge(
                user=_ref(error.cid, error.uid),
                unread=error.unread,
                version=str(error.current_version),
            ),
            errors=[UserError.of(error, "version")],
        )


@strawberry.type(description="The user a ticket was issued for.")
class TicketUser:
    cid: strawberry.ID
    uid: strawberry.ID
    account: str

    @classmethod
    def from_data(cls, data: sso.TicketUser) -> TicketUser:
        """Adapt a verified ticket's user."""
        return cls(
            cid=strawberry.ID(str(data.cid)), uid=strawberry.ID(str(data.uid)), account=data.account
        )


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
    @payload_mutation(
        description=(
            "A new appSecret, returned once; the previous one works for a grace period "
            "(WORKBENCH_APP_SECRET_GRACE_SECONDS). The app's administrators."
        )
    )
    async def rotate_app_secret(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID
    ) -> AppPayload:
        context = info.context
        row, secret = await vendor_resolvers.rotate_app_secret(
            db=context.db,
            principal=context.caller(),
            app_id=parse_id(app_id, "appId"),
            grace_s=context.options.secret_grace_s,
            sealer=context.sealer,
        )
        return AppPayload(app=App(row=row), app_secret=secret)

    @payload_mutation(
        description=(
            "Exchange an app's id and secret for a vendor access token (2 h). Needs no "
            "Authorization header; a wrong id or secret is one UNAUTHENTICATED error."
        ),
        payload_errors={NotAuthenticated: None},
    )
    async def app_access_token(
        self, info: strawberry.Info[Context, None], app_id: strawberry.ID, app_secret: str
    ) -> AppAccessTokenPayload:
        context = info.context
        ttl = context.options.vendor_token_ttl_s
        token = await vendor_resolvers.issue_access_token(
            db=context.db,
            codec=context.codec,
            app_id=parse_id(app_id, "appId"),
            app_secret=app_secret,
            ttl_s=ttl,
        )
        return AppAccessTokenPayload(access_token=token, expires_in=ttl)

    @payload_mutation(
        description=(
            "Vendor token: one notice of the token's app for each recipient, with a result "
            "per recipient; a repeated idempotencyKey within 24 h applies nothing again."
        ),
        payload_errors={TooManyRecipients: "recipients"},
    )
    async def push_app_notice(
        self,
        info: strawberry.Info[Context, None],
        recipients: list[UserInput],
        idempotency_key: str | None = None,
    ) -> PushAppNoticePayload:
        context = info.context
        outcome = await vendor_resolvers.vendor_push_notice(
            db=context.db,
            broker=context.broker,
            app_id=vendor_resolvers.vendor_app(context.caller()),
            recipients=[r.parsed(f"recipients[{i}]") for i, r in enumerate(recipients)],
            idempotency_key=idempotency_key,
            coalesce_s=context.options.push_coalesce_s,
        )
        return PushAppNoticePayload.from_outcome(outcome)

    @payload_mutation(
        description=(
            "Vendor token: set the app's unread count for a user (cause SET). version: a "
            "decimal string that must grow; a stale one is refused with the state in force."
        ),
        payload_errors={vendor_resolvers.StaleVersion: SetAppBadgePayload.stale},
    )
    async def set_app_badge(
        self,
        info: strawberry.Info[Context, None],
        user: UserInput,
        unread: int,
        version: str,
    ) -> SetAppBadgePayload:
        context = info.context
        app_id = vendor_resolvers.vendor_app(context.caller())
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
        return SetAppBadgePayload(badge=VendorBadge.from_set(result))

    @payload_mutation(
        description=(
            "Vendor token: the user an SSO ticket of the token's app was issued for, once; "
            "used, expired, garbled or another app's tickets all give INVALID_TICKET."
        ),
        payload_errors={sso.InvalidTicket: "ticket"},
    )
    async def verify_ticket(
        self, info: strawberry.Info[Context, None], ticket: str
    ) -> VerifyTicketPayload:
        context = info.context
        app_id = vendor_resolvers.vendor_app(context.caller())
        user = await sso.verify_ticket(db=context.db, app_id=app_id, ticket=ticket)
        return VerifyTicketPayload(user=TicketUser.from_data(user))


@strawberry.type
class DeviceMutation:
    @payload_mutation(description="Register the caller's ANDROID or IOS device for push.")
    async def register_device(
        self, info: strawberry.Info[Context, None], platform: Platform, push_token: str
    ) -> DevicePayload:
        context = info.context
        token = await push_resolvers.register_device(
            db=context.db, principal=context.user(), platform=platform, push_token=push_token
        )
        return DevicePayload(push_token=token, platform=platform)

    @payload_mutation(description="Forget the caller's device and its unsent pushes.")
    async def unregister_device(
        self, info: strawberry.Info[Context, None], push_token: str
    ) -> UnregisterDevicePayload:
        context = info.context
        removed = await push_resolvers.unregister_device(
            db=context.db, principal=context.user(), push_token=push_token
        )
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
    @root_subscription(
        description="Every notice for the caller as it arrives, with the push text (SPEC §9)."
    )
    async def notifications(
        self, info: strawberry.Info[Context, None]
    ) -> AsyncGenerator[Notification, None]:
        context = info.context
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
