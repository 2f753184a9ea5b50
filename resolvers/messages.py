"""The broker's wire format: every message one process publishes for the others, and the
channels they travel on (SPEC §4; STYLE "Messages"). Nothing else encodes or decodes them.

Channels:

- ``user_channel(cid, uid)``: one user's ``BadgeChange`` and ``Reload`` messages;
- ``CATALOGUE_CHANNEL``: ``CatalogueChange`` messages, for every process.

Messages are compact JSON, and their bytes are a compatibility promise: during a rolling deploy
the previous release reads what this one writes and the other way round, so a change of format
needs a release that reads both first (tests pin every type's bytes, both directions)::

    BadgeChange       {"c":"NOTICE","v":7,"s":3,"b":[[12,2],[14,0]]}
    Reload            {"r":1}
    CatalogueChange   {"a":[3,5,8]}   or, for "every app", {"all":1}

``decode(data)`` reads any of them and raises ``MalformedMessage`` for anything else; callers
log and drop such bytes (``resolvers.streams.hub`` does, once per process). Keys a later
release may add are ignored. The Redis backend's resync mark (``imworkbench.brokers.redis``) is
the broker's own control frame: it becomes ``Listener.resync()`` and never reaches ``decode``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Administrative catalogue changes, for every process (``resolvers.streams.catalogue``).
CATALOGUE_CHANNEL = "wb:catalogue"
# Past this many ids, a catalogue change says "every app" instead of listing them.
MAX_IDS_PER_MESSAGE = 1000
RELOAD_BYTES = b'{"r":1}'
EVERYTHING_BYTES = b'{"all":1}'


def user_channel(cid: int, uid: int) -> str:
    """The channel of user ``(cid, uid)``'s badge and reload messages."""
    return f"wb:user:{cid}:{uid}"


class MalformedMessage(ValueError):
    """``decode`` could not read the bytes: not JSON, or not a message of this module (the
    module docstring lists them). ``str(error)`` says why."""


class BadgeCause(enum.StrEnum):
    """Why a badge event happened (SPEC §7 ``BadgeCause``)."""

    SNAPSHOT = "SNAPSHOT"
    NOTICE = "NOTICE"
    OPEN_APP = "OPEN_APP"
    OPEN_WORKBENCH = "OPEN_WORKBENCH"
    READ = "READ"
    SET = "SET"


_CAUSES = {cause.value: cause for cause in BadgeCause}


@dataclass(frozen=True, slots=True)
class BadgeChange:
    """One user's badge state after a committed change, as absolute values (SPEC §4).

    ``version``: the user's badge version after it (per user, strictly increasing);
    ``unseen``: the user's unseen count, not yet capped at the unread total;
    ``badges``: the ``(app_id, unread)`` counts the change set, in the order given.
    """

    cause: BadgeCause
    version: int
    unseen: int
    badges: tuple[tuple[int, int], ...]

    def encode(self) -> bytes:
        """``{"c":cause,"v":version,"s":unseen,"b":[[appId,unread],...]}``: the bytes
        ``json.dumps(..., separators=(",", ":"))`` gives, formatted directly because this
        runs once per recipient of a notice (about four times faster)."""
        badges = ",".join([f"[{app_id},{unread}]" for app_id, unread in self.badges])
        return (
            f'{{"c":"{self.cause.value}","v":{self.version},"s":{self.unseen},"b":[{badges}]}}'
        ).encode()


@dataclass(frozen=True, slots=True)
class Reload:
    """What a user sees changed without a badge changing (an app removed or restored): every
    stream of the user reloads from the database."""

    def encode(self) -> bytes:
        """``{"r":1}``."""
        return RELOAD_BYTES


@dataclass(frozen=True, slots=True)
class CatalogueChange:
    """Administrators changed the apps ``app_ids`` or, with ``everything``, possibly any app.
    ``of`` builds one with the ids ascending and distinct; a decoded one has them as sent."""

    app_ids: tuple[int, ...] = ()
    everything: bool = False

    @classmethod
    def of(cls, app_ids: Iterable[int]) -> CatalogueChange:
        """The change of the given apps; more than ``MAX_IDS_PER_MESSAGE`` distinct ids
        become ``everything``."""
        ids = sorted(set(app_ids))
        if len(ids) > MAX_IDS_PER_MESSAGE:
            return cls(everything=True)
        return cls(app_ids=tuple(ids))

    def encode(self) -> bytes:
        """``{"a":[id,...]}``, or ``{"all":1}`` for ``everything``."""
        if self.everything:
            return EVERYTHING_BYTES
        return f'{{"a":[{",".join([str(app_id) for app_id in self.app_ids])}]}}'.encode()


Message = BadgeChange | Reload | CatalogueChange
RELOAD = Reload()


def decode(data: bytes) -> Message:
    """The message ``data`` encodes (module docstring). Raises ``MalformedMessage`` for bytes
    that are not one: not UTF-8 JSON, not an object, a known key with a value of the wrong
    type (integers must be JSON integers, not booleans), or no known key at all."""
    try:
        fields = json.loads(data)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise MalformedMessage(f"not JSON: {error}") from error
    if type(fields) is not dict:
        raise MalformedMessage("not a JSON object")
    if "c" in fields:
        return _badge_change(fields)
    if "a" in fields or "all" in fields:
        return _catalogue_change(fields)
    if fields.get("r") == 1:
        return RELOAD
    raise MalformedMessage(f"no message has the keys {sorted(fields)}")


def _badge_change(fields: dict[str, Any]) -> BadgeChange:
    cause = _CAUSES.get(fields["c"]) if type(fields["c"]) is str else None
    version, unseen, raw = fields.get("v"), fields.get("s"), fields.get("b")
    if cause is None:
        raise MalformedMessage(f"unknown badge cause {fields['c']!r}")
    if type(version) is not int or type(unseen) is not int or type(raw) is not list:
        raise MalformedMessage("a badge change needs integers v and s and a list b")
    badges: list[tuple[int, int]] = []
    for pair in raw:
        if type(pair) is not list or len(pair) != 2:
            raise MalformedMessage("badges must be [appId, unread] pairs")
        app_id, unread = pair
        if type(app_id) is not int or type(unread) is not int:
            raise MalformedMessage("badges must be [appId, unread] pairs of integers")
        badges.append((app_id, unread))
    return BadgeChange(cause, version, unseen, tuple(badges))


def _catalogue_change(fields: dict[str, Any]) -> CatalogueChange:
    # The previous release reads any true "all" as everything; so does this one.
    if fields.get("all"):
        return CatalogueChange(everything=True)
    ids = fields.get("a")
    if type(ids) is not list or not all(type(app_id) is int for app_id in ids):
        raise MalformedMessage("app ids must be a list of integers")
    return CatalogueChange(app_ids=tuple(ids))
