"""Groups and categories: the ``groups`` query and the platform administrator's mutations."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import strawberry

from resolvers import groups as group_resolvers
from resolvers.errors import InvalidInput
from resolvers.identity import parse_id
from schema.context import Context
from schema.errors import UserError, domain_errors, user_errors
from storage import models


@strawberry.type(description="A category (应用分类) of a group.")
class AppCategory:
    id: strawberry.ID
    name: str
    position: int
    group_id: strawberry.ID

    @classmethod
    def from_row(cls, row: models.AppCategory) -> AppCategory:
        """Adapt a stored category."""
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            position=row.position,
            group_id=strawberry.ID(str(row.group_id)),
        )


@strawberry.type(description="A workbench group (应用分组) and its categories, in order.")
class AppGroup:
    id: strawberry.ID
    name: str
    position: int
    categories: list[AppCategory]

    @classmethod
    def from_row(cls, row: models.AppGroup, categories: list[models.AppCategory]) -> AppGroup:
        """Adapt a stored group and its categories."""
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            position=row.position,
            categories=[AppCategory.from_row(c) for c in categories],
        )


@strawberry.type(description="Result of a change to one group.")
class GroupPayload:
    group: AppGroup | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="Result of a change to one category.")
class CategoryPayload:
    category: AppCategory | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="Result of reordering: every group, in the new order.")
class GroupsPayload:
    groups: list[AppGroup] | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(description="Result of a deletion.")
class DeletePayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


def _tree(tree: group_resolvers.GroupTree) -> list[AppGroup]:
    return [AppGroup.from_row(group, categories) for group, categories in tree]


async def _attempt(work: Awaitable[Any]) -> tuple[Any, list[UserError]]:
    # Domain errors other than input errors become GraphQL errors (schema.errors).
    with domain_errors():
        try:
            return await work, []
        except InvalidInput as error:
            return None, user_errors(error)


def _ids(values: list[strawberry.ID], field: str) -> list[int]:
    return [parse_id(value, f"{field}[{index}]") for index, value in enumerate(values)]


@strawberry.type
class GroupQuery:
    @strawberry.field(
        description="Every group with its categories, in workbench order. Administrators."
    )
    async def groups(self, info: strawberry.Info[Context, None]) -> list[AppGroup]:
        context = info.context
        with domain_errors():
            tree = await group_resolvers.list_groups(db=context.db, principal=context.caller())
        return _tree(tree)


@strawberry.type
class GroupMutation:
    @strawberry.mutation(description="Create a group, last. platform_admin.")
    async def create_group(self, info: strawberry.Info[Context, None], name: str) -> GroupPayload:
        context = info.context

        async def work() -> models.AppGroup:
            return await group_resolvers.create_group(
                db=context.db, principal=context.caller(), name=name
            )

        group, errors = await _attempt(work())
        return GroupPayload(group=group and AppGroup.from_row(group, []), errors=errors)

    @strawberry.mutation(description="Rename a group. platform_admin.")
    async def rename_group(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, name: str
    ) -> GroupPayload:
        context = info.context

        async def work() -> tuple[models.AppGroup, list[models.AppCategory]]:
            group = await group_resolvers.rename_group(
                db=context.db,
                broker=context.broker,
                principal=context.caller(),
                group_id=parse_id(id, "id"),
                name=name,
            )
            tree = await group_resolvers.list_groups(db=context.db, principal=context.caller())
            return next((g, cs) for g, cs in tree if g.id == group.id)

        found, errors = await _attempt(work())
        return GroupPayload(group=found and AppGroup.from_row(*found), errors=errors)

    @strawberry.mutation(description="Order the groups; ids name every group once.")
    async def reorder_groups(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID]
    ) -> GroupsPayload:
        context = info.context

        async def work() -> group_resolvers.GroupTree:
            return await group_resolvers.reorder_groups(
                db=context.db,
                broker=context.broker,
                principal=context.caller(),
                group_ids=_ids(ids, "ids"),
            )

        tree, errors = await _attempt(work())
        return GroupsPayload(groups=tree and _tree(tree), errors=errors)

    @strawberry.mutation(
        description="Delete a group; if its categories hold apps, moveCategoriesTo is required."
    )
    async def delete_group(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
        move_categories_to: strawberry.ID | None = None,
    ) -> DeletePayload:
        context = info.context

        async def work() -> strawberry.ID:
            await group_resolvers.delete_group(
                db=context.db,
                broker=context.broker,
                principal=context.caller(),
                group_id=parse_id(id, "id"),
                move_categories_to=None
                if move_categories_to is None
                else parse_id(move_categories_to, "moveCategoriesTo"),
            )
            return id

        deleted, errors = await _attempt(work())
        return DeletePayload(deleted_id=deleted, errors=errors)

    @strawberry.mutation(description="Create a category, last in its group. platform_admin.")
    async def create_category(
        self, info: strawberry.Info[Context, None], group_id: strawberry.ID, name: str
    ) -> CategoryPayload:
        context = info.context

        async def work() -> models.AppCategory:
            return await group_resolvers.create_category(
                db=context.db,
                principal=context.caller(),
                group_id=parse_id(group_id, "groupId"),
                name=name,
            )

        category, errors = await _attempt(work())
        return CategoryPayload(category=category and AppCategory.from_row(category), errors=errors)

    @strawberry.mutation(description="Rename a category. platform_admin.")
    async def rename_category(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, name: str
    ) -> CategoryPayload:
        context = info.context

        async def work() -> models.AppCategory:
            return await group_resolvers.rename_category(
                db=context.db,
                broker=context.broker,
                principal=context.caller(),
                category_id=parse_id(id, "id"),
                name=name,
            )

        category, errors = await _attempt(work())
        return CategoryPayload(category=category and AppCategory.from_row(category), errors=errors)

    @strawberry.mutation(description="Order a group's categories; ids name each of them once.")
    async def reorder_categories(
        self,
        info: strawberry.Info[Context, None],
        group_id: strawberry.ID,
        ids: list[strawberry.ID],
    ) -> GroupsPayload:
        context = info.context

        async def work() -> group_resolvers.GroupTree:
            return await group_resolvers.reorder_categories(
                db=context.db,
                broker=context.broker,
                principal=context.caller(),
                group_id=parse_id(group_id, "groupId"),
                category_ids=_ids(ids, "ids"),
            )

        tree, errors = await _attempt(work())
        return GroupsPayload(groups=tree and _tree(tree), errors=errors)

    @strawberry.mutation(description="Delete a category; if it holds apps, moveAppsTo is required.")
    async def delete_category(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
        move_apps_to: strawberry.ID | None = None,
    ) -> DeletePayload:
        context = info.context

        async def work() -> strawberry.ID:
            await group_resolvers.delete_category(
                db=context.db,
                broker=context.broker,
                principal=context.caller(),
                category_id=parse_id(id, "id"),
                move_apps_to=None if move_apps_to is None else parse_id(move_apps_to, "moveAppsTo"),
            )
            return id

        deleted, errors = await _attempt(work())
        return DeletePayload(deleted_id=deleted, errors=errors)
