"""Catalogue export and import for operators moving a site (issue 3 item 9): the document,
its checks, all-or-nothing application, idempotence, and the `workbench catalogue` command."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import delete, select, update

from resolvers.apps import AppDraft, PlatformDraft, create_app, hash_secret
from resolvers.audit import CATALOGUE_IMPORT
from resolvers.demo import load_demo
from resolvers.errors import InvalidInput, PermissionDenied
from resolvers.identity import Principal, Role
from resolvers.sealing import SealBroken, SecretSealer
from resolvers.transfer import (
    APP_FIELDS,
    PLATFORM_SETTINGS,
    ImportReport,
    encode_document,
    export_catalogue,
    import_catalogue,
)
from storage import catalogue, tables
from storage.db import Database
from storage.migrate import upgrade
from storage.models import App, AuditEntry, IconImage, LaunchMode, Platform
from tests.factories import BACKEND, JWT_SECRET, TIMEOUT, admin_execute

BIN = Path(sys.executable).parent / "workbench"
OPERATOR = Principal(cid=0, uid=0, account="operator", role=Role.PLATFORM_ADMIN)
Document = dict[str, Any]
SEALER = SecretSealer("x" * 40)  # the service key of both sites, in the signed-mode tests
# The app keys added to format version 1 later, and their defaults when a file lacks them.
SIGNED_MODE_DEFAULTS = {
    "legacySigned": False,
    "ipAllowlist": None,
    "appSecretSealed": None,
    "previousSecretHash": None,
    "previousSecretSealed": None,
    "previousSecretExpiresAt": None,
}


@pytest.fixture
async def empty_database_url(migrated_database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second migrated, empty database: the site a catalogue moves to."""
    if BACKEND == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
        return
    name = f"workbench_target_{uuid.uuid4().hex[:12]}"
    await admin_execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{migrated_database.rsplit('/', 1)[0]}/{name}"
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def export_bytes(url: str) -> bytes:
    """The export of the catalogue at ``url``."""
    db = Database(url)
    try:
        return (await export_catalogue(db=db)).data
    finally:
        await db.dispose()


async def import_bytes(
    url: str, data: bytes, *, dry_run: bool = False, sealer: SecretSealer | None = None
) -> ImportReport:
    """Import ``data`` into the database at ``url`` as the operator (``sealer``: the target
    site's, to check the sealed secrets with)."""
    db = Database(url)
    try:
        return await import_catalogue(
            db=db, principal=OPERATOR, data=data, dry_run=dry_run, sealer=sealer
        )
    finally:
        await db.dispose()


async def import_problems(url: str, data: bytes) -> list[str]:
    """The ``path: message`` lines of an import that must fail."""
    with pytest.raises(InvalidInput) as raised:
        await import_bytes(url, data)
    return [f"{e.field}: {e.message}" for e in raised.value.errors]


async def demo_export(url: str) -> bytes:
    """Load the demo catalogue into ``url`` and export it."""
    db = Database(url)
    try:
        await load_demo(db)
    finally:
        await db.dispose()
    return await export_bytes(url)


def encode(document: Document) -> bytes:
    """A document as the export writes it."""
    return encode_document(document)


def counts(report: ImportReport) -> dict[str, tuple[int, int, int]]:
    """``{kind: (created, updated, unchanged)}`` of a report."""
    return {
        kind: (c.created, c.updated, c.unchanged)
        for kind, c in (
            ("groups", report.groups),
            ("categories", report.categories),
            ("apps", report.apps),
            ("icons", report.icons),
        )
    }


async def import_entries(url: str) -> list[AuditEntry]:
    """The database's catalogue-import audit entries, oldest first."""
    db = Database(url)
    try:
        async with db.read() as session:
            stmt = select(AuditEntry).where(AuditEntry.action == CATALOGUE_IMPORT)  # type: ignore[arg-type]
            return list((await session.execute(stmt.order_by("id"))).scalars().all())
    finally:
        await db.dispose()


def png(size: tuple[int, int], seed: str) -> bytes:
    """A PNG of ``size`` whose colour depends on ``seed`` (distinct icons per test: the icon
    table is shared by the PostgreSQL tests)."""
    digest = hashlib.sha256(seed.encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", size, tuple(digest[:3])).save(buffer, "PNG")
    return buffer.getvalue()


async def add_uploaded_icon(url: str, identifier: str) -> str:
    """Store an uploaded icon and give it to app ``identifier``; returns the icon's id."""
    original = png((64, 64), uuid.uuid4().hex)
    icon_id = hashlib.sha256(original).hexdigest()
    db = Database(url)
    try:
        async with db.write() as session:
            session.add(
                IconImage(
                    id=icon_id,
                    media_type="image/png",
                    width=64,
                    height=64,
                    original=original,
                    rendition_48=png((48, 48), icon_id),
                )
            )
            await session.execute(
                update(tables.app)
                .where(tables.app.c.identifier == identifier)
                .values(icon=f"sha256:{icon_id}")
            )
    finally:
        await db.dispose()
    return icon_id


def cli_env(url: str) -> dict[str, str]:
    """The environment of a `workbench` run on the database at ``url``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_")}
    return {**base, "WORKBENCH_DATABASE_URL": url, "WORKBENCH_JWT_SECRET": JWT_SECRET}


async def workbench(
    *args: str, url: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run the real `workbench` command (in a thread: the test's event loop stays free)."""
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN), *args],
        env=cli_env(url),
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT * 12,
    )


# --- the round trip -------------------------------------------------------------------------------


async def test_demo_round_trip_is_byte_identical(
    database_url: str, empty_database_url: str
) -> None:
    """Demo catalogue exported, imported into an empty database, exported again: same bytes."""
    # given
    exported = await demo_export(database_url)
    # when
    report = await import_bytes(empty_database_url, exported)
    again = await export_bytes(empty_database_url)
    # then
    assert again == exported
    assert counts(report) == {
        "groups": (2, 0, 1),
        "categories": (3, 0, 1),
        "apps": (6, 0, 0),
        "icons": (0, 0, 0),
    }
    assert report.notes == []
    document = json.loads(exported)
    assert (document["format"], document["version"]) == ("workbench-catalogue", 1)
    assert [app["identifier"] for app in document["apps"]] == [
        "CorpMail",
        "Calendar",
        "OaApproval",
        "SalesReport",
        "Expenses",
        "Purchasing",
    ]
    assert exported.endswith(b"}\n")
    assert "企业邮箱".encode() in exported  # UTF-8, not \\u escapes


async def test_export_is_deterministic_and_complete(database_url: str) -> None:
    """Two exports of one catalogue are equal; every app column and platform setting is in."""
    # given
    first = await demo_export(database_url)
    # when
    second = await export_bytes(database_url)
    # then
    assert first == second
    app = json.loads(first)["apps"][4]
    assert app["audience"] == {"mode": "ALL", "enterpriseIds": ["1002"]}
    assert set(app["platforms"]) == {"PC", "ANDROID", "IOS"}
    assert len(app["appSecretHash"]) == 64
    assert app["createdAt"].endswith("Z")


def test_every_column_is_exported() -> None:
    """A new column of app or app_platform must be added to the export (or excluded here)."""
    assert {c.name for c in tables.app.columns} == {"id", *APP_FIELDS}
    assert {c.name for c in tables.app_platform.columns} == {
        "app_id",
        "platform",
        *PLATFORM_SETTINGS,
    }


async def add_signed_app(
    url: str, *, identifier: str = "Signed", sealer: SecretSealer = SEALER
) -> tuple[int, str]:
    """Create app ``identifier`` in signed legacy mode with an IP allowlist and a secret sealed
    with ``sealer``, and give it a previous (rotated) secret; returns its id and its current
    secret."""
    db = Database(url)
    try:
        created = await create_app(
            db=db,
            principal=OPERATOR,
            draft=AppDraft(
                name=f"{identifier} App",
                identifier=identifier,
                platforms={Platform.PC: PlatformDraft(LaunchMode.WEB, "https://s.example.com/")},
                legacy_signed=True,
                ip_allowlist="10.1.2.3/8 192.168.0.7",
            ),
            sealer=sealer,
        )
        app_id = created.app.id
        assert app_id is not None
        async with db.write() as session:
            await session.execute(
                update(tables.app)
                .where(tables.app.c.id == app_id)
                .values(
                    previous_secret_hash=hash_secret("the old secret"),
                    previous_secret_sealed=sealer.seal("the old secret", app_id=app_id),
                    previous_secret_expires_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
                )
            )
    finally:
        await db.dispose()
    return app_id, created.app_secret


async def stored_app(url: str, identifier: str) -> App:
    """The app ``identifier`` of the database at ``url``."""
    db = Database(url)
    try:
        async with db.read() as session:
            stmt = select(App).where(tables.app.c.identifier == identifier)
            return (await session.execute(stmt)).scalars().one()
    finally:
        await db.dispose()


async def test_uploaded_icons_travel_with_the_catalogue(
    database_url: str, empty_database_url: str
) -> None:
    """An uploaded icon is exported (base64) with the app that uses it and imported intact."""
    # given
    await demo_export(database_url)
    icon_id = await add_uploaded_icon(database_url, "CorpMail")
    exported = await export_bytes(database_url)
    # when
    first = await import_bytes(empty_database_url, exported)
    second = await import_bytes(empty_database_url, exported)
    # then
    assert await export_bytes(empty_database_url) == exported
    document = json.loads(exported)
    assert [icon["id"] for icon in document["icons"]] == [icon_id]
    assert document["apps"][0]["icon"] == f"sha256:{icon_id}"
    original = base64.b64decode(document["icons"][0]["original"])
    assert hashlib.sha256(original).hexdigest() == icon_id
    assert counts(first)["icons"] == (1, 0, 0)
    assert counts(second)["icons"] == (0, 0, 1)


async def test_icon_an_import_stops_using_is_deleted(
    database_url: str, empty_database_url: str
) -> None:
    """An uploaded icon that no app uses after an import goes (storage.icons' invariant)."""
    # given
    exported = await demo_export(database_url)
    await import_bytes(empty_database_url, exported)
    icon_id = await add_uploaded_icon(empty_database_url, "CorpMail")
    # when
    report = await import_bytes(empty_database_url, exported)
    # then
    assert counts(report)["apps"] == (0, 1, 5)
    assert report.notes == [f"icon sha256:{icon_id}: deleted, no app uses it any more"]
    db = Database(empty_database_url)
    try:
        async with db.read() as session:
            assert await session.get(IconImage, icon_id) is None
    finally:
        await db.dispose()
    assert await export_bytes(empty_database_url) == exported


async def test_cli_round_trip(database_url: str, empty_database_url: str, tmp_path: Path) -> None:
    """`catalogue export --output` (mode 0600), `import FILE`, `import -`: the same bytes."""
    # given
    await demo_export(database_url)
    path = tmp_path / "catalogue.json"
    # when
    to_file = await workbench("catalogue", "export", "--output", str(path), url=database_url)
    to_stdout = await workbench("catalogue", "export", url=database_url)
    imported = await workbench("catalogue", "import", str(path), url=empty_database_url)
    again = await workbench(
        "catalogue", "import", "-", url=empty_database_url, stdin=path.read_bytes()
    )
    back = await workbench("catalogue", "export", url=empty_database_url)
    # then
    assert to_file.returncode == 0, to_file.stderr
    assert to_file.stdout == b""
    assert b"keep it secret" in to_file.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    assert to_stdout.stdout == path.read_bytes()
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.decode().splitlines()[1:] == [
        "  groups      created     2  updated     0  unchanged     1",
        "  categories  created     3  updated     0  unchanged     1",
        "  apps        created     6  updated     0  unchanged     0",
        "  icons       created     0  updated     0  unchanged     0",
    ]
    assert again.returncode == 0, again.stderr
    assert b"apps        created     0  updated     0  unchanged     6" in again.stdout
    assert back.stdout == path.read_bytes()


async def test_signed_mode_round_trip(database_url: str, empty_database_url: str) -> None:
    """Signed legacy mode, the IP allowlist and the sealed secrets (current and previous) move
    with the app, byte-identical; with the same service key the sealed secrets open there."""
    # given
    await demo_export(database_url)
    app_id, secret = await add_signed_app(database_url)
    exported = await export_bytes(database_url)
    # when
    first = await import_bytes(empty_database_url, exported)
    second = await import_bytes(empty_database_url, exported)
    # then
    assert await export_bytes(empty_database_url) == exported
    assert counts(first)["apps"] == (7, 0, 0)
    assert counts(second)["apps"] == (0, 0, 7)
    assert first.notes == second.notes == []
    entry = json.loads(exported)["apps"][-1]
    assert entry["id"] == app_id
    assert {key: entry[key] for key in SIGNED_MODE_DEFAULTS} == {
        "legacySigned": True,
        "ipAllowlist": "10.0.0.0/8,192.168.0.7/32",
        "appSecretSealed": entry["appSecretSealed"],
        "previousSecretHash": hash_secret("the old secret"),
        "previousSecretSealed": entry["previousSecretSealed"],
        "previousSecretExpiresAt": "2026-01-02T03:04:05.000006Z",
    }
    assert entry["appSecretSealed"].startswith("v1.")
    assert entry["appSecretHash"] == hash_secret(secret)
    app = await stored_app(empty_database_url, "Signed")
    assert app.legacy_signed is True
    assert app.app_secret_sealed is not None
    assert app.previous_secret_sealed is not None
    assert SEALER.open(app.app_secret_sealed, app_id=app_id) == secret
    assert SEALER.open(app.previous_secret_sealed, app_id=app_id) == "the old secret"
    with pytest.raises(SealBroken):  # another site's service key: rotateAppSecret there
        SecretSealer("y" * 40).open(app.app_secret_sealed, app_id=app_id)
    # every demo app (created without a sealer) carries the defaults
    assert all(
        {key: other[key] for key in SIGNED_MODE_DEFAULTS} == SIGNED_MODE_DEFAULTS
        for other in json.loads(exported)["apps"][:-1]
    )


async def test_imported_allowlist_is_normalised(database_url: str, empty_database_url: str) -> None:
    """An allowlist as an administrator would type it is stored as parse_allowlist writes it."""
    # given
    document = json.loads(await demo_export(database_url))
    document["apps"][0].update(legacySigned=True, ipAllowlist=" 10.1.2.3/8, 2001:db8::1 ")
    # when
    await import_bytes(empty_database_url, encode(document))
    # then
    app = await stored_app(empty_database_url, "CorpMail")
    assert (app.legacy_signed, app.ip_allowlist) == (True, "10.0.0.0/8,2001:db8::1/128")


@pytest.mark.parametrize("embedded", [True, False])
async def test_imported_pc_embedded_browser_is_kept_as_given(
    database_url: str, empty_database_url: str, embedded: bool
) -> None:
    """A file's PC embeddedBrowser is imported as it stands, not turned into false."""
    # given
    document = json.loads(await demo_export(database_url))
    document["apps"][0]["platforms"]["PC"]["embeddedBrowser"] = embedded
    # when
    await import_bytes(empty_database_url, encode(document))
    # then
    again = json.loads(await export_bytes(empty_database_url))
    assert again["apps"][0]["platforms"]["PC"]["embeddedBrowser"] is embedded


async def test_file_without_signed_mode_keys_imports_with_defaults(
    database_url: str, empty_database_url: str
) -> None:
    """A file exported before the signed-mode keys existed still imports: false and null; an
    app of the database that this resets is reported."""
    # given
    await demo_export(database_url)
    app_id, _ = await add_signed_app(database_url)
    exported = await export_bytes(database_url)
    old = json.loads(exported)
    for entry in old["apps"]:
        for key in SIGNED_MODE_DEFAULTS:
            del entry[key]
    await import_bytes(empty_database_url, exported)
    # when
    over_signed = await import_bytes(empty_database_url, encode(old))
    # then
    assert counts(over_signed)["apps"] == (0, 1, 6)
    assert over_signed.notes == [
        "apps[6] Signed: the file has no legacySigned, ipAllowlist, appSecretSealed, "
        "previousSecretHash, previousSecretSealed, previousSecretExpiresAt "
        "(exported before they existed): reset to false/null"
    ]
    again = json.loads(await export_bytes(empty_database_url))
    assert again["apps"] == [{**entry, **SIGNED_MODE_DEFAULTS} for entry in old["apps"]]
    assert again["apps"][6]["id"] == app_id


async def test_old_file_into_an_empty_database(database_url: str, empty_database_url: str) -> None:
    """An old file into an empty database: the round trip gives it back with the defaults."""
    # given
    exported = await demo_export(database_url)
    old = json.loads(exported)
    for entry in old["apps"]:
        for key in SIGNED_MODE_DEFAULTS:
            del entry[key]
    # when
    report = await import_bytes(empty_database_url, encode(old))
    # then
    assert counts(report)["apps"] == (6, 0, 0)
    assert report.notes == []
    assert await export_bytes(empty_database_url) == exported


async def test_sealed_secrets_of_an_app_matched_under_another_id_are_reported(
    database_url: str, empty_database_url: str
) -> None:
    """Seals are bound to the app id: an app kept under another database id is reported."""
    # given
    await demo_export(database_url)
    await add_signed_app(database_url)
    document = json.loads(await export_bytes(database_url))
    for app in document["apps"]:
        app["id"] += 100
    file_id = document["apps"][6]["id"]
    db = Database(empty_database_url)
    try:
        existing = await create_app(
            db=db,
            principal=OPERATOR,
            draft=AppDraft(
                name="Old signed",
                identifier="signed",
                platforms={Platform.PC: PlatformDraft(LaunchMode.WEB, "https://o.example.com/")},
            ),
        )
    finally:
        await db.dispose()
    # when
    report = await import_bytes(empty_database_url, encode(document))
    checked = await import_bytes(empty_database_url, encode(document), sealer=SEALER)
    # then
    assert existing.app.id == 1
    assert counts(report)["apps"] == (6, 1, 0)
    warning = (
        f"apps[6] Signed: its sealed secrets belong to app id {file_id} and do not open as "
        "app 1: rotateAppSecret before it uses signed mode"
    )
    assert report.notes == [
        f"apps[6] Signed: kept database id 1 (the file says {file_id})",
        warning,
    ]
    assert report.warnings == [warning]
    # with the site's sealer: the same one warning (the key is right, the id is not)
    assert (checked.notes, checked.warnings) == (report.notes, report.warnings)


def wrong_key(app_id: int, identifier: str = "Signed") -> str:
    """The warning about an app whose current and previous sealed secrets do not open."""
    return (
        f"app {app_id} ({identifier}): its sealed secrets (current and previous) do not open "
        "with this site's WORKBENCH_JWT_SECRET; signed legacy calls will fail until "
        "rotateAppSecret"
    )


async def test_sealed_secrets_of_another_service_key_are_warned_about(
    database_url: str, empty_database_url: str
) -> None:
    """Into a site with another service key, the import goes through (appAccessToken needs
    only the hashes) but warns about every app whose sealed secrets do not open there, dry run
    or not; with the sealing site's key, nothing is said."""
    # given
    await demo_export(database_url)
    app_id, secret = await add_signed_app(database_url)  # sealed with SEALER: site A's key
    exported = await export_bytes(database_url)
    no_previous = json.loads(exported)
    no_previous["apps"][6].update(
        previousSecretHash=None, previousSecretSealed=None, previousSecretExpiresAt=None
    )
    site_b = SecretSealer("y" * 40)
    # when
    same_key = await import_bytes(empty_database_url, exported, dry_run=True, sealer=SEALER)
    current_only = await import_bytes(
        empty_database_url, encode(no_previous), dry_run=True, sealer=site_b
    )
    dry = await import_bytes(empty_database_url, exported, dry_run=True, sealer=site_b)
    imported = await import_bytes(empty_database_url, exported, sealer=site_b)
    # then
    assert (same_key.notes, same_key.warnings) == ([], [])
    assert current_only.warnings == [
        f"app {app_id} (Signed): its sealed secret does not open with this site's "
        "WORKBENCH_JWT_SECRET; signed legacy calls will fail until rotateAppSecret"
    ]
    both = wrong_key(app_id)
    assert dry.notes == dry.warnings == [both]
    assert imported.notes == imported.warnings == [both]
    assert counts(imported)["apps"] == (7, 0, 0)
    app = await stored_app(empty_database_url, "Signed")
    assert (app.id, app.app_secret_hash) == (app_id, hash_secret(secret))
    entries = await import_entries(empty_database_url)
    assert json.loads(entries[-1].after or "")["notes"] == [both]


# --- idempotence, dry runs, matching --------------------------------------------------------------


async def test_import_twice_changes_nothing_the_second_time(
    database_url: str, empty_database_url: str
) -> None:
    """The second import of a file reports everything unchanged; one audit entry each."""
    # given
    exported = await demo_export(database_url)
    await import_bytes(empty_database_url, exported)
    # when
    second = await import_bytes(empty_database_url, exported)
    # then
    assert counts(second) == {
        "groups": (0, 0, 3),
        "categories": (0, 0, 4),
        "apps": (0, 0, 6),
        "icons": (0, 0, 0),
    }
    assert await export_bytes(empty_database_url) == exported
    entries = await import_entries(empty_database_url)
    assert len(entries) == 2
    assert (entries[1].target_type, entries[1].actor_role) == ("catalogue", "platform_admin")
    assert json.loads(entries[1].after or "") == second.summary()
    assert second.summary()["sha256"] == hashlib.sha256(exported).hexdigest()


async def test_dry_run_changes_nothing(database_url: str, empty_database_url: str) -> None:
    """A dry run reports what an import would do and writes nothing, not even the audit log."""
    # given
    exported = await demo_export(database_url)
    before = await export_bytes(empty_database_url)
    # when
    report = await import_bytes(empty_database_url, exported, dry_run=True)
    # then
    assert report.dry_run
    assert counts(report)["apps"] == (6, 0, 0)
    assert await export_bytes(empty_database_url) == before
    assert await import_entries(empty_database_url) == []


async def test_new_app_after_import_gets_a_fresh_id(
    database_url: str, empty_database_url: str
) -> None:
    """Ids inserted by an import are never handed out again (PostgreSQL sequences advanced)."""
    # given
    document = json.loads(await demo_export(database_url))
    for app in document["apps"]:
        app["id"] += 100
    await import_bytes(empty_database_url, encode(document))
    db = Database(empty_database_url)
    try:
        # when
        created = await create_app(
            db=db,
            principal=OPERATOR,
            draft=AppDraft(
                name="New App",
                identifier="NewApp",
                platforms={Platform.PC: PlatformDraft(LaunchMode.WEB, "https://new.example.com/")},
            ),
        )
        async with db.write() as session:
            group_id = await catalogue.ensure_group(session, name="Fresh group", position=9)
    finally:
        await db.dispose()
    # then
    assert created.app.id == 107
    assert group_id == max(g["id"] for g in document["groups"]) + 1


async def test_import_never_moves_ids_back(database_url: str, empty_database_url: str) -> None:
    """Ids used and deleted before an import stay used: the next app still gets a fresh one."""
    # given
    exported = await demo_export(database_url)
    db = Database(empty_database_url)
    try:
        for number in range(10):
            await create_app(
                db=db,
                principal=OPERATOR,
                draft=AppDraft(
                    name=f"Temp {number}",
                    identifier=f"Temp{number:04}",
                    platforms={
                        Platform.PC: PlatformDraft(LaunchMode.WEB, "https://t.example.com/")
                    },
                ),
            )
        async with db.write() as session:
            await session.execute(delete(tables.app))
        await import_bytes(empty_database_url, exported)
        # when
        created = await create_app(
            db=db,
            principal=OPERATOR,
            draft=AppDraft(
                name="New App",
                identifier="NewApp",
                platforms={Platform.PC: PlatformDraft(LaunchMode.WEB, "https://new.example.com/")},
            ),
        )
    finally:
        await db.dispose()
    # then
    assert created.app.id == 11


async def test_existing_app_is_updated_in_place(database_url: str, empty_database_url: str) -> None:
    """An app matched by identifier (any case) takes the file's values and keeps its id."""
    # given
    document = json.loads(await demo_export(database_url))
    for app in document["apps"]:
        app["id"] += 100
    db = Database(empty_database_url)
    try:
        existing = await create_app(
            db=db,
            principal=OPERATOR,
            draft=AppDraft(
                name="Old mail",
                identifier="corpmail",
                platforms={Platform.PC: PlatformDraft(LaunchMode.WEB, "https://old.example.com/")},
            ),
        )
        # when
        report = await import_bytes(empty_database_url, encode(document))
        async with db.read() as session:
            app = await catalogue.get_app(session, 1)
            platforms = await catalogue.platform_settings(session, [1])
    finally:
        await db.dispose()
    # then
    assert existing.app.id == 1
    assert counts(report)["apps"] == (5, 1, 0)
    assert report.notes == ["apps[0] CorpMail: kept database id 1 (the file says 101)"]
    assert app is not None
    assert (app.identifier, app.name, app.app_key) == (
        "CorpMail",
        "企业邮箱",
        document["apps"][0]["appKey"],
    )
    assert set(platforms[1]) == set(Platform)
    again = json.loads(await export_bytes(empty_database_url))
    assert again["apps"][0] == {**document["apps"][0], "id": 1}
    assert again["apps"][1:] == document["apps"][1:]


async def test_groups_match_by_name_and_avoid_taken_ids(
    database_url: str, empty_database_url: str
) -> None:
    """A group known by name is reused; a file id held by another group gets a new id; apps
    follow their categories."""
    # given
    exported = await demo_export(database_url)
    db = Database(empty_database_url)
    try:
        async with db.write() as session:
            taken = await catalogue.ensure_group(session, name="业务系统", position=5)
        # when
        report = await import_bytes(empty_database_url, exported)
        async with db.read() as session:
            tree = await catalogue.list_groups(session)
            apps = (await session.execute(select(App).order_by(tables.app.c.id))).scalars().all()
    finally:
        await db.dispose()
    # then
    assert taken == 2
    assert report.notes == [
        "groups[1] 沟通协作: created as group 3 (id 2 belongs to another group)"
    ]
    assert [(g.id, g.name, g.position) for g, _ in tree] == [
        (1, "默认分组", 0),
        (3, "沟通协作", 0),
        (2, "业务系统", 2),
    ]
    where = {c.id: (g.name, c.name) for g, categories in tree for c in categories}
    assert [(a.identifier, where[a.category_id]) for a in apps] == [
        ("CorpMail", ("沟通协作", "沟通协作")),
        ("Calendar", ("沟通协作", "沟通协作")),
        ("OaApproval", ("业务系统", "审批")),
        ("SalesReport", ("业务系统", "报表")),
        ("Expenses", ("业务系统", "报表")),
        ("Purchasing", ("业务系统", "审批")),
    ]


async def test_only_platform_administrators_import(database_url: str) -> None:
    """An enterprise administrator may not import a catalogue."""
    db = Database(database_url)
    admin = Principal(cid=1001, uid=9, account="ea", role=Role.ENTERPRISE_ADMIN)
    try:
        with pytest.raises(PermissionDenied):
            await import_catalogue(db=db, principal=admin, data=b"{}")
    finally:
        await db.dispose()


# --- refusals -------------------------------------------------------------------------------------


async def test_every_problem_is_reported_and_nothing_changes(database_url: str) -> None:
    """Several broken rules at once: all reported with their paths; the database is as it was."""
    # given
    document = json.loads(await demo_export(database_url))
    before = await export_bytes(database_url)
    apps = document["apps"]
    apps[0]["name"] = "x"
    apps[0]["appKey"] = apps[1]["appKey"]
    apps[1]["platforms"]["PC"]["webUrl"] = "ftp://mail.example.com/"
    apps[2]["categoryId"] = 999
    apps[2]["name"] = "A renamed app"  # valid, but must not be applied either
    apps[3]["enabled"] = "yes"
    apps[3]["createdAt"] = "yesterday"
    apps[4]["colour"] = "red"
    apps[5]["audience"]["enterpriseIds"] = ["12a"]
    apps[5]["platforms"]["ANDROID"]["autoLogin"] = True
    document["groups"][1]["name"] = " "
    document["groups"][2]["categories"][1]["id"] = document["groups"][2]["categories"][0]["id"]
    document["comment"] = "moved"
    # when
    problems = await import_problems(database_url, encode(document))
    # then
    assert problems == [
        "comment: is not a field of this format",
        "groups[1].name: must be 2 to 40 units wide (1 to 20 Chinese characters)",
        "groups[2].categories[1].id: is also the id of groups[2].categories[0]",
        "apps[0].name: must be 4 to 20 units wide (ASCII 1, other characters 2): "
        "2 to 10 Chinese characters",
        "apps[0].appKey: is the app key of app 2 (Calendar) in the database",
        "apps[1].platforms.PC.webUrl: must be an absolute http(s) URL",
        "apps[1].appKey: is also the app key of apps[0]",
        "apps[2].categoryId: category 999 is not in the file's groups",
        "apps[3].enabled: input should be a valid boolean",
        "apps[3].createdAt: must be an ISO-8601 time with its UTC offset, "
        "e.g. 2026-01-02T03:04:05Z",
        "apps[4].colour: is not a field of this format",
        "apps[5].platforms.ANDROID.loginParams: is required with autoLogin",
        "apps[5].audience.enterpriseIds[0]: must be a decimal id of 1 to 19 digits",
    ]
    assert await export_bytes(database_url) == before
    assert await import_entries(database_url) == []


async def test_bad_signed_mode_values_are_reported(database_url: str) -> None:
    """The allowlist, sealed secrets, previous hash and expiry are checked, with their paths."""
    # given
    document = json.loads(await demo_export(database_url))
    before = await export_bytes(database_url)
    apps = document["apps"]
    apps[0]["ipAllowlist"] = "10.0.0.1, 300.1.2.3"
    apps[1]["legacySigned"] = "true"
    apps[2]["appSecretSealed"] = "v2." + base64.urlsafe_b64encode(bytes(40)).decode()
    apps[2]["previousSecretHash"] = "ABC"
    apps[2]["previousSecretSealed"] = "v1.not base64!"
    apps[3]["previousSecretExpiresAt"] = "2026-01-02T03:04:05"
    apps[4]["appSecretSealed"] = "v1." + base64.urlsafe_b64encode(bytes(8)).decode()  # too short
    apps[4]["previousSecretHash"] = "0" * 63
    apps[5]["ipAllowlist"] = 7
    # when
    problems = await import_problems(database_url, encode(document))
    # then
    assert problems == [
        "apps[0].ipAllowlist: '300.1.2.3' is not an IP address or network",
        "apps[1].legacySigned: input should be a valid boolean",
        "apps[2].appSecretSealed: must be null or a sealed secret: v1. then URL-safe base64",
        "apps[2].previousSecretHash: must be null or 64 lower-case hex digits (a SHA-256)",
        "apps[2].previousSecretSealed: must be null or a sealed secret: v1. then URL-safe base64",
        "apps[3].previousSecretExpiresAt: must be an ISO-8601 time with its UTC offset, "
        "e.g. 2026-01-02T03:04:05Z",
        "apps[4].appSecretSealed: must be null or a sealed secret: v1. then URL-safe base64",
        "apps[4].previousSecretHash: must be null or 64 lower-case hex digits (a SHA-256)",
        "apps[5].ipAllowlist: input should be a valid string",
    ]
    assert await export_bytes(database_url) == before


async def test_identifiers_differing_only_in_case_are_duplicates(
    database_url: str, empty_database_url: str
) -> None:
    """Two apps whose identifiers differ only in case are refused (SPEC §2)."""
    # given
    document = json.loads(await demo_export(database_url))
    twin = copy.deepcopy(document["apps"][0])
    twin.update(id=50, appKey="f" * 32, identifier="CORPMAIL")
    document["apps"].append(twin)
    # when
    problems = await import_problems(empty_database_url, encode(document))
    # then
    assert problems == [
        "apps[6].identifier: is also the identifier of apps[0] (compared case-insensitively)"
    ]
    assert await import_entries(empty_database_url) == []


async def test_icon_whose_hash_does_not_match_is_refused(
    database_url: str, empty_database_url: str
) -> None:
    """An icon's id must be the SHA-256 of its original; nothing is imported otherwise."""
    # given
    await demo_export(database_url)
    icon_id = await add_uploaded_icon(database_url, "Calendar")
    document = json.loads(await export_bytes(database_url))
    other = png((64, 64), "another picture")
    document["icons"][0]["original"] = base64.b64encode(other).decode()
    before = await export_bytes(empty_database_url)
    # when
    problems = await import_problems(empty_database_url, encode(document))
    # then
    assert problems == [
        f"icons[0].id: does not match the original, whose SHA-256 is "
        f"{hashlib.sha256(other).hexdigest()}"
    ]
    assert icon_id != hashlib.sha256(other).hexdigest()
    assert await export_bytes(empty_database_url) == before


async def test_icons_are_judged_like_uploads(database_url: str, empty_database_url: str) -> None:
    """An original that is no image, and a rendition that is not 48x48, are refused."""
    # given
    await demo_export(database_url)
    await add_uploaded_icon(database_url, "Calendar")
    document = json.loads(await export_bytes(database_url))
    junk = b"GIF89a but not really"
    document["icons"][0]["original"] = base64.b64encode(junk).decode()
    document["icons"][0]["id"] = hashlib.sha256(junk).hexdigest()
    document["apps"][1]["icon"] = f"sha256:{document['icons'][0]['id']}"
    document["icons"][0]["rendition48"] = base64.b64encode(png((64, 64), "big")).decode()
    # when
    with pytest.raises(InvalidInput) as raised:
        await import_bytes(empty_database_url, encode(document))
    # then
    assert [(e.field, e.code) for e in raised.value.errors] == [
        ("icons[0].original", "ICON_UNREADABLE"),
        ("icons[0].rendition48", "INVALID_RENDITION"),
    ]


async def test_unknown_icon_reference_is_refused(
    database_url: str, empty_database_url: str
) -> None:
    """An app's sha256 icon must be in the file or already in the database."""
    document = json.loads(await demo_export(database_url))
    document["apps"][1]["icon"] = "sha256:" + "0" * 64
    document["apps"][2]["icon"] = "logo.png"
    problems = await import_problems(empty_database_url, encode(document))
    assert problems == [
        "apps[1].icon: names an icon that is neither in the file's icons nor in the database",
        "apps[2].icon: must be a built-in icon (app, chat, calendar, mail, document, chart) "
        "or sha256:<64 hex digits>",
    ]


async def test_app_key_or_id_of_another_app_is_not_taken_over(database_url: str) -> None:
    """A file app whose app key and id belong to another app of the database is refused."""
    # given
    document = json.loads(await demo_export(database_url))
    document["apps"][0]["identifier"] = "CorpMail2"
    before = await export_bytes(database_url)
    # when
    problems = await import_problems(database_url, encode(document))
    # then
    assert problems == [
        "apps[0].appKey: is the app key of app 1 (CorpMail) in the database",
        "apps[0].id: app id 1 belongs to app CorpMail in the database",
    ]
    assert await export_bytes(database_url) == before


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'{\n  "format": "workbench-catalogue",\n  "version": 1,,\n}',
            "invalid JSON at line 3 column 16: Expecting property name enclosed in double quotes",
        ),
        (b"[]", "not a catalogue export: the file is not a JSON object"),
        (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
        (b'{"version": 1}', 'is null, not "workbench-catalogue": not a catalogue export'),
        (
            b'{"format": "workbench-catalogue", "version": 2}',
            "is 2; this workbench reads version 1 only",
        ),
        (
            b'{"format": "workbench-catalogue", "version": "1"}',
            'is "1"; this workbench reads version 1 only',
        ),
        (b'{"format": "workbench-catalogue", "version": NaN}', "invalid JSON: NaN is not JSON"),
    ],
    ids=["syntax", "not an object", "not utf-8", "no format", "version 2", "version string", "NaN"],
)
async def test_files_that_are_no_catalogue(database_url: str, data: bytes, message: str) -> None:
    """Not JSON, not a catalogue, or another version: one clear problem."""
    with pytest.raises(InvalidInput) as raised:
        await import_bytes(database_url, data)
    assert [e.message for e in raised.value.errors] == [message]


async def test_missing_sections_are_reported(database_url: str) -> None:
    """A catalogue without groups, apps or icons lists each missing section."""
    problems = await import_problems(
        database_url, b'{"format": "workbench-catalogue", "version": 1, "apps": {}}'
    )
    assert problems == ["groups: is required", "apps: must be a list", "icons: is required"]


# --- the command's refusals -----------------------------------------------------------------------


async def test_cli_warns_about_sealed_secrets_that_do_not_open(
    database_url: str, empty_database_url: str, tmp_path: Path
) -> None:
    """`catalogue import` (and its dry run) names on stderr each app whose sealed secrets do
    not open with its WORKBENCH_JWT_SECRET, and imports all the same."""
    # given
    await demo_export(database_url)
    other_id, _ = await add_signed_app(database_url)  # sealed with another site's key
    await add_signed_app(database_url, identifier="SignedHere", sealer=SecretSealer(JWT_SECRET))
    path = tmp_path / "catalogue.json"
    path.write_bytes(await export_bytes(database_url))
    # when
    dry = await workbench("catalogue", "import", "--dry-run", str(path), url=empty_database_url)
    real = await workbench("catalogue", "import", str(path), url=empty_database_url)
    again = await workbench("catalogue", "import", str(path), url=empty_database_url)
    # then
    note = wrong_key(other_id)
    for done in (dry, real, again):
        assert done.returncode == 0, done.stderr
        assert done.stderr.decode() == f"warning: {note}\n"
        assert f"  {note}\n" in done.stdout.decode()  # among the report's notes too
    assert b"apps        created     8  updated     0  unchanged     0" in real.stdout
    assert (await stored_app(empty_database_url, "Signed")).id == other_id


async def test_cli_refuses_a_sqlite_database_that_does_not_exist(
    database_url: str, tmp_path: Path
) -> None:
    """Import (dry run or not) and export on a SQLite file that does not exist: one line
    saying to migrate first, exit 1, and no empty database file left behind."""
    # given
    path = tmp_path / "catalogue.json"
    path.write_bytes(await demo_export(database_url))
    missing = tmp_path / "second.db"
    url = f"sqlite+aiosqlite:///{missing}"
    # when
    done = [
        await workbench("catalogue", "import", "--dry-run", str(path), url=url),
        await workbench("catalogue", "import", str(path), url=url),
        await workbench("catalogue", "export", url=url),
    ]
    # then
    for d in done:
        assert d.returncode == 1
        assert d.stdout == b""
        assert d.stderr.decode() == (
            f"no database at {missing}: run WORKBENCH_DATABASE_URL={url} workbench migrate first\n"
        )
    assert not missing.exists()


async def test_cli_refusals_are_one_line(database_url: str, tmp_path: Path) -> None:
    """Unreadable, oversized, invalid-JSON and wrong-version files: one line each, exit 1."""
    # given
    cases = {
        "missing": (tmp_path / "missing.json", None),
        "folder": (tmp_path, None),
        "json": (tmp_path / "bad.json", b'{"format": "workbench-catalogue",\n  "apps": [,]}'),
        "version": (tmp_path / "v2.json", b'{"format": "workbench-catalogue", "version": 2}'),
        "huge": (tmp_path / "huge.json", b""),
    }
    for path, content in cases.values():
        if content is not None:
            path.write_bytes(content)
    os.truncate(cases["huge"][0], 64 * 2**20 + 1)
    # when
    done = {
        name: await workbench("catalogue", "import", str(path), url=database_url)
        for name, (path, _) in cases.items()
    }
    # then
    assert {name: d.returncode for name, d in done.items()} == dict.fromkeys(cases, 1)
    assert {name: d.stderr.decode() for name, d in done.items()} == {
        "missing": f"cannot read {cases['missing'][0]}: No such file or directory\n",
        "folder": f"cannot read {tmp_path}: Is a directory\n",
        "json": f"cannot import {cases['json'][0]}: invalid JSON at line 2 column 12: "
        "Expecting value\n",
        "version": f"cannot import {cases['version'][0]}: version: is 2; this workbench reads "
        "version 1 only\n",
        "huge": f"cannot import {cases['huge'][0]}: larger than 64 MiB, the most an import takes\n",
    }


async def test_a_repeated_enterprise_id_in_an_audience_is_refused(
    database_url: str, empty_database_url: str
) -> None:
    """An app whose audience lists one enterprise twice is refused on that path, not stored
    with the id once (issue 11 M5); nothing is imported."""
    # given
    document = json.loads(await demo_export(database_url))
    document["apps"][0]["audience"] = {"mode": "SELECTED", "enterpriseIds": ["1001", "1001"]}
    document["apps"][1]["audience"] = {"mode": "ALL", "enterpriseIds": ["1002", "7", "1002"]}
    # when
    problems = await import_problems(empty_database_url, encode(document))
    # then
    assert problems == [
        "apps[0].audience.enterpriseIds: lists enterprise 1001 more than once (entries 0 and 1)",
        "apps[1].audience.enterpriseIds: lists enterprise 1002 more than once (entries 0 and 2)",
    ]
    assert await import_entries(empty_database_url) == []
