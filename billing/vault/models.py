from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column


class VaultEntry(Base):
    """One card number, encrypted under its own data key (DEK); the DEK is stored wrapped by a key-encryption
    key (KEK) named by `kek_id`, which never leaves the process environment. Deleting the row (or its wrapped
    key) destroys the number for good (crypto-shredding)."""

    __tablename__ = "vault_entries"
    __table_args__ = (Index("ix_vault_entries_kek_id", "kek_id"),)

    id: Mapped[str] = id_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    kek_id: Mapped[str] = mapped_column(String(32))
    # nonce (12) + AES-256-GCM(KEK, DEK, aad=entry id) + tag (16)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    # nonce (12) + AES-256-GCM(DEK, PAN digits, aad=entry id + merchant id) + tag (16)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    rewrapped_at: Mapped[datetime | None] = mapped_column(default=None)


class VaultSecret(Base):
    """A long-lived secret of the vault (the HMAC key behind card and request fingerprints), wrapped by a KEK
    like the data keys, so KEK rotation re-wraps it without changing it: fingerprints stay stable."""

    __tablename__ = "vault_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(32))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    rewrapped_at: Mapped[datetime | None] = mapped_column(default=None)
