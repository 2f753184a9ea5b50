"""The committed ``schema.graphql`` matches the code, and SPEC §7's fixed names are present."""

from __future__ import annotations

from pathlib import Path

from schema import build_schema

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"


def test_schema_file_is_current():
    """schema.graphql equals the SDL the code builds (`workbench schema > schema.graphql`)."""
    assert SCHEMA_FILE.read_text() == build_schema().as_str() + "\n"


def test_fixed_names_of_spec_section_7():
    """Every name SPEC §7 fixes for this issue exists with its exact signature."""
    sdl = build_schema().as_str()
    for line in (
        "workbench(platform: Platform!): Workbench!",
        "createApp(input: AppInput!): AppPayload!",
        "openWorkbench: BadgeEvent!",
        "openApp(appId: ID!, platform: Platform!): Launch!",
        "markAppRead(appId: ID!, count: Int! = 1): BadgeEvent!",
        "badges(platform: Platform = null): BadgeEvent!",
        "enum BadgeCause {",
        "type UserError {",
        "type WorkbenchApp {",
    ):
        assert line in sdl, line
