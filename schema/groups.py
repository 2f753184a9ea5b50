"""Groups and categories: the ``groups`` query and the platform administrator's mutations."""

from __future__ import annotations

import strawberry

from resolvers import groups as group_resolvers
from resolvers.identity import parse_id
from schema.context import Context
from schema.errors import UserError
from schema.fields import payload_mutation, root_query
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


def _ids(values: list[strawberry.ID], field: str) -> list[int]:
    return [parse_id(value, f"{field}[{index}]") for index, value in enumerate(values)]


def _optional_id(value: strawberry.ID | None, field: str) -> int | None:
    return None if value is None else parse_id(value, field)


@strawberry.type
class GroupQuery:
    @root_query(description="Every group with its categories, in workbench order. Administrators.")
    async def groups(self, info: strawberry.Info[Context, None]) -> list[AppGroup]:
        context = info.context
        tree = await group_resolvers.list_groups(db=context.db, principal=context.caller())
        return _tree(tree)


@strawberry.type
class GroupMutation:
    @payload_mutation(description="Create a group, last. platform_admin.")
    async def create_group(self, info: strawberry.Info[Context, None], name: str) -> GroupPayload:
        context = info.context
        group = await group_resolvers.create_group(
            db=context.db, principal=context.caller(), name=name
        )
        return GroupPayload(group=AppGroup.from_row(group, []))

    @payload_mutation(description="Rename a group. platform_admin.")
    async def rename_group(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, name: str
    ) -> GroupPayload:
        context = info.context
        group, categories = await group_resolvers.rename_group_with_categories(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            group_id=parse_id(id, "id"),
            name=name,
        )
        return GroupPayload(group=AppGroup.from_row(group, categories))

    @payload_mutation(description="Order the groups; ids name every group once.")
    async def reorder_groups(
        self, info: strawberry.Info[Context, None], ids: list[strawberry.ID]
    ) -> GroupsPayload:
        context = info.context
        tree = await group_resolvers.reorder_groups(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            group_ids=_ids(ids, "ids"),
        )
        return GroupsPayload(groups=_tree(tree))

    @payload_mutation(
        description="Delete a group; if its categories hold apps, moveCategoriesTo is required."
    )
    async def delete_group(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
        move_categories_to: strawberry.ID | None = None,
    ) -> DeletePayload:
        context = info.context
        await group_resolvers.delete_group(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            group_id=parse_id(id, "id"),
            move_categories_to=_optional_id(move_categories_to, "moveCategoriesTo"),
        )
        return DeletePayload(deleted_id=id)

    @payload_mutation(description="Create a category, last in its group. platform_admin.")
    async def create_category(
        self, info: strawberry.Info[Context, None], group_id: strawberry.ID, name: str
    ) -> CategoryPayload:
        context = info.context
        category = await group_resolvers.create_category(
            db=context.db,
            principal=context.caller(),
            group_id=parse_id(group_id, "groupId"),
            name=name,
        )
        return CategoryPayload(category=AppCategory.from_row(category))

    @payload_mutation(description="Rename a category. platform_admin.")
    async def rename_category(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, name: str
    ) -> CategoryPayload:
        context = info.context
        category = await group_resolvers.rename_category(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            category_id=parse_id(id, "id"),
            name=name,
        )
        return CategoryPayload(category=AppCategory.from_row(category))

    @payload_mutation(description="Order a group's categories; ids name each of them once.")
    async def reorder_categories(
        self,
        info: strawberry.Info[Context, None],
        group_id: strawberry.ID,
        ids: list[strawberry.ID],
    ) -> GroupsPayload:
        context = info.context
        tree = await group_resolvers.reorder_categories(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            group_id=parse_id(group_id, "groupId"),
            category_ids=_ids(ids, "ids"),
        )
        return GroupsPayload(groups=_tree(tree))

    @payload_mutation(description="Delete a category; if it holds apps, moveAppsTo is required.")
    async def delete_category(
        self,
        info: strawberry.Info[Context, None],
        id: strawberry.ID,
        move_apps_to: strawberry.ID | None = None,
    ) -> DeletePayload:
        context = info.context
        await group_resolvers.delete_category(
            db=context.db,
            broker=context.broker,
            principal=context.caller(),
            category_id=parse_id(id, "id"),
            move_apps_to=_optional_id(move_apps_to, "moveAppsTo"),
        )
        return DeletePayload(deleted_id=id)
