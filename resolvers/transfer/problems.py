"""How an import names a problem (``resolvers.errors.FieldError``): its path in the file
(``apps[3].platforms.PC.webUrl``), its message, duplicates within the file, and the order
problems are reported in (the file's, section by section).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from resolvers.errors import FieldError
from resolvers.transfer.document import SECTIONS

_Model = TypeVar("_Model", bound=BaseModel)


def _problem_path(prefix: str, loc: Iterable[int | str]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":  # pydantic's marker for "the dict key itself"
            path += f".{part}"
    return path


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this format"
    text = str(error["msg"])
    return text[:1].lower() + text[1:]


def validated(
    model: type[_Model], value: object, path: str, errors: list[FieldError]
) -> _Model | None:
    """``value`` as a ``model``, or ``None`` with each of its problems, at ``path``, in
    ``errors``."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        errors.extend(
            FieldError(_problem_path(path, e["loc"]), _message(e), "INVALID_FIELD")
            for e in error.errors(include_url=False)
        )
        return None


def unique(
    seen: dict[Any, str], key: object, path: str, what: str, errors: list[FieldError]
) -> None:
    """Record ``key`` as seen at ``path`` in ``seen``, or, when an earlier entry holds it, add a
    ``DUPLICATE_<WHAT>`` problem naming that entry to ``errors``."""
    first = seen.setdefault(key, path)
    if first != path:
        owner = first.rsplit(".", 1)[0]
        hint = " (compared case-insensitively)" if what in ("name", "identifier") else ""
        errors.append(
            FieldError(
                path,
                f"is also the {what} of {owner}{hint}",
                "DUPLICATE_" + what.upper().replace(" ", "_"),
            )
        )


def problem_order(error: FieldError) -> tuple[int, int]:
    """The sort key that reports problems in the file's order: whole-file problems first, then
    by section and entry (stable, so an entry's own problems keep their order)."""
    found = re.match(r"(groups|apps|icons)\[(\d+)\]", error.field or "")
    if found is None:
        return (-1, 0)
    return (SECTIONS.index(found[1]), int(found[2]))
