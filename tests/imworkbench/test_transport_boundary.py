"""The WebSocket transport knows no field by name: which operations run compiled is the
schema's decision (``WorkbenchSchema``), so the transport imports nothing from ``schema``
but the context type (issue 10, item 4)."""

from __future__ import annotations

from pytest_archon import archrule


def test_the_websocket_transport_imports_only_the_context_type_from_schema():
    """imworkbench.http.websocket imports schema.context and no other schema module."""
    (
        archrule("the transport knows no field")
        .match("imworkbench.http.websocket")
        .may_import("schema.context")
        .should_not_import("schema", "schema.*")
        .check("imworkbench", only_direct_imports=True)
    )
