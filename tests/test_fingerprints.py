"""Fingerprints: the keyed HMAC that identifies a merchant; rotation of its secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.store.errors import InvalidKeySetting
from service.store.fingerprints import Fingerprints, generate_key, parse_key_setting

API_KEY = "blink_Zq8v3mU1xXsecretMerchantKey"
KEY_A = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY_B = base64.urlsafe_b64encode(bytes(range(100, 132))).decode()
KEY_C = base64.urlsafe_b64encode(bytes(range(200, 232))).decode()


def test_fingerprint_is_the_hmac_earlier_versions_stored() -> None:
    # Fingerprints stored before the key was dropped must keep identifying their merchant.
    mac_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"blinkpos/merchant-api-key/fingerprint/v1"
    ).derive(bytes(range(32)))
    expected = hmac.new(mac_key, API_KEY.encode(), hashlib.sha256).hexdigest()
    assert Fingerprints.from_setting(KEY_A).fingerprint(API_KEY) == expected


def test_bare_key_without_padding_is_accepted_as_key_id_1() -> None:
    fingerprints = Fingerprints.from_setting(KEY_A.rstrip("="))
    assert list(parse_key_setting(KEY_A.rstrip("="))) == [1]
    assert fingerprints.fingerprint(API_KEY) == Fingerprints.from_setting(KEY_A).fingerprint(API_KEY)


def test_fingerprint_reveals_nothing_and_differs_between_keys_and_secrets() -> None:
    fingerprints = Fingerprints.from_setting(KEY_A)
    value = fingerprints.fingerprint(API_KEY)
    assert len(value) == 64 and API_KEY not in value
    assert value != fingerprints.fingerprint(API_KEY + "x")
    assert value != Fingerprints.from_setting(KEY_B).fingerprint(API_KEY)


def test_rotation_makes_new_fingerprints_with_the_first_secret_and_still_knows_the_old_ones() -> None:
    before = Fingerprints.from_setting(KEY_A).fingerprint(API_KEY)
    rotated = Fingerprints.from_setting(f"3:{KEY_C}, 2:{KEY_B}, 1:{KEY_A}")
    assert list(parse_key_setting(f"3:{KEY_C}, 2:{KEY_B}, 1:{KEY_A}")) == [3, 2, 1]
    assert rotated.fingerprint(API_KEY) == Fingerprints.from_setting(KEY_C).fingerprint(API_KEY)
    assert rotated.fingerprint(API_KEY) != before
    assert rotated.candidates(API_KEY)[0] == rotated.fingerprint(API_KEY)
    assert before in rotated.candidates(API_KEY)
    assert rotated.matches(API_KEY, before)
    assert rotated.matches(API_KEY, rotated.fingerprint(API_KEY))
    assert not rotated.matches(API_KEY + "x", before)
    # Once the old secret is dropped, what was fingerprinted with it is nobody's any more.
    assert not Fingerprints.from_setting(f"3:{KEY_C}").matches(API_KEY, before)


@pytest.mark.parametrize("stored", ["", "ü" * 64, "0" * 64, "not hex at all"])
def test_matches_refuses_any_other_text_without_raising(stored: str) -> None:
    assert not Fingerprints.from_setting(KEY_A).matches(API_KEY, stored)


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
        Fingerprints.from_setting(setting)


def test_error_messages_and_repr_never_contain_key_material() -> None:
    fingerprints = Fingerprints.from_setting(f"2:{KEY_B},1:{KEY_A}")
    assert KEY_A not in repr(fingerprints) and KEY_B not in repr(fingerprints)
    with pytest.raises(InvalidKeySetting) as excinfo:
        Fingerprints.from_setting(f"1:{KEY_A[:-8]}")
    assert KEY_A[:-8] not in str(excinfo.value)


def test_generated_keys_are_usable_settings() -> None:
    assert len(Fingerprints.from_setting(generate_key()).fingerprint(API_KEY)) == 64
