"""Sealing app secrets at rest (SPEC §8; issue 4 items 3-4).

An app secret is stored twice: as its SHA-256 (``App.app_secret_hash``), which is all that
``appAccessToken`` needs, and sealed with AES-256-GCM (``App.app_secret_sealed``), because
verifying a signed legacy call (an HMAC keyed with the secret itself) needs the secret. The
sealing key is derived with HKDF-SHA256 from the service key (``WORKBENCH_JWT_SECRET``), so a
copy of the database alone reveals no secret. Changing the service key makes sealed secrets
unreadable: signed-mode apps then need ``rotateAppSecret``.

Sealed form: ``v1.`` + URL-safe base64 of a 12-byte nonce and the ciphertext with its tag; the
app id is bound as associated data, so a sealed secret copied to another app does not open.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1."
NONCE_BYTES = 12


class SealBroken(Exception):
    """A sealed secret that does not open with this service's key (key changed, or tampered)."""


class SecretSealer:
    """Seals and opens app secrets with a key derived from ``service_key``."""

    def __init__(self, service_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"workbench app secret seal v1"
        ).derive(service_key.encode())
        self._aead = AESGCM(key)

    def seal(self, secret: str, *, app_id: int) -> str:
        """The sealed form of ``secret`` for app ``app_id``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), str(app_id).encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, *, app_id: int) -> str:
        """The secret in ``sealed``; raises ``SealBroken`` when it does not open."""
        if not sealed.startswith(PREFIX):
            raise SealBroken("unknown seal format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :])
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], str(app_id).encode())
            return plain.decode()
        except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise SealBroken("the sealed secret does not open with this service key") from error
