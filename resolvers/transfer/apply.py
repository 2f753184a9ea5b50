"""``import_catalogue``: check the whole file, then write it in one transaction, or nothing
(rules in the ``resolvers.transfer`` docstring). Groups and categories are matched by id and
name, apps by identifier, icons by content; on PostgreSQL the id sequences are moved past the
ids written. Given this site's ``SecretSealer``, it reports the apps whose sealed secrets will
not open here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy.ext.asyncio import AsyncSession

from resolvers import audit
from resolvers.errors import InvalidInput, PermissionDenied
from resolvers.identity import Principal, Role
from resolvers.sealing import SealBroken, SecretSealer
from resolvers.transfer.problems import problem_order
from resolvers.transfer.report import Counts, ImportReport
from resolvers.transfer.state import NEW_APP_FIELDS, AppState, load_apps
from resolvers.transfer.validate import App, Category, Group, Parsed, check_against_database, parse
from storage import catalogue
from storage import groups as groups_store
from storage import transfer as store
from storage.db import Database
from storage.icons import delete_if_unreferenced
from storage.models import AppCategory, AppGroup, utcnow


class _DryRun(Exception):
    """Rolls a dry run's transaction back, carrying its report out."""

    def __init__(self, report: ImportReport) -> None:
        super().__init__("dry run")
        self.report = report


async def import_catalogue(
    *,
    db: Database,
    principal: Principal,
    data: bytes,
    dry_run: bool = False,
    sealer: SecretSealer | None = None,
) -> ImportReport:
    """Import an export document (issue 3 item 9; rules in the ``resolvers.transfer``
    docstring) in one transaction, and record one audit entry (``catalogue.import``) with the
    report.

    ``dry_run`` runs every check and every write, then rolls back: the report says what an
    import would do. Raises ``PermissionDenied`` unless ``principal`` is a platform
    administrator, and ``InvalidInput`` with every problem found (paths like
    ``apps[3].platforms.PC.webUrl``) when anything is wrong, changing nothing.

    ``sealer`` is this site's (``SecretSealer(settings.secret_key())``): each app's sealed
    secrets present in the file are opened with it as the app id the app gets here, and each
    app whose secrets do not open gets a warning in the report (``ImportReport.warnings``):
    its signed legacy calls would fail until ``rotateAppSecret``. The import goes on all the
    same. ``None`` checks nothing (an app kept under another id than the file's is reported
    either way: its seals are bound to the file's id).
    """
    if principal.role is not Role.PLATFORM_ADMIN:
        raise PermissionDenied("only platform administrators import a catalogue")
    parsed = await asyncio.to_thread(parse, data)  # CPU-bound: icons are decoded
    report = ImportReport(digest=parsed.digest, dry_run=dry_run)
    try:
        async with db.write() as session:
            # Validation and writes see one state: no administrator's change slips between.
            await store.lock_catalogue(session)
            await _apply(session, parsed, report, sealer)
            if dry_run:
                raise _DryRun(report)
            audit.record(
                session,
                actor=principal,
                action=audit.CATALOGUE_IMPORT,
                target_type=audit.TARGET_CATALOGUE,
                target_id=None,
                scope_cid=None,
                after=report.summary(),
            )
            await store.advance_id_sequences(session)
    except _DryRun as done:
        return done.report
    return report


@dataclass(slots=True)
class _Existing:
    """A group or category of the database; ``parent`` is a category's group."""

    id: int
    name: str
    position: int
    parent: int = 0


def _match(
    wanted: Sequence[Group] | Sequence[Category],
    existing: Mapping[int, _Existing],
) -> dict[int, int]:
    """File id -> database id of the rows that match: same id and name (case-insensitive),
    else the lowest unmatched id of that name."""
    matched: dict[int, int] = {}
    for item in wanted:
        row = existing.get(item.id)
        if row is not None and row.name.lower() == item.name.lower():
            matched[item.id] = row.id
    taken = set(matched.values())
    by_name: dict[str, list[int]] = {}
    for row in sorted(existing.values(), key=lambda r: r.id):
        by_name.setdefault(row.name.lower(), []).append(row.id)
    for item in wanted:
        if item.id in matched:
            continue
        free = [i for i in by_name.get(item.name.lower(), []) if i not in taken]
        if free:
            matched[item.id] = free[0]
            taken.add(free[0])
    return matched


def _new_ids(
    wanted: Sequence[Group] | Sequence[Category],
    matched: Mapping[int, int],
    used: set[int],
    kind: str,
    notes: list[str],
) -> dict[int, int]:
    """Ids for the rows to create: the file's when no row has it, else past every id in use
    (``used`` is updated)."""
    created: dict[int, int] = {}
    later = []
    for item in wanted:
        if item.id in matched:
            continue
        if item.id in used:
            later.append(item)
        else:
            created[item.id] = item.id
            used.add(item.id)
    for item in later:
        new_id = max(used, default=0) + 1
        created[item.id] = new_id
        used.add(new_id)
        notes.append(
            f"{item.path} {item.name}: created as {kind} {new_id} "
            f"(id {item.id} belongs to another {kind})"
        )
    return created


async def _apply(
    session: AsyncSession, parsed: Parsed, report: ImportReport, sealer: SecretSealer | None
) -> None:
    """Check the file against the database, then write it. Raises ``InvalidInput`` with every
    problem (the file's own and those against the database) before writing anything."""
    tree = await catalogue.list_groups(session)
    apps_db = await load_apps(session)
    icon_ids = await store.icon_ids(session)
    errors = list(parsed.errors)
    errors.extend(check_against_database(parsed, apps_db, icon_ids))
    if errors:
        errors.sort(key=problem_order)
        raise InvalidInput(errors)
    category_ids = await _apply_groups(session, parsed.groups, tree, report)
    await _apply_icons(session, parsed.icons, icon_ids, report)
    await _apply_apps(session, parsed.apps, apps_db, category_ids, report, sealer)


async def _apply_groups(
    session: AsyncSession,
    groups: Sequence[Group],
    tree: Sequence[tuple[AppGroup, Sequence[AppCategory]]],
    report: ImportReport,
) -> dict[int, int]:
    """Match, update or create the file's groups and categories; returns the database id of
    each file category id."""
    groups_db = {g.id: _Existing(g.id, g.name, g.position) for g, _ in tree if g.id is not None}
    categories_db = {
        c.id: _Existing(c.id, c.name, c.position, c.group_id)
        for _, categories in tree
        for c in categories
        if c.id is not None
    }
    group_match = _match(groups, groups_db)
    group_new = _new_ids(groups, group_match, set(groups_db), "group", report.notes)
    category_ids: dict[int, int] = {}
    category_used = set(categories_db)
    for group in groups:
        if group.id in group_match:
            group_id = group_match[group.id]
            if _renamed_or_moved(groups_db[group_id], group, report.groups):
                await groups_store.update_group(
                    session, group_id=group_id, name=group.name, position=group.position
                )
        else:
            group_id = group_new[group.id]
            report.groups.created += 1
            await groups_store.insert_group(
                session, group_id=group_id, name=group.name, position=group.position
            )
        siblings = {k: v for k, v in categories_db.items() if v.parent == group_id}
        matched = _match(group.categories, siblings)
        created = _new_ids(group.categories, matched, category_used, "category", report.notes)
        for category in group.categories:
            if category.id in matched:
                row = categories_db[matched[category.id]]
                if _renamed_or_moved(row, category, report.categories):
                    await groups_store.update_category(
                        session, category_id=row.id, name=category.name, position=category.position
                    )
                category_ids[category.id] = row.id
                continue
            category_ids[category.id] = created[category.id]
            report.categories.created += 1
            await groups_store.insert_category(
                session,
                category_id=created[category.id],
                group_id=group_id,
                name=category.name,
                position=category.position,
            )
    return category_ids


async def _apply_apps(
    session: AsyncSession,
    apps: Sequence[App],
    apps_db: Mapping[int, AppState],
    category_ids: Mapping[int, int],
    report: ImportReport,
    sealer: SecretSealer | None,
) -> None:
    """Update the apps the database has (by identifier) and create the others; new rows are
    inserted in batches (executemany) at the end. Uploaded icons that updated apps no longer
    use are deleted when no other app uses them. Apps whose sealed secrets will not open here
    (with ``sealer``, or kept under another id) are warned about."""
    by_identifier = {state.row["identifier_key"]: i for i, state in apps_db.items()}
    new_apps: list[dict[str, Any]] = []
    new_platforms: list[dict[str, Any]] = []
    new_audience: list[dict[str, Any]] = []
    replaced: set[str] = set()
    for entry in apps:
        assert entry.state is not None  # every problem was raised before writing
        wanted = replace(
            entry.state,
            row={**entry.state.row, "category_id": category_ids[entry.doc.category_id]},
        )
        found = by_identifier.get(wanted.row["identifier_key"])
        current = None if found is None else apps_db[found]
        app_id = entry.doc.id if found is None else found
        sealed = wanted.row["app_secret_sealed"] or wanted.row["previous_secret_sealed"]
        if app_id != entry.doc.id:
            report.notes.append(
                f"{entry.path} {wanted.row['identifier']}: kept database id {app_id} "
                f"(the file says {entry.doc.id})"
            )
            if sealed:
                # The app id is the seal's associated data (resolvers.sealing): whether the
                # service key differs too changes nothing.
                report.warn(
                    f"{entry.path} {wanted.row['identifier']}: its sealed secrets belong "
                    f"to app id {entry.doc.id} and do not open as app {app_id}: "
                    "rotateAppSecret before it uses signed mode"
                )
        elif sealed and sealer is not None:
            broken = _unopened(sealer, wanted, app_id)
            if broken:
                report.warn(_broken_note(app_id, wanted.row["identifier"], broken))
        if found is None:
            report.apps.created += 1
            new_apps.append({"id": app_id, **wanted.row})
        else:
            defaulted = _defaulted(entry, apps_db[app_id], wanted)
            if defaulted:
                report.notes.append(
                    f"{entry.path} {wanted.row['identifier']}: the file has no "
                    f"{', '.join(defaulted)} (exported before they existed): reset to "
                    "false/null"
                )
            if current == wanted:
                report.apps.unchanged += 1
                continue
            report.apps.updated += 1
            await store.update_app_row(session, app_id=app_id, values=wanted.row)
            if current is not None and current.row["icon"] != wanted.row["icon"]:
                replaced.add(current.row["icon"])
        if current is None or current.platforms != wanted.platforms:
            if current is not None:
                await catalogue.delete_platforms(session, app_id=app_id)
            new_platforms.extend(
                {"app_id": app_id, "platform": p.value, **settings}
                for p, settings in wanted.platforms.items()
            )
        if current is None or current.audience != wanted.audience:
            if current is not None:
                await catalogue.delete_audience(session, app_id=app_id)
            new_audience.extend({"app_id": app_id, "cid": cid} for cid in wanted.audience)
    await store.insert_catalogue_rows(
        session, apps=new_apps, platforms=new_platforms, audience=new_audience
    )
    for ref in sorted(replaced):
        # An uploaded icon lives as long as an app refers to it (storage.icons).
        if await delete_if_unreferenced(session, ref):
            report.notes.append(f"icon {ref}: deleted, no app uses it any more")


def _unopened(sealer: SecretSealer, wanted: AppState, app_id: int) -> list[str]:
    """The columns of ``wanted``'s sealed secrets (current, previous) that do not open with
    ``sealer`` as app ``app_id``."""
    broken = []
    for column in ("app_secret_sealed", "previous_secret_sealed"):
        value = wanted.row[column]
        if value is None:
            continue
        try:
            sealer.open(value, app_id=app_id)
        except SealBroken:
            broken.append(column)
    return broken


def _broken_note(app_id: int, identifier: str, broken: Sequence[str]) -> str:
    """The warning about app ``app_id`` whose sealed secrets in ``broken`` do not open."""
    site_key = "this site's WORKBENCH_JWT_SECRET"
    if broken == ["previous_secret_sealed"]:
        return (
            f"app {app_id} ({identifier}): its previous sealed secret does not open with "
            f"{site_key}; signed legacy calls with the previous secret will fail"
        )
    if len(broken) == 1:
        what = "its sealed secret does not open"
    else:
        what = "its sealed secrets (current and previous) do not open"
    return (
        f"app {app_id} ({identifier}): {what} with {site_key}; signed legacy calls will fail "
        "until rotateAppSecret"
    )


def _defaulted(entry: App, current: AppState, wanted: AppState) -> list[str]:
    """The optional fields the file's app lacks whose default changes the database's app."""
    given = entry.doc.model_fields_set
    return [
        to_camel(name)
        for name in NEW_APP_FIELDS
        if name not in given and current.row[name] != wanted.row[name]
    ]


def _renamed_or_moved(row: _Existing, wanted: Group | Category, counts: Counts) -> bool:
    """Whether a matched group or category needs the file's name and position; counted."""
    if (row.name, row.position) == (wanted.name, wanted.position):
        counts.unchanged += 1
        return False
    counts.updated += 1
    return True


async def _apply_icons(
    session: AsyncSession,
    icons: Mapping[str, Mapping[str, Any]],
    existing: set[str],
    report: ImportReport,
) -> None:
    """Create the file's icons the database lacks. One that exists has the same original (the
    id is its hash); its other columns become the file's."""
    columns = ("media_type", "width", "height", "rendition_48")
    rows = []
    for icon_id, icon in icons.items():
        values = {name: icon[name] for name in columns}
        if icon_id not in existing:
            report.icons.created += 1
            rows.append(
                {"id": icon_id, "original": icon["original"], "created_at": utcnow(), **values}
            )
            continue
        current = await store.icon_values(session, icon_id=icon_id, columns=columns)
        if current == values:
            report.icons.unchanged += 1
        else:
            report.icons.updated += 1
            await store.update_icon(session, icon_id=icon_id, values=values)
    await store.insert_icons(session, rows=rows)
