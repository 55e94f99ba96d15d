"""KeyBox: AES-256-GCM encryption of merchant API keys and their HMAC fingerprints.

Setting format (API_KEY_ENCRYPTION_KEY):
  * a bare urlsafe-base64 32-byte key            -> key id 1
  * "3:<key>,2:<key>,1:<key>"                   -> several keys; the FIRST is active

Rotation: add a new key with a higher id in front ("2:<new>,1:<old>"). New ciphertexts use
the active key; old ones still decrypt because the key id travels in the token. Drop an old
key only once no stored ciphertext names it any more.

Fingerprints are HMAC-SHA256 under a subkey derived (HKDF) from the key with the LOWEST id,
not the active one, so adding a newer active key leaves every fingerprint unchanged (reports
group by fingerprint). Removing the lowest-id key changes all fingerprints: keep it listed
(it need not be active) unless fingerprints are recomputed.

Token format: "v1:<key id>:<urlsafe-base64(nonce || ciphertext+tag)>", nonce 96 random bits.
The caller's associated data (the payment hash) binds a token to its split: a token copied
onto another split fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.store.errors import DecryptionFailed, InvalidKeySetting, UnknownKeyId

_TOKEN_VERSION = "v1"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_ENCRYPTION_INFO = b"blinkpos/merchant-api-key/aes-256-gcm/v1"
_FINGERPRINT_INFO = b"blinkpos/merchant-api-key/fingerprint/v1"


def _derive(master: bytes, info: bytes) -> bytes:
    # Separate subkeys per purpose: the same master key never serves both AES and HMAC.
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=info).derive(master)


def _decode_key(text: str, position: int) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        raise InvalidKeySetting(f"encryption key #{position} is not valid base64") from None
    if len(raw) != _KEY_BYTES:
        raise InvalidKeySetting(f"encryption key #{position} must decode to 32 bytes, got {len(raw)}")
    return raw


def parse_key_setting(value: str) -> dict[int, bytes]:
    """The setting as key id -> key bytes, in the order given (the first is the active key).

    The one parser of the format: Config validates with it, so a setting that passes there is
    one the KeyBox accepts. Raises InvalidKeySetting (a ValueError) naming positions, never keys.
    """
    value = (value or "").strip()
    if not value:
        raise InvalidKeySetting("API_KEY_ENCRYPTION_KEY is empty")
    if ":" not in value and "," not in value:
        return {1: _decode_key(value, 1)}
    keys: dict[int, bytes] = {}
    for position, entry in enumerate(value.split(","), start=1):
        kid_text, sep, key_text = entry.strip().partition(":")
        kid_text = kid_text.strip()
        if not sep or not kid_text.isdecimal() or int(kid_text) < 1:
            raise InvalidKeySetting(f"encryption key #{position} must look like '<positive id>:<key>'")
        kid = int(kid_text)
        if kid in keys:
            raise InvalidKeySetting(f"encryption key id {kid} is listed twice")
        keys[kid] = _decode_key(key_text, position)
    return keys


def generate_key() -> str:
    """A fresh key in the setting's format (for .env files and the dev stack)."""
    return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class _Key:
    key_id: int
    aead: AESGCM


class KeyBox:
    """Encrypts with the active key, decrypts with any configured key."""

    def __init__(self, keys: dict[int, bytes], active_key_id: int) -> None:
        if not keys:
            raise InvalidKeySetting("at least one encryption key is required")
        if active_key_id not in keys:
            raise InvalidKeySetting("the active key id is not among the configured keys")
        self._keys = {kid: _Key(kid, AESGCM(_derive(raw, _ENCRYPTION_INFO))) for kid, raw in keys.items()}
        self._active = self._keys[active_key_id]
        self._fingerprint_key = _derive(keys[min(keys)], _FINGERPRINT_INFO)

    @classmethod
    def from_setting(cls, value: str) -> KeyBox:
        keys = parse_key_setting(value)
        return cls(keys, active_key_id=next(iter(keys)))

    @property
    def active_key_id(self) -> int:
        return self._active.key_id

    @property
    def key_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def encrypt(self, plaintext: str, associated_data: str = "") -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._active.aead.encrypt(nonce, plaintext.encode("utf-8"), associated_data.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{_TOKEN_VERSION}:{self._active.key_id}:{body}"

    def decrypt(self, token: str, associated_data: str = "") -> str:
        version, _, rest = token.partition(":")
        kid_text, _, body = rest.partition(":")
        if version != _TOKEN_VERSION or not kid_text.isdigit() or not body:
            raise DecryptionFailed("ciphertext is malformed")
        key = self._keys.get(int(kid_text))
        if key is None:
            raise UnknownKeyId(f"ciphertext was made with key id {kid_text}, which is not configured")
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise DecryptionFailed("ciphertext is malformed") from None
        if len(blob) <= _NONCE_BYTES:
            raise DecryptionFailed("ciphertext is too short")
        try:
            nonce, sealed = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
            plain = key.aead.decrypt(nonce, sealed, associated_data.encode("utf-8"))
        except InvalidTag:
            raise DecryptionFailed("ciphertext failed authentication (tampered or misplaced)") from None
        return plain.decode("utf-8")

    def needs_reencryption(self, token: str) -> bool:
        """True when a token was made with a key other than the active one."""
        return not token.startswith(f"{_TOKEN_VERSION}:{self._active.key_id}:")

    def fingerprint(self, api_key: str) -> str:
        """Stable identifier of an API key: equal keys, equal fingerprints; reveals nothing."""
        return hmac.new(self._fingerprint_key, api_key.encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show key material
        return f"KeyBox(key_ids={self.key_ids}, active={self.active_key_id})"
