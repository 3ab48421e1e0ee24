"""Signing webhook bodies, and keeping the signing secrets encrypted.

Every webhook (an alert rule's, an event endpoint's) carries ``Creditgraph-Signature:
t=<unix seconds>,v1=<hex>``: HMAC-SHA256, keyed with the destination's secret, of
``<t>.`` and the body. The secret is shown once, when it is made; the database keeps it
sealed by the key vault (Fernet) under ``CREDITGRAPH_KEY_ENCRYPTION_KEY``, or, in
development without one, under a key generated once into the state directory
(``webhook-encryption-key``). Production refuses to start without the setting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet

from app.auth import kept_secret
from app.keys.service import KeyVault
from app.settings import Settings

SIGNATURE_HEADER = "Creditgraph-Signature"
SECRET_PREFIX = "whsec_"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signing_vault(settings: Settings) -> KeyVault:
    """The vault that seals signing secrets (see above); always able to."""
    key = kept_secret(
        settings,
        settings.key_encryption_key,
        variable="CREDITGRAPH_KEY_ENCRYPTION_KEY",
        file="webhook-encryption-key",
        make=lambda: Fernet.generate_key().decode(),
        why=": webhook signing secrets are kept encrypted with it",
    )
    return KeyVault(key, secret_prefix=SECRET_PREFIX)


def seal(vault: KeyVault, secret: str) -> str:
    token = vault.seal(secret)
    assert token is not None, "signing_vault always has a key"
    return token
