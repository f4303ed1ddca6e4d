"""Key-encryption keys (KEKs) of the card vault: parsed from BILLING_VAULT_KEYS, or generated for development.

`BILLING_VAULT_KEYS="kid1:<base64 32 bytes>,kid2:<base64 32 bytes>"`: the first key is active (it wraps every new
data key); the others only unwrap what they wrapped before, until `billing vault rotate` has re-wrapped it all.
Outside production, with no variable set, a key is generated once into BILLING_DATA_DIR/vault-keys (mode 0600)
and reused by every process that shares the data folder. In production the variable is required: a process
refuses to start without it rather than invent a key that the other processes do not know.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from billing.clock import utc_now
from billing.config import ConfigError, Settings

KEY_FILE = "vault-keys"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # the GCM standard nonce; random per encryption
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class VaultKeyError(Exception):
    """A row names a key id this process does not hold, or a ciphertext failed authentication."""


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, bytes]
    active_id: str

    def __repr__(self) -> str:
        return f"KeyRing(active={self.active_id!r}, ids={sorted(self.keys)!r})"

    __str__ = __repr__

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    def wrap(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt a data key (or secret) under the active KEK; returns (kek_id, nonce + ciphertext + tag)."""
        return self.active_id, seal(self.keys[self.active_id], plaintext, aad)

    def unwrap(self, kek_id: str, wrapped: bytes, aad: bytes) -> bytes:
        key = self.keys.get(kek_id)
        if key is None:
            raise VaultKeyError(
                f"vault key {kek_id!r} is not in BILLING_VAULT_KEYS (this process holds {', '.join(self.keys)}); "
                "keep retired keys in the list until `billing vault rotate` reports nothing left under them"
            )
        return open_sealed(key, wrapped, aad)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise VaultKeyError(
            "vault ciphertext failed authentication (wrong key, or the row was altered)"
        ) from None


def parse_keyring(text: str, *, source: str = "BILLING_VAULT_KEYS") -> KeyRing:
    keys: dict[str, bytes] = {}
    for index, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        kid, sep, encoded = item.partition(":")
        if not sep or not _KID.match(kid):
            raise ConfigError(
                f"{source}: entry {index + 1} must be '<key id>:<base64 key>', the id 1-32 letters, digits, "
                "'.', '_' or '-'."
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{source}: the key of {kid!r} is not valid base64.") from None
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"{source}: the key of {kid!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}. Generate one with "
                '`python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"`.'
            )
        if kid in keys:
            raise ConfigError(f"{source}: key id {kid!r} appears twice.")
        keys[kid] = key
    if not keys:
        raise ConfigError(f"{source} is empty: set it to '<key id>:<base64 32-byte key>'.")
    return KeyRing(keys=keys, active_id=next(iter(keys)))


def generate_key_line(kid: str | None = None) -> str:
    kid = kid or "k" + utc_now().strftime("%Y%m%d") + secrets.token_hex(2)
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def _development_keyring(data_dir: Path) -> KeyRing:
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Write a private temporary file, then link it into place: link fails if another process won the race,
        # and nobody ever reads a half-written key file.
        temporary = data_dir / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(generate_key_line() + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return parse_keyring(path.read_text().strip(), source=str(path))


def load_keyring(settings: Settings) -> KeyRing:
    """The process's KEKs; a ConfigError in production when BILLING_VAULT_KEYS is not set."""
    if settings.vault_keys:
        return parse_keyring(settings.vault_keys)
    if settings.is_production:
        raise ConfigError(
            "BILLING_VAULT_KEYS is not set: in production the card vault needs its key-encryption keys from the "
            "environment (e.g. from your secret manager), as '<key id>:<base64 32-byte key>'."
        )
    return _development_keyring(settings.data_dir)
