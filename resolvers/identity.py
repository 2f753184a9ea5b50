"""Who is calling: the principal, its role, and the identifier rules of SPEC §2."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from resolvers.errors import InvalidInput

MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


class Role(enum.StrEnum):
    """Token roles (SPEC §7)."""

    USER = "user"
    ENTERPRISE_ADMIN = "enterprise_admin"
    PLATFORM_ADMIN = "platform_admin"
    VENDOR = "vendor"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: user ``(cid, uid)`` with a role; vendors also carry ``app_id``.

    ``expires_at``: Unix time (seconds) after which the credentials are no longer valid, when
    known; not part of the identity (ignored by equality).
    """

    cid: int
    uid: int
    account: str
    role: Role
    app_id: int | None = None
    expires_at: int | None = field(default=None, compare=False)

    @property
    def is_admin(self) -> bool:
        """Platform or enterprise administrator."""
        return self.role in (Role.PLATFORM_ADMIN, Role.ENTERPRISE_ADMIN)


def parse_id(value: object, field: str) -> int:
    """Parse an enterprise, user or app id: decimal, 1..19 digits, at most 2**63-1 (SPEC §2).

    Accepts ``int`` or ``str`` (no sign, no spaces). Raises ``InvalidInput`` naming ``field``.
    """
    if isinstance(value, bool):
        raise InvalidInput.single(field, "must be a decimal id", "INVALID_ID")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise InvalidInput.single(field, "must be a decimal id of 1 to 19 digits", "INVALID_ID")
    if not 0 <= number <= MAX_ID:
        raise InvalidInput.single(field, "is out of range for a 64-bit id", "INVALID_ID")
    return number
