"""Lightning invoices as the simulator issues them: preimage, payment hash and a signed BOLT11 string.

The encoder follows BOLT #11 (bech32 without the 90-character limit, tagged fields, a recoverable
secp256k1 signature over sha256(hrp || data)), so any BOLT11 decoder reads the amount, hash,
description and expiry, and recovers the simulator's node key from the signature.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from coincurve import PrivateKey

_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)

# Tagged-field types (their bech32 character's index).
_TAG_PAYMENT_HASH = 1  # p
_TAG_PAYMENT_SECRET = 16  # s
_TAG_DESCRIPTION = 13  # d
_TAG_EXPIRY = 6  # x
_TAG_MIN_FINAL_CLTV = 24  # c
_TAG_FEATURES = 5  # 9

# Feature bits var_onion_optin (8) and payment_secret (14) as required, like LND-issued invoices.
_FEATURE_BITS = (1 << 8) | (1 << 14)
_MIN_FINAL_CLTV_EXPIRY = 40
_MAINNET_PREFIX = "lnbc"


@dataclass(frozen=True)
class EncodedInvoice:
    payment_request: str
    payment_hash: str  # hex sha256(preimage)
    preimage: str  # hex
    payment_secret: str  # hex


def _bech32_polymod(values: list[int]) -> int:
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                checksum ^= generator
    return checksum


def _bech32_encode(hrp: str, data: list[int]) -> str:
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[d] for d in data + checksum)


def _bytes_to_groups(data: bytes) -> list[int]:
    """8-bit bytes to 5-bit groups, zero-padded at the end."""
    accumulator, bits, groups = 0, 0, []
    for byte in data:
        accumulator = (accumulator << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            groups.append((accumulator >> bits) & 31)
    if bits:
        groups.append((accumulator << (5 - bits)) & 31)
    return groups


def _groups_to_bytes(groups: list[int]) -> bytes:
    """5-bit groups to bytes, zero-padding the last byte (what the signature covers)."""
    accumulator, bits, out = 0, 0, bytearray()
    for group in groups:
        accumulator = (accumulator << 5) | group
        bits += 5
        while bits >= 8:
            bits -= 8
            out.append((accumulator >> bits) & 0xFF)
    if bits:
        out.append((accumulator << (8 - bits)) & 0xFF)
    return bytes(out)


def _int_to_groups(value: int, min_groups: int = 1) -> list[int]:
    groups = []
    while value:
        groups.append(value & 31)
        value >>= 5
    groups.extend([0] * (min_groups - len(groups)))
    return list(reversed(groups))


def _tagged(tag: int, groups: list[int]) -> list[int]:
    if len(groups) >= 1024:
        raise ValueError("tagged field too long for BOLT11")
    return [tag, len(groups) >> 5, len(groups) & 31] + groups


def amount_hrp(sats: int) -> str:
    """The human-readable amount: the shortest exact BTC multiplier form of `sats`."""
    if sats <= 0:
        raise ValueError("BOLT11 amounts here are positive sats")
    if sats % 100_000 == 0:
        return f"{sats // 100_000}m"
    if sats % 100 == 0:
        return f"{sats // 100}u"
    return f"{sats * 10}n"


def encode_invoice(
    node_key: PrivateKey,
    *,
    sats: int,
    memo: str,
    expiry_seconds: int,
    timestamp: int,
    preimage: bytes | None = None,
) -> EncodedInvoice:
    """A signed mainnet BOLT11 payment request for `sats`, with a fresh random preimage."""
    preimage = preimage or secrets.token_bytes(32)
    payment_hash = hashlib.sha256(preimage).digest()
    payment_secret = secrets.token_bytes(32)
    hrp = _MAINNET_PREFIX + amount_hrp(sats)
    data = _int_to_groups(timestamp, 7)
    data += _tagged(_TAG_PAYMENT_HASH, _bytes_to_groups(payment_hash))
    data += _tagged(_TAG_PAYMENT_SECRET, _bytes_to_groups(payment_secret))
    data += _tagged(_TAG_DESCRIPTION, _bytes_to_groups(memo.encode("utf-8")))
    data += _tagged(_TAG_EXPIRY, _int_to_groups(expiry_seconds))
    data += _tagged(_TAG_MIN_FINAL_CLTV, _int_to_groups(_MIN_FINAL_CLTV_EXPIRY))
    data += _tagged(_TAG_FEATURES, _int_to_groups(_FEATURE_BITS))
    signature = node_key.sign_recoverable(hrp.encode("ascii") + _groups_to_bytes(data))
    payment_request = _bech32_encode(hrp, data + _bytes_to_groups(signature))
    return EncodedInvoice(
        payment_request=payment_request,
        payment_hash=payment_hash.hex(),
        preimage=preimage.hex(),
        payment_secret=payment_secret.hex(),
    )
