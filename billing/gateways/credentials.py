"""A connection's credentials at rest: its secret fields (private keys, API keys) are sealed by the vault's secret
box (as webhook signing secrets are), bound to the merchant, the connection and the field, so a sealed value
copied elsewhere does not open. Settings show them as SEALED; the adapter opens one when it signs.
"""

from __future__ import annotations

from billing.gateways.base import ConnectionConfig
from billing.vault.service import SEALED_PREFIX
from webhooks.secret_box import SecretBox

# What GET /v1/settings shows in place of a secret; sent back unchanged, it keeps the stored secret.
SEALED = "[sealed]"


class CredentialError(Exception):
    """A secret credential cannot be opened (no secret box in this process, or it was sealed for another place)."""


def credential_context(merchant_id: str, connection_id: str, name: str) -> str:
    return f"gateway-credential:{merchant_id}:{connection_id}:{name}"


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX)


async def seal_credential(
    secrets: SecretBox, merchant_id: str, connection_id: str, name: str, value: str
) -> str:
    return await secrets.seal_secret(value, credential_context(merchant_id, connection_id, name))


async def open_credential(secrets: SecretBox | None, connection: ConnectionConfig, name: str) -> str:
    """The plaintext of a credential (sealed ones opened; the settings service never stores one unsealed)."""
    value = connection.credentials.get(name, "")
    if not is_sealed(value):
        return value
    if secrets is None:
        raise CredentialError(f"connection {connection.id!r}: no secret box to open {name}")
    try:
        return await secrets.open_secret(
            value, credential_context(connection.merchant_id, connection.id, name)
        )
    except Exception as exc:
        raise CredentialError(f"connection {connection.id!r}: {name} does not open ({exc})") from None
