"""Persistence: SQLModel tables, the engine, counter statements, queries and migrations.

Imports neither strawberry, starlette nor settings (see ``tests/test_architecture.py``).
"""
