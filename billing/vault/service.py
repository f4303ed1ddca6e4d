"""The vault's use cases: store a card number, reveal it for a gateway request, fingerprint it, destroy it.

Envelope encryption: each number gets a fresh 256-bit data key (DEK); the number is sealed with AES-256-GCM under
the DEK, the DEK is sealed under the active key-encryption key (KEK), and the row records which KEK (`kek_id`).
Both seals bind the row's identity as associated data, so a ciphertext copied into another row (or another
merchant's row) fails authentication instead of decrypting.

Fingerprints are HMAC-SHA256 over (merchant id, number) under a key derived (HKDF) from one random vault secret.
That secret is stored wrapped by the KEK like a data key, so rotating the KEK re-wraps it without changing it:
fingerprints stay the same across rotations. It is per merchant on purpose: a merchant can recognise a card it
has seen, but not correlate cards across merchants. The same secret derives the key that seals the secrets the
engine must read back (webhook signing secrets): `seal_secret` / `open_secret`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.clock import utc_now
from billing.db.engine import transaction
from billing.ids import new_id
from billing.vault.cards import SecretPan
from billing.vault.keys import KEY_BYTES, KeyRing, VaultKeyError, open_sealed, seal
from billing.vault.models import VaultEntry, VaultSecret

MASTER_SECRET = "hmac-master"  # noqa: S105 - the name of a row, not a secret
SEALED_PREFIX = "sealed:v1:"


def dek_aad(entry_id: str) -> bytes:
    return b"billing-vault:dek:" + entry_id.encode()


def pan_aad(entry_id: str, merchant_id: str) -> bytes:
    return b"billing-vault:pan:" + entry_id.encode() + b":" + merchant_id.encode()


def secret_aad(name: str) -> bytes:
    return b"billing-vault:secret:" + name.encode()


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"billing-vault:" + purpose).derive(
        master
    )


class Vault:
    """One per process: the key ring, and the derived HMAC keys once loaded."""

    def __init__(self, keyring: KeyRing, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.keyring = keyring
        self._sessions = sessions
        self._derived: dict[bytes, bytes] = {}
        # The master secret is loaded once per process, on its own connection. Requests ask for it while they
        # hold a pooled connection; without this lock, many cold requests at once would each need a second
        # connection and could exhaust the pool waiting for each other.
        self._loading = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Vault({self.keyring!r})"

    async def _hmac_key(self, purpose: bytes) -> bytes:
        cached = self._derived.get(purpose)
        if cached is not None:
            return cached
        async with self._loading:
            if purpose not in self._derived:
                master = await self._load_master_secret()
                for name in (b"card-fingerprint", b"request-fingerprint", b"secret-box", b"portal-link"):
                    self._derived[name] = _derive(master, name)
        return self._derived[purpose]

    async def _load_master_secret(self) -> bytes:
        # Its own transaction: the secret must be committed before anything derived from it is used, whatever
        # happens to the caller's transaction. Concurrent first uses agree through the primary key.
        async with transaction(self._sessions) as session:
            kek_id, wrapped = self.keyring.wrap(os.urandom(KEY_BYTES), secret_aad(MASTER_SECRET))
            await session.execute(
                insert(VaultSecret)
                .values(name=MASTER_SECRET, kek_id=kek_id, wrapped=wrapped, created_at=utc_now())
                .on_conflict_do_nothing(index_elements=["name"])
            )
            row = (
                await session.execute(
                    select(VaultSecret.kek_id, VaultSecret.wrapped).where(VaultSecret.name == MASTER_SECRET)
                )
            ).one()
        return self.keyring.unwrap(row.kek_id, row.wrapped, secret_aad(MASTER_SECRET))

    async def card_fingerprint(self, merchant_id: str, pan: SecretPan) -> str:
        """16 characters that identify the card within this merchant, without the number."""
        key = await self._hmac_key(b"card-fingerprint")
        mac = hmac.new(key, merchant_id.encode() + b":" + pan.reveal().encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:12]).decode()

    async def request_fingerprint_key(self) -> bytes:
        """The key of the Idempotency-Key request fingerprints (their bodies may hold card numbers)."""
        return await self._hmac_key(b"request-fingerprint")

    async def portal_link_key(self) -> bytes:
        """The key that signs hosted portal links (billing.portal.tokens)."""
        return await self._hmac_key(b"portal-link")

    async def store(self, session: AsyncSession, merchant_id: str, pan: SecretPan) -> VaultEntry:
        """Seal `pan` into a new vault row, written (flushed) in the caller's transaction."""
        entry_id = new_id("vlt")
        dek = os.urandom(KEY_BYTES)
        kek_id, wrapped = self.keyring.wrap(dek, dek_aad(entry_id))
        entry = VaultEntry(
            id=entry_id,
            merchant_id=merchant_id,
            kek_id=kek_id,
            wrapped_key=wrapped,
            ciphertext=seal(dek, pan.reveal().encode(), pan_aad(entry_id, merchant_id)),
            created_at=utc_now(),
        )
        session.add(entry)
        await session.flush()
        return entry

    async def seal_secret(self, plaintext: str, context: str) -> str:
        """A secret the engine must read back (a webhook signing secret), AES-256-GCM under a key derived from the
        vault's master secret, bound to `context`."""
        key = await self._hmac_key(b"secret-box")
        sealed = seal(key, plaintext.encode(), b"billing-secret-box:" + context.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    async def open_secret(self, sealed: str, context: str) -> str:
        if not sealed.startswith(SEALED_PREFIX):
            raise VaultKeyError("not a sealed secret (it should start with " + SEALED_PREFIX + ")")
        key = await self._hmac_key(b"secret-box")
        raw = sealed[len(SEALED_PREFIX) :]
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return open_sealed(key, data, b"billing-secret-box:" + context.encode()).decode()

    def _dek(self, entry: VaultEntry) -> bytes:
        return self.keyring.unwrap(entry.kek_id, entry.wrapped_key, dek_aad(entry.id))

    def reveal(self, entry: VaultEntry) -> SecretPan:
        """The card number, for the body of a gateway request only."""
        digits = open_sealed(self._dek(entry), entry.ciphertext, pan_aad(entry.id, entry.merchant_id))
        return SecretPan(digits.decode())

    def seal_for_entry(self, entry: VaultEntry, plaintext: bytes, purpose: bytes) -> bytes:
        """Encrypt short-lived data tied to a card (its CVC until the first authorization) under its own DEK."""
        return seal(self._dek(entry), plaintext, b"billing-vault:" + purpose + b":" + entry.id.encode())

    def open_for_entry(self, entry: VaultEntry, sealed: bytes, purpose: bytes) -> bytes:
        return open_sealed(self._dek(entry), sealed, b"billing-vault:" + purpose + b":" + entry.id.encode())


async def get_entry(session: AsyncSession, entry_id: str) -> VaultEntry | None:
    return await session.scalar(select(VaultEntry).where(VaultEntry.id == entry_id))


async def destroy_entries(session: AsyncSession, entry_ids: list[str]) -> int:
    """Delete vault rows: without the wrapped data key the number can never be decrypted again."""
    if not entry_ids:
        return 0
    result = await session.execute(delete(VaultEntry).where(VaultEntry.id.in_(entry_ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
