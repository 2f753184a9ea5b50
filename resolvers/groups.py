"""Workbench groups (应用分组) and their categories (应用分类): the seed's back-office lists.

Platform administrators create, rename, reorder and delete them; everyone else may only read.
Rules:

- A name is trimmed, 2..40 units wide (ASCII 1, other characters 2: 1 to 20 Chinese
  characters), shows a letter or digit, holds no control characters, and is unique among the
  groups (or among its group's categories), compared case-insensitively.
- Reordering names every group (or every category of the group) exactly once.
- The built-in default group and category (id 1) cannot be deleted. Deleting a group whose
  categories hold apps needs ``move_categories_to`` (another group: its categories move there,
  last); deleting a category that holds apps needs ``move_apps_to`` (another category: its apps
  move there, last). An empty group's categories go with it.

Every change is recorded in the audit log (``resolvers.audit``) in its own transaction, and,
once committed, the apps whose place on workbenches changed are announced to live clients
(``resolvers.catalogue_events``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from resolvers import audit
from resolvers.broker import Broker
from resolvers.catalogue_events import publish_change
from resolvers.errors import InvalidInput, PermissionDenied
from resolvers.identity import Principal, Role
from resolvers.text import has_control, has_letter_or_digit, name_units
from storage import catalogue
from storage import groups as store
from storage.db import Database
from storage.models import DEFAULT_CATEGORY_ID, DEFAULT_GROUP_ID, AppCategory, AppGroup

NAME_MIN_UNITS = 2
NAME_MAX_UNITS = 40
GroupTree = list[tuple[AppGroup, list[AppCategory]]]


def _require_platform_admin(principal: Principal) -> None:
    if principal.role is not Role.PLATFORM_ADMIN:
        raise PermissionDenied("only platform administrators manage groups and categories")


def clean_name(name: str, field: str = "name") -> str:
    """The trimmed name; raises ``InvalidInput`` naming ``field`` when a rule is broken."""
    text = name.strip()
    if has_control(text):
        raise InvalidInput.single(field, "must not contain control characters", "INVALID_NAME")
    if not NAME_MIN_UNITS <= name_units(text) <= NAME_MAX_UNITS:
        raise InvalidInput.single(
            field, "must be 2 to 40 units wide (1 to 20 Chinese characters)", "NAME_LENGTH"
        )
    if not has_letter_or_digit(text):
        raise InvalidInput.single(field, "must contain a letter or digit", "INVALID_NAME")
    return text


async def list_groups(*, db: Database, principal: Principal) -> GroupTree:
    """Every group with its categories, in workbench order, for administrators (enterprise
    administrators place their apps in them). Raises ``PermissionDenied`` for users and
    vendors: their workbench shows the groups that hold their apps (issue 3 item 1)."""
    if not principal.is_admin:
        raise PermissionDenied("only administrators may list groups")
    async with db.read() as session:
        return await catalogue.list_groups(session)


async def _group(session: AsyncSession, group_id: int, field: str = "id") -> AppGroup:
    group = await store.get_group(session, group_id=group_id)
    if group is None:
        raise InvalidInput.single(field, f"group {group_id} does not exist", "UNKNOWN_GROUP")
    return group


async def _category(session: AsyncSession, category_id: int, field: str = "id") -> AppCategory:
    category = await store.get_category(session, category_id=category_id)
    if category is None:
        raise InvalidInput.single(
            field, f"category {category_id} does not exist", "UNKNOWN_CATEGORY"
        )
    return category


def _check_permutation(ids: Sequence[int], existing: set[int | None], what: str) -> None:
    # A new order must name each of ``existing`` exactly once.
    if len(ids) != len(set(ids)) or set(ids) != existing:
        raise InvalidInput.single("ids", f"must name {what} exactly once", "NOT_A_PERMUTATION")


async def _apps_of_groups(session: AsyncSession, group_ids: Sequence[int]) -> list[int]:
    categories = await store.category_ids_of_groups(session, group_ids=group_ids)
    return await catalogue.app_ids_in_categories(session, categories)


def _record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    target_id: int | None,
    before: dict[str, object] | None,
    after: AppGroup | AppCategory | None,
) -> None:
    # One audit entry for a group or category change; ``after`` is the row as it now stands.
    if isinstance(after, AppGroup):
        snapshot: dict[str, object] | None = audit.group_snapshot(after)
    elif isinstance(after, AppCategory):
        snapshot = audit.category_snapshot(after)
    else:
        snapshot = None
    is_group = action.startswith("group.")
    audit.record(
        session,
        actor=principal,
        action=action,
        target_type=audit.TARGET_GROUP if is_group else audit.TARGET_CATEGORY,
        target_id=target_id,
        scope_cid=None,
        before=before,
        after=snapshot,
    )


def _name_taken(kind: str) -> InvalidInput:
    return InvalidInput.single("name", f"another {kind} already has this name", "NAME_TAKEN")


async def create_group(*, db: Database, principal: Principal, name: str) -> AppGroup:
    """A new group, placed last. Raises ``PermissionDenied`` or ``InvalidInput``."""
    _require_platform_admin(principal)
    text = clean_name(name)
    async with db.write() as session:
        if await store.group_name_taken(session, name=text, except_id=None):
            raise _name_taken("group")
        position = await store.next_group_position(session)
        group = await store.add_group(session, name=text, position=position)
        _record(session, principal, audit.GROUP_CREATE, group.id, None, group)
    return group


async def rename_group(
    *, db: Database, broker: Broker, principal: Principal, group_id: int, name: str
) -> AppGroup:
    """Rename a group. Raises ``PermissionDenied`` or ``InvalidInput``."""
    _require_platform_admin(principal)
    text = clean_name(name)
    async with db.write() as session:
        group = await _group(session, group_id)
        if await store.group_name_taken(session, name=text, except_id=group_id):
            raise _name_taken("group")
        before = audit.group_snapshot(group)
        group.name = text
        _record(session, principal, audit.GROUP_RENAME, group_id, before, group)
        apps = await _apps_of_groups(session, [group_id])
    await publish_change(broker, apps)
    return group


async def rename_group_with_categories(
    *, db: Database, broker: Broker, principal: Principal, group_id: int, name: str
) -> tuple[AppGroup, list[AppCategory]]:
    """``rename_group``, then the group with its categories in order, as ``list_groups`` lists
    them (what ``renameGroup`` answers). Raises what those two raise."""
    group = await rename_group(
        db=db, broker=broker, principal=principal, group_id=group_id, name=name
    )
    tree = await list_groups(db=db, principal=principal)
    return next((g, cs) for g, cs in tree if g.id == group.id)


async def reorder_groups(
    *, db: Database, broker: Broker, principal: Principal, group_ids: Sequence[int]
) -> GroupTree:
    """Put the groups in the given order (every group exactly once); returns the new tree."""
    _require_platform_admin(principal)
    async with db.write() as session:
        tree = await catalogue.list_groups(session)
        existing = {g.id for g, _ in tree}
        before = {"order": [g.id for g, _ in tree]}
        _check_permutation(group_ids, existing, "every group")
        await store.set_group_positions(session, group_ids=group_ids)
        audit.record(
            session,
            actor=principal,
            action=audit.GROUP_REORDER,
            target_type=audit.TARGET_GROUP,
            target_id=None,
            scope_cid=None,
            before=before,
            after={"order": list(group_ids)},
        )
        apps = await _apps_of_groups(session, list(group_ids))
        tree = await catalogue.list_groups(session)
    await publish_change(broker, apps)
    return tree


async def delete_group(
    *,
    db: Database,
    broker: Broker,
    principal: Principal,
    group_id: int,
    move_categories_to: int | None,
) -> None:
    """Delete a group (see the module rules). Raises ``PermissionDenied`` or ``InvalidInput``."""
    _require_platform_admin(principal)
    async with db.write() as session:
        group = await _group(session, group_id)
        before = {**audit.group_snapshot(group), "moveCategoriesTo": move_categories_to}
        apps = await _apps_of_groups(session, [group_id])
        if group_id == DEFAULT_GROUP_ID:
            raise InvalidInput.single("id", "the default group cannot be deleted", "DEFAULT_GROUP")
        categories = [
            c for g, cs in await catalogue.list_groups(session) if g.id == group_id for c in cs
        ]
        counts = await catalogue.app_counts(session)
        holds_apps = any(counts.get(c.id or 0) for c in categories)
        if move_categories_to is not None:
            target = await _group(session, move_categories_to, "moveCategoriesTo")
            if target.id == group_id:
                raise InvalidInput.single("moveCategoriesTo", "must be another group", "SAME_GROUP")
            start = await store.next_category_position(session, group_id=move_categories_to)
            for category in categories:
                if await store.category_name_taken(
                    session, group_id=move_categories_to, name=category.name, except_id=None
                ):
                    raise InvalidInput.single(
                        "moveCategoriesTo",
                        f"group {move_categories_to} already has a category named {category.name}",
                        "NAME_TAKEN",
                    )
            await store.move_categories(
                session, categories=categories, group_id=move_categories_to, start=start
            )
        elif holds_apps:
            raise InvalidInput.single(
                "moveCategoriesTo",
                "the group's categories hold apps: name a group to move them to",
                "GROUP_NOT_EMPTY",
            )
        await store.delete_group(session, group_id=group_id)
        _record(session, principal, audit.GROUP_DELETE, group_id, before, None)
    await publish_change(broker, apps)


async def create_category(
    *, db: Database, principal: Principal, group_id: int, name: str
) -> AppCategory:
    """A new category, last in its group. Raises ``PermissionDenied`` or ``InvalidInput``."""
    _require_platform_admin(principal)
    text = clean_name(name)
    async with db.write() as session:
        await _group(session, group_id, "groupId")
        if await store.category_name_taken(session, group_id=group_id, name=text, except_id=None):
            raise _name_taken("category of this group")
        position = await store.next_category_position(session, group_id=group_id)
        category = await store.add_category(
            session, group_id=group_id, name=text, position=position
        )
        _record(session, principal, audit.CATEGORY_CREATE, category.id, None, category)
    return category


async def rename_category(
    *, db: Database, broker: Broker, principal: Principal, category_id: int, name: str
) -> AppCategory:
    """Rename a category. Raises ``PermissionDenied`` or ``InvalidInput``."""
    _require_platform_admin(principal)
    text = clean_name(name)
    async with db.write() as session:
        category = await _category(session, category_id)
        if await store.category_name_taken(
            session, group_id=category.group_id, name=text, except_id=category_id
        ):
            raise _name_taken("category of this group")
        before = audit.category_snapshot(category)
        category.name = text
        _record(session, principal, audit.CATEGORY_RENAME, category_id, before, category)
        apps = await catalogue.app_ids_in_categories(session, [category_id])
    await publish_change(broker, apps)
    return category


async def reorder_categories(
    *,
    db: Database,
    broker: Broker,
    principal: Principal,
    group_id: int,
    category_ids: Sequence[int],
) -> GroupTree:
    """Put a group's categories in the given order (each exactly once); returns the tree."""
    _require_platform_admin(principal)
    async with db.write() as session:
        await _group(session, group_id, "groupId")
        current = [
            c for g, cs in await catalogue.list_groups(session) if g.id == group_id for c in cs
        ]
        existing = {c.id for c in current}
        _check_permutation(category_ids, existing, "every category of the group")
        await store.set_category_positions(session, category_ids=category_ids)
        audit.record(
            session,
            actor=principal,
            action=audit.CATEGORY_REORDER,
            target_type=audit.TARGET_GROUP,
            target_id=group_id,
            scope_cid=None,
            before={"order": [c.id for c in current]},
            after={"order": list(category_ids)},
        )
        apps = await catalogue.app_ids_in_categories(session, list(category_ids))
        tree = await catalogue.list_groups(session)
    await publish_change(broker, apps)
    return tree


async def delete_category(
    *,
    db: Database,
    broker: Broker,
    principal: Principal,
    category_id: int,
    move_apps_to: int | None,
) -> None:
    """Delete a category (see the module rules). Raises ``PermissionDenied``/``InvalidInput``."""
    _require_platform_admin(principal)
    async with db.write() as session:
        category = await _category(session, category_id)
        before = {**audit.category_snapshot(category), "moveAppsTo": move_apps_to}
        moved = await catalogue.app_ids_in_categories(session, [category_id])
        if category_id == DEFAULT_CATEGORY_ID:
            raise InvalidInput.single(
                "id", "the default category cannot be deleted", "DEFAULT_CATEGORY"
            )
        holds_apps = (await catalogue.app_counts(session)).get(category_id, 0) > 0
        if move_apps_to is not None:
            await _category(session, move_apps_to, "moveAppsTo")
            if move_apps_to == category_id:
                raise InvalidInput.single("moveAppsTo", "must be another category", "SAME_CATEGORY")
            start = await catalogue.next_app_position(session, move_apps_to)
            apps = await catalogue.apps_in_category(session, category_id)
            await catalogue.move_apps(session, apps=apps, category_id=move_apps_to, start=start)
        elif holds_apps:
            raise InvalidInput.single(
                "moveAppsTo",
                "the category holds apps: name a category to move them to",
                "CATEGORY_NOT_EMPTY",
            )
        await store.delete_category(session, category_id=category_id)
        _record(session, principal, audit.CATEGORY_DELETE, category_id, before, None)
    await publish_change(broker, moved)
