"""Fingerprints: the keyed HMAC that identifies a merchant by its Blink API key (DESIGN §9).

The service keeps no merchant key, plaintext or encrypted: a key is used inside the request
that carries it and then forgotten. What is stored is HMAC-SHA256(secret, key), which tells
who the merchant is (forward-payment, reports) and reveals nothing of the key.

Setting (API_KEY_FINGERPRINT_KEY, or its older name API_KEY_ENCRYPTION_KEY):
  * a bare urlsafe-base64 32-byte secret            -> key id 1
  * "3:<secret>,2:<secret>,1:<secret>"             -> several; the FIRST makes new fingerprints

Rotating the secret (because it leaked, or by policy): put a new secret first with a higher
id ("2:<new>,1:<old>"). New sales are fingerprinted with the new one; a merchant is identified
by the fingerprint of its key under EVERY listed secret, so its earlier sales stay its own.
Removing an old secret makes the sales fingerprinted with it anonymous (no merchant can read
them in reports or forward them with forward-payment): keep it listed as long as those sales
matter, e.g. for the reporting year. Nothing needs re-encrypting, because nothing is encrypted.

Each HMAC key is derived (HKDF) from its secret with a purpose label, the same derivation as
earlier versions, so fingerprints stored by them still match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.store.errors import InvalidKeySetting

_KEY_BYTES = 32
_FINGERPRINT_INFO = b"blinkpos/merchant-api-key/fingerprint/v1"


def _decode_key(text: str, position: int) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        raise InvalidKeySetting(f"fingerprint key #{position} is not valid base64") from None
    if len(raw) != _KEY_BYTES:
        raise InvalidKeySetting(f"fingerprint key #{position} must decode to 32 bytes, got {len(raw)}")
    return raw


def parse_key_setting(value: str) -> dict[int, bytes]:
    """The setting as key id -> secret, in the order given (the first makes new fingerprints).

    The one parser of the format: Config validates with it, so a setting that passes there is
    one Fingerprints accepts. Raises InvalidKeySetting (a ValueError) naming positions, never keys.
    """
    value = (value or "").strip()
    if not value:
        raise InvalidKeySetting("the fingerprint key setting is empty")
    if ":" not in value and "," not in value:
        return {1: _decode_key(value, 1)}
    keys: dict[int, bytes] = {}
    for position, entry in enumerate(value.split(","), start=1):
        kid_text, sep, key_text = entry.strip().partition(":")
        kid_text = kid_text.strip()
        if not sep or not kid_text.isdecimal() or int(kid_text) < 1:
            raise InvalidKeySetting(f"fingerprint key #{position} must look like '<positive id>:<key>'")
        kid = int(kid_text)
        if kid in keys:
            raise InvalidKeySetting(f"fingerprint key id {kid} is listed twice")
        keys[kid] = _decode_key(key_text, position)
    return keys


def generate_key() -> str:
    """A fresh secret in the setting's format (for .env files and the dev stack)."""
    return base64.urlsafe_b64encode(os.urandom(_KEY_BYTES)).decode("ascii")


class Fingerprints:
    """Makes fingerprints with the first secret; recognises those made with any listed one."""

    def __init__(self, keys: dict[int, bytes]) -> None:
        if not keys:
            raise InvalidKeySetting("at least one fingerprint key is required")
        self._key_ids = tuple(keys)
        self._macs = tuple(
            HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=_FINGERPRINT_INFO).derive(raw)
            for raw in keys.values()
        )

    @classmethod
    def from_setting(cls, value: str) -> Fingerprints:
        return cls(parse_key_setting(value))

    def fingerprint(self, api_key: str) -> str:
        """The fingerprint stored for a key from now on."""
        return self._mac(self._macs[0], api_key)

    def candidates(self, api_key: str) -> tuple[str, ...]:
        """Every fingerprint this key may have been stored under (one per listed secret)."""
        return tuple(self._mac(mac_key, api_key) for mac_key in self._macs)

    def matches(self, api_key: str, stored: str) -> bool:
        """Whether stored is this key's fingerprint under any listed secret (constant time)."""
        stored_bytes = stored.encode("ascii", "replace")
        found = False
        for candidate in self.candidates(api_key):
            found |= hmac.compare_digest(candidate.encode("ascii"), stored_bytes)
        return found

    @staticmethod
    def _mac(mac_key: bytes, api_key: str) -> str:
        return hmac.new(mac_key, api_key.encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show key material
        return f"Fingerprints(key_ids={self._key_ids})"
