"""``storage.tables``: one typed ``Table`` per SQLModel table, the models' own objects."""

from __future__ import annotations

import sqlalchemy
from sqlalchemy import Table
from sqlmodel import SQLModel

from storage import models, tables


def test_every_table_is_exported_under_its_name():
    """storage.tables names every table of the metadata, each by its SQL name."""
    exported = {name: value for name, value in vars(tables).items() if isinstance(value, Table)}
    assert exported == dict(models.metadata.tables)


def test_each_table_is_its_models_own():
    """Each exported table is the very Table its SQLModel class maps (not a copy)."""
    mapped = [
        value
        for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, SQLModel) and value is not SQLModel
    ]
    assert len(mapped) == len(models.metadata.tables)
    for model in mapped:
        table = sqlalchemy.inspect(model).local_table
        assert getattr(tables, table.name) is table
