"""Domain exceptions. Each is mapped in one place per surface: ``schema.errors`` (GraphQL
errors and ``UserError``) and ``legacy_rest.responses`` (the seed's failure bodies).

::

    WorkbenchError                 base; ``code`` is a stable machine-readable string
    ├── InvalidInput               one or more field errors (``errors``: list of FieldError)
    ├── NotAuthenticated           no credentials, or bad or expired ones
    ├── PermissionDenied           authenticated, but the role may not do this
    ├── AppNotFound                no such app, or disabled, or not on the caller's workbench
    │   └── AppRemoved             on it but for the caller's own removal (restoreApp undoes it)
    └── TooManyRecipients          a notice names more than MAX_RECIPIENTS users (SPEC §6)

``DatabaseBusy`` (``storage.db``, re-exported here for the surfaces that may not import
storage) is no domain error but a refusal all the same: a write waited for another writer's
lock past its timeout and wrote nothing; the caller may try again.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import DatabaseBusy as DatabaseBusy


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: ``field`` is its path (e.g. ``input.name``), ``code`` stable."""

    field: str | None
    message: str
    code: str


class WorkbenchError(Exception):
    """Base of every domain error; ``code`` names the kind for clients and logs."""

    code = "ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(WorkbenchError):
    """Input that breaks a rule; ``errors`` lists every broken rule, not only the first."""

    code = "INVALID_INPUT"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field or 'input'}: {e.message}" for e in errors))
        self.errors = errors

    @classmethod
    def single(cls, field: str | None, message: str, code: str = "INVALID") -> InvalidInput:
        """An ``InvalidInput`` with one field error."""
        return cls([FieldError(field, message, code)])


class NotAuthenticated(WorkbenchError):
    """Missing, malformed, badly signed or expired credentials."""

    code = "UNAUTHENTICATED"


class PermissionDenied(WorkbenchError):
    """The caller's role does not allow the action."""

    code = "FORBIDDEN"


class AppNotFound(WorkbenchError):
    """The app does not exist, is disabled, or is not on the caller's workbench."""

    code = "APP_NOT_FOUND"

    def __init__(self, app_id: int | str, message: str | None = None) -> None:
        super().__init__(message or f"app {app_id} not found")
        self.app_id = app_id


class AppRemoved(AppNotFound):
    """The app would be on the caller's workbench but the caller removed it (SPEC §2
    可被用户删除): it exists, and ``restoreApp`` brings it back. A kind of ``AppNotFound`` (the
    app is not on the workbench), with its own code so that a client can offer the restore."""

    code = "APP_REMOVED"

    def __init__(self, app_id: int) -> None:
        super().__init__(
            app_id, f"app {app_id} was removed from your workbench: restoreApp puts it back"
        )


class TooManyRecipients(WorkbenchError):
    """A notice names more recipients than allowed (SPEC §6: 10,000)."""

    code = "TOO_MANY_RECIPIENTS"

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} recipients; at most {limit} per notice")
        self.count = count
        self.limit = limit
