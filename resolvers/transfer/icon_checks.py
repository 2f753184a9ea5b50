"""The checks of the ``icons`` section: an id that is the SHA-256 of the original, base64, and
both images judged by the upload rules (SPEC §2; ``resolvers.icons.process_icon``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from resolvers.errors import FieldError, InvalidInput
from resolvers.icons import RENDITION_SIZE, ProcessedIcon, process_icon
from resolvers.transfer.document import SHA256_HEX, IconDocument
from resolvers.transfer.problems import unique, validated


def _base64(value: str, path: str, errors: list[FieldError]) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        errors.append(FieldError(path, "is not valid base64", "INVALID_BASE64"))
        return None


def _processed(data: bytes, path: str, errors: list[FieldError]) -> ProcessedIcon | None:
    """The image judged as an upload is (SPEC §2; ``resolvers.icons.process_icon``), or
    ``None`` with its problem in ``errors``."""
    try:
        return process_icon(data, path)
    except InvalidInput as error:
        errors.extend(error.errors)
        return None


def check_icons(
    items: list[Any], named: set[str], errors: list[FieldError]
) -> dict[str, dict[str, Any]]:
    """The file's valid icons as ``icon_image`` rows by id (``path`` added for messages);
    ``named`` receives the id of every entry readable enough to have one. Both images are
    judged by the upload rules; the rendition is kept as it is (made again, it could differ
    with another Pillow, and the round trip would not be exact)."""
    icons: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        path = f"icons[{index}]"
        doc = validated(IconDocument, item, path, errors)
        if doc is None:
            continue
        named.add(doc.id)
        before = len(errors)
        if not SHA256_HEX.fullmatch(doc.id):
            errors.append(
                FieldError(
                    f"{path}.id",
                    "must be 64 lower-case hex digits: the SHA-256 of the original",
                    "INVALID_ICON_ID",
                )
            )
        unique(seen, doc.id, f"{path}.id", "id", errors)
        original = _base64(doc.original, f"{path}.original", errors)
        rendition = _base64(doc.rendition48, f"{path}.rendition48", errors)
        if original is not None:
            _check_original(doc, original, path, errors)
        if rendition is not None:
            made = _processed(rendition, f"{path}.rendition48", errors)
            if made is not None and (made.media_type, made.width, made.height) != (
                "image/png",
                RENDITION_SIZE,
                RENDITION_SIZE,
            ):
                errors.append(
                    FieldError(
                        f"{path}.rendition48",
                        f"must be a {RENDITION_SIZE}x{RENDITION_SIZE} PNG image",
                        "INVALID_RENDITION",
                    )
                )
        if len(errors) == before and original is not None and rendition is not None:
            icons[doc.id] = {
                "path": path,
                "id": doc.id,
                "media_type": doc.media_type,
                "width": doc.width,
                "height": doc.height,
                "original": original,
                "rendition_48": rendition,
            }
    return icons


def _check_original(
    doc: IconDocument, original: bytes, path: str, errors: list[FieldError]
) -> None:
    digest = hashlib.sha256(original).hexdigest()
    if digest != doc.id:
        errors.append(
            FieldError(
                f"{path}.id",
                f"does not match the original, whose SHA-256 is {digest}",
                "ICON_HASH_MISMATCH",
            )
        )
    icon = _processed(original, f"{path}.original", errors)
    if icon is None:
        return
    if icon.media_type != doc.media_type:
        errors.append(
            FieldError(
                f"{path}.mediaType",
                f"is {doc.media_type}, but the original is {icon.media_type}",
                "INVALID_MEDIA_TYPE",
            )
        )
    if (doc.width, doc.height) != (icon.width, icon.height):
        errors.append(
            FieldError(
                f"{path}.width",
                f"width and height are {doc.width}x{doc.height}, the original is "
                f"{icon.width}x{icon.height}",
                "INVALID_ICON_SIZE",
            )
        )
