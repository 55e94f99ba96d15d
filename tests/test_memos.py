"""Memos on forwarding invoices: their wording and Blink's 639-byte limit."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.payments.memos import (
    MAX_MEMO_BYTES,
    describe_tip,
    format_display_amount,
    merchant_memo,
    tip_leg_display_amount,
    tip_memo,
    truncate_utf8,
)


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


# --- truncate_utf8 -------------------------------------------------------------------------------


def test_short_text_is_returned_unchanged():
    assert truncate_utf8("coffee", 639) == "coffee"


def test_ascii_is_cut_at_the_byte_limit():
    assert truncate_utf8("a" * 700) == "a" * 639


def test_cut_never_splits_a_multibyte_character():
    # "€" is 3 bytes: 213 of them fill 639 bytes exactly, a leading "x" pushes the last one out.
    assert truncate_utf8("\u20ac" * 213) == "\u20ac" * 213
    assert truncate_utf8("x" + "\u20ac" * 213) == "x" + "\u20ac" * 212


def test_cjk_memo_at_the_boundary():
    text = "\u5496\u5561" * 200  # "咖啡", 3 bytes each
    result = truncate_utf8(text)
    assert utf8_len(result) == 639
    assert text.startswith(result)


def test_four_byte_emoji_is_dropped_whole_when_it_does_not_fit():
    text = "a" * 637 + "\U0001f600"  # 637 + 4 bytes
    assert truncate_utf8(text) == "a" * 637


def test_combining_accent_stays_with_its_letter():
    # "e" + COMBINING ACUTE (2 bytes): cutting after "e" would strip the accent from it.
    text = "a" * 637 + "e\u0301"
    assert truncate_utf8(text) == "a" * 637


def test_zero_width_joined_emoji_is_not_broken_apart():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # man ZWJ woman ZWJ girl, 18 bytes
    text = "a" * 630 + family
    assert truncate_utf8(text) == "a" * 630


def test_skin_tone_modifier_stays_with_its_emoji():
    thumbs_up = "\U0001f44d\U0001f3fd"  # 8 bytes
    assert truncate_utf8("a" * 634 + thumbs_up) == "a" * 634


def test_flag_is_not_cut_in_half():
    flags = "\U0001f1e8\U0001f1ed" * 2  # two Swiss flags, 8 bytes each
    assert truncate_utf8("a" * 627 + flags) == "a" * 627 + "\U0001f1e8\U0001f1ed"


def test_one_cluster_longer_than_the_limit_is_still_cut_at_a_character():
    zalgo = "e" + "\u0301" * 400  # one grapheme of 801 bytes
    result = truncate_utf8(zalgo)
    assert result and zalgo.startswith(result)
    assert utf8_len(result) <= 639


def test_lone_surrogate_becomes_a_replacement_character():
    assert truncate_utf8("ok\ud800") == "ok\ufffd"


def test_negative_limit_is_refused():
    with pytest.raises(ValueError):
        truncate_utf8("x", -1)


memo_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),
    max_size=900,
) | st.text(alphabet="a\u00e9\u20ac\u5496\U0001f600\u0301\u200d\U0001f3fd\U0001f1e8", max_size=400)


@given(text=memo_text, limit=st.integers(min_value=0, max_value=1200))
def test_truncated_text_is_a_valid_utf8_prefix_within_the_limit(text, limit):
    result = truncate_utf8(text, limit)
    encoded = result.encode("utf-8")  # raises if not encodable
    assert len(encoded) <= limit
    assert text.startswith(result)
    if utf8_len(text) <= limit:
        assert result == text


@given(text=st.text(alphabet="a\u00e9\u20ac\u5496\U0001f600", max_size=400), limit=st.integers(0, 700))
def test_without_clusters_truncation_keeps_as_much_as_fits(text, limit):
    result = truncate_utf8(text, limit)
    if result != text:
        assert utf8_len(text[: len(result) + 1]) > limit


# --- merchant memo --------------------------------------------------------------------------------


def test_merchant_memo_without_tip():
    assert merchant_memo("2 coffees", None, []) == "BlinkPOS: 2 coffees"


def test_merchant_memo_with_tip_names_the_recipients():
    assert (
        merchant_memo("2 coffees", "$1.50", ["alice", "bob"])
        == "BlinkPOS: 2 coffees | $1.50 tip to alice, bob"
    )


def test_merchant_memo_without_original_memo():
    assert merchant_memo("", "10%", ["alice"]) == "BlinkPOS | 10% tip to alice"
    assert merchant_memo(None, None, []) == "BlinkPOS"


def test_long_memo_is_shortened_so_the_tip_note_survives():
    result = merchant_memo("\u5496" * 400, "$1.50", ["alice"])
    assert utf8_len(result) <= MAX_MEMO_BYTES
    assert result.startswith("BlinkPOS: \u5496")
    assert result.endswith("\u2026 | $1.50 tip to alice")


def test_tip_note_longer_than_the_limit_is_itself_cut():
    names = [f"{chr(ord('a') + i)}" * 50 for i in range(14)]
    result = merchant_memo("sale", "$1.50", names)
    assert utf8_len(result) <= MAX_MEMO_BYTES
    assert result.startswith("BlinkPOS: sale | $1.50 tip to aaaa")


@given(
    memo=memo_text,
    tip_text=st.none() | st.text(max_size=40),
    recipients=st.lists(st.text(max_size=50), max_size=10),
)
def test_merchant_memo_always_fits(memo, tip_text, recipients):
    result = merchant_memo(memo, tip_text, recipients)
    assert utf8_len(result) <= MAX_MEMO_BYTES
    assert result.startswith("BlinkPOS")


# --- tip memo -------------------------------------------------------------------------------------


def test_tip_memo_with_display_amount():
    assert tip_memo(1, 2, "$0.75", 1250) == "BlinkPOS Tip (1/2): $0.75 (1250 sats)"


def test_tip_memo_for_a_sats_sale():
    assert tip_memo(2, 2, None, 50) == "BlinkPOS Tip (2/2): 50 sats"


@pytest.mark.parametrize(("index", "count"), [(0, 2), (3, 2)])
def test_tip_memo_refuses_an_index_outside_the_count(index, count):
    with pytest.raises(ValueError):
        tip_memo(index, count, None, 1)


def test_tip_memo_with_huge_display_text_is_cut():
    assert utf8_len(tip_memo(1, 1, "\U0001f600" * 300, 5)) <= MAX_MEMO_BYTES


# --- display amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("1.5"), "USD", "$1.50"),
        (Decimal("2"), "eur", "\u20ac2.00"),
        (Decimal("1499.6"), "JPY", "1500 JPY"),
        (Decimal("12.345"), "CHF", "12.35 CHF"),
        (Decimal("210"), "BTC", "210 sats"),
    ],
)
def test_display_amount_formatting(amount, currency, expected):
    assert format_display_amount(amount, currency) == expected


def test_tip_described_by_fiat_amount_then_percent_then_sats():
    assert describe_tip(150, "USD", Decimal("1.5"), Decimal("10")) == "$1.50"
    assert describe_tip(150, "BTC", Decimal("150"), Decimal("10.00")) == "10%"
    assert describe_tip(150, "USD", None, Decimal("12.5")) == "12.5%"
    assert describe_tip(150, None, None, None) == "150 sats"


def test_tip_leg_display_amount_is_pro_rata():
    assert tip_leg_display_amount(250, 1000, "USD", Decimal("2")) == "$0.50"
    assert tip_leg_display_amount(250, 1000, "BTC", Decimal("1000")) is None
    assert tip_leg_display_amount(250, 1000, "USD", None) is None
