"""Recipients: every spelling of one recipient normalises to one value; bad ones are refused."""

from __future__ import annotations

import pytest

from service.lnurl import RecipientInvalid, RecipientKind, parse_recipient
from service.lnurl.recipients import encode_lnurl

NPUB = "npub1" + "q" * 58  # npub.cash names are 63 characters


def test_bare_username_is_a_blink_user_in_lowercase():
    recipient = parse_recipient("  Alice_1 ")
    assert (recipient.kind, recipient.normalized, recipient.url) == (RecipientKind.BLINK, "alice_1", None)


@pytest.mark.parametrize(
    "spelling", ["alice", "ALICE", "alice@blink.sv", "Alice@Pay.Blink.SV", "alice@blink.sv."]
)
def test_every_blink_spelling_is_the_same_blink_user(spelling):
    assert parse_recipient(spelling) == parse_recipient("alice")


def test_blink_domains_are_configurable():
    recipient = parse_recipient("bob@tips.example.com", blink_domains=("tips.example.com",))
    assert recipient.kind is RecipientKind.BLINK and recipient.normalized == "bob"
    assert parse_recipient("bob@blink.sv", blink_domains=("tips.example.com",)).kind is (
        RecipientKind.LIGHTNING_ADDRESS
    )


def test_an_address_on_a_blink_domain_needs_a_valid_blink_username():
    with pytest.raises(RecipientInvalid) as caught:
        parse_recipient("a.b@blink.sv")
    assert caught.value.code == "recipient_invalid"


def test_lightning_address_is_lowercased_and_fetched_over_https():
    recipient = parse_recipient("Carol.Tips+Bar@Wallet.Example.COM")
    assert recipient.kind is RecipientKind.LIGHTNING_ADDRESS
    assert recipient.normalized == "carol.tips+bar@wallet.example.com"
    assert recipient.url == "https://wallet.example.com/.well-known/lnurlp/carol.tips+bar"
    assert parse_recipient("carol.tips+bar@wallet.example.com:443") == recipient


def test_npub_cash_address_with_its_63_character_name():
    recipient = parse_recipient(f"{NPUB}@npub.cash")
    assert recipient.normalized == f"{NPUB}@npub.cash"
    assert recipient.url == f"https://npub.cash/.well-known/lnurlp/{NPUB}"


def test_insecure_host_is_reached_over_http_and_keeps_its_port():
    recipient = parse_recipient("dave@127.0.0.1:8123", insecure_hosts={"127.0.0.1:8123"})
    assert recipient.normalized == "dave@127.0.0.1:8123"
    assert recipient.url == "http://127.0.0.1:8123/.well-known/lnurlp/dave"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        None,
        42,
        "eve@",
        "@example.com",
        "e ve@example.com",
        "eve/x@example.com",
        "eve@exa mple.com",
        "eve@-bad-.com",
        "eve@example",
        "eve@example.com:99999",
        "eve@hidden.onion",
        "lnurlp://hidden.onion/pay",
        "1notausername",
        "ab",
        "lnurl1notbech32",
    ],
)
def test_unusable_recipients_are_refused_with_recipient_invalid(raw):
    with pytest.raises(RecipientInvalid) as caught:
        parse_recipient(raw)
    assert caught.value.code == "recipient_invalid"
    assert caught.value.message


def test_lnurl_in_either_case_is_one_recipient_and_may_exceed_90_characters():
    url = "https://pay.example.com/lnurlp/" + "x" * 80 + "?id=7"
    lower = encode_lnurl(url)
    assert len(lower) > 90
    first, second = parse_recipient(lower), parse_recipient(lower.upper())
    assert first == second
    assert first.kind is RecipientKind.LNURL and first.url == url and first.normalized == lower
    assert parse_recipient("lightning:" + lower.upper()) == first


def test_lud17_lnurlp_scheme_is_the_same_recipient_as_its_bech32_form():
    url = "https://pay.example.com/lnurlp/abc?x=1"
    assert parse_recipient("lnurlp://pay.example.com/lnurlp/abc?x=1") == parse_recipient(encode_lnurl(url))


def test_lnurl_of_a_well_known_address_url_is_that_address():
    address = parse_recipient("frank@wallet.example.com")
    assert parse_recipient(encode_lnurl("https://wallet.example.com/.well-known/lnurlp/frank")) == address
    assert (
        parse_recipient(encode_lnurl("https://blink.sv/.well-known/lnurlp/frank")).kind is RecipientKind.BLINK
    )


def test_lnurl_with_a_mixed_case_checksum_or_another_prefix_is_refused():
    lower = encode_lnurl("https://pay.example.com/x")
    for bad in (lower[:10] + lower[10:].upper(), lower[:-1] + ("q" if lower[-1] != "q" else "p")):
        with pytest.raises(RecipientInvalid):
            parse_recipient(bad)
