"""appVisibility explains every SPEC §3 rule that keeps an app off a workbench."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storage.db import Database
from tests.factories import create_app, gql

EXPLAIN = """
query Explain($app: ID!, $cid: ID!, $platform: Platform!, $uid: ID) {
  appVisibility(appId: $app, cid: $cid, platform: $platform, uid: $uid) {
    appId enterpriseId userId platform visible reasons explanation
  }
}
"""
REMOVE = "mutation($id: ID!) { removeApp(appId: $id) { errors { code } } }"


async def explain(http, token, app_id, cid="1001", platform="PC", uid=None):
    """The appVisibility answer (or the error body)."""
    body = await gql(
        http, token, EXPLAIN, {"app": app_id, "cid": cid, "platform": platform, "uid": uid}
    )
    return body["data"]["appVisibility"] if body["data"] else body


async def test_visible_app(http, tokens):
    """An app every rule admits is visible, with no reasons."""
    app = await create_app(http, tokens.admin(), identifier="Plain")
    assert await explain(http, tokens.admin(), app["id"], uid="1034") == {
        "appId": app["id"],
        "enterpriseId": "1001",
        "userId": "1034",
        "platform": "PC",
        "visible": True,
        "reasons": [],
        "explanation": "visible: every rule admits it",
    }


async def test_every_failing_rule_is_listed(http, tokens, settings):
    """Disabled, off-platform and hidden-enterprise reasons are all reported together."""
    # given: PC only, hidden from 1002, then disabled
    app = await create_app(
        http,
        tokens.admin(),
        identifier="ManyReasons",
        android=None,
        ios=None,
        audience={"mode": "ALL", "enterpriseIds": ["1002"]},
    )
    db = Database(settings.database_url)
    async with db.write() as session:
        await session.execute(
            text("UPDATE app SET enabled = false WHERE id = :id"), {"id": int(app["id"])}
        )
    await db.dispose()
    # when
    verdict = await explain(http, tokens.admin(), app["id"], cid="1002", platform="IOS")
    # then
    assert verdict["visible"] is False
    assert verdict["reasons"] == ["APP_DISABLED", "NOT_ON_PLATFORM", "ENTERPRISE_HIDDEN"]
    assert verdict["explanation"] == (
        "hidden: the app is disabled; the app has no settings for this platform; "
        "the app is hidden from this enterprise"
    )


async def test_selected_audience_and_user_removal(http, tokens):
    """Enterprises outside a SELECTED audience, and a user's removal, are explained."""
    selected = await create_app(
        http,
        tokens.admin(),
        identifier="OnlyTen",
        audience={"mode": "SELECTED", "enterpriseIds": ["10"]},
    )
    assert (await explain(http, tokens.admin(), selected["id"]))["reasons"] == [
        "ENTERPRISE_NOT_SELECTED"
    ]
    removable = await create_app(http, tokens.admin(), identifier="Removable")
    await gql(http, tokens.user(), REMOVE, {"id": removable["id"]})
    assert (await explain(http, tokens.admin(), removable["id"], uid="1034"))["reasons"] == [
        "REMOVED_BY_USER"
    ]
    assert (await explain(http, tokens.admin(), removable["id"], uid="1078"))["visible"] is True
    assert (await explain(http, tokens.admin(), removable["id"]))["visible"] is True


async def test_enterprise_admin_asks_about_own_enterprise_only(http, tokens):
    """An enterprise admin may explain its own enterprise's view, not another's."""
    app = await create_app(http, tokens.admin(), identifier="AskOwn")
    own = await explain(http, tokens.enterprise_admin(cid=1001), app["id"], cid="1001")
    assert own["visible"] is True
    other = await explain(http, tokens.enterprise_admin(cid=1001), app["id"], cid="1002")
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_enterprise_admin_learns_nothing_of_other_enterprises_apps(http, tokens):
    """Another enterprise's own app is APP_NOT_FOUND to an enterprise admin, exactly like an
    unknown id; platform apps and its own apps are explained."""
    theirs = await create_app(
        http,
        tokens.enterprise_admin(cid=1002),
        identifier="TheirPrivate",
        name="别家应用",
        kind="ENTERPRISE",
    )
    mine = await create_app(
        http, tokens.enterprise_admin(cid=1001), identifier="MyPrivate", kind="ENTERPRISE"
    )
    admin = tokens.enterprise_admin(cid=1001)
    hidden = await explain(http, admin, theirs["id"])
    unknown = await explain(http, admin, "999999")
    assert hidden["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    assert unknown["errors"][0]["extensions"]["code"] == "APP_NOT_FOUND"
    assert hidden["errors"][0]["message"].replace(theirs["id"], "N") == unknown["errors"][0][
        "message"
    ].replace("999999", "N")
    assert (await explain(http, admin, mine["id"]))["visible"] is True


@pytest.mark.parametrize("role", ["user", "vendor"])
async def test_users_and_vendors_are_refused(http, tokens, codec, role):
    """Users and vendors get FORBIDDEN and no data."""
    from resolvers.identity import Role

    app = await create_app(http, tokens.admin(), identifier="NoPeek")
    token = (
        tokens.user() if role == "user" else codec.issue(cid=1, uid=1, role=Role.VENDOR, app_id=1)
    )
    body = await explain(http, token, app["id"])
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("app_id", "cid", "uid", "code"),
    [
        ("999", "1001", None, "APP_NOT_FOUND"),
        ("x", "1001", None, "INVALID_INPUT"),
        ("1", "-3", None, "INVALID_INPUT"),
        ("1", "1001", "1e3", "INVALID_INPUT"),
    ],
)
async def test_bad_arguments(http, tokens, app_id, cid, uid, code):
    """Unknown apps and malformed ids are clear errors."""
    body = await explain(http, tokens.admin(), app_id, cid=cid, uid=uid)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == code
