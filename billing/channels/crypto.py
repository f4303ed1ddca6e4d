"""RSA-SHA256 (PKCS#1 v1.5) signatures, as both Alipay (sign_type RSA2) and WeChat Pay API v3
(WECHATPAY2-SHA256-RSA2048) use them, and AES-256-GCM for WeChat Pay's notification resources. Pure functions over
keys in PEM (or, as Alipay hands out public keys, bare base64 of the DER), built on `cryptography`.

Parsed keys are cached by their text: a key is parsed once per process, not once per signature.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RSA_BITS = 2048


class KeyFormatError(ValueError):
    """A key that cannot be read; the message says which form is expected."""


def generate_private_key_pem() -> str:
    """A new RSA-2048 private key, PKCS#8 PEM (what the channels' key tools produce)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(private_pem: str) -> str:
    """The public half of a private key, SubjectPublicKeyInfo PEM."""
    return (
        load_private_key(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _der(text: str) -> bytes | None:
    body = "".join(text.split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=256)
def load_private_key(text: str) -> rsa.RSAPrivateKey:
    data = text.strip()
    key: object
    try:
        if data.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(data.encode(), password=None)
        else:
            der = _der(data)
            if der is None:
                raise ValueError
            key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise KeyFormatError(
            "not an RSA private key: give it as PEM ('-----BEGIN PRIVATE KEY-----' ...) or as the base64 text the "
            "channel's key tool printed"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < RSA_BITS:
        raise KeyFormatError(f"the private key must be RSA of at least {RSA_BITS} bits")
    return key


@lru_cache(maxsize=256)
def load_public_key(text: str) -> rsa.RSAPublicKey:
    data = text.strip()
    key: object
    try:
        if data.startswith("-----BEGIN CERTIFICATE"):
            key = x509.load_pem_x509_certificate(data.encode()).public_key()
        elif data.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(data.encode())
        else:
            der = _der(data)
            if der is None:
                raise ValueError
            key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        raise KeyFormatError(
            "not an RSA public key: give it as PEM ('-----BEGIN PUBLIC KEY-----' ...), as a certificate, or as the "
            "base64 text the channel shows"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError("the public key must be RSA")
    return key


def rsa_sign(private_pem: str, message: bytes) -> str:
    """base64(RSA-SHA256 PKCS#1 v1.5 signature of `message`)."""
    signature = load_private_key(private_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def rsa_verify(public_pem: str, message: bytes, signature: str) -> bool:
    """Whether `signature` (base64) is an RSA-SHA256 signature of `message` under the public key."""
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        load_public_key(public_pem).verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def aes_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> str:
    """base64(ciphertext || 16-byte tag), the form of WeChat Pay's `resource.ciphertext`."""
    return base64.b64encode(AESGCM(key).encrypt(nonce, plaintext, associated_data)).decode()


def aes_gcm_decrypt(key: bytes, nonce: bytes, ciphertext: str, associated_data: bytes) -> bytes:
    """The plaintext of `aes_gcm_encrypt`; ValueError when the key, nonce, data or tag do not match."""
    try:
        return AESGCM(key).decrypt(nonce, base64.b64decode(ciphertext, validate=True), associated_data)
    except (InvalidTag, binascii.Error, ValueError):
        raise ValueError(
            "the resource does not decrypt under this key (wrong key, or it was altered)"
        ) from None
