"""Endpoint signing secrets at rest: sealed by the engine's vault, opened only to sign a delivery.

The secret must be readable to sign, so it cannot be hashed like an API key; it is encrypted instead, bound to its
endpoint (a sealed secret copied onto another endpoint does not open). webhooks/ names the interface; the vault
(billing.vault.service.Vault) implements it.
"""

from __future__ import annotations

from typing import Protocol


class SecretBox(Protocol):
    async def seal_secret(self, plaintext: str, context: str) -> str:
        """`plaintext` encrypted and bound to `context` (the endpoint id), as text for a column."""
        ...

    async def open_secret(self, sealed: str, context: str) -> str:
        """The plaintext of `seal_secret(plaintext, context)`; raises if it was sealed for another context."""
        ...
