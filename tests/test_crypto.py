"""KeyBox: AES-256-GCM for merchant API keys, HMAC fingerprints, key rotation."""

from __future__ import annotations

import base64

import pytest

from service.store.crypto import KeyBox, generate_key
from service.store.errors import DecryptionFailed, InvalidKeySetting, UnknownKeyId

API_KEY = "blink_Zq8v3mU1xXsecretMerchantKey"
HASH = "ab" * 32
OTHER_HASH = "cd" * 32
KEY_A = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY_B = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()
KEY_C = base64.urlsafe_b64encode(bytes(range(200, 232))).decode()


def test_round_trip_returns_the_plaintext_and_the_token_does_not_contain_it() -> None:
    box = KeyBox.from_setting(KEY_A)
    token = box.encrypt(API_KEY, HASH)
    assert API_KEY not in token
    assert token.startswith("v1:1:")
    assert box.decrypt(token, HASH) == API_KEY


def test_each_encryption_uses_a_fresh_nonce() -> None:
    box = KeyBox.from_setting(KEY_A)
    assert box.encrypt(API_KEY, HASH) != box.encrypt(API_KEY, HASH)


def test_bare_key_without_padding_is_accepted_as_key_id_1() -> None:
    box = KeyBox.from_setting(KEY_A.rstrip("="))
    assert box.key_ids == (1,)
    assert box.active_key_id == 1


def test_token_of_an_unknown_key_id_is_refused() -> None:
    token = KeyBox.from_setting(f"7:{KEY_B}").encrypt(API_KEY, HASH)
    with pytest.raises(UnknownKeyId):
        KeyBox.from_setting(KEY_A).decrypt(token, HASH)


def test_same_key_id_with_different_key_material_fails_authentication() -> None:
    token = KeyBox.from_setting(KEY_A).encrypt(API_KEY, HASH)
    with pytest.raises(DecryptionFailed):
        KeyBox.from_setting(KEY_B).decrypt(token, HASH)


@pytest.mark.parametrize("position", [5, 20, -3])
def test_tampered_ciphertext_is_refused(position: int) -> None:
    box = KeyBox.from_setting(KEY_A)
    token = box.encrypt(API_KEY, HASH)
    prefix, body = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    tampered = f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}"
    with pytest.raises(DecryptionFailed):
        box.decrypt(tampered, HASH)


def test_ciphertext_moved_to_another_split_does_not_decrypt() -> None:
    box = KeyBox.from_setting(KEY_A)
    with pytest.raises(DecryptionFailed):
        box.decrypt(box.encrypt(API_KEY, HASH), OTHER_HASH)


@pytest.mark.parametrize(
    "token", ["", "garbage", "v2:1:AAAA", "v1:x:AAAA", "v1:1:", "v1:1:AAAA", "v1:1:!!!!"]
)
def test_malformed_tokens_raise_decryption_failed(token: str) -> None:
    with pytest.raises(DecryptionFailed):
        KeyBox.from_setting(KEY_A).decrypt(token, HASH)


def test_rotation_encrypts_with_the_first_key_and_decrypts_old_tokens() -> None:
    old_box = KeyBox.from_setting(KEY_A)
    old_token = old_box.encrypt(API_KEY, HASH)

    rotated = KeyBox.from_setting(f"3:{KEY_C}, 2:{KEY_B}, 1:{KEY_A}")
    assert rotated.active_key_id == 3
    new_token = rotated.encrypt(API_KEY, HASH)
    assert new_token.startswith("v1:3:")
    assert rotated.decrypt(old_token, HASH) == API_KEY
    assert rotated.decrypt(new_token, HASH) == API_KEY
    assert rotated.needs_reencryption(old_token)
    assert not rotated.needs_reencryption(new_token)
    with pytest.raises(UnknownKeyId):
        old_box.decrypt(new_token, HASH)


def test_fingerprint_survives_adding_a_new_active_key() -> None:
    before = KeyBox.from_setting(KEY_A).fingerprint(API_KEY)
    after = KeyBox.from_setting(f"2:{KEY_B},1:{KEY_A}").fingerprint(API_KEY)
    assert before == after
    assert len(before) == 64 and API_KEY not in before


def test_fingerprint_differs_between_api_keys_and_between_fingerprint_keys() -> None:
    box = KeyBox.from_setting(KEY_A)
    assert box.fingerprint(API_KEY) != box.fingerprint(API_KEY + "x")
    assert box.fingerprint(API_KEY) != KeyBox.from_setting(KEY_B).fingerprint(API_KEY)


@pytest.mark.parametrize(
    "setting",
    [
        "",
        "   ",
        "not-base64-at-all!",
        base64.urlsafe_b64encode(b"short").decode(),
        f"0:{KEY_A}",
        f"x:{KEY_A}",
        f"2:{KEY_A},2:{KEY_B}",
        f"2:{KEY_A},{KEY_B}",
    ],
)
def test_malformed_settings_are_refused(setting: str) -> None:
    with pytest.raises(InvalidKeySetting):
        KeyBox.from_setting(setting)


def test_error_messages_and_repr_never_contain_key_material() -> None:
    box = KeyBox.from_setting(f"2:{KEY_B},1:{KEY_A}")
    assert KEY_A not in repr(box) and KEY_B not in repr(box)
    with pytest.raises(InvalidKeySetting) as excinfo:
        KeyBox.from_setting(f"1:{KEY_A[:-8]}")
    assert KEY_A[:-8] not in str(excinfo.value)
    with pytest.raises(DecryptionFailed) as excinfo:
        box.decrypt(box.encrypt(API_KEY, HASH), OTHER_HASH)
    assert API_KEY not in str(excinfo.value)


def test_generated_keys_are_usable_settings() -> None:
    box = KeyBox.from_setting(generate_key())
    assert box.decrypt(box.encrypt(API_KEY, HASH), HASH) == API_KEY
